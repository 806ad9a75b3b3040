//! The commands on the selected folder's messages: FETCH, STORE, SEARCH, EXPUNGE, COPY, MOVE.

use std::collections::BTreeMap;

use imap_codec::imap_types::fetch::MessageDataItemName;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

use super::{Selected, fetch, search, sync};
use crate::mailproto::conn::{Conn, ConnError};
use crate::mailproto::folders;
use crate::mailstore::content::FlagStatus;
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::mailbox::Mailbox;

use super::{Session, mailbox_name, status};
use crate::mailproto::MailState;

/// The selected messages `(sequence number, uid)` a set names.
pub(super) fn resolve(selected: &Selected, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
    let last_seq = u32::try_from(selected.uids.len()).unwrap_or(u32::MAX);
    let last_uid = selected.uids.last().copied().unwrap_or(0);
    selected
        .uids
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let seq = u32::try_from(i + 1).ok()?;
            let hit = if uid {
                search::in_set(set, *u, last_uid)
            } else {
                search::in_set(set, seq, last_seq)
            };
            hit.then_some((seq, *u))
        })
        .collect()
}

pub(super) fn extra_flags(
    state: &MailState,
    mailbox: &str,
    seq: u64,
) -> Option<crate::mailproto::ExtraFlags> {
    state
        .own()
        .imap_flags
        .get(&(mailbox.to_ascii_lowercase(), seq))
        .cloned()
}

