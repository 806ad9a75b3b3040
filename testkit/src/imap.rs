//! The mock IMAP4rev1 server, answering as Exchange Online's `outlook.office365.com` does:
//! implicit TLS (993) or STARTTLS first (143, where the capabilities say `LOGINDISABLED
//! STARTTLS` and offer no `AUTH=`); `AUTHENTICATE XOAUTH2` with or without SASL-IR, `PLAIN`,
//! and `LOGIN` with a seeded password (for the bridge tests); UIDPLUS, MOVE, IDLE, UNSELECT,
//! ID, NAMESPACE, CHILDREN and LITERAL+ over the shared mail store.
//!
//! Commands are read with imap-codec (its Fragmentizer bounds lines and literals, its codecs
//! parse commands, SASL data and IDLE's DONE); tagged answers and the greeting are encoded with
//! its ResponseCodec ([`status`]), the untagged data the mock writes itself ([`wire`]).
//!
//! UIDs are the store's item sequence numbers: a message keeps its UID in its folder, a moved
//! or copied one gets a new, higher one, so UIDs grow per folder. UIDVALIDITY is stable per
//! folder for the mock's life unless a switch changes it. Mail that arrives by any protocol
//! shows up as `* n EXISTS` at the next command, NOOP or while idling.

mod fetch;
mod search;
mod status;
mod wire;

use std::collections::{BTreeMap, HashSet};

use imap_codec::fragmentizer::{
    DecodeMessageError, FragmentInfo, Fragmentizer, LiteralAnnouncement,
};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{LiteralMode, Tag};
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::StatusDataItemName;
use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec};

use crate::mailproto::auth::{self, Granted, Refusal};
use crate::mailproto::conn::{Conn, ConnError};
use crate::mailproto::folders::{self, DELIMITER};
use crate::mailproto::{MailProtocol, MailState, greeting_tag};
use crate::mailstore::content::FlagStatus;
use crate::mailstore::parse::message_from_mime;

/// Exchange Online's capabilities after TLS (and on 993).
const CAPABILITIES: &str = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+";
/// Before STARTTLS on the plain port.
const CAPABILITIES_PLAIN: &str = "IMAP4 IMAP4rev1 LOGINDISABLED STARTTLS SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+";
/// Exchange's FLAGS and PERMANENTFLAGS.
const FLAGS: &str = "(\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)";
/// The largest command line or literal-free command taken.
const MAX_LINE: u32 = 64 * 1024;

/// The selected folder: its messages' UIDs in sequence-number order.
#[derive(Debug)]
struct Selected {
    folder: u64,
    read_only: bool,
    uids: Vec<u32>,
}

#[derive(Debug, Default)]
struct Session {
    id: u64,
    granted: Option<Granted>,
    /// Counted in the mailbox's open connections.
    counted: Option<String>,
    selected: Option<Selected>,
    /// Commands answered "authenticated but not connected" so far.
    not_connected: u32,
    /// LOGOUT was answered: the connection ends.
    logged_out: bool,
}

