//! The mock POP3 server (RFC 1939, 2449 CAPA, 2595 STLS, 5034 SASL) over a mailbox's Inbox,
//! answering as Exchange Online's `outlook.office365.com:995` does: XOAUTH2 and PLAIN through
//! `AUTH`, `USER`/`PASS` with a seeded password (for the bridge tests), and every refusal
//! worded `-ERR Authentication failure: unknown user name or bad password.` (passwords:
//! `-ERR Logon failure: …`). On the plain port (110) nothing but CAPA, STLS, NOOP and QUIT
//! works before STLS.
//!
//! The maildrop is the Inbox as it was at login; DELE marks, QUIT (the UPDATE state) deletes.

use std::collections::BTreeSet;

use crate::mailproto::auth::{self, Granted, Refusal};
use crate::mailproto::conn::{Conn, ConnError};
use crate::mailproto::{MailProtocol, MailState, greeting_tag};
use crate::mailstore::mime;

/// The longest command line taken (an XOAUTH2 line carries a token).
const MAX_COMMAND: usize = 64 * 1024;

/// One message of the maildrop.
#[derive(Debug)]
struct Item {
    seq: u64,
    size: usize,
    uid: String,
}

#[derive(Debug, Default)]
struct Session {
    id: u64,
    user: Option<String>,
    granted: Option<Granted>,
    items: Vec<Item>,
    deleted: BTreeSet<usize>,
}

/// Serves one connection until QUIT, EOF or the idle timeout.
pub(crate) async fn session(state: MailState, mut conn: Conn) {
    let mut s = Session {
        id: state.open_session(MailProtocol::Pop, conn.is_tls()),
        ..Session::default()
    };
    let greeting = format!(
        "+OK The Microsoft Exchange POP3 service is ready. [{}]\r\n",
        greeting_tag()
    );
    if conn.send(greeting.as_bytes()).await.is_err() {
        return;
    }
    loop {
        let line = match conn.read_line(MAX_COMMAND).await {
            Ok(line) => line,
            Err(ConnError::TooLong) => {
                if conn.send(b"-ERR Protocol error. 14\r\n").await.is_err() {
                    return;
                }
                continue;
            }
            Err(_) => break,
        };
        match command(&state, &mut conn, &mut s, &line).await {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    conn.close().await;
}

fn ok(text: &str) -> Vec<u8> {
    format!("+OK{}{text}\r\n", if text.is_empty() { "" } else { " " }).into_bytes()
}

fn err(text: &str) -> Vec<u8> {
    format!("-ERR {text}\r\n").into_bytes()
}

async fn command(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    line: &[u8],
) -> Result<bool, ConnError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    let mut words = text.split(' ');
    let verb = words.next().unwrap_or_default().to_ascii_uppercase();
    let args: Vec<&str> = words.filter(|w| !w.is_empty()).collect();
    let recorded = match verb.as_str() {
        "USER" => format!("USER {}", args.first().unwrap_or(&"")),
        // Arguments of PASS and AUTH are credentials: never recorded.
        "AUTH" => format!("AUTH {}", args.first().unwrap_or(&"")),
        _ => text
            .split(' ')
            .take(if verb == "PASS" { 1 } else { 3 })
            .collect::<Vec<_>>()
            .join(" "),
    };
    state.record_command(s.id, recorded);
    let tls = conn.is_tls();
    let answer = match verb.as_str() {
        "CAPA" => {
            let mut caps = vec!["TOP", "UIDL"];
            if tls {
                caps.push("SASL PLAIN XOAUTH2");
                caps.push("USER");
            } else {
                caps.push("STLS");
            }
            let mut out = String::from("+OK\r\n");
            for cap in caps {
                out.push_str(cap);
                out.push_str("\r\n");
            }
            out.push_str(".\r\n");
            out.into_bytes()
        }
        "STLS" if !tls && s.granted.is_none() => {
            conn.send(b"+OK Begin TLS negotiation.\r\n").await?;
            conn.start_tls().await?;
            state.record(s.id, |r| r.tls = true);
            s.user = None;
            return Ok(true);
        }
        "NOOP" => ok(""),
        "QUIT" => {
            let text = match quit(state, s) {
                Ok(()) => ok("Microsoft Exchange Server POP3 server signing off."),
                Err(e) => err(&e),
            };
            conn.send(&text).await?;
            return Ok(false);
        }
        _ if !tls => err("Command is not valid in this state."),
        "USER" if s.granted.is_none() => match args.first() {
            Some(user) => {
                s.user = Some((*user).to_string());
                ok("")
            }
            None => err("Protocol error. 14"),
        },
        "PASS" if s.granted.is_none() => {
            let password = text.get(5..).unwrap_or_default();
            match s.user.take() {
                None => err("Command is not valid in this state."),
                Some(user) => {
                    state.record(s.id, |r| {
                        r.mechanism = Some("USER/PASS".into());
                        r.mailbox = Some(user.clone());
                    });
                    let result =
                        auth::authorize_password(state, MailProtocol::Pop, None, &user, password);
                    match login(state, s, result) {
                        Ok(()) => ok("User successfully logged on."),
                        Err(_) => err("Logon failure: unknown user name or bad password."),
                    }
                }
            }
        }
        "AUTH" if s.granted.is_none() => auth(state, conn, s, &args).await?,
        _ if s.granted.is_none() => err("Command is not valid in this state."),
        "STAT" => {
            let (count, size) = s
                .items
                .iter()
                .enumerate()
                .filter(|(i, _)| !s.deleted.contains(i))
                .fold((0, 0), |(c, z), (_, item)| (c + 1, z + item.size));
            ok(&format!("{count} {size}"))
        }
        "LIST" | "UIDL" => listing(s, &verb, args.first().copied()),
        "RETR" | "TOP" => match message_index(s, args.first().copied()) {
            Err(e) => err(e),
            Ok(i) => {
                let lines = if verb == "TOP" {
                    match args.get(1).and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) => Some(n),
                        None => {
                            conn.send(&err("Protocol error. 14")).await?;
                            return Ok(true);
                        }
                    }
                } else {
                    None
                };
                retrieve(state, s, i, lines)
            }
        },
        "DELE" => match message_index(s, args.first().copied()) {
            Err(e) => err(e),
            Ok(i) => {
                s.deleted.insert(i);
                ok("Marked to be deleted.")
            }
        },
        "RSET" => {
            s.deleted.clear();
            ok("")
        }
        _ => err("Protocol error. 14"),
    };
    conn.send(&answer).await?;
    Ok(true)
}

