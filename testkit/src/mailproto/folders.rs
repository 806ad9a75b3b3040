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
