//! The mock EWS's switches as data: what the `exgate-mock` flags, `GET/POST /_mock/ews` and
//! the Rust methods of [`crate::MockMicrosoft`] read and change.

use serde::{Deserialize, Serialize};

/// The Exchange the mock presents (`t:ServerVersionInfo`) and the request versions it accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerVersion {
    #[serde(rename = "Exchange2010_SP2")]
    Exchange2010Sp2,
    #[serde(rename = "Exchange2013")]
    Exchange2013,
    #[serde(rename = "Exchange2016")]
    Exchange2016,
    /// The default.
    #[default]
    #[serde(rename = "Exchange2019")]
    Exchange2019,
    /// Exchange Server Subscription Edition.
    #[serde(rename = "ExchangeSE")]
    ExchangeSe,
    /// Exchange Online.
    #[serde(rename = "Online")]
    Online,
}

/// Every `RequestServerVersion` value of the schema, oldest first.
pub(crate) const REQUEST_VERSIONS: &[&str] = &[
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2009",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2012",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
    "V2015_10_05",
    "V2016_01_06",
    "V2016_04_13",
    "V2016_07_13",
    "V2016_10_10",
    "V2017_01_07",
    "V2017_04_14",
    "V2017_07_11",
    "V2017_10_09",
    "V2018_01_08",
];

impl ServerVersion {
    /// Every version, in the order of their names.
    pub const ALL: [ServerVersion; 6] = [
        ServerVersion::Exchange2010Sp2,
        ServerVersion::Exchange2013,
        ServerVersion::Exchange2016,
        ServerVersion::Exchange2019,
        ServerVersion::ExchangeSe,
        ServerVersion::Online,
    ];

    /// The name used by the flags and the admin endpoint.
    pub fn name(self) -> &'static str {
        match self {
            ServerVersion::Exchange2010Sp2 => "Exchange2010_SP2",
            ServerVersion::Exchange2013 => "Exchange2013",
            ServerVersion::Exchange2016 => "Exchange2016",
            ServerVersion::Exchange2019 => "Exchange2019",
            ServerVersion::ExchangeSe => "ExchangeSE",
            ServerVersion::Online => "Online",
        }
    }

    /// Parses a name (any case): `Exchange2010_SP2`, `2010sp2`, `2013`, `2016`, `2019`, `SE`,
    /// `Online`.
    pub fn parse(text: &str) -> Result<ServerVersion, String> {
        let t = text
            .trim()
            .to_ascii_lowercase()
            .replace(['_', ' ', '-'], "");
        let t = t.strip_prefix("exchange").unwrap_or(&t);
        Ok(match t {
            "2010sp2" => ServerVersion::Exchange2010Sp2,
            "2013" => ServerVersion::Exchange2013,
            "2016" => ServerVersion::Exchange2016,
            "2019" => ServerVersion::Exchange2019,
            "se" => ServerVersion::ExchangeSe,
            "online" => ServerVersion::Online,
            _ => {
                return Err(format!(
                    "unknown Exchange version `{text}` (expected Exchange2010_SP2, Exchange2013, Exchange2016, Exchange2019, ExchangeSE or Online)"
                ));
            }
        })
    }

    /// `(MajorVersion, MinorVersion, MajorBuildNumber, MinorBuildNumber, Version)` of
    /// `t:ServerVersionInfo`, as these servers answer.
    pub(crate) fn info(self) -> (u32, u32, u32, u32, &'static str) {
        match self {
            ServerVersion::Exchange2010Sp2 => (14, 2, 247, 5, "Exchange2010_SP2"),
            ServerVersion::Exchange2013 => (15, 0, 1497, 2, "Exchange2013_SP1"),
            ServerVersion::Exchange2016 => (15, 1, 2507, 6, "V2017_07_11"),
            ServerVersion::Exchange2019 => (15, 2, 1544, 4, "V2017_07_11"),
            ServerVersion::ExchangeSe => (15, 2, 2562, 17, "V2017_07_11"),
            ServerVersion::Online => (15, 20, 8769, 23, "V2018_01_08"),
        }
    }

    /// The newest `RequestServerVersion` this server understands.
    fn newest_request_version(self) -> &'static str {
        match self {
            ServerVersion::Exchange2010Sp2 => "Exchange2010_SP2",
            ServerVersion::Exchange2013 => "Exchange2013_SP1",
            ServerVersion::Exchange2016
            | ServerVersion::Exchange2019
            | ServerVersion::ExchangeSe => "V2017_07_11",
            ServerVersion::Online => "V2018_01_08",
        }
    }

    /// Whether this server accepts a request made for `requested`.
    pub(crate) fn accepts(self, requested: &str) -> bool {
        let newest = REQUEST_VERSIONS
            .iter()
            .position(|v| *v == self.newest_request_version());
        let asked = REQUEST_VERSIONS.iter().position(|v| *v == requested);
        matches!((asked, newest), (Some(a), Some(n)) if a <= n)
    }
}