/// `AUTH XOAUTH2|PLAIN [initial-response]`.
async fn auth(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    args: &[&str],
) -> Result<Vec<u8>, ConnError> {
    let Some(mechanism) = args.first().map(|m| m.to_ascii_uppercase()) else {
        // RFC 5034: AUTH without a mechanism may list them; Exchange answers like this.
        return Ok(b"+OK\r\nPLAIN\r\nXOAUTH2\r\n.\r\n".to_vec());
    };
    if mechanism != "XOAUTH2" && mechanism != "PLAIN" {
        return Ok(err("Unrecognized authentication type."));
    }
    state.record(s.id, |r| r.mechanism = Some(mechanism.clone()));
    let response = match args.get(1) {
        Some(ir) if *ir != "=" => (*ir).to_string(),
        _ => {
            conn.send(b"+ \r\n").await?;
            let line = conn.read_line(MAX_COMMAND).await?;
            String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string()
        }
    };
    if response.trim() == "*" {
        return Ok(err("Authentication canceled."));
    }
    let result = if mechanism == "XOAUTH2" {
        match auth::decode_xoauth2(&response) {
            Some((user, token)) => {
                state.record(s.id, |r| r.mailbox = Some(user.clone()));
                auth::authorize_bearer(state, MailProtocol::Pop, &user, &token)
            }
            None => Err(Refusal::Failed),
        }
    } else {
        match auth::decode_plain(&response) {
            Some((authz, user, password)) => {
                state.record(s.id, |r| r.mailbox = Some(user.clone()));
                auth::authorize_password(state, MailProtocol::Pop, Some(&authz), &user, &password)
            }
            None => Err(Refusal::Failed),
        }
    };
    Ok(match login(state, s, result) {
        Ok(()) => ok("User successfully authenticated."),
        Err(_) => err("Authentication failure: unknown user name or bad password."),
    })
}

