//! The mock SMTP submission server (RFC 5321, 6409, 3207 STARTTLS, 4954 AUTH, 3030 CHUNKING),
//! answering as Exchange Online's `smtp.office365.com` does: on the submission port (587) TLS
//! must be started before AUTH; on 465 TLS is implicit. AUTH takes XOAUTH2 (with or without
//! the initial response), LOGIN and PLAIN ([`crate::mailproto::auth`]); MAIL FROM before AUTH
//! is `530 5.7.57`; a message whose sender the session may not send as is refused after the
//! data with `554 5.2.252 SendAsDenied`, as Exchange refuses it at submission.
//!
//! A message accepted is recorded as a submission from the authenticated mailbox, saved in its
//! Sent Items and delivered to the Inbox of every recipient mailbox the directory has, where
//! Graph, EWS, IMAP and POP see it.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::mailproto::auth::{self, Granted, Refusal};
use crate::mailproto::conn::{Conn, ConnError};
use crate::mailproto::{MailProtocol, MailState};
use crate::mailstore::content::{Address, FlagStatus};
use crate::mailstore::parse::message_from_mime;

use crate::mailproto::MAIL_HOST as HOST;
/// The longest command line taken (RFC 5321 allows 512; XOAUTH2 lines carry a token).
const MAX_COMMAND: usize = 64 * 1024;
/// The longest line of message data (RFC 5321: 1,000; a little room for sloppy clients).
const MAX_DATA_LINE: usize = 64 * 1024;

/// Where a session stands.
#[derive(Debug, Default)]
struct Session {
    id: u64,
    implicit_tls: bool,
    greeted: bool,
    granted: Option<Granted>,
    from: Option<String>,
    to: Vec<String>,
    /// BDAT chunks so far.
    chunks: Vec<u8>,
    chunks_too_big: bool,
}

