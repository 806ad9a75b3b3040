//! The mailbox-level commands: SELECT/EXAMINE, LIST/LSUB, STATUS, CREATE, APPEND.

use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::ListMailbox;
use imap_codec::imap_types::status::StatusDataItemName;

use super::{FLAGS, Selected};
use crate::mailproto::folders::{self, DELIMITER};
use crate::mailstore::content::FlagStatus;
use crate::mailstore::parse::message_from_mime;
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::mailbox::Mailbox;

use super::{Session, folder_uids, mailbox_name, status, wire};
use crate::mailproto::MailState;

/// SELECT / EXAMINE.
pub(super) fn select(
    state: &MailState,
    s: &mut Session,
    tag: &Tag<'static>,
    name: &Mailbox<'_>,
    read_only: bool,
    out: &mut Vec<u8>,
) -> Vec<u8> {
    s.selected = None;
    let Some(granted) = &s.granted else {
        return status::bad(Some(tag), "Command received in Invalid state.");
    };
    let name = mailbox_name(name);
    let (folder, next, unseen_first) = {
        let store = state.store.lock();
        let Some(mb) = store.mailbox(&granted.mailbox) else {
            return status::no(Some(tag), None, "Mailbox doesn't exist.");
        };
        let Some(folder) = folders::imap_folder(mb, &name) else {
            return status::no(Some(tag), None, "The requested item could not be found.");
        };
        let mut in_folder: Vec<(u64, bool)> = mb
            .messages
            .values()
            .filter(|m| m.folder == folder)
            .map(|m| (m.seq, m.is_read))
            .collect();
        in_folder.sort_unstable();
        let unseen_first = in_folder.iter().position(|(_, read)| !read).map(|i| i + 1);
        (folder, mb.next_seq(), unseen_first)
    };
    let uids = folder_uids(state, &granted.mailbox, folder);
    let validity = state.uid_validity(&granted.mailbox, folder);
    out.extend(format!("* {} EXISTS\r\n* 0 RECENT\r\n", uids.len()).into_bytes());
    out.extend(format!("* FLAGS {FLAGS}\r\n").into_bytes());
    out.extend(format!("* OK [PERMANENTFLAGS {FLAGS}] Permanent flags\r\n").into_bytes());
    if let Some(first) = unseen_first {
        out.extend(format!("* OK [UNSEEN {first}] Is the first unseen message\r\n").into_bytes());
    }
    out.extend(format!("* OK [UIDVALIDITY {validity}] UIDVALIDITY value\r\n").into_bytes());
    out.extend(
        format!(
            "* OK [UIDNEXT {}] The next unique identifier value\r\n",
            u32::try_from(next).unwrap_or(u32::MAX)
        )
        .into_bytes(),
    );
    s.selected = Some(Selected {
        folder,
        read_only,
        uids,
    });
    if read_only {
        status::ok_code(tag, "READ-ONLY", "EXAMINE completed.")
    } else {
        status::ok_code(tag, "READ-WRITE", "SELECT completed.")
    }
}

/// Whether `name` matches the LIST pattern (`*` any, `%` any but the delimiter).
fn pattern_matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| pattern_matches(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|i| *i == 0 || name[i - 1] != DELIMITER as u8)
            .any(|i| pattern_matches(rest, &name[i..])),
        Some((c, rest)) => name.split_first().is_some_and(|(n, name_rest)| {
            n.eq_ignore_ascii_case(c) && pattern_matches(rest, name_rest)
        }),
    }
}

/// LIST / LSUB (every folder counts as subscribed).
pub(super) fn list(
    state: &MailState,
    mailbox: &str,
    tag: &Tag<'static>,
    reference: &Mailbox<'_>,
    wildcard: &ListMailbox<'_>,
    verb: &str,
    out: &mut Vec<u8>,
) -> Vec<u8> {
    let reference = match reference {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).to_string(),
    };
    let pattern = match wildcard {
        ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).to_string(),
        ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).to_string(),
    };
    if pattern.is_empty() {
        out.extend(format!("* {verb} (\\Noselect \\HasChildren) \"/\" \"\"\r\n").into_bytes());
        return status::ok(Some(tag), None, &format!("{verb} completed."));
    }
    let full = format!("{reference}{pattern}");
    let store = state.store.lock();
    if let Some(mb) = store.mailbox(mailbox) {
        for (seq, name) in folders::imap_folders(mb) {
            // The pattern comes in modified UTF-7: match it against the name as listed.
            let listed = folders::encode_mutf7(&name);
            if !pattern_matches(full.as_bytes(), listed.as_bytes()) {
                continue;
            }
            let mut attributes = vec![if mb.children(seq).is_empty() {
                "\\HasNoChildren"
            } else {
                "\\HasChildren"
            }];
            attributes.extend(folders::special_use(mb, seq));
            out.extend(format!("* {verb} ({}) \"/\" ", attributes.join(" ")).into_bytes());
            out.extend(wire::string(listed.as_bytes()));
            out.extend_from_slice(b"\r\n");
        }
    }
    status::ok(Some(tag), None, &format!("{verb} completed."))
}

