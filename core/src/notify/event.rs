//! The events applications receive: one model for every backend.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::model::WatchId;

/// What happened to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "message.updated")]
    MessageUpdated,
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    #[serde(rename = "message.moved")]
    MessageMoved,
    #[serde(rename = "event.created")]
    EventCreated,
    #[serde(rename = "event.updated")]
    EventUpdated,
    #[serde(rename = "event.deleted")]
    EventDeleted,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        Self::MessageCreated,
        Self::MessageUpdated,
        Self::MessageDeleted,
        Self::MessageMoved,
        Self::EventCreated,
        Self::EventUpdated,
        Self::EventDeleted,
    ];

    /// `message.created`, … (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageCreated => "message.created",
            Self::MessageUpdated => "message.updated",
            Self::MessageDeleted => "message.deleted",
            Self::MessageMoved => "message.moved",
            Self::EventCreated => "event.created",
            Self::EventUpdated => "event.updated",
            Self::EventDeleted => "event.deleted",
        }
    }

    /// The kind named `s` (`message.created`, …).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change of one item, as applications receive it (webhook body, SSE `data`, `exgate
/// watch --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Stable for this change of this item: the same change reported again (after a gap, by
    /// two gateways) has the same ID, so applications use it as an idempotency key.
    pub id: String,
    /// The journal position (increasing in the order events were committed); the SSE event ID.
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub watch: WatchId,
    /// The connection's name.
    pub connection: String,
    /// The principal the mailbox is reached as.
    pub principal: String,
    /// The mailbox's address, when the watch names one (else the principal's own mailbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// Where the item is (moved: where it is now): a well-known name (`inbox`) or a folder ID;
    /// `calendar` for events.
    pub folder: String,
    /// The item's ID in the backend's terms, as the mailbox routes take it.
    pub item_id: String,
    /// Moved: the folder and ID it had before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_folder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
    /// When exgate saw the change.
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
}

/// The ID of an event: a hash of the watch, the kind, the item and the version of the item that
/// the change produced, so the same change always gets the same ID.
pub fn event_id(watch: WatchId, kind: EventKind, item_id: &str, version: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        watch.to_string().as_bytes(),
        kind.as_str().as_bytes(),
        item_id.as_bytes(),
        version.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    let mut id = String::with_capacity(4 + 32);
    id.push_str("evt_");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(EventKind::parse("message.exploded"), None);
    }

    #[test]
    fn an_event_id_is_stable_and_tells_changes_apart() {
        let w = WatchId::new_random();
        let a = event_id(w, EventKind::MessageCreated, "AAMk1", "v1");
        assert_eq!(a, event_id(w, EventKind::MessageCreated, "AAMk1", "v1"));
        assert_eq!(a.len(), 36);
        assert_ne!(a, event_id(w, EventKind::MessageUpdated, "AAMk1", "v1"));
        assert_ne!(a, event_id(w, EventKind::MessageCreated, "AAMk1", "v2"));
        // Lengths are part of the hash: ("ab","c") is not ("a","bc").
        assert_ne!(
            event_id(w, EventKind::MessageCreated, "ab", "c"),
            event_id(w, EventKind::MessageCreated, "a", "bc")
        );
        assert_ne!(
            a,
            event_id(
                WatchId::new_random(),
                EventKind::MessageCreated,
                "AAMk1",
                "v1"
            )
        );
    }
}
