//! Newtypes that validate on parse. Each `FromStr` error says what was wrong and what is expected.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value did not parse: a complete sentence fragment, without the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

macro_rules! string_newtype_impls {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A GUID in its canonical hyphenated form, as Entra shows tenant and client IDs.
fn parse_guid(s: &str) -> Option<Uuid> {
    let s = s.trim();
    let bytes = s.as_bytes();
    let hyphenated = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if hyphenated {
        Uuid::parse_str(s).ok()
    } else {
        None
    }
}

fn looks_like_guid_attempt(s: &str) -> bool {
    !s.is_empty() && s.contains('-') && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// A DNS name such as `contoso.onmicrosoft.com`: two or more labels, a letter-only top level.
fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && s.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

/// An Entra tenant: a GUID, a verified domain, or one of the multi-tenant aliases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tenant {
    Id(Uuid),
    Domain(String),
    /// Any work or school account (`organizations`).
    Organizations,
    /// Work, school or personal accounts (`common`).
    Common,
}

impl FromStr for Tenant {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "" => err(
                "the tenant is empty; give the Directory (tenant) ID from the app registration's Overview page",
            ),
            "organizations" => Ok(Self::Organizations),
            "common" => Ok(Self::Common),
            _ => {
                if let Some(id) = parse_guid(&lower) {
                    Ok(Self::Id(id))
                } else if looks_like_guid_attempt(&lower) {
                    err(format!(
                        "malformed tenant GUID `{}`: a tenant ID is 8-4-4-4-12 hex digits such as \
                         72f988bf-86f1-41af-91ab-2d7cd011db47; copy Directory (tenant) ID from the \
                         app registration's Overview page",
                        s.trim()
                    ))
                } else if is_domain(&lower) {
                    Ok(Self::Domain(lower))
                } else {
                    err(format!(
                        "`{}` is not a tenant: expected a tenant GUID (8-4-4-4-12 hex digits), a verified \
                         domain such as contoso.onmicrosoft.com, `organizations` or `common`",
                        s.trim()
                    ))
                }
            }
        }
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{}", id.hyphenated()),
            Self::Domain(d) => f.write_str(d),
            Self::Organizations => f.write_str("organizations"),
            Self::Common => f.write_str("common"),
        }
    }
}

impl Serialize for Tenant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Tenant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An OAuth2 client ID. Entra ID issues GUIDs (the Application (client) ID); other identity
/// providers issue any `client_id` RFC 6749 allows (appendix A.1: printable ASCII, VSCHAR).
/// Parsing accepts both; [`ConnectionSpec::validate`](super::ConnectionSpec::validate) requires
/// the GUID for Entra connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientId {
    Guid(Uuid),
    /// A custom authority's client ID, as the provider issued it.
    Opaque(String),
}

/// The longest client ID accepted from a custom authority.
const MAX_CLIENT_ID_LEN: usize = 255;

impl ClientId {
    /// The GUID, for an Entra ID client.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Self::Guid(id) => Some(*id),
            Self::Opaque(_) => None,
        }
    }

    pub fn is_guid(&self) -> bool {
        matches!(self, Self::Guid(_))
    }

    /// Why this is not an Entra ID client ID (`None` when it is one).
    pub fn entra_problem(&self) -> Option<String> {
        match self {
            Self::Guid(_) => None,
            Self::Opaque(s) => Some(format!(
                "malformed client ID `{s}`: the Application (client) ID is a GUID (8-4-4-4-12 hex \
                 digits); copy it from the app registration's Overview page (only a custom \
                 authority takes other client IDs)"
            )),
        }
    }
}

