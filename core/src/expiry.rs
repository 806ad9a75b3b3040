//! Credentials that expire, seen in time: a connection's client secret, certificate or password
//! (warned 30, 14, 7 and 1 days ahead, and once expired), and an account's refresh token, which
//! Entra ID lets lapse after 90 days without use (warned 14 days ahead).
//!
//! Pure functions of the settings or account and the time now (the injected clock's); the CLI,
//! the API, the gateway's log and its metrics all render what these answer.

pub mod graph;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime};

use crate::Error;
use crate::auth::SignIn;
use crate::connections::Connections;
use crate::model::{
    Account, AccountStatus, Auth, ClientCredential, ConnectionSettings, CredentialKind,
    ExpirySource, Principal,
};

/// The days ahead at which a credential's expiry is warned about, widest first.
pub const WARN_DAYS: [i64; 4] = [30, 14, 7, 1];

/// How long Entra ID keeps a refresh token that is not used (DESIGN.md §2).
pub const REFRESH_TOKEN_INACTIVITY: Duration = Duration::days(90);

/// How many days before a refresh token lapses it is warned about.
pub const REFRESH_WARN_DAYS: i64 = 14;

/// How near an expiry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Warning {
    /// Within 30 days.
    Within30Days,
    /// Within 14 days.
    Within14Days,
    /// Within 7 days.
    Within7Days,
    /// Within a day.
    Within1Day,
    /// Already expired.
    Expired,
}

impl Warning {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Within30Days => "within-30-days",
            Self::Within14Days => "within-14-days",
            Self::Within7Days => "within-7-days",
            Self::Within1Day => "within-1-day",
            Self::Expired => "expired",
        }
    }

    /// The warning for something that expires `left` from now, if any.
    pub fn for_time_left(left: Duration) -> Option<Self> {
        if left <= Duration::ZERO {
            return Some(Self::Expired);
        }
        let within = |days: i64| left <= Duration::days(days);
        if within(1) {
            Some(Self::Within1Day)
        } else if within(7) {
            Some(Self::Within7Days)
        } else if within(14) {
            Some(Self::Within14Days)
        } else if within(30) {
            Some(Self::Within30Days)
        } else {
            None
        }
    }
}

/// What a connection's credential is, in words.
fn credential_noun(settings: &ConnectionSettings) -> &'static str {
    match &settings.auth {
        Auth::OAuth2Delegated(d) => match &d.credential {
            Some(ClientCredential::Certificate(_)) => "certificate",
            _ => "client secret",
        },
        Auth::OAuth2AppOnly(a) => match &a.credential {
            ClientCredential::Certificate(_) => "certificate",
            ClientCredential::Secret(_) => "client secret",
        },
        Auth::Basic(_) | Auth::Ntlm(_) => "password",
    }
}

/// When a connection's credential expires, and how near that is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialExpiry {
    /// `client secret`, `certificate` or `password`.
    pub credential: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    pub source: ExpirySource,
    /// Seconds from now until it expires; negative once expired.
    pub seconds_left: i64,
    /// Whole days from now until it expires, rounded down; negative once expired.
    pub days_left: i64,
    pub warning: Option<Warning>,
}

impl CredentialExpiry {
    /// The expiry of `settings`' credential at `now`; `None` when it is not known.
    pub fn of(settings: &ConnectionSettings, now: OffsetDateTime) -> Option<Self> {
        Self::with_graph(settings, None, now)
    }

