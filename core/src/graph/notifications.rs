//! What Graph POSTs to the gateway: change notifications and lifecycle notifications
//! (`{"value":[…]}`), parsed into types; the `clientState` check; and the validation handshake
//! (Graph POSTs `?validationToken=…` and wants the token back, as `text/plain`, within
//! 10 seconds).
//!
//! Everything here reads network input: it never panics, ignores fields it does not know, and
//! refuses a body of the wrong shape as a whole. A notification only says "look now" (see
//! [`crate::notify`]): what changed is read by the sync, so nothing in it is trusted beyond the
//! subscription it names, and only once its `clientState` matched.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::secret::{Secret, constant_time_eq};

/// The longest validation token the gateway echoes, in characters.
pub const MAX_VALIDATION_TOKEN: usize = 1024;

/// The largest notification body the gateway reads (Graph batches notifications; 1 MiB holds
/// thousands).
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a body or a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the notification body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("the notification body is not JSON of Graph's shape: {0}")]
    Shape(String),
    #[error("the validation token is refused: {0}")]
    Token(&'static str),
}

/// What changed, as Graph says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeType {
    Created,
    Updated,
    Deleted,
    /// A change type this version does not know.
    #[serde(other)]
    Unknown,
}

/// What a lifecycle notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleEvent {
    /// Reauthorize the subscription (`POST /subscriptions/{id}/reauthorize`) or it is removed.
    ReauthorizationRequired,
    /// The subscription is gone: subscribe again, and catch up.
    SubscriptionRemoved,
    /// Notifications were lost: catch up.
    Missed,
    /// An event this version does not know.
    #[serde(other)]
    Unknown,
}

/// `resourceData` of a change notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResourceData {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(rename = "@odata.id", default)]
    pub odata_id: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

/// One change notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotification {
    pub subscription_id: String,
    pub subscription_expires: Option<OffsetDateTime>,
    pub change_type: ChangeType,
    pub resource: String,
    pub resource_data: Option<ResourceData>,
    pub client_state: Option<String>,
    pub tenant_id: Option<String>,
}

/// One lifecycle notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleNotification {
    pub subscription_id: String,
    pub subscription_expires: Option<OffsetDateTime>,
    pub event: LifecycleEvent,
    pub client_state: Option<String>,
    pub tenant_id: Option<String>,
}

/// A notification body, sorted by kind (Graph sends each kind to its own URL, but a body is
/// read the same way wherever it arrives).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    pub changes: Vec<ChangeNotification>,
    pub lifecycle: Vec<LifecycleNotification>,
}

#[derive(Deserialize)]
struct Envelope {
    value: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireItem {
    subscription_id: String,
    #[serde(default)]
    subscription_expiration_date_time: Option<Value>,
    #[serde(default)]
    change_type: Option<ChangeType>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_data: Option<ResourceData>,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    lifecycle_event: Option<LifecycleEvent>,
}

fn instant(v: Option<&Value>) -> Option<OffsetDateTime> {
    v.and_then(Value::as_str)
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

/// Reads a notification body: `{"value":[…]}`, each item a change notification (with
/// `changeType`) or a lifecycle notification (with `lifecycleEvent`).
pub fn parse(body: &[u8]) -> Result<Notifications, NotificationError> {
    if body.len() > MAX_BODY {
        return Err(NotificationError::TooLarge);
    }
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| NotificationError::Shape(e.to_string()))?;
    let mut out = Notifications::default();
    for (i, raw) in envelope.value.into_iter().enumerate() {
        let item: WireItem = serde_json::from_value(raw)
            .map_err(|e| NotificationError::Shape(format!("item {i}: {e}")))?;
        let expires = instant(item.subscription_expiration_date_time.as_ref());
        match (item.lifecycle_event, item.change_type) {
            (Some(event), _) => out.lifecycle.push(LifecycleNotification {
                subscription_id: item.subscription_id,
                subscription_expires: expires,
                event,
                client_state: item.client_state,
                tenant_id: item.tenant_id,
            }),
            (None, Some(change_type)) => out.changes.push(ChangeNotification {
                subscription_id: item.subscription_id,
                subscription_expires: expires,
                change_type,
                resource: item.resource.unwrap_or_default(),
                resource_data: item.resource_data,
                client_state: item.client_state,
                tenant_id: item.tenant_id,
            }),
            (None, None) => {
                return Err(NotificationError::Shape(format!(
                    "item {i} has neither changeType nor lifecycleEvent"
                )));
            }
        }
    }
    Ok(out)
}

/// Whether a notification's `clientState` is the subscription's, compared in constant time
/// (of SHA-256 digests, so not even the length leaks). A missing one never matches.
pub fn client_state_matches(expected: &Secret, got: Option<&str>) -> bool {
    let Some(got) = got else {
        return false;
    };
    let want = Sha256::digest(expected.expose().as_bytes());
    let have = Sha256::digest(got.as_bytes());
    constant_time_eq(&want, &have) && !expected.expose().is_empty()
}

/// The `validationToken` of a request's raw query string, percent-decoded (`None` when the
/// query has none: a notification, not a validation).
pub fn validation_token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v.into_owned())
}

