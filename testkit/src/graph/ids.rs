//! Graph's opaque item IDs and change keys, made from a mailbox's key and the mail store's
//! sequence numbers: base64url, different per mailbox, `AAMk…` for items and `AQMk…` for
//! folders as in Exchange Online.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::error::{GraphResult, graph_errors};
use crate::mailstore::mailbox::{Mailbox, WELL_KNOWN};

/// What an ID names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Folder = 1,
    Message = 2,
    Attachment = 3,
    Event = 4,
    Occurrence = 5,
    Contact = 6,
    Calendar = 7,
    ContactFolder = 8,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Kind::Folder,
            2 => Kind::Message,
            3 => Kind::Attachment,
            4 => Kind::Event,
            5 => Kind::Occurrence,
            6 => Kind::Contact,
            7 => Kind::Calendar,
            8 => Kind::ContactFolder,
            _ => return None,
        })
    }
}

/// A decoded ID: its kind, the item's sequence number, and the instance (an attachment's
/// number, an occurrence's original start as a Unix time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ItemId {
    pub kind: Kind,
    pub seq: u64,
    pub instance: Option<i64>,
}

/// Graph's IDs of a mailbox's items.
pub(crate) trait GraphIds {
    fn id(&self, kind: Kind, seq: u64, instance: Option<i64>) -> String;

    /// Decodes an ID of this mailbox: 400 `ErrorInvalidIdMalformed` when it is not one of the
    /// mock's IDs, 404 `ErrorItemNotFound` when it names another mailbox's item or another
    /// kind.
    fn decode(&self, id: &str, kinds: &[Kind]) -> GraphResult<ItemId>;

    /// A folder named in a URL: a well-known name or a folder ID.
    fn folder_by_ref(&self, reference: &str) -> GraphResult<u64>;

    /// `W/"…"`-style change key of a version.
    fn change_key(&self, version: u64) -> String;

    fn folder_id(&self, seq: u64) -> String {
        self.id(Kind::Folder, seq, None)
    }

    fn message_id(&self, seq: u64) -> String {
        self.id(Kind::Message, seq, None)
    }
}

impl GraphIds for Mailbox {
    fn id(&self, kind: Kind, seq: u64, instance: Option<i64>) -> String {
        let prefix: [u8; 3] = if matches!(kind, Kind::Folder | Kind::Calendar | Kind::ContactFolder)
        {
            [0x01, 0x03, 0x24]
        } else {
            [0x00, 0x03, 0x24]
        };
        let mut bytes = Vec::with_capacity(26);
        bytes.extend_from_slice(&prefix);
        bytes.push(kind as u8);
        bytes.extend_from_slice(&self.key());
        bytes.extend_from_slice(&seq.to_be_bytes());
        if let Some(instance) = instance {
            bytes.extend_from_slice(&instance.to_be_bytes());
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn decode(&self, id: &str, kinds: &[Kind]) -> GraphResult<ItemId> {
        let trimmed = id.trim().trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| graph_errors::id_malformed())?;
        if bytes.len() != 18 && bytes.len() != 26 {
            return Err(graph_errors::id_malformed());
        }
        let (prefix, rest) = bytes.split_at(3);
        if prefix[1..] != [0x03, 0x24] || prefix[0] > 1 {
            return Err(graph_errors::id_malformed());
        }
        let Some(kind) = Kind::from_byte(rest[0]) else {
            return Err(graph_errors::id_malformed());
        };
        if rest[1..7] != self.key() || !kinds.contains(&kind) {
            return Err(graph_errors::item_not_found());
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&rest[7..15]);
        let instance = (rest.len() == 23).then(|| {
            let mut instance = [0u8; 8];
            instance.copy_from_slice(&rest[15..23]);
            i64::from_be_bytes(instance)
        });
        Ok(ItemId {
            kind,
            seq: u64::from_be_bytes(seq),
            instance,
        })
    }

    fn folder_by_ref(&self, reference: &str) -> GraphResult<u64> {
        if let Some(seq) = WELL_KNOWN
            .iter()
            .find(|(wk, _)| wk.eq_ignore_ascii_case(reference.trim()))
            .and_then(|(wk, _)| self.well_known(wk))
        {
            return Ok(seq);
        }
        let id = self.decode(reference, &[Kind::Folder])?;
        if self.folders.contains_key(&id.seq) {
            Ok(id.seq)
        } else {
            Err(graph_errors::item_not_found())
        }
    }

    fn change_key(&self, version: u64) -> String {
        let mut bytes = vec![0x10, 0x00, 0x00, 0x00];
        bytes.extend_from_slice(&self.key());
        bytes.extend_from_slice(&version.to_be_bytes());
        STANDARD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_opaque_per_mailbox_and_decode_to_what_they_name() {
        let adele = Mailbox::new("adele@contoso.onmicrosoft.com", "Adele");
        let megan = Mailbox::new("megan@contoso.onmicrosoft.com", "Megan");
        let id = adele.message_id(42);
        assert!(id.starts_with("AAMk"), "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(adele.decode(&id, &[Kind::Message]).unwrap().seq, 42);
        assert_eq!(
            megan.decode(&id, &[Kind::Message]).unwrap_err().code,
            "ErrorItemNotFound"
        );
        assert_eq!(
            adele.decode(&id, &[Kind::Event]).unwrap_err().code,
            "ErrorItemNotFound"
        );
        assert_eq!(
            adele.decode("nope!", &[Kind::Message]).unwrap_err().code,
            "ErrorInvalidIdMalformed"
        );
        let occurrence = adele.id(Kind::Occurrence, 7, Some(1_790_000_000));
        let decoded = adele.decode(&occurrence, &[Kind::Occurrence]).unwrap();
        assert_eq!((decoded.seq, decoded.instance), (7, Some(1_790_000_000)));
        assert!(adele.folder_id(2).starts_with("AQMk"));
        let inbox = adele.well_known("inbox").unwrap();
        assert_eq!(adele.folder_by_ref("Inbox").unwrap(), inbox);
        assert_eq!(adele.folder_by_ref(&adele.folder_id(inbox)).unwrap(), inbox);
        assert_eq!(
            adele.folder_by_ref(&adele.folder_id(999)).unwrap_err().code,
            "ErrorItemNotFound"
        );
        assert_ne!(adele.change_key(1), megan.change_key(1));
    }
}