    /// As [`CredentialExpiry::of`], with the expiry read from Graph (`graph::read`), if any:
    /// a given date wins over Graph, and Graph over a certificate's `notAfter` (Entra ID stops
    /// taking a credential at its registration's `endDateTime`).
    pub fn with_graph(
        settings: &ConnectionSettings,
        graph: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Option<Self> {
        let known = settings.credential_expiry();
        let (expires, source) = match (known, graph) {
            (Some(given @ (_, ExpirySource::Given)), _) => given,
            (_, Some(at)) => (at, ExpirySource::Graph),
            (known, None) => known?,
        };
        let left = expires - now;
        Some(Self {
            credential: credential_noun(settings),
            expires,
            source,
            seconds_left: left.whole_seconds(),
            days_left: days_floor(left),
            warning: Warning::for_time_left(left),
        })
    }

    /// A sentence for a person: when it expires and, when it is near, what to do. `connection`
    /// names the connection in the commands.
    pub fn message(&self, connection: &str) -> String {
        let date = self.expires.date();
        let what = self.credential;
        let when = if self.seconds_left <= 0 {
            format!("the {what} expired on {date}")
        } else if self.days_left == 0 {
            format!("the {what} expires within a day ({date})")
        } else if self.days_left == 1 {
            format!("the {what} expires in 1 day ({date})")
        } else {
            format!("the {what} expires in {} days ({date})", self.days_left)
        };
        if self.warning.is_none() {
            return when;
        }
        let fix = match what {
            "certificate" => format!(
                "upload a new certificate to the app registration and give it to exgate with \
                 `exgate connection edit {connection} --certificate FILE`"
            ),
            "password" => format!(
                "set a new password for the service account and give it to exgate with \
                 `exgate connection edit {connection} --password-file FILE`"
            ),
            _ => format!(
                "create a new client secret under Certificates & secrets of the app registration \
                 and give its value to exgate with `exgate connection edit {connection} \
                 --client-secret-file FILE --credential-expires YYYY-MM-DD`"
            ),
        };
        format!("{when}: {fix}")
    }

    /// `expires` as RFC 3339.
    pub fn expires_rfc3339(&self) -> String {
        self.expires.format(&Rfc3339).unwrap_or_default()
    }
}

/// When an account's refresh token lapses for want of use, and whether that is near.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshLapse {
    /// The last use (or the sign-in, when never used since) plus 90 days.
    #[serde(with = "time::serde::rfc3339")]
    pub lapses: OffsetDateTime,
    /// Whole days until then, rounded down; negative once lapsed.
    pub days_left: i64,
    /// Within 14 days, or lapsed.
    pub warning: bool,
}

impl RefreshLapse {
    /// `None` for accounts without a stored refresh token (app-only, service accounts,
    /// session-only sign-ins).
    pub fn of(account: &Account, now: OffsetDateTime) -> Option<Self> {
        if account.credential != CredentialKind::RefreshToken {
            return None;
        }
        let last = account.last_used_at.unwrap_or(account.created_at);
        let lapses = last + REFRESH_TOKEN_INACTIVITY;
        let left = lapses - now;
        Some(Self {
            lapses,
            days_left: days_floor(left),
            warning: left <= Duration::days(REFRESH_WARN_DAYS),
        })
    }

    /// "refresh token lapses on 2027-03-01 (in 12 days)", or "lapsed on …".
    pub fn message(&self) -> String {
        let date = self.lapses.date();
        if self.days_left < 0 {
            format!(
                "refresh token lapsed on {date} (90 days without use); the user must sign in again"
            )
        } else {
            format!(
                "refresh token lapses on {date} (in {} day{}) unless used",
                self.days_left,
                if self.days_left == 1 { "" } else { "s" }
            )
        }
    }
}

/// What one round of [`Watch::run_once`] found and did.
#[derive(Debug, Default)]
pub struct WatchRound {
    /// Connections whose credential expiry was warned about in this round (each at most once
    /// a day).
    pub warned: Vec<(String, CredentialExpiry)>,
    /// Accounts whose refresh token lapses within 14 days, warned about in this round (each at
    /// most once a day).
    pub lapsing: Vec<(String, Principal, RefreshLapse)>,
    /// Accounts whose refresh token was used to keep it alive.
    pub kept_alive: Vec<(String, Principal)>,
    /// Accounts the keep-alive could not refresh, with why.
    pub keep_alive_failed: Vec<(String, Principal, String)>,
}

/// What the watch last read from Graph of a connection's credential.
#[derive(Debug)]
struct GraphReading {
    date: Date,
    updated_at: OffsetDateTime,
    answer: graph::FromGraph,
}

/// The gateway's watch over expiring credentials: run at startup and then periodically, it
/// logs each connection's expiry warning and each lapsing refresh token at most once a day
/// (per the injected clock's date), and with `keep_alive` set refreshes accounts idle for
/// longer than that, so their refresh tokens never reach 90 days without use.
#[derive(Debug)]
pub struct Watch {
    connections: Arc<Connections>,
    signin: Arc<SignIn>,
    keep_alive: Option<Duration>,
    /// The date each connection (by name) or account (connection/principal) was last warned.
    warned: Mutex<HashMap<String, Date>>,
    /// What Graph said of each connection's credential (by name): on which date, and of the
    /// connection as last updated when (an edit, such as a new secret, makes it stale).
    from_graph: Mutex<HashMap<String, GraphReading>>,
}

