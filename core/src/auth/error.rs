//! Sign-in errors. An identity provider's refusal keeps its body as evidence (codes, trace and
//! correlation IDs) and is explained through the AADSTS catalogue.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::aadsts::{self, Aadsts};

/// An OAuth2 error body as Entra ID sends it (RFC 6749 §5.2 plus Entra's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_codes: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suberror: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_uri: Option<String>,
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)
    }
}

impl oauth2::ErrorResponse for ErrorBody {}

impl ErrorBody {
    /// The first AADSTS code, from `error_codes` or the description's `AADSTSnnnn:` prefix.
    pub fn code(&self) -> Option<u32> {
        self.error_codes.first().copied().or_else(|| {
            let d = self.error_description.as_deref()?;
            let rest = d.strip_prefix("AADSTS")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
    }

    /// The description's first sentence block, without Entra's trailing trace lines.
    pub fn summary(&self) -> String {
        let d = self.error_description.as_deref().unwrap_or(&self.error);
        let cut = ["\r\n", "\n", " Trace ID:"]
            .iter()
            .filter_map(|m| d.find(m))
            .min()
            .unwrap_or(d.len());
        d[..cut].trim().to_owned()
    }
}

/// Why a sign-in or token request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The identity provider answered with an OAuth2 error.
    #[error("{}", describe_refusal(during, body))]
    Refused {
        during: &'static str,
        status: u16,
        body: Box<ErrorBody>,
        retry_after: Option<Duration>,
    },
    /// The identity provider answered with an HTTP error and no OAuth2 body.
    #[error("the {during} failed with HTTP {status}{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Http {
        during: &'static str,
        status: u16,
        retry_after: Option<Duration>,
    },
    /// The identity provider could not be reached.
    #[error("the {during} to {endpoint} failed: {message}")]
    Transport {
        during: &'static str,
        endpoint: String,
        message: String,
    },
    /// The identity provider answered something exgate cannot read.
    #[error("the {during} got an answer exgate cannot read: {message}")]
    Protocol {
        during: &'static str,
        message: String,
    },
    /// The sign-in itself went wrong on exgate's side (state mismatch, expired attempt, …).
    #[error("{0}")]
    Flow(String),
    /// The connection cannot do what was asked (a flow it does not allow, a missing endpoint).
    #[error("{0}")]
    Unsupported(String),
    /// The ID token that says who signed in failed validation (OIDC Core §3.1.3.7); the text
    /// names the check, never the token.
    #[error("the identity provider's ID token was refused: {0}; nobody was signed in")]
    IdToken(String),
}

fn describe_refusal(during: &str, body: &ErrorBody) -> String {
    let correlation = body
        .correlation_id
        .as_deref()
        .map(|c| format!(" (correlation ID {c})"))
        .unwrap_or_default();
    match body.code() {
        Some(code) => match aadsts::lookup(code) {
            Some(entry) => format!(
                "the {during} was refused: AADSTS{code}: {}{correlation}",
                entry.meaning
            ),
            None => format!("the {during} was refused: {}{correlation}", body.summary()),
        },
        None => format!("the {during} was refused: {}{correlation}", body.summary()),
    }
}

const RETRYABLE_STATUS: [u16; 5] = [429, 500, 502, 503, 504];

impl AuthError {
    /// The catalogue entry for the AADSTS code of a refusal, if known.
    pub fn aadsts(&self) -> Option<&'static Aadsts> {
        match self {
            Self::Refused { body, .. } => body.code().and_then(aadsts::lookup),
            _ => None,
        }
    }

    /// What to do about it, when exgate knows.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            Self::IdToken(_) => Some(
                "check that the connection's client_id and authority are the ones registered at \
                 the identity provider and that this machine's clock is right, then sign in again",
            ),
            _ => self.aadsts().map(|a| a.fix),
        }
    }

    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            Self::Refused { body, .. } => body.correlation_id.as_deref(),
            _ => None,
        }
    }

    /// A passing failure: the same request may succeed later (network, 5xx, 429).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Http { status, .. } => RETRYABLE_STATUS.contains(status),
            Self::Refused { status, body, .. } => {
                RETRYABLE_STATUS.contains(status) || body.error == "temporarily_unavailable"
            }
            Self::Protocol { .. } | Self::Flow(_) | Self::Unsupported(_) | Self::IdToken(_) => {
                false
            }
        }
    }

    /// A refresh failed in a way only the user signing in again can clear.
    pub fn needs_sign_in(&self) -> bool {
        match self {
            Self::Refused { body, .. } => {
                matches!(
                    body.error.as_str(),
                    "invalid_grant" | "interaction_required" | "consent_required"
                ) || self.aadsts().is_some_and(|a| a.needs_sign_in)
            }
            _ => false,
        }
    }

    /// How long the server asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Refused { retry_after, .. } | Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(error: &str, code: u32, status: u16) -> AuthError {
        AuthError::Refused {
            during: "token request",
            status,
            body: Box::new(ErrorBody {
                error: error.into(),
                error_description: Some(format!(
                    "AADSTS{code}: Something happened. Trace ID: t Correlation ID: c Timestamp: 2026-11-21 10:00:00Z"
                )),
                error_codes: vec![code],
                correlation_id: Some("c0ffee".into()),
                ..ErrorBody::default()
            }),
            retry_after: None,
        }
    }

    #[test]
    fn known_codes_are_explained_with_the_correlation_id() {
        let e = refused("invalid_client", 7000215, 401);
        let text = e.to_string();
        assert!(text.contains("AADSTS7000215"), "{text}");
        assert!(text.contains("not a valid secret of this app"), "{text}");
        assert!(text.contains("correlation ID c0ffee"), "{text}");
        assert!(e.fix().unwrap().contains("copy the secret's Value"));
        assert!(!e.is_retryable());
        assert!(!e.needs_sign_in());
    }

    #[test]
    fn unknown_codes_fall_back_to_the_servers_description() {
        let e = refused("invalid_request", 123456, 400);
        assert_eq!(
            e.to_string(),
            "the token request was refused: AADSTS123456: Something happened. (correlation ID c0ffee)"
        );
        assert!(e.fix().is_none());
    }

    #[test]
    fn classifiers() {
        assert!(refused("invalid_grant", 70008, 400).needs_sign_in());
        assert!(refused("invalid_grant", 700082, 400).needs_sign_in());
        assert!(refused("invalid_grant", 50076, 400).needs_sign_in());
        assert!(refused("temporarily_unavailable", 0, 429).is_retryable());
        assert!(
            AuthError::Http {
                during: "x",
                status: 503,
                retry_after: None
            }
            .is_retryable()
        );
        assert!(
            !AuthError::Http {
                during: "x",
                status: 404,
                retry_after: None
            }
            .is_retryable()
        );
        let body = ErrorBody {
            error: "invalid_grant".into(),
            error_description: Some("AADSTS70043: expired".into()),
            ..ErrorBody::default()
        };
        assert_eq!(body.code(), Some(70043));
    }
}
