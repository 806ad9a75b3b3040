//! IMAP folder names: the display name of a listed folder (modified UTF-7, RFC 3501 §5.1.3), and
//! which folder plays which role (SPECIAL-USE attributes, RFC 6154, or Exchange's English names).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use crate::mailbox::WellKnownFolder;

/// Decodes a modified UTF-7 folder name (`Entw&APw-rfe` is `Entwürfe`). A name that is not
/// valid modified UTF-7 is shown as the server sent it.
pub(crate) fn decode_utf7(name: &str) -> String {
    try_decode_utf7(name).unwrap_or_else(|| name.to_owned())
}

fn try_decode_utf7(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = STANDARD_NO_PAD.decode(encoded.replace(',', "/")).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The role of a listed folder: by its SPECIAL-USE attribute when the server gives one, else by
/// the name Exchange gives the folder (the Inbox is always `INBOX`).
pub(crate) fn well_known(
    name: &str,
    attributes: &[String],
    delimiter: Option<&str>,
) -> Option<WellKnownFolder> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Some(WellKnownFolder::Inbox);
    }
    for a in attributes {
        let role = match a.to_ascii_lowercase().as_str() {
            "\\drafts" => WellKnownFolder::Drafts,
            "\\sent" => WellKnownFolder::SentItems,
            "\\trash" => WellKnownFolder::DeletedItems,
            "\\junk" => WellKnownFolder::JunkEmail,
            "\\archive" => WellKnownFolder::Archive,
            _ => continue,
        };
        return Some(role);
    }
    // Only top-level folders are the special ones.
    if delimiter.is_some_and(|d| !d.is_empty() && name.contains(d)) {
        return None;
    }
    match name.to_ascii_lowercase().as_str() {
        "drafts" => Some(WellKnownFolder::Drafts),
        "sent items" => Some(WellKnownFolder::SentItems),
        "deleted items" => Some(WellKnownFolder::DeletedItems),
        "junk email" | "junk e-mail" => Some(WellKnownFolder::JunkEmail),
        "archive" => Some(WellKnownFolder::Archive),
        "outbox" => Some(WellKnownFolder::Outbox),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn modified_utf7_names_are_decoded() {
        assert_eq!(decode_utf7("INBOX"), "INBOX");
        assert_eq!(decode_utf7("Entw&APw-rfe"), "Entwürfe");
        assert_eq!(decode_utf7("A&-B"), "A&B");
        assert_eq!(decode_utf7("&ZeVnLIqe-"), "日本語");
        // Not modified UTF-7: shown as sent.
        assert_eq!(decode_utf7("broken&AP"), "broken&AP");
        assert_eq!(decode_utf7("odd&AA-"), "odd&AA-");
    }

    #[test]
    fn roles_come_from_special_use_then_from_exchange_names() {
        let none: &[String] = &[];
        assert_eq!(
            well_known("INBOX", none, Some("/")),
            Some(WellKnownFolder::Inbox)
        );
        assert_eq!(
            well_known(
                "Gesendete Elemente",
                &["\\HasNoChildren".into(), "\\Sent".into()],
                Some("/")
            ),
            Some(WellKnownFolder::SentItems)
        );
        assert_eq!(
            well_known("Sent Items", none, Some("/")),
            Some(WellKnownFolder::SentItems)
        );
        assert_eq!(
            well_known("Deleted Items", none, Some("/")),
            Some(WellKnownFolder::DeletedItems)
        );
        assert_eq!(
            well_known("Junk Email", none, Some("/")),
            Some(WellKnownFolder::JunkEmail)
        );
        assert_eq!(well_known("INBOX/Archive", none, Some("/")), None);
        assert_eq!(well_known("Projects", none, Some("/")), None);
    }

    proptest! {
        #[test]
        fn any_name_decodes_without_panic(s in "\\PC{0,60}") {
            let _ = decode_utf7(&s);
        }
    }
}
