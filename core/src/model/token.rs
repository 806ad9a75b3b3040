//! What tokens are for: a resource (Graph, EWS, IMAP, POP, SMTP), and the key a token is cached under.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use super::connection::Cloud;
use super::ids::{AccountId, ConnectionId, ParseError};
use crate::secret::Secret;

/// The API a token is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Graph,
    Ews,
    Imap,
    Pop,
    Smtp,
}

impl Resource {
    pub const ALL: [Self; 5] = [Self::Graph, Self::Ews, Self::Imap, Self::Pop, Self::Smtp];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graph => "graph",
            Self::Ews => "ews",
            Self::Imap => "imap",
            Self::Pop => "pop",
            Self::Smtp => "smtp",
        }
    }

    /// The resource's identifier in `cloud` (the token's audience).
    pub fn identifier(self, cloud: Cloud) -> &'static str {
        match (self, cloud) {
            (Self::Graph, Cloud::Global) => "https://graph.microsoft.com",
            (Self::Graph, Cloud::UsGov) => "https://graph.microsoft.us",
            (Self::Graph, Cloud::China) => "https://microsoftgraph.chinacloudapi.cn",
            (_, Cloud::Global) => "https://outlook.office365.com",
            (_, Cloud::UsGov) => "https://outlook.office365.us",
            (_, Cloud::China) => "https://partner.outlook.cn",
        }
    }

    /// The delegated permissions exgate asks for by default (DESIGN.md §2).
    pub fn default_delegated_permissions(self) -> &'static [&'static str] {
        match self {
            Self::Graph => &[
                "Mail.ReadWrite",
                "Mail.Send",
                "Calendars.ReadWrite",
                "Contacts.ReadWrite",
                "User.Read",
            ],
            Self::Ews => &["EWS.AccessAsUser.All"],
            Self::Imap => &["IMAP.AccessAsUser.All"],
            Self::Pop => &["POP.AccessAsUser.All"],
            Self::Smtp => &["SMTP.Send"],
        }
    }

    /// The scopes of a delegated request to the resource named `identifier`: each permission
    /// qualified by it, plus `offline_access` for a refresh token and `openid profile` to learn
    /// who signed in. `custom` (the connection's scopes) replaces the default permissions when not
    /// empty; a custom scope that already names a resource (`https://…/X`) or an OIDC scope is kept.
    pub fn delegated_scopes(self, identifier: &str, custom: &[String]) -> Vec<String> {
        let permissions: Vec<String> = if custom.is_empty() {
            self.default_delegated_permissions()
                .iter()
                .map(|p| (*p).to_owned())
                .collect()
        } else {
            custom.to_vec()
        };
        let mut scopes: Vec<String> = permissions
            .into_iter()
            .map(|p| {
                if p.contains("://") || OIDC_SCOPES.contains(&p.as_str()) {
                    p
                } else {
                    format!("{identifier}/{p}")
                }
            })
            .collect();
        for oidc in OIDC_SCOPES {
            if !scopes.iter().any(|s| s == oidc) {
                scopes.push((*oidc).to_owned());
            }
        }
        scopes
    }

    /// The one scope of a client-credentials request: `<resource>/.default`.
    pub fn app_only_scope(identifier: &str) -> String {
        format!("{identifier}/.default")
    }
}

const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access"];

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resource {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ParseError(format!(
                    "`{s}` is not a resource; expected one of: graph, ews, imap, pop, smtp"
                ))
            })
    }
}

/// Which token: for a connection, one of its accounts (or the app itself, `None`), and a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub connection: ConnectionId,
    /// `None` for an app-only connection's own token.
    pub account: Option<AccountId>,
    pub resource: Resource,
}

/// An access token with its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessToken {
    pub secret: Secret,
    pub expires_at: OffsetDateTime,
    /// When to fetch a new one ahead of expiry.
    pub refresh_at: OffsetDateTime,
}

impl AccessToken {
    /// Tokens this close to expiry are not handed out: they could expire in flight.
    pub const EXPIRY_MARGIN: time::Duration = time::Duration::seconds(5);

    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        now + Self::EXPIRY_MARGIN < self.expires_at
    }

    pub fn is_fresh(&self, now: OffsetDateTime) -> bool {
        now < self.refresh_at && self.is_usable(now)
    }

    /// Timing for a token issued at `now` that lives `expires_in` (and, if the server said so,
    /// should be refreshed after `refresh_in`): otherwise refresh when a quarter of its life, at
    /// most five minutes, is left.
    pub fn timing(
        now: OffsetDateTime,
        expires_in: std::time::Duration,
        refresh_in: Option<std::time::Duration>,
    ) -> (OffsetDateTime, OffsetDateTime) {
        let lifetime = time::Duration::try_from(expires_in).unwrap_or(time::Duration::hours(1));
        let expires_at = now + lifetime;
        let margin = std::cmp::min(lifetime / 4_i32, time::Duration::minutes(5));
        let refresh_at = match refresh_in.and_then(|r| time::Duration::try_from(r).ok()) {
            Some(r) if r < lifetime => now + r,
            _ => expires_at - margin,
        };
        (expires_at, refresh_at)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn scopes_are_qualified_per_cloud() {
        assert_eq!(
            Resource::Smtp.delegated_scopes(Resource::Smtp.identifier(Cloud::Global), &[]),
            [
                "https://outlook.office365.com/SMTP.Send",
                "openid",
                "profile",
                "offline_access"
            ]
        );
        let custom = vec!["Mail.Read".to_owned(), "offline_access".to_owned()];
        assert_eq!(
            Resource::Graph.delegated_scopes(Resource::Graph.identifier(Cloud::UsGov), &custom),
            [
                "https://graph.microsoft.us/Mail.Read",
                "offline_access",
                "openid",
                "profile"
            ]
        );
        assert_eq!(
            Resource::app_only_scope(Resource::Ews.identifier(Cloud::China)),
            "https://partner.outlook.cn/.default"
        );
        assert_eq!("SMTP".parse::<Resource>().unwrap(), Resource::Smtp);
        assert!("mapi".parse::<Resource>().is_err());
    }

    #[test]
    fn refresh_ahead_of_expiry() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let (exp, refresh) = AccessToken::timing(now, std::time::Duration::from_secs(3600), None);
        assert_eq!(exp, now + time::Duration::hours(1));
        assert_eq!(refresh, exp - time::Duration::minutes(5));
        let (_, refresh) = AccessToken::timing(
            now,
            std::time::Duration::from_secs(3600),
            Some(std::time::Duration::from_secs(1800)),
        );
        assert_eq!(refresh, now + time::Duration::minutes(30));
        let (exp, refresh) = AccessToken::timing(now, std::time::Duration::from_secs(60), None);
        assert_eq!(exp - refresh, time::Duration::seconds(15));
    }
}