impl FromStr for ClientId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if let Some(id) = parse_guid(s) {
            return Ok(Self::Guid(id));
        }
        let s = s.trim();
        if s.is_empty() {
            return err("the client ID is empty");
        }
        if s.len() > MAX_CLIENT_ID_LEN {
            return err(format!(
                "the client ID is {} characters long; at most {MAX_CLIENT_ID_LEN} are accepted",
                s.len()
            ));
        }
        // RFC 6749 appendix A.1: client_id = *VSCHAR (%x20-7E).
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return err(
                "the client ID holds control or non-ASCII characters; an OAuth2 client ID is \
                 printable ASCII (RFC 6749 appendix A.1)",
            );
        }
        Ok(Self::Opaque(s.to_owned()))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Guid(id) => write!(f, "{}", id.hyphenated()),
            Self::Opaque(s) => f.write_str(s),
        }
    }
}
impl Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An RFC 8707 resource indicator: an absolute URI without a fragment, naming the protected
/// resource a custom authority's tokens are for. Kept as written (a parsed URL would gain a
/// trailing `/`, and providers compare resource indicators as strings).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceIndicator(String);

impl ResourceIndicator {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ResourceIndicator {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let url = url::Url::parse(s).map_err(|e| {
            ParseError(format!(
                "`{s}` is not an absolute URI ({e}); a resource indicator names the API, such as https://api.contoso.com"
            ))
        })?;
        if url.fragment().is_some() {
            return err(format!(
                "`{s}` has a #fragment, which a resource indicator must not have (RFC 8707 §2)"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return err("the resource holds a user name or password; remove them");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err(format!(
                "`{s}` holds spaces or control characters; a URI has none"
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

string_newtype_impls!(ResourceIndicator);

/// An SMTP address (`user@contoso.com`), kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EmailAddress {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let bad = || {
            err(format!(
                "`{s}` is not an email address: expected a mailbox address such as adele@contoso.com"
            ))
        };
        let Some((local, domain)) = s.rsplit_once('@') else {
            return bad();
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && local.chars().all(|c| c.is_ascii_graphic());
        if !local_ok || !is_domain(&domain.to_ascii_lowercase()) {
            return bad();
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}
string_newtype_impls!(EmailAddress);

/// A URL exgate sends credentials or tokens to: `https://`, or `http://` to a loopback host only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn is_loopback(&self) -> bool {
        match self.0.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        }
    }
}

impl FromStr for EndpointUrl {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let url = match url::Url::parse(s) {
            Ok(url) => url,
            Err(e) => {
                return err(format!(
                    "`{s}` is not a URL ({e}); expected https://host/path"
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return err(
                "the URL holds a user name or password; give credentials through the auth settings, not in the URL",
            );
        }
        if url.fragment().is_some() {
            return err(format!(
                "`{s}` has a #fragment, which has no meaning here; remove it"
            ));
        }
        let this = Self(url);
        match this.0.scheme() {
            "https" => Ok(this),
            "http" if this.is_loopback() => Ok(this),
            "http" => err(format!(
                "`{s}` uses http://, which would send credentials and tokens in clear text; use https:// \
                 (http:// is accepted only for localhost, 127.0.0.1 and [::1])"
            )),
            other => err(format!(
                "`{s}` has the scheme `{other}:`; expected https://"
            )),
        }
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl Serialize for EndpointUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for EndpointUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A connection's name: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
/// Names are unique without regard to case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionName(String);

impl ConnectionName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name folded to lower case: two names are the same connection when their folded
    /// forms are equal. Every store enforces uniqueness on this value.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl FromStr for ConnectionName {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let ok = (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            err(format!(
                "`{s}` is not a connection name: use 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
            ))
        }
    }
}
string_newtype_impls!(ConnectionName);

/// Who a linked mailbox belongs to in the calling application: its user ID or sign-in name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(String);

impl Principal {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Principal {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
            return err(
                "a principal is 1 to 256 printable characters: the application's user ID or sign-in name",
            );
        }
        Ok(Self(s.to_owned()))
    }
}
string_newtype_impls!(Principal);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| ParseError(format!("`{s}` is not an exgate ID (a UUID)")))
            }
        }
    };
}