/// The body to answer a validation request with (`200`, `Content-Type: text/plain`): the token
/// itself, once checked to be 1 to [`MAX_VALIDATION_TOKEN`] printable ASCII characters, so the
/// gateway never reflects anything else.
pub fn validation_answer(token: &str) -> Result<&str, NotificationError> {
    if token.is_empty() {
        return Err(NotificationError::Token("it is empty"));
    }
    if token.len() > MAX_VALIDATION_TOKEN {
        return Err(NotificationError::Token(
            "it is longer than 1024 characters",
        ));
    }
    if !token.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(NotificationError::Token(
            "it holds characters that are not printable ASCII",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn change_and_lifecycle_notifications_parse_and_unknown_fields_are_ignored() {
        let body = br##"{"value":[
            {"subscriptionId":"s1","subscriptionExpirationDateTime":"2026-12-04T10:00:00.1234567+00:00",
             "changeType":"created","resource":"Users/u1/Messages/m1",
             "resourceData":{"@odata.type":"#Microsoft.Graph.Message","@odata.id":"Users/u1/Messages/m1","@odata.etag":"W/\"1\"","id":"m1"},
             "clientState":"secret","tenantId":"t1","somethingNew":{"a":1}},
            {"subscriptionId":"s1","subscriptionExpirationDateTime":"2026-12-04T10:00:00Z",
             "clientState":"secret","tenantId":"t1","lifecycleEvent":"missed"},
            {"subscriptionId":"s2","changeType":"somethingElse","resource":"x"},
            {"subscriptionId":"s3","lifecycleEvent":"subscriptionPaused"}
        ],"validationTokens":["ignored"]}"##;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.changes.len(), 2);
        let first = &parsed.changes[0];
        assert_eq!(first.change_type, ChangeType::Created);
        assert_eq!(first.client_state.as_deref(), Some("secret"));
        assert_eq!(
            first.resource_data.as_ref().and_then(|d| d.id.as_deref()),
            Some("m1")
        );
        assert!(first.subscription_expires.is_some());
        assert_eq!(parsed.changes[1].change_type, ChangeType::Unknown);
        assert_eq!(parsed.lifecycle.len(), 2);
        assert_eq!(parsed.lifecycle[0].event, LifecycleEvent::Missed);
        assert_eq!(parsed.lifecycle[1].event, LifecycleEvent::Unknown);
    }

    #[test]
    fn bodies_of_the_wrong_shape_are_refused_whole() {
        for body in [
            &b""[..],
            b"[]",
            b"{}",
            b"{\"value\":{}}",
            b"{\"value\":[{\"changeType\":\"created\"}]}",
            b"{\"value\":[{\"subscriptionId\":\"s\"}]}",
            b"{\"value\":[1]}",
        ] {
            assert!(
                matches!(parse(body), Err(NotificationError::Shape(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(parse(&big), Err(NotificationError::TooLarge));
    }

    #[test]
    fn client_state_must_match_exactly() {
        let secret = Secret::new("s3cr3t-state");
        assert!(client_state_matches(&secret, Some("s3cr3t-state")));
        assert!(!client_state_matches(&secret, Some("s3cr3t-statf")));
        assert!(!client_state_matches(&secret, Some("s3cr3t")));
        assert!(!client_state_matches(&secret, None));
        assert!(!client_state_matches(&Secret::new(""), Some("")));
    }

    #[test]
    fn validation_tokens_are_echoed_only_when_printable_and_short() {
        let q = "validationToken=Validation%3A+Testing+client+application+reachability+for+subscription+Request-Id%3A+9d2b";
        let token = validation_token(q).unwrap();
        assert_eq!(
            token,
            "Validation: Testing client application reachability for subscription Request-Id: 9d2b"
        );
        assert_eq!(validation_answer(&token).unwrap(), token);
        assert_eq!(validation_token("a=b"), None);
        assert!(validation_answer("").is_err());
        assert!(validation_answer("<script>\n").is_err());
        assert!(validation_answer("é").is_err());
        assert!(validation_answer(&"a".repeat(1024)).is_ok());
        assert!(validation_answer(&"a".repeat(1025)).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn any_json_items_parse_or_are_refused(s in "\\PC{0,200}") {
            let body = format!("{{\"value\":[{{\"subscriptionId\":\"x\",\"changeType\":{s}}}]}}");
            let _ = parse(body.as_bytes());
            let _ = validation_answer(&s);
            let _ = validation_token(&s);
        }
    }
}