/// FETCH, streamed: the answer goes out in pieces of about 256 KiB, and each message is
/// rendered outside the store's lock.
pub(super) async fn fetch_streamed(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    tag: &Tag<'static>,
    set: &SequenceSet,
    items: &[MessageDataItemName<'_>],
    uid: bool,
) -> Result<(), ConnError> {
    let mut out = sync(state, s);
    let (Some(granted), Some(selected)) = (&s.granted, &s.selected) else {
        out.extend(status::bad(Some(tag), "Command received in Invalid state."));
        return conn.send(&out).await;
    };
    let mailbox = granted.mailbox.clone();
    let read_only = selected.read_only;
    for (seq, u) in resolve(selected, set, uid) {
        out.extend(fetch_one(state, &mailbox, read_only, (seq, u), items, uid));
        if out.len() >= 256 * 1024 {
            conn.send(&out).await?;
            out.clear();
        }
    }
    out.extend(status::ok(Some(tag), None, "FETCH completed."));
    conn.send(&out).await
}

/// The FETCH answer of one message (empty when it is gone); a non-PEEK body fetch marks it
/// read.
fn fetch_one(
    state: &MailState,
    mailbox: &str,
    read_only: bool,
    (seq, uid): (u32, u32),
    items: &[MessageDataItemName<'_>],
    with_uid: bool,
) -> Vec<u8> {
    let item = u64::from(uid);
    let extra = extra_flags(state, mailbox, item);
    let message = {
        let store = state.store.lock();
        match store.mailbox(mailbox).and_then(|mb| mb.messages.get(&item)) {
            Some(m) => m.clone(),
            None => return Vec::new(),
        }
    };
    let flags = fetch::flags(&message, extra.as_ref());
    let fetched = fetch::fetch(seq, uid, &message, &flags, items, with_uid);
    if fetched.sets_seen && !read_only && !message.is_read {
        let now = state.clock.now();
        let mut store = state.store.lock();
        if let Some(mb) = store.mailbox_mut(mailbox)
            && let Some(m) = mb.messages.get_mut(&item)
        {
            m.is_read = true;
            mb.touch_message(item, now);
        }
    }
    fetched.line
}

/// STORE.
pub(super) fn store_cmd(
    state: &MailState,
    s: &mut Session,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: &[Flag<'_>],
    uid: bool,
) -> Result<Vec<u8>, &'static str> {
    let (Some(granted), Some(selected)) = (&s.granted, &s.selected) else {
        return Ok(Vec::new());
    };
    if selected.read_only {
        return Err("Command received in Invalid state.");
    }
    let has = |f: Flag<'static>| flags.contains(&f);
    let mut out = Vec::new();
    let key = granted.mailbox.to_ascii_lowercase();
    for (seq, u) in resolve(selected, set, uid) {
        let item = u64::from(u);
        let mut extra = extra_flags(state, &granted.mailbox, item).unwrap_or_default();
        let mut store = state.store.lock();
        let Some(mb) = store.mailbox_mut(&granted.mailbox) else {
            break;
        };
        let Some(m) = mb.messages.get_mut(&item) else {
            continue;
        };
        let set_to = |current: bool, named: bool| match kind {
            StoreType::Replace => named,
            StoreType::Add => current || named,
            StoreType::Remove => current && !named,
        };
        m.is_read = set_to(m.is_read, has(Flag::Seen));
        let flagged = set_to(m.flag == FlagStatus::Flagged, has(Flag::Flagged));
        m.flag = if flagged {
            FlagStatus::Flagged
        } else if m.flag == FlagStatus::Flagged {
            FlagStatus::NotFlagged
        } else {
            m.flag
        };
        m.is_draft = set_to(m.is_draft, has(Flag::Draft));
        for (name, flag) in [("\\Deleted", Flag::Deleted), ("\\Answered", Flag::Answered)] {
            if set_to(extra.contains(name), has(flag)) {
                extra.insert(name);
            } else {
                extra.remove(name);
            }
        }
        let line_flags = fetch::flags(m, Some(&extra));
        mb.touch_message(item, state.clock.now());
        drop(store);
        state.own().imap_flags.insert((key.clone(), item), extra);
        if response == StoreResponse::Answer {
            let uid_part = if uid {
                format!(" UID {u}")
            } else {
                String::new()
            };
            out.extend(
                format!(
                    "* {seq} FETCH ({}{uid_part})\r\n",
                    fetch::flag_list(&line_flags)
                )
                .into_bytes(),
            );
        }
    }
    Ok(out)
}

/// SEARCH.
pub(super) fn search_cmd(
    state: &MailState,
    s: &Session,
    criteria: &[imap_codec::imap_types::search::SearchKey<'_>],
    uid: bool,
) -> Vec<u8> {
    let (Some(granted), Some(selected)) = (&s.granted, &s.selected) else {
        return Vec::new();
    };
    let flags: BTreeMap<u64, crate::mailproto::ExtraFlags> = {
        let own = state.own();
        let key = granted.mailbox.to_ascii_lowercase();
        selected
            .uids
            .iter()
            .filter_map(|u| {
                own.imap_flags
                    .get(&(key.clone(), u64::from(*u)))
                    .map(|f| (u64::from(*u), f.clone()))
            })
            .collect()
    };
    let store = state.store.lock();
    let Some(mb) = store.mailbox(&granted.mailbox) else {
        return Vec::new();
    };
    let last_seq = u32::try_from(selected.uids.len()).unwrap_or(u32::MAX);
    let last_uid = selected.uids.last().copied().unwrap_or(0);
    let mut hits = Vec::new();
    for (i, u) in selected.uids.iter().enumerate() {
        let Some(message) = mb.messages.get(&u64::from(*u)) else {
            continue;
        };
        let seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let candidate = search::Candidate {
            seq,
            uid: *u,
            message,
            extra: flags.get(&u64::from(*u)),
            last_seq,
            last_uid,
        };
        if criteria.iter().all(|k| search::matches(&candidate, k)) {
            hits.push(if uid { *u } else { seq });
        }
    }
    let mut out = b"* SEARCH".to_vec();
    for h in hits {
        out.extend(format!(" {h}").into_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// EXPUNGE (every \Deleted message) or UID EXPUNGE (those of `set` too).
pub(super) fn expunge(state: &MailState, s: &mut Session, set: Option<&SequenceSet>) -> Vec<u8> {
    let (Some(granted), Some(selected)) = (&s.granted, &mut s.selected) else {
        return Vec::new();
    };
    if selected.read_only {
        return Vec::new();
    }
    let key = granted.mailbox.to_ascii_lowercase();
    let last_uid = selected.uids.last().copied().unwrap_or(0);
    let doomed: Vec<u32> = {
        let own = state.own();
        selected
            .uids
            .iter()
            .copied()
            .filter(|u| {
                own.imap_flags
                    .get(&(key.clone(), u64::from(*u)))
                    .is_some_and(|f| f.contains("\\Deleted"))
                    && set.is_none_or(|set| search::in_set(set, *u, last_uid))
            })
            .collect()
    };
    {
        let mut store = state.store.lock();
        if let Some(mb) = store.mailbox_mut(&granted.mailbox) {
            for u in &doomed {
                mb.remove_message(u64::from(*u));
            }
        }
    }
    {
        let mut own = state.own();
        for u in &doomed {
            own.imap_flags.remove(&(key.clone(), u64::from(*u)));
        }
    }
    let mut out = Vec::new();
    let mut i = selected.uids.len();
    while i > 0 {
        i -= 1;
        if doomed.contains(&selected.uids[i]) {
            selected.uids.remove(i);
            out.extend(format!("* {} EXPUNGE\r\n", i + 1).into_bytes());
        }
    }
    out
}

/// The UIDPLUS set form of a list of UIDs (`4,7:9`).
fn uid_set(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.saturating_add(1) {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// What COPY and MOVE take.
pub(super) struct Transfer<'a> {
    pub(super) set: &'a SequenceSet,
    pub(super) target: &'a Mailbox<'a>,
    pub(super) uid: bool,
    pub(super) moving: bool,
}

/// COPY or MOVE (RFC 6851): answers COPYUID, and for MOVE the EXPUNGEs.
pub(super) fn copy_or_move(
    state: &MailState,
    s: &mut Session,
    tag: &Tag<'static>,
    transfer: &Transfer<'_>,
    out: &mut Vec<u8>,
) -> Vec<u8> {
    let Transfer {
        set,
        target,
        uid,
        moving,
    } = *transfer;
    let verb = if moving { "MOVE" } else { "COPY" };
    let (Some(granted), Some(selected)) = (&s.granted, &s.selected) else {
        return status::bad(Some(tag), "Command received in Invalid state.");
    };
    if moving && selected.read_only {
        return status::no(Some(tag), None, "Command received in Invalid state.");
    }
    let target = mailbox_name(target);
    let chosen = resolve(selected, set, uid);
    let now = state.clock.now();
    let mailbox = granted.mailbox.clone();
    let (to_folder, pairs) = {
        let mut store = state.store.lock();
        let Some(mb) = store.mailbox_mut(&mailbox) else {
            return status::no(Some(tag), None, "Mailbox doesn't exist.");
        };
        let Some(to_folder) = folders::imap_folder(mb, &target) else {
            return status::no_code(tag, "TRYCREATE", "The requested item could not be found.");
        };
        let mut pairs = Vec::new();
        for (_, u) in &chosen {
            let item = u64::from(*u);
            let new = if moving {
                mb.move_message(item, to_folder, now)
            } else {
                mb.messages.get(&item).cloned().map(|mut copy| {
                    copy.folder = to_folder;
                    copy.created = now;
                    mb.insert_message(copy)
                })
            };
            if let Some(new) = new.and_then(|n| u32::try_from(n).ok()) {
                pairs.push((*u, new));
            }
        }
        (to_folder, pairs)
    };
    if pairs.is_empty() {
        return status::ok(Some(tag), None, &format!("{verb} completed."));
    }
    let validity = state.uid_validity(&mailbox, to_folder);
    let from: Vec<u32> = pairs.iter().map(|p| p.0).collect();
    let to: Vec<u32> = pairs.iter().map(|p| p.1).collect();
    let code = format!("COPYUID {validity} {} {}", uid_set(&from), uid_set(&to));
    if moving {
        out.extend(format!("* OK [{code}] Moved\r\n").into_bytes());
        let Some(selected) = s.selected.as_mut() else {
            return status::ok(Some(tag), None, "MOVE completed.");
        };
        let mut i = selected.uids.len();
        while i > 0 {
            i -= 1;
            if from.contains(&selected.uids[i]) {
                selected.uids.remove(i);
                out.extend(format!("* {} EXPUNGE\r\n", i + 1).into_bytes());
            }
        }
        status::ok(Some(tag), None, "MOVE completed.")
    } else {
        status::ok_code(tag, &code, "COPY completed.")
    }
}