uuid_id!(
    /// A connection's stable identity; names may change, IDs do not.
    ConnectionId
);
uuid_id!(
    /// A linked mailbox's stable identity.
    AccountId
);
uuid_id!(
    /// A static user's stable identity.
    StaticUserId
);
uuid_id!(
    /// A watch: a mailbox whose changes become events ([`crate::notify`]).
    WatchId
);
uuid_id!(
    /// A webhook an application registered to receive events.
    WebhookId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants() {
        let guid = "72F988BF-86F1-41AF-91AB-2D7CD011DB47";
        assert_eq!(
            guid.parse::<Tenant>().unwrap().to_string(),
            guid.to_ascii_lowercase()
        );
        assert_eq!(
            "Contoso.onmicrosoft.com".parse::<Tenant>().unwrap(),
            Tenant::Domain("contoso.onmicrosoft.com".into())
        );
        assert_eq!(
            "organizations".parse::<Tenant>().unwrap(),
            Tenant::Organizations
        );
        assert_eq!("common".parse::<Tenant>().unwrap(), Tenant::Common);
        let e = "72f988bf-86f1-41af-91ab-2d7cd011db4"
            .parse::<Tenant>()
            .unwrap_err();
        assert!(e.0.starts_with("malformed tenant GUID"), "{e}");
        let e = "contoso".parse::<Tenant>().unwrap_err();
        assert!(e.0.contains("is not a tenant"), "{e}");
        assert!("".parse::<Tenant>().is_err());
        assert!("contoso.c0m".parse::<Tenant>().is_err());
    }

    #[test]
    fn client_ids() {
        assert!(
            "00000003-0000-0000-c000-000000000000"
                .parse::<ClientId>()
                .is_ok()
        );
        let opaque = "my-app".parse::<ClientId>().unwrap();
        assert!(!opaque.is_guid());
        let e = opaque.entra_problem().unwrap();
        assert!(e.contains("malformed client ID `my-app`"), "{e}");
        assert!(
            !"000000030000000000c0000000000000"
                .parse::<ClientId>()
                .unwrap()
                .is_guid()
        );
        assert!("".parse::<ClientId>().is_err());
        assert!("a\u{7}b".parse::<ClientId>().is_err());
        assert!("caf\u{e9}".parse::<ClientId>().is_err());
        assert!("x".repeat(256).parse::<ClientId>().is_err());
        assert_eq!(
            "exgate portal~1".parse::<ClientId>().unwrap().to_string(),
            "exgate portal~1"
        );
    }

    #[test]
    fn resource_indicators() {
        assert_eq!(
            "https://api.contoso.test/mail"
                .parse::<ResourceIndicator>()
                .unwrap()
                .as_str(),
            "https://api.contoso.test/mail"
        );
        assert!("urn:contoso:mail".parse::<ResourceIndicator>().is_ok());
        assert!("/relative".parse::<ResourceIndicator>().is_err());
        assert!(
            "https://api.contoso.test/#x"
                .parse::<ResourceIndicator>()
                .is_err()
        );
    }

    #[test]
    fn emails() {
        assert_eq!(
            "Adele@Contoso.com"
                .parse::<EmailAddress>()
                .unwrap()
                .as_str(),
            "adele@contoso.com"
        );
        for bad in ["adele", "@contoso.com", "adele@", "a b@contoso.com", "a@b"] {
            assert!(bad.parse::<EmailAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_need_https_except_loopback() {
        assert!(
            "https://mail.contoso.com/EWS/Exchange.asmx"
                .parse::<EndpointUrl>()
                .is_ok()
        );
        for ok in [
            "http://localhost:8080/x",
            "http://127.0.0.1/",
            "http://[::1]:1/",
        ] {
            assert!(ok.parse::<EndpointUrl>().unwrap().is_loopback(), "{ok}");
        }
        let e = "http://login.example.com/token"
            .parse::<EndpointUrl>()
            .unwrap_err();
        assert!(e.0.contains("clear text"), "{e}");
        assert!("ftp://x.example.com".parse::<EndpointUrl>().is_err());
        assert!(
            "https://user:pw@x.example.com"
                .parse::<EndpointUrl>()
                .is_err()
        );
        assert!("not a url".parse::<EndpointUrl>().is_err());
    }

    #[test]
    fn connection_names() {
        assert!("contoso-prod_1.eu".parse::<ConnectionName>().is_ok());
        for bad in ["", "-x", "a b", "ä", &"x".repeat(65)] {
            assert!(bad.parse::<ConnectionName>().is_err(), "{bad}");
        }
    }
}