/// What the reader expects next.
#[derive(Debug)]
enum Mode {
    Command,
    Authenticate(Tag<'static>, String),
}

/// Serves one connection until LOGOUT, EOF or the idle timeout.
pub(crate) async fn session(state: MailState, mut conn: Conn) {
    let mut s = Session {
        id: state.open_session(MailProtocol::Imap, conn.is_tls()),
        ..Session::default()
    };
    let _ = serve(&state, &mut conn, &mut s).await;
    conn.close().await;
    if let Some(mailbox) = s.counted.take() {
        let mut own = state.own();
        if let Some(n) = own.imap_open.get_mut(&mailbox) {
            *n = n.saturating_sub(1);
        }
    }
}

fn max_literal(state: &MailState) -> u32 {
    u32::try_from(state.max_message_size()).unwrap_or(u32::MAX)
}

async fn serve(state: &MailState, conn: &mut Conn, s: &mut Session) -> Result<(), ConnError> {
    let greeting = format!(
        "The Microsoft Exchange IMAP4 service is ready. [{}]",
        greeting_tag()
    );
    conn.send(&status::greeting(&greeting)).await?;
    let max = max_literal(state).saturating_add(MAX_LINE);
    let mut frag = Fragmentizer::new(max);
    let mut mode = Mode::Command;
    loop {
        let Some(info) = frag.progress() else {
            let bytes = match conn.read_some(64 * 1024).await {
                Ok(b) => b,
                Err(ConnError::Idle) => {
                    let _ = conn.send(b"* BYE Connection is closed. 13\r\n").await;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            frag.enqueue_bytes(&bytes);
            continue;
        };
        if let FragmentInfo::Line {
            announcement:
                Some(LiteralAnnouncement {
                    mode: lit_mode,
                    length,
                }),
            ..
        } = info
        {
            if length <= max_literal(state) {
                if lit_mode == LiteralMode::Sync {
                    conn.send(b"+ Ready for additional command text.\r\n")
                        .await?;
                }
            } else if let (LiteralMode::Sync, Some(tag)) = (lit_mode, frag.decode_tag()) {
                let tag = tag.into_static();
                frag.skip_message();
                conn.send(&status::bad(Some(&tag), "Command Argument Error. 11"))
                    .await?;
            } else {
                // A non-synchronizing literal too large: its bytes follow anyway.
                frag.poison_message();
            }
            continue;
        }
        if !frag.is_message_complete() {
            continue;
        }
        match &mode {
            Mode::Command => {
                let decoded = frag
                    .decode_message(&CommandCodec::default())
                    .map(|c| c.into_static());
                match decoded {
                    Ok(command) => {
                        if let Some(next) = command_of(state, conn, s, command, &mut frag).await? {
                            mode = next;
                        }
                        if s.granted.as_ref().is_some_and(|g| !g.connected) && s.not_connected >= 2
                        {
                            conn.send(b"* BYE Connection closed. 14\r\n").await?;
                            return Ok(());
                        }
                    }
                    Err(DecodeMessageError::MessageTooLong { .. }) => {
                        conn.send(&status::bad(None, "Command Argument Error. 11"))
                            .await?;
                    }
                    Err(_) => {
                        let tag = frag.decode_tag().map(|t| t.into_static());
                        state.record_command(s.id, "(unparsable)");
                        conn.send(&status::bad(tag.as_ref(), "Command Error. 12"))
                            .await?;
                    }
                }
                if matches!(mode, Mode::Command) && conn_closed(s) {
                    return Ok(());
                }
            }
            Mode::Authenticate(tag, mechanism) => {
                let (tag, mechanism) = (tag.clone(), mechanism.clone());
                let data = frag
                    .decode_message(&AuthenticateDataCodec::default())
                    .map(|d| d.into_static());
                mode = Mode::Command;
                let answer = match data {
                    Ok(AuthenticateData::Continue(bytes)) => {
                        let raw = bytes.declassify().to_vec();
                        authenticated_answer(&tag, authenticate(state, s, &mechanism, &raw))
                    }
                    Ok(AuthenticateData::Cancel) => status::bad(Some(&tag), "AUTHENTICATE failed."),
                    Err(_) => status::no(Some(&tag), None, "AUTHENTICATE failed."),
                };
                conn.send(&answer).await?;
            }
        }
    }
}

/// Set by LOGOUT.
fn conn_closed(s: &Session) -> bool {
    s.logged_out
}

/// Runs a command; answers the next reader mode when it changes.
async fn command_of(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    command: Command<'static>,
    frag: &mut Fragmentizer,
) -> Result<Option<Mode>, ConnError> {
    let tag = command.tag.clone();
    let name = command.body.name().to_string();
    let recorded = match &command.body {
        CommandBody::Select { mailbox, .. }
        | CommandBody::Examine { mailbox, .. }
        | CommandBody::Status { mailbox, .. }
        | CommandBody::Append { mailbox, .. } => format!("{name} {}", mailbox_name(mailbox)),
        CommandBody::Authenticate { mechanism, .. } => format!("{name} {}", mechanism.as_ref()),
        CommandBody::Fetch { uid: true, .. }
        | CommandBody::Store { uid: true, .. }
        | CommandBody::Copy { uid: true, .. }
        | CommandBody::Move { uid: true, .. }
        | CommandBody::Search { uid: true, .. } => format!("UID {name}"),
        _ => name.clone(),
    };
    state.record_command(s.id, recorded);
    let tls = conn.is_tls();
    // Commands any state takes.
    match command.body {
        CommandBody::Capability => {
            let caps = if tls {
                CAPABILITIES
            } else {
                CAPABILITIES_PLAIN
            };
            let mut out = format!("* CAPABILITY {caps}\r\n").into_bytes();
            out.extend(status::ok(Some(&tag), None, "CAPABILITY completed."));
            conn.send(&out).await?;
            Ok(None)
        }
        CommandBody::Noop => {
            let mut out = sync(state, s);
            out.extend(status::ok(Some(&tag), None, "NOOP completed."));
            conn.send(&out).await?;
            Ok(None)
        }
        CommandBody::Logout => {
            let mut out = b"* BYE Microsoft Exchange Server IMAP4 server signing off.\r\n".to_vec();
            out.extend(status::ok(Some(&tag), None, "LOGOUT completed."));
            conn.send(&out).await?;
            s.logged_out = true;
            Ok(None)
        }
        CommandBody::Id { .. } => {
            let mut out = b"* ID (\"name\" \"Microsoft.Exchange.Imap4.Imap4Server\" \"version\" \"15.20\")\r\n".to_vec();
            out.extend(status::ok(Some(&tag), None, "ID completed."));
            conn.send(&out).await?;
            Ok(None)
        }
        CommandBody::StartTLS => {
            if tls {
                conn.send(&status::bad(
                    Some(&tag),
                    "Command received in Invalid state.",
                ))
                .await?;
            } else {
                conn.send(&status::ok(Some(&tag), None, "Begin TLS negotiation now."))
                    .await?;
                // RFC 3501: nothing the client sent before the handshake counts.
                *frag = Fragmentizer::new(max_literal(state).saturating_add(MAX_LINE));
                conn.start_tls().await?;
                state.record(s.id, |r| r.tls = true);
            }
            Ok(None)
        }
        body => {
            if s.granted.is_none() {
                return not_authenticated(state, conn, s, tag, body, tls).await;
            }
            if s.granted.as_ref().is_some_and(|g| !g.connected) {
                s.not_connected += 1;
                conn.send(&status::bad(
                    Some(&tag),
                    "User is authenticated but not connected.",
                ))
                .await?;
                return Ok(None);
            }
            if let CommandBody::Idle = body {
                return idle(state, conn, s, tag, frag).await.map(|()| None);
            }
            let out = authenticated(state, s, &tag, body);
            conn.send(&out).await?;
            Ok(None)
        }
    }
}

/// The not-authenticated state: AUTHENTICATE and LOGIN (after TLS), nothing else.
async fn not_authenticated(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    tag: Tag<'static>,
    body: CommandBody<'static>,
    tls: bool,
) -> Result<Option<Mode>, ConnError> {
    match body {
        CommandBody::Authenticate {
            mechanism,
            initial_response,
        } if tls => {
            let mechanism = match mechanism {
                AuthMechanism::XOAuth2 => "XOAUTH2".to_string(),
                AuthMechanism::Plain => "PLAIN".to_string(),
                _ => {
                    conn.send(&status::no(Some(&tag), None, "AUTHENTICATE failed."))
                        .await?;
                    return Ok(None);
                }
            };
            state.record(s.id, |r| r.mechanism = Some(mechanism.clone()));
            match initial_response {
                Some(ir) => {
                    let raw = ir.declassify().to_vec();
                    let answer =
                        authenticated_answer(&tag, authenticate(state, s, &mechanism, &raw));
                    conn.send(&answer).await?;
                    Ok(None)
                }
                None => {
                    conn.send(b"+ \r\n").await?;
                    Ok(Some(Mode::Authenticate(tag, mechanism)))
                }
            }
        }
        CommandBody::Login { username, password } if tls => {
            state.record(s.id, |r| r.mechanism = Some("LOGIN".into()));
            let user = String::from_utf8_lossy(username.as_ref()).to_string();
            let password = String::from_utf8_lossy(password.declassify().as_ref()).to_string();
            state.record(s.id, |r| r.mailbox = Some(user.clone()));
            let result =
                auth::authorize_password(state, MailProtocol::Imap, None, &user, &password);
            let answer = match granted(state, s, result) {
                Ok(()) => status::ok(Some(&tag), None, "LOGIN completed."),
                Err(()) => status::no(Some(&tag), None, "LOGIN failed."),
            };
            conn.send(&answer).await?;
            Ok(None)
        }
        _ => {
            conn.send(&status::bad(
                Some(&tag),
                "Command received in Invalid state.",
            ))
            .await?;
            Ok(None)
        }
    }
}

/// Exchange's answers to AUTHENTICATE.
fn authenticated_answer(tag: &Tag<'static>, result: Result<(), ()>) -> Vec<u8> {
    match result {
        Ok(()) => status::ok(Some(tag), None, "AUTHENTICATE completed."),
        Err(()) => status::no(Some(tag), None, "AUTHENTICATE failed."),
    }
}

/// Checks SASL data (XOAUTH2 or PLAIN, raw bytes).
fn authenticate(state: &MailState, s: &mut Session, mechanism: &str, raw: &[u8]) -> Result<(), ()> {
    let result = if mechanism == "XOAUTH2" {
        match auth::parse_xoauth2(raw) {
            Some((user, token)) => {
                state.record(s.id, |r| r.mailbox = Some(user.clone()));
                auth::authorize_bearer(state, MailProtocol::Imap, &user, &token)
            }
            None => Err(Refusal::Failed),
        }
    } else {
        match auth::parse_plain(raw) {
            Some((authz, user, password)) => {
                state.record(s.id, |r| r.mailbox = Some(user.clone()));
                auth::authorize_password(state, MailProtocol::Imap, Some(&authz), &user, &password)
            }
            None => Err(Refusal::Failed),
        }
    };
    granted(state, s, result)
}

/// Enters the authenticated state, within the mailbox's connection limit.
fn granted(state: &MailState, s: &mut Session, result: Result<Granted, Refusal>) -> Result<(), ()> {
    let granted = match result {
        Ok(g) => g,
        Err(refusal) => {
            state.record(s.id, |r| r.outcome = Some(refusal.outcome().into()));
            return Err(());
        }
    };
    let key = granted.mailbox.to_ascii_lowercase();
    {
        let mut own = state.own();
        let limit = own.imap_connection_limit;
        let open = own.imap_open.entry(key.clone()).or_default();
        if *open >= limit {
            drop(own);
            state.record(s.id, |r| r.outcome = Some("connection_limit".into()));
            return Err(());
        }
        *open += 1;
    }
    s.counted = Some(key);
    state.record(s.id, |r| {
        r.outcome = Some(
            if granted.connected {
                "ok"
            } else {
                "not_connected"
            }
            .into(),
        );
        r.mailbox = Some(granted.mailbox.clone());
        r.app_only = granted.app_only();
    });
    s.granted = Some(granted);
    Ok(())
}

pub(crate) fn mailbox_name(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(other) => String::from_utf8_lossy(other.as_ref()).to_string(),
    }
}

/// The current UIDs of a folder, in order.
fn folder_uids(state: &MailState, mailbox: &str, folder: u64) -> Vec<u32> {
    let store = state.store.lock();
    let Some(mb) = store.mailbox(mailbox) else {
        return Vec::new();
    };
    let mut uids: Vec<u32> = mb
        .messages
        .values()
        .filter(|m| m.folder == folder)
        .filter_map(|m| u32::try_from(m.seq).ok())
        .collect();
    uids.sort_unstable();
    uids
}

/// Untagged EXPUNGE and EXISTS for what changed in the selected folder since the client last
/// heard.
fn sync(state: &MailState, s: &mut Session) -> Vec<u8> {
    let (Some(granted), Some(selected)) = (&s.granted, &mut s.selected) else {
        return Vec::new();
    };
    let now = folder_uids(state, &granted.mailbox, selected.folder);
    let present: HashSet<u32> = now.iter().copied().collect();
    let mut out = Vec::new();
    let mut i = selected.uids.len();
    while i > 0 {
        i -= 1;
        if !present.contains(&selected.uids[i]) {
            selected.uids.remove(i);
            out.extend(format!("* {} EXPUNGE\r\n", i + 1).into_bytes());
        }
    }
    let last = selected.uids.last().copied().unwrap_or(0);
    let new: Vec<u32> = now.into_iter().filter(|u| *u > last).collect();
    if !new.is_empty() {
        selected.uids.extend(new);
        out.extend(format!("* {} EXISTS\r\n", selected.uids.len()).into_bytes());
    }
    out
}

/// IDLE: `+ IDLE accepted…`, then changes as they happen, until DONE.
async fn idle(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    tag: Tag<'static>,
    frag: &mut Fragmentizer,
) -> Result<(), ConnError> {
    let mut changes = state.store.subscribe();
    changes.borrow_and_update();
    let mut out = b"+ IDLE accepted, awaiting DONE command.\r\n".to_vec();
    out.extend(sync(state, s));
    conn.send(&out).await?;
    loop {
        // DONE may already be buffered.
        while let Some(_info) = frag.progress() {
            if frag.is_message_complete() {
                let done = frag.decode_message(&IdleDoneCodec::default()).is_ok();
                let answer = if done {
                    let mut out = sync(state, s);
                    out.extend(status::ok(Some(&tag), None, "IDLE completed."));
                    out
                } else {
                    status::bad(Some(&tag), "Command Error. 12")
                };
                conn.send(&answer).await?;
                return Ok(());
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(ConnError::Closed);
                }
                let out = sync(state, s);
                if !out.is_empty() {
                    conn.send(&out).await?;
                }
            }
            bytes = conn.read_some(64 * 1024) => {
                frag.enqueue_bytes(&bytes?);
            }
        }
    }
}

/// The authenticated and selected states.
fn authenticated(
    state: &MailState,
    s: &mut Session,
    tag: &Tag<'static>,
    body: CommandBody<'static>,
) -> Vec<u8> {
    let Some(granted) = s.granted.clone() else {
        return status::bad(Some(tag), "Command received in Invalid state.");
    };
    let mailbox = granted.mailbox.as_str();
    let mut out = Vec::new();
    let result = match body {
        CommandBody::Namespace => {
            out.extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
            status::ok(Some(tag), None, "NAMESPACE completed.")
        }
        CommandBody::Select { mailbox: name, .. } => select(state, s, tag, &name, false, &mut out),
        CommandBody::Examine { mailbox: name, .. } => select(state, s, tag, &name, true, &mut out),
        CommandBody::List {
            reference,
            mailbox_wildcard,
        } => list(
            state,
            mailbox,
            tag,
            &reference,
            &mailbox_wildcard,
            "LIST",
            &mut out,
        ),
        CommandBody::Lsub {
            reference,
            mailbox_wildcard,
        } => list(
            state,
            mailbox,
            tag,
            &reference,
            &mailbox_wildcard,
            "LSUB",
            &mut out,
        ),
        CommandBody::Status {
            mailbox: name,
            item_names,
        } => status_of(state, mailbox, tag, &name, item_names.as_ref(), &mut out),
        CommandBody::Create { mailbox: name } => create(state, mailbox, tag, &name),
        CommandBody::Subscribe { .. } | CommandBody::Unsubscribe { .. } => {
            status::ok(Some(tag), None, "completed.")
        }
        CommandBody::Append {
            mailbox: name,
            flags,
            date,
            message,
        } => {
            let bytes = match &message {
                LiteralOrLiteral8::Literal(l) => l.as_ref().to_vec(),
                LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
            };
            let received = date.map(|d| {
                time::OffsetDateTime::from_unix_timestamp(d.as_ref().timestamp())
                    .unwrap_or_else(|_| state.clock.now())
            });
            append(state, mailbox, tag, &name, &flags, received, &bytes)
        }
        body if s.selected.is_none() => {
            let _ = body;
            status::bad(Some(tag), "Command received in Invalid state.")
        }
        CommandBody::Check => status::ok(Some(tag), None, "CHECK completed."),
        CommandBody::Close => {
            if let Some(sel) = &s.selected
                && !sel.read_only
            {
                let _ = expunge(state, s, None);
            }
            s.selected = None;
            status::ok(Some(tag), None, "CLOSE completed.")
        }
        CommandBody::Unselect => {
            s.selected = None;
            status::ok(Some(tag), None, "UNSELECT completed.")
        }
        CommandBody::Expunge => {
            out.extend(sync(state, s));
            out.extend(expunge(state, s, None));
            status::ok(Some(tag), None, "EXPUNGE completed.")
        }
        CommandBody::ExpungeUid { sequence_set } => {
            out.extend(sync(state, s));
            out.extend(expunge(state, s, Some(&sequence_set)));
            status::ok(Some(tag), None, "EXPUNGE completed.")
        }
        CommandBody::Search { criteria, uid, .. } => {
            out.extend(sync(state, s));
            out.extend(search_cmd(state, s, criteria.as_ref(), uid));
            status::ok(Some(tag), None, "SEARCH completed.")
        }
        CommandBody::Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            ..
        } => {
            out.extend(sync(state, s));
            let items = match &macro_or_item_names {
                MacroOrMessageDataItemNames::Macro(m) => m
                    .expand()
                    .into_iter()
                    .map(IntoStatic::into_static)
                    .collect(),
                MacroOrMessageDataItemNames::MessageDataItemNames(items) => items.clone(),
            };
            out.extend(fetch_cmd(state, s, &sequence_set, &items, uid));
            status::ok(Some(tag), None, "FETCH completed.")
        }
        CommandBody::Store {
            sequence_set,
            kind,
            response,
            flags,
            uid,
            ..
        } => {
            out.extend(sync(state, s));
            match store_cmd(state, s, &sequence_set, kind, response, &flags, uid) {
                Ok(lines) => {
                    out.extend(lines);
                    status::ok(Some(tag), None, "STORE completed.")
                }
                Err(text) => status::no(Some(tag), None, text),
            }
        }
        CommandBody::Copy {
            sequence_set,
            mailbox: target,
            uid,
        } => {
            out.extend(sync(state, s));
            copy_or_move(
                state,
                s,
                tag,
                &Transfer {
                    set: &sequence_set,
                    target: &target,
                    uid,
                    moving: false,
                },
                &mut out,
            )
        }
        CommandBody::Move {
            sequence_set,
            mailbox: target,
            uid,
        } => {
            out.extend(sync(state, s));
            copy_or_move(
                state,
                s,
                tag,
                &Transfer {
                    set: &sequence_set,
                    target: &target,
                    uid,
                    moving: true,
                },
                &mut out,
            )
        }
        _ => status::bad(Some(tag), "Command Error. 12"),
    };
    out.extend(result);
    out
}