/// Throttling modelled on Exchange's default policy: at most `max_concurrency` requests per
/// mailbox at once (EWSMaxConcurrency, 27), and a budget of `budget` requests per
/// `window_secs` (a simple stand-in for the CPU-time budget); past it, `ErrorServerBusy` with
/// `BackOffMilliseconds` until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsThrottlePolicy {
    pub max_concurrency: usize,
    pub budget: u32,
    pub window_secs: u64,
}

impl EwsThrottlePolicy {
    /// Exchange's default: 27 concurrent requests per user, and (the mock's stand-in for the
    /// CPU budget) 1,000 requests per minute.
    pub fn exchange_default() -> Self {
        Self {
            max_concurrency: 27,
            budget: 1000,
            window_secs: 60,
        }
    }
}

/// What autodiscover answers instead of the EWS URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AutodiscoverRedirect {
    /// POX `Action` `redirectAddr`, SOAP `RedirectAddress`: ask again for another address.
    Address { address: String },
    /// POX `Action` `redirectUrl`, SOAP `RedirectUrl`, JSON: another autodiscover URL (may be
    /// hostile, e.g. `http://…`).
    Url { url: String },
}

/// The switches as they are now (`GET /_mock/ews`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsSwitches {
    pub version: ServerVersion,
    /// `None`: no throttling.
    pub throttling: Option<EwsThrottlePolicy>,
    /// `ErrorServerBusy` (throttling, the `429` fault) is answered inside an HTTP 200 response
    /// message (`ResponseClass="Error"`, `MessageXml` with `BackOffMilliseconds`), as Exchange
    /// also does, instead of as an HTTP 500 SOAP fault.
    #[serde(default)]
    pub busy_in_response: bool,
    /// Exchange Online's 2026 block: EWS refuses (403) bearer tokens of apps not in
    /// `allowed_apps`.
    pub block_apps: bool,
    /// Client IDs (lower case) allowed while `block_apps` is on.
    pub allowed_apps: Vec<String>,
    /// Which authentication schemes are enabled (and offered in `WWW-Authenticate`).
    pub basic: bool,
    pub ntlm: bool,
    pub bearer: bool,
    /// Autodiscover answers this redirect instead of the EWS URL.
    pub autodiscover_redirect: Option<AutodiscoverRedirect>,
    /// Streaming notifications are offered (Exchange 2010 SP1 and later); off, the server
    /// answers as Exchange 2010 before SP1: `StreamingSubscriptionRequest` and
    /// `GetStreamingEvents` fail schema validation, pull subscriptions work.
    #[serde(default = "yes")]
    pub streaming: bool,
    /// Open streams swallow their notifications (the subscription moves on without them).
    #[serde(default)]
    pub drop_notifications: bool,
}

fn yes() -> bool {
    true
}

impl Default for EwsSwitches {
    fn default() -> Self {
        Self {
            version: ServerVersion::default(),
            throttling: None,
            busy_in_response: false,
            block_apps: false,
            allowed_apps: Vec::new(),
            basic: true,
            ntlm: true,
            bearer: true,
            autodiscover_redirect: None,
            streaming: true,
            drop_notifications: false,
        }
    }
}

