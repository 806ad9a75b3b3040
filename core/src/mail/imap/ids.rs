//! exgate's IDs of IMAP messages: a message is its folder, the folder's UIDVALIDITY and its UID
//! (RFC 3501 §2.3.1.1), bound to the mailbox it was read from.
//!
//! An ID is `im1.` followed by unpadded base64url of: an 8-byte tag of the mailbox, the
//! UIDVALIDITY and the UID (32 bits each, big-endian), then the folder's IMAP name (UTF-8). The
//! IDs are deterministic — the same message always has the same ID, so an export's manifest and a
//! sync's `removed` list can name it — and the tag makes an ID read from one mailbox useless on
//! another: it is refused before anything is sent. A UIDVALIDITY that no longer matches the
//! folder means the UID may now name another message, so such an ID is "not found", never used.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

const PREFIX: &str = "im1.";
const TAG: usize = 8;
const FIXED: usize = TAG + 4 + 4;
/// The longest folder name an ID may carry (bytes): far above any real one.
pub(crate) const MAX_FOLDER: usize = 1024;

/// A message of an IMAP mailbox, as exgate names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageId {
    /// The folder's IMAP name, as the server lists it.
    pub folder: String,
    pub uid_validity: u32,
    pub uid: u32,
}

/// Why a string is not the ID of a message of this mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdError {
    /// Not an exgate IMAP message ID at all (damaged, or another backend's).
    Malformed,
    /// A well-formed ID of another mailbox.
    OtherMailbox,
}

fn mailbox_tag(mailbox_key: &str) -> [u8; TAG] {
    let mut h = Sha256::new();
    h.update(b"exgate/imap-message-id\0");
    h.update(mailbox_key.to_ascii_lowercase().as_bytes());
    let digest = h.finalize();
    let mut tag = [0; TAG];
    tag.copy_from_slice(&digest[..TAG]);
    tag
}

/// Whether `name` can be sent as an IMAP quoted string naming a folder: printable 7-bit
/// characters (servers list other names in modified UTF-7), no more than [`MAX_FOLDER`] bytes.
pub(crate) fn valid_folder_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_FOLDER && name.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl MessageId {
    pub(crate) fn encode(&self, mailbox_key: &str) -> String {
        let mut raw = Vec::with_capacity(FIXED + self.folder.len());
        raw.extend_from_slice(&mailbox_tag(mailbox_key));
        raw.extend_from_slice(&self.uid_validity.to_be_bytes());
        raw.extend_from_slice(&self.uid.to_be_bytes());
        raw.extend_from_slice(self.folder.as_bytes());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    pub(crate) fn decode(id: &str, mailbox_key: &str) -> Result<MessageId, IdError> {
        let body = id.trim().strip_prefix(PREFIX).ok_or(IdError::Malformed)?;
        // Base64 of the largest valid ID; anything longer is refused before decoding.
        if body.len() > (FIXED + MAX_FOLDER).div_ceil(3) * 4 {
            return Err(IdError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| IdError::Malformed)?;
        if raw.len() <= FIXED {
            return Err(IdError::Malformed);
        }
        let (tag, rest) = raw.split_at(TAG);
        let (numbers, folder) = rest.split_at(8);
        let folder = std::str::from_utf8(folder).map_err(|_| IdError::Malformed)?;
        let uid_validity = u32::from_be_bytes([numbers[0], numbers[1], numbers[2], numbers[3]]);
        let uid = u32::from_be_bytes([numbers[4], numbers[5], numbers[6], numbers[7]]);
        if uid == 0 || uid_validity == 0 || !valid_folder_name(folder) {
            return Err(IdError::Malformed);
        }
        if !crate::secret::constant_time_eq(tag, &mailbox_tag(mailbox_key)) {
            return Err(IdError::OtherMailbox);
        }
        Ok(MessageId {
            folder: folder.to_owned(),
            uid_validity,
            uid,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_id_round_trips_in_its_own_mailbox_only() {
        let id = MessageId {
            folder: "INBOX/Projects &AOQ-".into(),
            uid_validity: 1_700_000_001,
            uid: 42,
        };
        let text = id.encode("megan@contoso.com");
        assert!(text.starts_with("im1."), "{text}");
        assert!(!text.contains("megan") && !text.contains("INBOX"), "{text}");
        // The same message has the same ID every time.
        assert_eq!(text, id.encode("megan@contoso.com"));
        assert_eq!(MessageId::decode(&text, "Megan@Contoso.com"), Ok(id));
        assert_eq!(
            MessageId::decode(&text, "adele@contoso.com"),
            Err(IdError::OtherMailbox)
        );
    }

    #[test]
    fn damaged_and_foreign_ids_are_malformed() {
        let good = MessageId {
            folder: "INBOX".into(),
            uid_validity: 7,
            uid: 9,
        }
        .encode("m");
        let zero_uid = MessageId {
            folder: "INBOX".into(),
            uid_validity: 7,
            uid: 0,
        }
        .encode("m");
        let control = MessageId {
            folder: "IN\r\nBOX".into(),
            uid_validity: 7,
            uid: 1,
        }
        .encode("m");
        for bad in [
            "",
            "im1.",
            "AAMkADk=",
            &good[..good.len() - 3],
            &format!("{good}!"),
            &zero_uid,
            &control,
            &format!("im1.{}", "A".repeat(5000)),
        ] {
            assert_eq!(
                MessageId::decode(bad, "m"),
                Err(IdError::Malformed),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_string_decodes_or_is_refused(s in ".{0,300}") {
            let _ = MessageId::decode(&s, "m");
            let _ = MessageId::decode(&format!("im1.{s}"), "m");
        }

        #[test]
        fn any_bytes_after_the_prefix_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = MessageId::decode(&format!("im1.{}", URL_SAFE_NO_PAD.encode(&bytes)), "m");
        }
    }
}