/// STATUS.
pub(super) fn status_of(
    state: &MailState,
    mailbox: &str,
    tag: &Tag<'static>,
    name: &Mailbox<'_>,
    items: &[StatusDataItemName],
    out: &mut Vec<u8>,
) -> Vec<u8> {
    let name = mailbox_name(name);
    let store = state.store.lock();
    let Some(mb) = store.mailbox(mailbox) else {
        return status::no(Some(tag), None, "Mailbox doesn't exist.");
    };
    let Some(folder) = folders::imap_folder(mb, &name) else {
        return status::no(Some(tag), None, "The requested item could not be found.");
    };
    let (count, unseen) = mb
        .messages
        .values()
        .filter(|m| m.folder == folder)
        .fold((0, 0), |(c, u), m| (c + 1, u + usize::from(!m.is_read)));
    let next = u32::try_from(mb.next_seq()).unwrap_or(u32::MAX);
    drop(store);
    let validity = state.uid_validity(mailbox, folder);
    let fields: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            StatusDataItemName::Messages => Some(format!("MESSAGES {count}")),
            StatusDataItemName::Recent => Some("RECENT 0".into()),
            StatusDataItemName::UidNext => Some(format!("UIDNEXT {next}")),
            StatusDataItemName::UidValidity => Some(format!("UIDVALIDITY {validity}")),
            StatusDataItemName::Unseen => Some(format!("UNSEEN {unseen}")),
            _ => None,
        })
        .collect();
    out.extend_from_slice(b"* STATUS ");
    out.extend(wire::string(folders::encode_mutf7(&name).as_bytes()));
    out.extend(format!(" ({})\r\n", fields.join(" ")).into_bytes());
    status::ok(Some(tag), None, "STATUS completed.")
}

/// CREATE: a folder under an existing parent.
pub(super) fn create(
    state: &MailState,
    mailbox: &str,
    tag: &Tag<'static>,
    name: &Mailbox<'_>,
) -> Vec<u8> {
    let name = mailbox_name(name);
    let name = name.trim_end_matches(DELIMITER);
    let mut store = state.store.lock();
    let Some(mb) = store.mailbox_mut(mailbox) else {
        return status::no(Some(tag), None, "Mailbox doesn't exist.");
    };
    if name.is_empty() || folders::imap_folder(mb, name).is_some() {
        return status::no(Some(tag), None, "Mailbox already exists.");
    }
    let (parent, leaf) = match name.rsplit_once(DELIMITER) {
        Some((parent, leaf)) => match folders::imap_folder(mb, parent) {
            Some(p) => (p, leaf),
            None => return status::no(Some(tag), None, "The parent folder doesn't exist."),
        },
        None => (mb.root(), name),
    };
    mb.create_folder(parent, leaf);
    status::ok(Some(tag), None, "CREATE completed.")
}

/// APPEND: the message into a folder, with its flags; answers APPENDUID.
pub(super) fn append(
    state: &MailState,
    mailbox: &str,
    tag: &Tag<'static>,
    name: &Mailbox<'_>,
    flags: &[Flag<'_>],
    received: Option<time::OffsetDateTime>,
    bytes: &[u8],
) -> Vec<u8> {
    let name = mailbox_name(name);
    let now = state.clock.now();
    let Some(mut message) = message_from_mime(bytes, now) else {
        return status::no(Some(tag), None, "APPEND failed.");
    };
    let mut store = state.store.lock();
    let Some(mb) = store.mailbox_mut(mailbox) else {
        return status::no(Some(tag), None, "Mailbox doesn't exist.");
    };
    let Some(folder) = folders::imap_folder(mb, &name) else {
        return status::no_code(tag, "TRYCREATE", "The requested item could not be found.");
    };
    message.folder = folder;
    message.received = received.unwrap_or(now);
    message.is_read = flags.contains(&Flag::Seen);
    message.is_draft = flags.contains(&Flag::Draft);
    if flags.contains(&Flag::Flagged) {
        message.flag = FlagStatus::Flagged;
    }
    let seq = mb.insert_message(message);
    let address = mb.address.to_ascii_lowercase();
    drop(store);
    let mut extra = crate::mailproto::ExtraFlags::new();
    if flags.contains(&Flag::Answered) {
        extra.insert("\\Answered");
    }
    if flags.contains(&Flag::Deleted) {
        extra.insert("\\Deleted");
    }
    if !extra.is_empty() {
        state.own().imap_flags.insert((address, seq), extra);
    }
    let validity = state.uid_validity(mailbox, folder);
    let uid = u32::try_from(seq).unwrap_or(u32::MAX);
    status::ok_code(
        tag,
        &format!("APPENDUID {validity} {uid}"),
        "APPEND completed.",
    )
}