impl Watch {
    /// `keep_alive`: refresh accounts idle for longer than this (`None`: report only).
    pub fn new(
        connections: Arc<Connections>,
        signin: Arc<SignIn>,
        keep_alive: Option<Duration>,
    ) -> Self {
        Self {
            connections,
            signin,
            keep_alive,
            warned: Mutex::new(HashMap::new()),
            from_graph: Mutex::new(HashMap::new()),
        }
    }

    /// What Graph said of `connection`'s credential in the last round that asked, if any.
    pub fn from_graph(&self, connection: &str) -> Option<graph::FromGraph> {
        let seen = self
            .from_graph
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.get(connection).map(|r| r.answer.clone())
    }

    /// `connection`'s credential expiry as the gateway shows it (the API, the gauge, the
    /// console): a given date, else what Graph said in the last round that asked (if the
    /// connection has not changed since), else the certificate's `notAfter`.
    pub fn expiry(
        &self,
        connection: &crate::model::Connection,
        now: OffsetDateTime,
    ) -> Option<CredentialExpiry> {
        let graph = {
            let seen = self
                .from_graph
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            seen.get(connection.name.as_str())
                .filter(|r| r.updated_at == connection.updated_at)
                .and_then(|r| r.answer.expires())
        };
        CredentialExpiry::with_graph(&connection.settings, graph, now)
    }

    /// The connection's credential expiry read from Graph, asking at most once a day (per the
    /// injected clock's date) and only when no date was given (a given date wins anyway).
    async fn graph_expiry(
        &self,
        connection: &crate::model::Connection,
        today: Date,
    ) -> Option<OffsetDateTime> {
        if connection.settings.credential_expires.is_some() {
            return None;
        }
        let name = connection.name.to_string();
        {
            let seen = self
                .from_graph
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = seen.get(&name)
                && r.date == today
                && r.updated_at == connection.updated_at
            {
                return r.answer.expires();
            }
        }
        let answer = graph::read(connection, &self.signin).await;
        match &answer {
            graph::FromGraph::Found { .. } | graph::FromGraph::NotApplicable(_) => {}
            graph::FromGraph::Denied => {
                tracing::info!(connection = %name, "{}", answer.evidence());
            }
            graph::FromGraph::NotListed(_) | graph::FromGraph::Failed(_) => {
                tracing::warn!(connection = %name, "{}", answer.evidence());
            }
        }
        let expires = answer.expires();
        self.from_graph
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name,
                GraphReading {
                    date: today,
                    updated_at: connection.updated_at,
                    answer,
                },
            );
        expires
    }

    /// Whether `key` was not yet warned about on `today`; marks it.
    fn first_today(&self, key: String, today: Date) -> bool {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if warned.get(&key) == Some(&today) {
            return false;
        }
        warned.insert(key, today);
        true
    }

    /// One round: every connection, every account holding a refresh token.
    pub async fn run_once(&self) -> Result<WatchRound, Error> {
        let mut round = WatchRound::default();
        let now = self.signin.clock().now();
        let today = now.date();
        for entry in self.connections.list().await? {
            let connection = &entry.connection;
            let name = connection.name.to_string();
            let from_graph = self.graph_expiry(connection, today).await;
            if let Some(expiry) =
                CredentialExpiry::with_graph(&connection.settings, from_graph, now)
                && let Some(warning) = expiry.warning
                && self.first_today(format!("connection/{name}"), today)
            {
                tracing::warn!(
                    connection = %name,
                    expires = %expiry.expires_rfc3339(),
                    source = expiry.source.as_str(),
                    days_left = expiry.days_left,
                    warning = warning.as_str(),
                    "{}",
                    expiry.message(&name)
                );
                round.warned.push((name.clone(), expiry));
            }
            if !matches!(connection.settings.auth, Auth::OAuth2Delegated(_)) {
                continue;
            }
            let accounts = match self.signin.accounts(&name, None).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(connection = %name, error = %e, "listing accounts for the refresh token watch failed");
                    continue;
                }
            };
            let resource = crate::auth::signin::primary_resource(connection);
            for account in accounts {
                if account.status != AccountStatus::Active {
                    continue;
                }
                let Some(lapse) = RefreshLapse::of(&account, now) else {
                    continue;
                };
                let idle = now - account.last_used_at.unwrap_or(account.created_at);
                if let Some(after) = self.keep_alive
                    && idle > after
                {
                    match self
                        .signin
                        .token(&name, Some(&account.principal), resource)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(connection = %name, account = %account.principal, idle_days = idle.whole_days(), "kept an idle account's refresh token alive");
                            round
                                .kept_alive
                                .push((name.clone(), account.principal.clone()));
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(connection = %name, account = %account.principal, error = %e, "keeping an idle account's refresh token alive failed");
                            round.keep_alive_failed.push((
                                name.clone(),
                                account.principal.clone(),
                                e.to_string(),
                            ));
                        }
                    }
                }
                if lapse.warning
                    && self.first_today(format!("account/{name}/{}", account.principal), today)
                {
                    tracing::warn!(connection = %name, account = %account.principal, lapses = %lapse.lapses, "{}", lapse.message());
                    round
                        .lapsing
                        .push((name.clone(), account.principal.clone(), lapse));
                }
            }
        }
        Ok(round)
    }
}

