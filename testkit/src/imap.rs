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
mod mailboxes;
mod messages;
mod search;
mod status;
mod wire;

use std::collections::HashSet;

use imap_codec::fragmentizer::{
    DecodeMessageError, FragmentInfo, Fragmentizer, LiteralAnnouncement,
};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{LiteralMode, Tag};
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec};

use crate::mailproto::auth::{self, Granted, Refusal};
use crate::mailproto::conn::{Conn, ConnError};
use crate::mailproto::{MailProtocol, MailState, greeting_tag};
use mailboxes::{append, create, list, select, status_of};
use messages::{Transfer, copy_or_move, expunge, fetch_streamed, search_cmd, store_cmd};

/// Exchange Online's capabilities after TLS (and on 993).
const CAPABILITIES: &str = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+";
/// After authentication Exchange Online adds three of its own.
const CAPABILITIES_AUTHENTICATED: &str = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CLIENTACCESSRULES CLIENTNETWORKPRESENCELOCATION BACKENDAUTHENTICATE CHILDREN IDLE NAMESPACE LITERAL+";
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
    // The place is freed before the client sees the connection end.
    if let Some(mailbox) = s.counted.take() {
        let mut own = state.own();
        if let Some(n) = own.imap_open.get_mut(&mailbox) {
            *n = n.saturating_sub(1);
        }
    }
    conn.close().await;
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
                        conn.send(&status::bad(tag.as_ref(), "Command Error. 10"))
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
            let caps = match (tls, s.granted.is_some()) {
                (false, _) => CAPABILITIES_PLAIN,
                (true, false) => CAPABILITIES,
                (true, true) => CAPABILITIES_AUTHENTICATED,
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
            if let CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } = &body
                && s.selected.is_some()
            {
                let items: Vec<MessageDataItemName<'static>> = match macro_or_item_names {
                    MacroOrMessageDataItemNames::Macro(m) => m
                        .expand()
                        .into_iter()
                        .map(IntoStatic::into_static)
                        .collect(),
                    MacroOrMessageDataItemNames::MessageDataItemNames(items) => items.clone(),
                };
                fetch_streamed(state, conn, s, &tag, sequence_set, &items, *uid).await?;
                return Ok(None);
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

/// A mailbox name from the client as UTF-8 (modified UTF-7 decoded; taken as it is when it is
/// not valid modified UTF-7).
pub(crate) fn mailbox_name(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(other) => {
            let raw = String::from_utf8_lossy(other.as_ref()).to_string();
            crate::mailproto::folders::decode_mutf7(&raw).unwrap_or(raw)
        }
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
                    status::bad(Some(&tag), "Command Error. 10")
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
        _ => status::bad(Some(tag), "Command Error. 10"),
    };
    out.extend(result);
    out
}
