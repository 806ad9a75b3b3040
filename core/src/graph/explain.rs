//! What Graph's answers mean: [`GraphAnswers`] classifies them for the pipeline, and
//! [`GraphMailbox::explain`] turns a refusal into an error that names the fix (a 403 names the
//! missing permission, or the mailbox right or access policy that refused).

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::permissions::{Access, permission};
use super::wire::ErrorEnvelope;
use super::{Call, GraphMailbox};
use crate::mailbox::{MailboxError, MailboxRef};
use crate::pipeline::{Answer, Classify, Verdict};

/// Graph's answers: 429 and 503 were not processed and carry `Retry-After`; 504 may have been
/// processed; 401 asks for a new token.
#[derive(Debug, Default)]
pub struct GraphAnswers;

impl Classify for GraphAnswers {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, _body: &[u8]) -> Verdict {
        let hint = || crate::net::retry_after(headers);
        match status.as_u16() {
            200..=299 => Verdict::Done,
            401 => Verdict::Unauthorized,
            429 | 503 => Verdict::Busy {
                hint: hint(),
                unprocessed: true,
            },
            504 => Verdict::Busy {
                hint: hint(),
                unprocessed: false,
            },
            _ => Verdict::Failed,
        }
    }
}

/// Whether a permission in the token satisfies `needed` (ReadWrite covers Read).
fn grants(granted: &str, needed: &str) -> bool {
    granted.eq_ignore_ascii_case(needed)
        || granted.eq_ignore_ascii_case(&needed.replacen(".Read", ".ReadWrite", 1))
}

/// The permissions a JWT carries (`scp` or `roles`), read without verification.
fn token_permissions(jwt: &str) -> Vec<String> {
    let claims: Option<Value> = jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(claims) = claims else {
        return Vec::new();
    };
    let mut out: Vec<String> = claims["scp"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if let Some(roles) = claims["roles"].as_array() {
        out.extend(roles.iter().filter_map(|r| r.as_str().map(str::to_owned)));
    }
    out
}

impl GraphMailbox {
    pub(super) fn explain(&self, answer: &Answer, call: &Call<'_>) -> MailboxError {
        let status = answer.status;
        let envelope: ErrorEnvelope = serde_json::from_slice(&answer.body).unwrap_or_default();
        let detail = envelope.error;
        let request_id = detail
            .inner_error
            .and_then(|i| i.request_id)
            .unwrap_or_else(|| answer.request_id.clone());
        let code = if detail.code.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            detail.code
        };
        let message = if detail.message.is_empty() {
            format!("HTTP {status}")
        } else {
            detail.message
        };
        let item = || call.item.clone().unwrap_or_default();
        match status.as_u16() {
            401 => MailboxError::Unauthorized { message },
            403 => {
                let access = match (call.mailbox, self.me.is_some()) {
                    (_, false) => Access::Application,
                    (MailboxRef::Me, true) => Access::Delegated,
                    (MailboxRef::User(_), true) => Access::Shared,
                };
                let needed = permission(call.op, access);
                let granted = answer
                    .credential
                    .as_ref()
                    .and_then(|c| c.bearer())
                    .map(|t| token_permissions(t.secret.expose()))
                    .unwrap_or_default();
                if !granted.iter().any(|g| grants(g, needed)) {
                    return MailboxError::MissingPermission {
                        operation: call.op.name(),
                        permission: needed,
                        request_id,
                    };
                }
                let hint = match (call.mailbox, &self.me) {
                    _ if message.contains("RAOP") || message.contains("AccessPolicy") => {
                        "the app is limited to some mailboxes by an application access policy (RBAC for Applications); add this mailbox to the app's scope in Exchange Online".to_owned()
                    }
                    // The user is known: the command names them, not a placeholder.
                    (MailboxRef::User(u), Some(me)) => format!(
                        "the signed-in user has no access to {u}; an Exchange admin grants it with Add-MailboxPermission -Identity {u} -User {me} -AccessRights FullAccess (and Add-RecipientPermission -Identity {u} -Trustee {me} -AccessRights SendAs to send as it)"
                    ),
                    _ => "check the mailbox's permissions in Exchange".to_owned(),
                };
                MailboxError::Forbidden {
                    operation: call.op.name(),
                    message,
                    hint,
                    request_id,
                }
            }
            404 if code == "ErrorInvalidUser"
                || code == "ResourceNotFound"
                    && matches!(call.mailbox, MailboxRef::User(_))
                    && message.contains("user") =>
            {
                MailboxError::UnknownMailbox {
                    mailbox: self.key(call.mailbox),
                }
            }
            // Graph answers 400 ErrorInvalidIdMalformed for a string that cannot be an item ID:
            // for the caller, there is no such item.
            404 => MailboxError::NotFound {
                what: "item",
                id: item(),
                request_id,
            },
            400 if code == "ErrorInvalidIdMalformed" => MailboxError::NotFound {
                what: "item",
                id: item(),
                request_id,
            },
            429 => MailboxError::Throttled {
                retry_after: crate::net::retry_after(&answer.headers)
                    .unwrap_or(Duration::from_secs(1)),
            },
            s if s >= 500 => MailboxError::Server {
                status: s,
                code,
                message,
                request_id,
            },
            s => MailboxError::Rejected {
                status: s,
                code,
                message,
                request_id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_answers_are_classified_by_status_and_hint() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        let c = GraphAnswers;
        assert_eq!(c.classify(StatusCode::OK, &h, b""), Verdict::Done);
        assert_eq!(
            c.classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
            Verdict::Busy {
                hint: Some(Duration::from_secs(3)),
                unprocessed: true
            }
        );
        assert_eq!(
            c.classify(StatusCode::GATEWAY_TIMEOUT, &HeaderMap::new(), b""),
            Verdict::Busy {
                hint: None,
                unprocessed: false
            }
        );
        assert_eq!(
            c.classify(StatusCode::UNAUTHORIZED, &h, b""),
            Verdict::Unauthorized
        );
        assert_eq!(c.classify(StatusCode::FORBIDDEN, &h, b""), Verdict::Failed);
    }
}