/// Whole days in `d`, rounded towards minus infinity (so an expiry an hour ago is day -1).
fn days_floor(d: Duration) -> i64 {
    let secs = d.whole_seconds();
    secs.div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, ConnectionId, ConnectionSpec};
    use crate::secret::Secret;
    use time::macros::datetime;

    fn app_only(expires: Option<&str>) -> ConnectionSettings {
        ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            client_secret: Some(Secret::new("abc8Q~secret-value-0123456789")),
            credential_expires: expires.map(str::to_owned),
            ..ConnectionSpec::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn warnings_come_at_30_14_7_and_1_days_and_once_expired() {
        let settings = app_only(Some("2027-06-30"));
        let expires = datetime!(2027-06-30 00:00 UTC);
        let at = |days: i64, hours: i64| expires - Duration::days(days) - Duration::hours(hours);
        let cases = [
            (at(31, 0), None, 31),
            (at(30, 0), Some(Warning::Within30Days), 30),
            (at(15, 0), Some(Warning::Within30Days), 15),
            (at(14, 0), Some(Warning::Within14Days), 14),
            (at(8, 0), Some(Warning::Within14Days), 8),
            (at(7, 0), Some(Warning::Within7Days), 7),
            (at(2, 0), Some(Warning::Within7Days), 2),
            (at(1, 0), Some(Warning::Within1Day), 1),
            (at(0, 3), Some(Warning::Within1Day), 0),
            (expires, Some(Warning::Expired), 0),
            (expires + Duration::hours(1), Some(Warning::Expired), -1),
        ];
        for (now, warning, days) in cases {
            let e = CredentialExpiry::of(&settings, now).unwrap();
            assert_eq!(e.warning, warning, "{now}");
            assert_eq!(e.days_left, days, "{now}");
            assert_eq!(e.seconds_left, (expires - now).whole_seconds());
            assert_eq!(e.source, ExpirySource::Given);
        }
        let soon = CredentialExpiry::of(&settings, at(12, 0)).unwrap();
        let text = soon.message("daemon");
        assert!(
            text.starts_with("the client secret expires in 12 days (2027-06-30)"),
            "{text}"
        );
        assert!(
            text.contains("`exgate connection edit daemon --client-secret-file FILE"),
            "{text}"
        );
        let far = CredentialExpiry::of(&settings, at(60, 0)).unwrap();
        assert_eq!(
            far.message("daemon"),
            "the client secret expires in 60 days (2027-06-30)"
        );
        let gone = CredentialExpiry::of(&settings, expires + Duration::days(3)).unwrap();
        assert!(
            gone.message("d")
                .starts_with("the client secret expired on 2027-06-30")
        );
        assert_eq!(CredentialExpiry::of(&app_only(None), expires), None);
    }

    #[test]
    fn a_certificate_expires_when_it_says_unless_a_date_is_given() {
        const CERT: &str = include_str!("../tests/fixtures/app.crt");
        const KEY: &str = include_str!("../tests/fixtures/app.key");
        let spec = ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            certificate_pem: Some(CERT.into()),
            private_key_pem: Some(Secret::new(KEY)),
            ..ConnectionSpec::default()
        };
        let settings = spec.validate().unwrap();
        let (not_after, source) = settings.credential_expiry().unwrap();
        assert_eq!(source, ExpirySource::Certificate);
        let der = {
            use base64::Engine;
            let body: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(not_after, cert.validity().not_after.to_datetime());
        let e = CredentialExpiry::of(&settings, not_after - Duration::days(5)).unwrap();
        assert_eq!(e.credential, "certificate");
        assert_eq!(e.warning, Some(Warning::Within7Days));

        let given = ConnectionSpec {
            credential_expires: Some("2030-01-02T03:04:05+02:00".into()),
            ..spec
        }
        .validate()
        .unwrap();
        assert_eq!(
            given.credential_expiry(),
            Some((datetime!(2030-01-02 01:04:05 UTC), ExpirySource::Given))
        );
    }

    #[test]
    fn bad_dates_are_refused_with_the_field_and_none_clears() {
        let mut spec = ConnectionSpec {
            tenant: Some("contoso.onmicrosoft.com".into()),
            auth: Some("oauth2-app-only".into()),
            client_id: Some("11111111-2222-3333-4444-555555555555".into()),
            client_secret: Some(Secret::new("abc8Q~secret-value-0123456789")),
            ..ConnectionSpec::default()
        };
        for bad in [
            "30.06.2027",
            "2027-13-01",
            "tomorrow",
            "2027-06-30T25:00:00Z",
        ] {
            spec.credential_expires = Some(bad.into());
            let e = spec.validate().unwrap_err();
            assert_eq!(e.field, "credential_expires", "{bad}");
            assert!(e.message.contains("YYYY-MM-DD"), "{}", e.message);
        }
        // A public client has nothing that expires.
        let public = ConnectionSpec {
            auth: Some("oauth2-delegated".into()),
            client_secret: None,
            credential_expires: Some("2027-06-30".into()),
            ..spec.clone()
        };
        assert_eq!(public.validate().unwrap_err().field, "credential_expires");

        spec.credential_expires = Some("2027-06-30".into());
        let settings = spec.validate().unwrap();
        assert_eq!(settings.to_spec().validate().unwrap(), settings);
        // `none` clears it in an edit; a new secret drops the old one's date.
        let cleared = settings
            .edited(
                ConnectionSpec {
                    credential_expires: Some("none".into()),
                    ..ConnectionSpec::default()
                },
                false,
            )
            .validate()
            .unwrap();
        assert_eq!(cleared.credential_expires, None);
        let rotated = settings
            .edited(
                ConnectionSpec {
                    client_secret: Some(Secret::new("new8Q~secret-value-0123456789")),
                    ..ConnectionSpec::default()
                },
                false,
            )
            .validate()
            .unwrap();
        assert_eq!(rotated.credential_expires, None);
        let kept = settings
            .edited(
                ConnectionSpec {
                    backend: Some("graph".into()),
                    ..ConnectionSpec::default()
                },
                false,
            )
            .validate()
            .unwrap();
        assert_eq!(kept.credential_expires, settings.credential_expires);
    }

    #[test]
    fn refresh_tokens_lapse_90_days_after_last_use() {
        let signed_in = datetime!(2026-01-01 00:00 UTC);
        let mut account = Account {
            id: AccountId::new_random(),
            connection: ConnectionId::new_random(),
            principal: "adele".parse::<Principal>().unwrap(),
            mailbox: None,
            credential: CredentialKind::RefreshToken,
            status: AccountStatus::Active,
            created_at: signed_in,
            last_used_at: None,
        };
        let lapse = RefreshLapse::of(&account, signed_in + Duration::days(10)).unwrap();
        assert_eq!(lapse.lapses, signed_in + Duration::days(90));
        assert_eq!(lapse.days_left, 80);
        assert!(!lapse.warning);
        account.last_used_at = Some(signed_in + Duration::days(30));
        let lapse = RefreshLapse::of(&account, signed_in + Duration::days(110)).unwrap();
        assert_eq!(lapse.days_left, 10);
        assert!(lapse.warning);
        assert_eq!(
            lapse.message(),
            "refresh token lapses on 2026-05-01 (in 10 days) unless used"
        );
        let gone = RefreshLapse::of(&account, signed_in + Duration::days(121)).unwrap();
        assert!(gone.warning && gone.message().contains("lapsed on 2026-05-01"));
        account.credential = CredentialKind::AppOnly;
        assert_eq!(RefreshLapse::of(&account, signed_in), None);
    }
}