/// A change of the switches (`POST /_mock/ews`): absent members stay as they are. `throttling`
/// and `autodiscover_redirect` take `null` to switch off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsSwitchChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ServerVersion>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub throttling: Option<Option<EwsThrottlePolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_in_response: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_apps: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_apps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntlm: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<bool>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub autodiscover_redirect: Option<Option<AutodiscoverRedirect>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_notifications: Option<bool>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

impl EwsSwitchChange {
    /// Reads a change from JSON (`POST /_mock/ews`'s body).
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not an EWS switch change: {e}"))
    }

    /// The switches `to` would become with this change, or why it cannot apply.
    pub fn apply(&self, to: &EwsSwitches) -> Result<EwsSwitches, String> {
        let mut s = to.clone();
        if let Some(v) = self.version {
            s.version = v;
        }
        if let Some(t) = self.throttling {
            if let Some(p) = t
                && (p.max_concurrency == 0 || p.budget == 0 || p.window_secs == 0)
            {
                return Err(
                    "throttling needs max_concurrency, budget and window_secs of at least 1".into(),
                );
            }
            s.throttling = t;
        }
        if let Some(b) = self.busy_in_response {
            s.busy_in_response = b;
        }
        if let Some(b) = self.block_apps {
            s.block_apps = b;
        }
        if let Some(apps) = &self.allowed_apps {
            s.allowed_apps = apps.iter().map(|a| a.trim().to_ascii_lowercase()).collect();
        }
        if let Some(b) = self.basic {
            s.basic = b;
        }
        if let Some(b) = self.ntlm {
            s.ntlm = b;
        }
        if let Some(b) = self.bearer {
            s.bearer = b;
        }
        if let Some(b) = self.streaming {
            s.streaming = b;
        }
        if let Some(b) = self.drop_notifications {
            s.drop_notifications = b;
        }
        if let Some(r) = &self.autodiscover_redirect {
            if let Some(AutodiscoverRedirect::Address { address }) = r
                && !address.contains('@')
            {
                return Err(format!("`{address}` is not an SMTP address"));
            }
            if let Some(AutodiscoverRedirect::Url { url }) = r
                && url::Url::parse(url).is_err()
            {
                return Err(format!("`{url}` is not a URL"));
            }
            s.autodiscover_redirect = r.clone();
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_accept_only_what_they_know() {
        assert_eq!(
            ServerVersion::parse("2010sp2"),
            Ok(ServerVersion::Exchange2010Sp2)
        );
        assert_eq!(ServerVersion::parse("SE"), Ok(ServerVersion::ExchangeSe));
        assert!(ServerVersion::parse("2003").is_err());
        for v in ServerVersion::ALL {
            assert_eq!(ServerVersion::parse(v.name()), Ok(v));
        }
        assert!(ServerVersion::Exchange2010Sp2.accepts("Exchange2010_SP2"));
        assert!(!ServerVersion::Exchange2010Sp2.accepts("Exchange2013"));
        assert!(ServerVersion::Exchange2019.accepts("Exchange2016"));
        assert!(!ServerVersion::Exchange2019.accepts("V2018_01_08"));
        assert!(ServerVersion::Online.accepts("V2018_01_08"));
        assert!(!ServerVersion::Online.accepts("Exchange2099"));
    }

    #[test]
    fn changes_apply_whole_or_not_at_all() {
        let s = EwsSwitches::default();
        let change = EwsSwitchChange::from_json(
            r#"{"version":"Online","throttling":{"max_concurrency":2,"budget":5,"window_secs":60},"block_apps":true}"#,
        )
        .unwrap();
        let after = change.apply(&s).unwrap();
        assert_eq!(after.version, ServerVersion::Online);
        assert_eq!(after.throttling.unwrap().budget, 5);
        let off = EwsSwitchChange::from_json(r#"{"throttling":null}"#).unwrap();
        assert_eq!(off.apply(&after).unwrap().throttling, None);
        let bad = EwsSwitchChange::from_json(
            r#"{"version":"Online","autodiscover_redirect":{"kind":"address","address":"nope"}}"#,
        )
        .unwrap();
        assert!(bad.apply(&s).is_err());
        assert!(EwsSwitchChange::from_json(r#"{"bogus":1}"#).is_err());
    }
}
