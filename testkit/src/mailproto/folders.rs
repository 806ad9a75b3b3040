//! A mailbox's mail folders under IMAP's names, as Exchange Online presents them: the Inbox is
//! `INBOX`, the other folders their display names (`Sent Items`, `Deleted Items`, `Junk Email`),
//! subfolders joined with the hierarchy delimiter `/` (`INBOX/Projects`).

use crate::mailstore::mailbox::Mailbox;

/// The hierarchy delimiter.
pub(crate) const DELIMITER: char = '/';

/// The IMAP name of folder `seq` (`None` for the root or an unknown folder).
pub(crate) fn imap_name(mb: &Mailbox, seq: u64) -> Option<String> {
    let mut names = Vec::new();
    let mut current = mb.folders.get(&seq)?;
    loop {
        if current.well_known == Some("msgfolderroot") {
            break;
        }
        names.push(if current.well_known == Some("inbox") {
            "INBOX".to_string()
        } else {
            current.name.clone()
        });
        current = mb.folders.get(&current.parent?)?;
    }
    if names.is_empty() {
        return None;
    }
    names.reverse();
    Some(names.join("/"))
}

/// The folder an IMAP name means (`INBOX` in any case, other names ignoring case).
pub(crate) fn imap_folder(mb: &Mailbox, name: &str) -> Option<u64> {
    let wanted = name.trim().trim_end_matches(DELIMITER);
    mb.folders.keys().copied().find(|seq| {
        imap_name(mb, *seq).is_some_and(|n| {
            n.split(DELIMITER)
                .zip(wanted.split(DELIMITER))
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
                && n.split(DELIMITER).count() == wanted.split(DELIMITER).count()
        })
    })
}

/// Every mail folder with its IMAP name, in name order (INBOX first).
pub(crate) fn imap_folders(mb: &Mailbox) -> Vec<(u64, String)> {
    let mut all: Vec<(u64, String)> = mb
        .folders
        .keys()
        .filter_map(|seq| imap_name(mb, *seq).map(|n| (*seq, n)))
        .collect();
    all.sort_by(|a, b| {
        let inbox = |n: &str| !n.starts_with("INBOX");
        (inbox(&a.1), a.1.to_lowercase()).cmp(&(inbox(&b.1), b.1.to_lowercase()))
    });
    all
}

/// The special-use attribute (RFC 6154) Exchange Online gives a well-known folder.
pub(crate) fn special_use(mb: &Mailbox, seq: u64) -> Option<&'static str> {
    match mb.folders.get(&seq)?.well_known? {
        "drafts" => Some("\\Drafts"),
        "sentitems" => Some("\\Sent"),
        "deleteditems" => Some("\\Trash"),
        "junkemail" => Some("\\Junk"),
        "archive" => Some("\\Archive"),
        _ => None,
    }
}

/// A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3), as Exchange lists localized names
/// (`Entw&APw-rfe`).
pub(crate) fn encode_mutf7(name: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    fn flush(out: &mut String, pending: &mut Vec<u16>) {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&STANDARD_NO_PAD.encode(bytes).replace('/', ","));
        out.push('-');
        pending.clear();
    }
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut out, &mut pending);
    out
}

/// A modified UTF-7 folder name as UTF-8; `None` when it is not valid modified UTF-7.
pub(crate) fn decode_mutf7(name: &str) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf7_round_trips() {
        for (utf8, mutf7) in [
            ("INBOX", "INBOX"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("Gesendete Elemente", "Gesendete Elemente"),
            ("R&D", "R&-D"),
            ("日本語", "&ZeVnLIqe-"),
        ] {
            assert_eq!(encode_mutf7(utf8), mutf7);
            assert_eq!(decode_mutf7(mutf7).as_deref(), Some(utf8));
        }
        assert_eq!(decode_mutf7("bad&AP"), None);
        assert_eq!(decode_mutf7("&AP-"), None);
    }
}