/// SELECT / EXAMINE.
fn select(
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
fn list(
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
            if !pattern_matches(full.as_bytes(), name.as_bytes()) {
                continue;
            }
            let mut attributes = vec![if mb.children(seq).is_empty() {
                "\\HasNoChildren"
            } else {
                "\\HasChildren"
            }];
            attributes.extend(folders::special_use(mb, seq));
            out.extend(format!("* {verb} ({}) \"/\" ", attributes.join(" ")).into_bytes());
            out.extend(wire::string(name.as_bytes()));
            out.extend_from_slice(b"\r\n");
        }
    }
    status::ok(Some(tag), None, &format!("{verb} completed."))
}

/// STATUS.
fn status_of(
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
    out.extend(wire::string(name.as_bytes()));
    out.extend(format!(" ({})\r\n", fields.join(" ")).into_bytes());
    status::ok(Some(tag), None, "STATUS completed.")
}

/// CREATE: a folder under an existing parent.
fn create(state: &MailState, mailbox: &str, tag: &Tag<'static>, name: &Mailbox<'_>) -> Vec<u8> {
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
fn append(
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

/// The selected messages `(sequence number, uid)` a set names.
fn resolve(selected: &Selected, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
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

fn extra_flags(state: &MailState, mailbox: &str, seq: u64) -> Option<crate::mailproto::ExtraFlags> {
    state
        .own()
        .imap_flags
        .get(&(mailbox.to_ascii_lowercase(), seq))
        .cloned()
}

/// FETCH.
fn fetch_cmd(
    state: &MailState,
    s: &mut Session,
    set: &SequenceSet,
    items: &[MessageDataItemName<'_>],
    uid: bool,
) -> Vec<u8> {
    let (Some(granted), Some(selected)) = (&s.granted, &s.selected) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (seq, u) in resolve(selected, set, uid) {
        let extra = extra_flags(state, &granted.mailbox, u64::from(u));
        let mut store = state.store.lock();
        let Some(mb) = store.mailbox_mut(&granted.mailbox) else {
            break;
        };
        let Some(message) = mb.messages.get(&u64::from(u)) else {
            continue;
        };
        let flags = fetch::flags(message, extra.as_ref());
        let fetched = fetch::fetch(seq, u, message, &flags, items, uid);
        if fetched.sets_seen && !selected.read_only && !message.is_read {
            if let Some(m) = mb.messages.get_mut(&u64::from(u)) {
                m.is_read = true;
            }
            mb.touch_message(u64::from(u), state.clock.now());
        }
        out.extend(fetched.line);
    }
    out
}

/// STORE.
fn store_cmd(
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
fn search_cmd(
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
fn expunge(state: &MailState, s: &mut Session, set: Option<&SequenceSet>) -> Vec<u8> {
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
struct Transfer<'a> {
    set: &'a SequenceSet,
    target: &'a Mailbox<'a>,
    uid: bool,
    moving: bool,
}

/// COPY or MOVE (RFC 6851): answers COPYUID, and for MOVE the EXPUNGEs.
fn copy_or_move(
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