/// Serves one connection until QUIT, EOF or the idle timeout.
pub(crate) async fn session(state: MailState, mut conn: Conn, implicit_tls: bool) {
    let mut s = Session {
        id: state.open_session(MailProtocol::Smtp, conn.is_tls()),
        implicit_tls,
        ..Session::default()
    };
    let greeting = format!(
        "220 {HOST} Microsoft ESMTP MAIL Service ready at {}\r\n",
        crate::mailstore::mime::rfc5322_date(state.clock.now())
    );
    if conn.send(greeting.as_bytes()).await.is_err() {
        return;
    }
    loop {
        let line = match conn.read_line(MAX_COMMAND).await {
            Ok(line) => line,
            Err(ConnError::TooLong) => {
                if conn.send(b"500 5.5.6 Line too long\r\n").await.is_err() {
                    return;
                }
                continue;
            }
            Err(ConnError::Idle) => {
                let _ = conn
                    .send(b"421 4.4.2 Connection dropped due to idle timeout\r\n")
                    .await;
                return;
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

fn reply(code: &str) -> Vec<u8> {
    format!("{code}\r\n").into_bytes()
}

/// Handles one command line; `Ok(false)` ends the session.
async fn command(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    line: &[u8],
) -> Result<bool, ConnError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
    let verb = verb.to_ascii_uppercase();
    let recorded = match verb.as_str() {
        "MAIL" | "RCPT" => format!("{verb} {rest}"),
        _ => verb.clone(),
    };
    state.record_command(s.id, recorded);
    let answer: Vec<u8> = match verb.as_str() {
        "EHLO" | "HELO" => {
            s.greeted = true;
            reset(s);
            if verb == "HELO" {
                reply(&format!("250 {HOST} Hello [127.0.0.1]"))
            } else {
                ehlo(state, conn.is_tls()).into_bytes()
            }
        }
        "STARTTLS" => {
            if conn.is_tls() || s.implicit_tls {
                reply("503 5.5.2 Send hello first")
            } else {
                conn.send(b"220 2.0.0 SMTP server ready\r\n").await?;
                conn.start_tls().await?;
                state.record(s.id, |r| r.tls = true);
                // RFC 3207: the session starts over.
                s.greeted = false;
                s.granted = None;
                reset(s);
                return Ok(true);
            }
        }
        "AUTH" => auth(state, conn, s, rest).await?,
        "MAIL" => mail_from(state, s, rest),
        "RCPT" => rcpt_to(s, rest),
        "DATA" => {
            if s.granted.is_none() {
                reply(&format!(
                    "530 5.7.57 Client not authenticated to send mail. [{HOST}]"
                ))
            } else if s.from.is_none() {
                reply("503 5.5.1 Need MAIL command")
            } else if s.to.is_empty() {
                reply("503 5.5.1 Need RCPT command")
            } else {
                conn.send(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n")
                    .await?;
                let (data, too_big) = read_data(conn, state.max_message_size()).await?;
                let answer = if too_big {
                    reply("552 5.3.4 Message size exceeds fixed maximum message size")
                } else {
                    submit(state, s, &data)
                };
                reset(s);
                answer
            }
        }
        "BDAT" => bdat(state, conn, s, rest).await?,
        "RSET" => {
            reset(s);
            reply("250 2.0.0 Resetting")
        }
        "NOOP" => reply("250 2.0.0 OK"),
        "QUIT" => {
            conn.send(b"221 2.0.0 Service closing transmission channel\r\n")
                .await?;
            return Ok(false);
        }
        "VRFY" => reply("252 2.1.5 Cannot VRFY user"),
        _ => reply("500 5.3.3 Unrecognized command"),
    };
    conn.send(&answer).await?;
    Ok(true)
}

fn reset(s: &mut Session) {
    s.from = None;
    s.to.clear();
    s.chunks.clear();
    s.chunks_too_big = false;
}

/// Exchange Online's EHLO answer: STARTTLS before TLS, `AUTH LOGIN XOAUTH2` after.
fn ehlo(state: &MailState, tls: bool) -> String {
    let mut lines = vec![
        format!("{HOST} Hello [127.0.0.1]"),
        format!("SIZE {}", state.max_message_size()),
        "PIPELINING".to_string(),
        "DSN".to_string(),
        "ENHANCEDSTATUSCODES".to_string(),
    ];
    if tls {
        lines.push("AUTH LOGIN XOAUTH2".to_string());
    } else {
        lines.push("STARTTLS".to_string());
    }
    lines.extend(
        ["8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
            .iter()
            .map(|s| (*s).to_string()),
    );
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
        .collect()
}

/// `AUTH XOAUTH2|LOGIN|PLAIN [initial-response]`.
async fn auth(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    rest: &str,
) -> Result<Vec<u8>, ConnError> {
    if !conn.is_tls() {
        return Ok(reply("504 5.7.4 Unrecognized authentication type"));
    }
    if s.granted.is_some() {
        return Ok(reply("503 5.5.2 Already authenticated"));
    }
    let (mechanism, initial) = match rest.trim().split_once(' ') {
        Some((m, ir)) => (m.to_ascii_uppercase(), Some(ir.trim().to_string())),
        None => (rest.trim().to_ascii_uppercase(), None),
    };
    state.record(s.id, |r| r.mechanism = Some(mechanism.clone()));
    let result = match mechanism.as_str() {
        "XOAUTH2" => {
            let Some(response) = sasl_step(conn, initial, "334 \r\n").await? else {
                return Ok(reply("501 5.0.0 Authentication cancelled"));
            };
            match auth::decode_xoauth2(&response) {
                Some((user, token)) => {
                    state.record(s.id, |r| r.mailbox = Some(user.clone()));
                    auth::authorize_bearer(state, MailProtocol::Smtp, &user, &token)
                }
                None => Err(Refusal::Failed),
            }
        }
        "PLAIN" => {
            let Some(response) = sasl_step(conn, initial, "334 \r\n").await? else {
                return Ok(reply("501 5.0.0 Authentication cancelled"));
            };
            match auth::decode_plain(&response) {
                Some((authz, user, password)) => {
                    state.record(s.id, |r| r.mailbox = Some(user.clone()));
                    auth::authorize_password(
                        state,
                        MailProtocol::Smtp,
                        Some(&authz),
                        &user,
                        &password,
                    )
                }
                None => Err(Refusal::Failed),
            }
        }
        "LOGIN" => {
            let Some(user) = sasl_step(conn, initial, "334 VXNlcm5hbWU6\r\n").await? else {
                return Ok(reply("501 5.0.0 Authentication cancelled"));
            };
            let Some(password) = sasl_step(conn, None, "334 UGFzc3dvcmQ6\r\n").await? else {
                return Ok(reply("501 5.0.0 Authentication cancelled"));
            };
            let decode = |b64: &str| {
                STANDARD
                    .decode(b64.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
            };
            match (decode(&user), decode(&password)) {
                (Some(user), Some(password)) => {
                    state.record(s.id, |r| r.mailbox = Some(user.clone()));
                    auth::authorize_password(state, MailProtocol::Smtp, None, &user, &password)
                }
                _ => Err(Refusal::Failed),
            }
        }
        _ => return Ok(reply("504 5.7.4 Unrecognized authentication type")),
    };
    Ok(match result {
        Ok(granted) => {
            state.record(s.id, |r| {
                r.outcome = Some("ok".into());
                r.mailbox = Some(granted.mailbox.clone());
                r.app_only = granted.app_only();
            });
            s.granted = Some(granted);
            reply("235 2.7.0 Authentication successful")
        }
        Err(refusal) => {
            state.record(s.id, |r| r.outcome = Some(refusal.outcome().into()));
            reply(&refusal_text(refusal))
        }
    })
}

/// Exchange Online's 535 answers.
fn refusal_text(refusal: Refusal) -> String {
    match refusal {
        Refusal::Failed => format!("535 5.7.3 Authentication unsuccessful [{HOST}]"),
        Refusal::SmtpDisabledMailbox => format!(
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [{HOST}]"
        ),
        Refusal::SmtpDisabledTenant => format!(
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [{HOST}]"
        ),
        Refusal::SecurityDefaults => format!(
            "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [{HOST}]"
        ),
    }
}

/// The initial response, or the client's answer to `challenge`; `None` when the client
/// cancelled (`*`).
async fn sasl_step(
    conn: &mut Conn,
    initial: Option<String>,
    challenge: &str,
) -> Result<Option<String>, ConnError> {
    let response = match initial {
        // RFC 4954: `=` is an empty initial response.
        Some(ir) if ir != "=" => ir,
        _ => {
            conn.send(challenge.as_bytes()).await?;
            let line = conn.read_line(MAX_COMMAND).await?;
            String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string()
        }
    };
    Ok((response.trim() != "*").then_some(response))
}

/// The address in `<…>` after `FROM:` / `TO:`, and the rest (ESMTP parameters).
fn path<'a>(rest: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let rest = rest.trim_start();
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some((rest[..end].trim().to_string(), &rest[end + 1..]))
}

fn mail_from(state: &MailState, s: &mut Session, rest: &str) -> Vec<u8> {
    if s.granted.is_none() {
        return reply(&format!(
            "530 5.7.57 Client not authenticated to send mail. [{HOST}]"
        ));
    }
    if s.from.is_some() {
        return reply("503 5.5.1 Sender already specified");
    }
    let Some((address, params)) = path(rest, "FROM:") else {
        return reply("501 5.5.4 Invalid arguments");
    };
    for param in params.split_whitespace() {
        if let Some(size) = param.to_ascii_uppercase().strip_prefix("SIZE=")
            && size
                .parse::<usize>()
                .is_ok_and(|n| n > state.max_message_size())
        {
            return reply("552 5.3.4 Message size exceeds fixed maximum message size");
        }
    }
    s.from = Some(address);
    reply("250 2.1.0 Sender OK")
}

fn rcpt_to(s: &mut Session, rest: &str) -> Vec<u8> {
    if s.from.is_none() {
        return reply("503 5.5.1 Need MAIL command");
    }
    match path(rest, "TO:") {
        Some((address, _)) if address.contains('@') && !address.contains([' ', ',', ';']) => {
            if s.to.len() >= 500 {
                return reply("452 4.5.3 Too many recipients");
            }
            s.to.push(address);
            reply("250 2.1.5 Recipient OK")
        }
        _ => reply("501 5.1.3 Invalid address"),
    }
}

/// Reads DATA up to the lone dot, undoing dot-stuffing; `(bytes, too_big)`: past `max` bytes
/// the rest is read and dropped.
async fn read_data(conn: &mut Conn, max: usize) -> Result<(Vec<u8>, bool), ConnError> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let line = match conn.read_line(MAX_DATA_LINE).await {
            Ok(line) => line,
            // An overlong line makes the message unacceptable; keep reading to the dot.
            Err(ConnError::TooLong) => {
                too_big = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        if line == b".\r\n" || line == b".\n" {
            return Ok((data, too_big));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > max {
            too_big = true;
            data = Vec::new();
        }
        if !too_big {
            data.extend_from_slice(line);
        }
    }
}

/// `BDAT <size> [LAST]` (RFC 3030).
async fn bdat(
    state: &MailState,
    conn: &mut Conn,
    s: &mut Session,
    rest: &str,
) -> Result<Vec<u8>, ConnError> {
    let mut parts = rest.split_whitespace();
    let size = parts.next().and_then(|n| n.parse::<usize>().ok());
    let last = parts.next().is_some_and(|l| l.eq_ignore_ascii_case("LAST"));
    let Some(size) = size else {
        return Ok(reply("501 5.5.4 Invalid arguments"));
    };
    // The chunk follows the command whatever the answer: read it first.
    let max = state.max_message_size();
    let room = max.saturating_sub(s.chunks.len());
    let chunk = conn.read_exact(size, room).await?;
    if s.granted.is_none() {
        return Ok(reply(&format!(
            "530 5.7.57 Client not authenticated to send mail. [{HOST}]"
        )));
    }
    if s.from.is_none() || s.to.is_empty() {
        return Ok(reply("503 5.5.1 Need MAIL and RCPT commands"));
    }
    if chunk.len() < size {
        s.chunks_too_big = true;
    }
    s.chunks.extend_from_slice(&chunk);
    if !last {
        return Ok(reply(&format!("250 2.0.0 BDAT {size} bytes received")));
    }
    let answer = if s.chunks_too_big {
        reply("552 5.3.4 Message size exceeds fixed maximum message size")
    } else {
        let data = std::mem::take(&mut s.chunks);
        submit(state, s, &data)
    };
    reset(s);
    Ok(answer)
}

/// Submits the message: checks the sender, saves it in Sent Items, delivers it.
fn submit(state: &MailState, s: &Session, data: &[u8]) -> Vec<u8> {
    let (Some(granted), Some(envelope_from)) = (&s.granted, &s.from) else {
        return reply("503 5.5.1 Need MAIL command");
    };
    let now = state.clock.now();
    let Some(mut message) = message_from_mime(data, now) else {
        return reply("554 5.6.0 Corrupt message content");
    };
    let from = message
        .from
        .clone()
        .unwrap_or_else(|| Address::new("", envelope_from.clone()));
    for sender in [envelope_from.as_str(), from.address.as_str()] {
        if !auth::may_send_as(state, granted, sender) {
            return reply(&format!(
                "554 5.2.252 SendAsDenied; {} not allowed to send as {sender}; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. [Hostname={HOST}]",
                granted.mailbox
            ));
        }
    }
    let from = match state.directory.read().recipient(&from.address) {
        Some(r) => Address::new(r.display_name, r.address),
        None => from,
    };
    message.from = Some(from.clone());
    message.sender = Some(from);
    message.is_read = true;
    message.sent = Some(now);
    message.received = now;
    let id = message.internet_message_id.clone();
    let subject = message.subject.clone();
    let mut store = state.store.lock();
    let mut seen = HashSet::new();
    for rcpt in &s.to {
        let key = rcpt.trim().to_ascii_lowercase();
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(mb) = store.mailbox_mut(&key) else {
            continue;
        };
        let Some(inbox) = mb.well_known("inbox") else {
            continue;
        };
        let mut copy = message.clone();
        copy.folder = inbox;
        copy.is_read = false;
        copy.bcc.clear();
        copy.flag = FlagStatus::NotFlagged;
        copy.created = now;
        let address = mb.address.clone();
        mb.insert_message(copy);
        store.delivered(&address, &id, &subject);
    }
    store.submitted(&granted.mailbox, &id, &subject);
    if let Some(mb) = store.mailbox_mut(&granted.mailbox)
        && let Some(sent) = mb.well_known("sentitems")
    {
        message.folder = sent;
        mb.insert_message(message);
    }
    reply(&format!("250 2.0.0 OK {id} [Hostname={HOST}]"))
}
