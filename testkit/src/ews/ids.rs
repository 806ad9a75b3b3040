//! EWS item and folder IDs: opaque base64 naming the mailbox, the kind and the store's sequence
//! number (so an ID of one mailbox can never reach another), with a ChangeKey from the item's
//! version. A malformed ID is `ErrorInvalidIdMalformed`; a well-formed one naming nothing is
//! `ErrorItemNotFound` (or `ErrorFolderNotFound`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::soap::EwsError;

/// What an ID names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Folder,
    Message,
    Event,
    /// One occurrence of a series: the event and the occurrence's start (Unix seconds).
    Occurrence,
    Contact,
    /// An attachment: the message and the attachment's sequence number.
    Attachment,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Folder => b'F',
            Kind::Message => b'M',
            Kind::Event => b'E',
            Kind::Occurrence => b'O',
            Kind::Contact => b'C',
            Kind::Attachment => b'A',
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            b'F' => Kind::Folder,
            b'M' => Kind::Message,
            b'E' => Kind::Event,
            b'O' => Kind::Occurrence,
            b'C' => Kind::Contact,
            b'A' => Kind::Attachment,
            _ => return None,
        })
    }
}

/// A decoded ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Id {
    pub kind: Kind,
    /// Lower-case address of the mailbox.
    pub mailbox: String,
    pub seq: u64,
    /// The second number (occurrence start, attachment sequence), 0 when none.
    pub sub: i64,
}

const MAGIC: &[u8] = b"XGEWS1";

impl Id {
    pub(crate) fn new(kind: Kind, mailbox: &str, seq: u64) -> Self {
        Self {
            kind,
            mailbox: mailbox.to_ascii_lowercase(),
            seq,
            sub: 0,
        }
    }

    pub(crate) fn with_sub(mut self, sub: i64) -> Self {
        self.sub = sub;
        self
    }

    pub(crate) fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(MAGIC.len() + self.mailbox.len() + 19);
        bytes.extend_from_slice(MAGIC);
        bytes.push(self.kind.byte());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.sub.to_be_bytes());
        bytes.push(u8::try_from(self.mailbox.len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(self.mailbox.as_bytes());
        STANDARD.encode(bytes)
    }

    /// Decodes an ID; `ErrorInvalidIdMalformed` unless it is one the mock made.
    pub(crate) fn decode(text: &str) -> Result<Self, EwsError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| EwsError::malformed_id())?;
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(EwsError::malformed_id)?;
        if rest.len() < 18 {
            return Err(EwsError::malformed_id());
        }
        let kind = Kind::from_byte(rest[0]).ok_or_else(EwsError::malformed_id)?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&rest[1..9]);
        let mut sub = [0u8; 8];
        sub.copy_from_slice(&rest[9..17]);
        let len = usize::from(rest[17]);
        let mailbox = rest
            .get(18..)
            .filter(|m| m.len() == len)
            .and_then(|m| std::str::from_utf8(m).ok())
            .ok_or_else(EwsError::malformed_id)?;
        Ok(Self {
            kind,
            mailbox: mailbox.to_string(),
            seq: u64::from_be_bytes(seq),
            sub: i64::from_be_bytes(sub),
        })
    }
}

/// A ChangeKey for an item's version.
pub(crate) fn change_key(kind: Kind, version: u64) -> String {
    let mut bytes = vec![kind.byte()];
    bytes.extend_from_slice(&version.to_be_bytes());
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_garbage_is_malformed() {
        let id = Id::new(Kind::Occurrence, "Adele@Contoso.example", 42).with_sub(-7);
        let text = id.encode();
        assert_eq!(Id::decode(&text).unwrap(), id);
        assert_eq!(Id::decode(&text).unwrap().mailbox, "adele@contoso.example");
        for bad in [
            "",
            "!!",
            "AAAA",
            &STANDARD.encode(b"XGEWS1Z0000000000000000"),
        ] {
            assert_eq!(
                Id::decode(bad).unwrap_err().code,
                "ErrorInvalidIdMalformed",
                "{bad}"
            );
        }
        let mut cut = STANDARD.decode(&text).unwrap();
        cut.pop();
        assert!(Id::decode(&STANDARD.encode(cut)).is_err());
    }
}