/// Enters the TRANSACTION state: snapshots the Inbox.
fn login(state: &MailState, s: &mut Session, result: Result<Granted, Refusal>) -> Result<(), ()> {
    let granted = match result {
        Ok(g) => g,
        Err(refusal) => {
            state.record(s.id, |r| r.outcome = Some(refusal.outcome().into()));
            return Err(());
        }
    };
    let store = state.store.lock();
    let Some(mb) = store.mailbox(&granted.mailbox) else {
        return Err(());
    };
    let inbox = mb.well_known("inbox");
    let key = mb.key();
    s.items = mb
        .messages_by_received(false)
        .filter(|m| Some(m.folder) == inbox)
        .map(|m| Item {
            seq: m.seq,
            size: crlf(&mime::render(m)).len(),
            uid: format!(
                "{:02x}{:02x}{:02x}{:02x}-{}",
                key[0], key[1], key[2], key[3], m.seq
            ),
        })
        .collect();
    drop(store);
    state.record(s.id, |r| {
        r.outcome = Some("ok".into());
        r.mailbox = Some(granted.mailbox.clone());
        r.app_only = granted.app_only();
    });
    s.granted = Some(granted);
    Ok(())
}

/// The 0-based index of message number `arg`, not deleted.
fn message_index(s: &Session, arg: Option<&str>) -> Result<usize, &'static str> {
    let n = arg
        .and_then(|a| a.parse::<usize>().ok())
        .ok_or("Protocol error. 14")?;
    if n == 0 || n > s.items.len() {
        return Err("The specified message is out of range.");
    }
    if s.deleted.contains(&(n - 1)) {
        return Err("Message has been deleted.");
    }
    Ok(n - 1)
}

fn listing(s: &Session, verb: &str, arg: Option<&str>) -> Vec<u8> {
    let field = |item: &Item| {
        if verb == "LIST" {
            item.size.to_string()
        } else {
            item.uid.clone()
        }
    };
    if arg.is_some() {
        return match message_index(s, arg) {
            Ok(i) => ok(&format!("{} {}", i + 1, field(&s.items[i]))),
            Err(e) => err(e),
        };
    }
    let mut out = String::from("+OK\r\n");
    for (i, item) in s.items.iter().enumerate() {
        if !s.deleted.contains(&i) {
            out.push_str(&format!("{} {}\r\n", i + 1, field(item)));
        }
    }
    out.push_str(".\r\n");
    out.into_bytes()
}

/// The message with every line ending in CRLF, as POP3 carries it (a body may hold bare LFs,
/// the rendering may end without a line break);
/// LIST's sizes count these bytes.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 50);
    let mut previous = 0u8;
    for &b in raw {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    // The last line ends with CRLF too, before the terminating dot.
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// RETR (`lines` = None) or TOP: the message, dot-stuffed, ending with the lone dot.
fn retrieve(state: &MailState, s: &Session, i: usize, lines: Option<usize>) -> Vec<u8> {
    let Some(granted) = &s.granted else {
        return err("Command is not valid in this state.");
    };
    let store = state.store.lock();
    let Some(message) = store
        .mailbox(&granted.mailbox)
        .and_then(|mb| mb.messages.get(&s.items[i].seq))
    else {
        return err("Message has been deleted.");
    };
    let bytes = crlf(&mime::render(message));
    drop(store);
    let mut out = ok("").to_vec();
    let mut in_body = false;
    let mut body_lines = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if in_body && lines.is_some_and(|max| body_lines >= max) {
            break;
        }
        if in_body {
            body_lines += 1;
        }
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        if !in_body && (line == b"\r\n" || line == b"\n") {
            in_body = true;
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The UPDATE state: deletes the marked messages.
fn quit(state: &MailState, s: &Session) -> Result<(), String> {
    let Some(granted) = &s.granted else {
        return Ok(());
    };
    if s.deleted.is_empty() {
        return Ok(());
    }
    let mut store = state.store.lock();
    let Some(mb) = store.mailbox_mut(&granted.mailbox) else {
        return Err("The mailbox is gone.".into());
    };
    for i in &s.deleted {
        mb.remove_message(s.items[*i].seq);
    }
    Ok(())
}
