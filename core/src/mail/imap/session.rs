//! IMAP sessions: connect (implicit TLS, or STARTTLS before anything else), authenticate with
//! SASL XOAUTH2, read the capabilities, and keep a few authenticated sessions per mailbox for
//! the next call. Exchange's answers are read into [`ImapFail`]: a server's `NO`/`BAD` leaves the
//! session usable, anything else (I/O, a lost connection, an answer that cannot be read, a
//! timeout) breaks it and it is dropped.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Response, ResponseCode, Status};
use tokio::time::Instant;

use super::{ImapRefusal, refused};
use crate::Error;
use crate::auth::credentials::{Credential, Credentials};
use crate::mail::stream::{ConnectError, MailConnector};
use crate::mail::url::{MailUrl, Security};
use crate::mail::{MailStream, xoauth2};
use crate::mailbox::MailboxError;

pub(crate) type ImapSession = async_imap::Session<Sealed>;

/// The mail stream under async-imap, which logs every command it sends at trace level (through
/// the `log` crate, which a tracing subscriber may forward). So that the XOAUTH2 response — the
/// token — never reaches a log, async-imap is given a stand-in response and this stream puts the
/// real one in its place on the way out.
#[derive(Debug)]
pub(crate) struct Sealed {
    inner: MailStream,
    /// The stand-in as async-imap writes it (base64), and the real response (base64).
    swap: Option<(Vec<u8>, crate::secret::Secret)>,
    /// Real bytes accepted from async-imap but not yet written to the server.
    pending: Vec<u8>,
}

impl Sealed {
    fn new(inner: MailStream) -> Self {
        Self {
            inner,
            swap: None,
            pending: Vec::new(),
        }
    }

    /// Writes what is pending; ready when nothing is.
    fn drain_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Sealed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sealed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain_pending(cx))?;
        if this
            .swap
            .as_ref()
            .is_some_and(|(stand_in, _)| stand_in.as_slice() == buf)
        {
            let (_, real) = this
                .swap
                .take()
                .unwrap_or_else(|| unreachable!("checked above"));
            this.pending = real.expose().as_bytes().to_vec();
            // Accepted whole; written by the next write or flush.
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A session unused this long is checked with NOOP before it is used again.
const CHECK_AFTER: Duration = Duration::from_secs(30);
/// A session unused this long is closed rather than reused (Exchange logs idle sessions off
/// after 30 minutes).
const STALE_AFTER: Duration = Duration::from_secs(20 * 60);
/// The longest server text kept in an error.
const MAX_TEXT: usize = 300;

/// What the server offers that changes how exgate asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Caps {
    /// `MOVE` (RFC 6851).
    pub mv: bool,
    /// `UIDPLUS` (RFC 4315): `UID EXPUNGE`, `COPYUID`.
    pub uidplus: bool,
    /// `IDLE` (RFC 2177).
    pub idle: bool,
}

/// One authenticated session and what its server offers.
#[derive(Debug)]
pub(crate) struct Conn {
    pub session: ImapSession,
    pub caps: Caps,
    used: Instant,
    /// Taken from the pool (it may have been closed by the server meanwhile).
    pub reused: bool,
}

impl Conn {
    pub(crate) fn new(session: ImapSession, caps: Caps) -> Conn {
        Conn {
            session,
            caps,
            used: Instant::now(),
            reused: false,
        }
    }
}

/// Why an IMAP exchange failed.
#[derive(Debug)]
pub(crate) enum ImapFail {
    /// The server answered (`NO`, `BAD`, or an answer that means "not found"): the session
    /// is fine.
    Answer(Error),
    /// The session is broken: drop it.
    Broken(String),
}

impl From<Error> for ImapFail {
    fn from(e: Error) -> Self {
        Self::Answer(e)
    }
}

impl From<MailboxError> for ImapFail {
    fn from(e: MailboxError) -> Self {
        Self::Answer(e.into())
    }
}

/// Printable text of at most [`MAX_TEXT`] characters: what a server said, fit for a message.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The server's own words in async-imap's `NO`/`BAD` error text
/// (`code: None, info: Some("AUTHENTICATE failed.")`).
pub(crate) fn server_text(e: &str) -> String {
    let info = e
        .find("info: Some(\"")
        .map(|i| &e[i + 12..])
        .and_then(|rest| rest.rfind("\")").map(|j| &rest[..j]))
        .map(|s| s.replace("\\\"", "\"").replace("\\\\", "\\"));
    clean(info.as_deref().unwrap_or(e))
}

/// Reads an async-imap error: a server's answer (with what was asked, for the message), or a
/// broken session.
pub(crate) fn fail(e: async_imap::error::Error, what: &str) -> ImapFail {
    use async_imap::error::Error as E;
    if let E::No(text) | E::Bad(text) = &e {
        match busy(text) {
            Some(Busy::Throttled(wait)) => {
                return ImapFail::Answer(MailboxError::Throttled { retry_after: wait }.into());
            }
            Some(Busy::Unavailable) => {
                return ImapFail::Answer(
                    MailboxError::Server {
                        status: 0,
                        code: "NO".into(),
                        message: format!("{what}: {}", server_text(text)),
                        request_id: String::new(),
                    }
                    .into(),
                );
            }
            None => {}
        }
    }
    match e {
        E::No(text) => ImapFail::Answer(
            MailboxError::Rejected {
                status: 0,
                code: "NO".into(),
                message: format!("{what}: {}", server_text(&text)),
                request_id: String::new(),
            }
            .into(),
        ),
        E::Bad(text) => {
            let text = server_text(&text);
            if is_not_connected(&text) {
                return ImapFail::Broken(format!("{what}: BAD {text}"));
            }
            ImapFail::Answer(
                MailboxError::Rejected {
                    status: 0,
                    code: "BAD".into(),
                    message: format!("{what}: {text}"),
                    request_id: String::new(),
                }
                .into(),
            )
        }
        E::Validate(v) => ImapFail::Answer(
            MailboxError::Invalid(format!("{what}: a name IMAP cannot carry ({v})")).into(),
        ),
        E::Io(e) => ImapFail::Broken(format!("{what}: {e}")),
        E::ConnectionLost => ImapFail::Broken(format!("{what}: the server closed the connection")),
        E::Parse(e) => ImapFail::Broken(format!("{what}: an answer that cannot be read ({e})")),
        other => ImapFail::Broken(format!("{what}: {other}")),
    }
}

/// A refusal that says "later", not "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Exchange's `NO Request is throttled. Suggested Backoff Time: N milliseconds`.
    Throttled(Duration),
    /// RFC 5530's `[UNAVAILABLE]` and `[INUSE]`, Exchange's `Server Unavailable`.
    Unavailable,
}

/// Whether a `NO`/`BAD` text asks to come back later, and when.
pub(crate) fn busy(text: &str) -> Option<Busy> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("throttled") {
        let wait = lower
            .split("backoff time:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| {
                n.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u64>()
                    .ok()
            })
            .map_or(Duration::from_secs(1), Duration::from_millis);
        return Some(Busy::Throttled(wait.min(crate::net::MAX_HINT)));
    }
    ["unavailable", "inuse", "server unavailable"]
        .iter()
        .any(|w| lower.contains(w))
        .then_some(Busy::Unavailable)
}

fn is_not_connected(text: &str) -> bool {
    text.to_ascii_lowercase().contains("not connected")
}

/// The XOAUTH2 exchange as async-imap drives it: the initial response on the first `+`, and an
/// empty line on any later challenge (a server's error details), which ends the exchange.
struct XOAuth2 {
    response: Option<Vec<u8>>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.response.take().unwrap_or_default()
    }
}

fn connect_error(e: &ConnectError) -> Error {
    MailboxError::Transport(e.to_string()).into()
}

/// Connects to `url` and authenticates as `user` with a token from `credentials`; a refused
/// token is dropped (`Credentials::rejected`) and a fresh one tried once.
pub(crate) async fn open(
    connector: &MailConnector,
    url: &MailUrl,
    credentials: &dyn Credentials,
    user: &str,
    connection: &str,
) -> Result<Conn, Error> {
    let mut fresh = false;
    loop {
        let client = greet(connector, url).await?;
        let token = match credentials.credential().await? {
            Credential::Bearer(t) => t,
            Credential::Basic(_) | Credential::Ntlm(_) => {
                return Err(MailboxError::Unsupported(
                    "IMAP signs in with OAuth2 (XOAUTH2) only; this connection has a password"
                        .into(),
                )
                .into());
            }
        };
        // async-imap sees (and may log) a stand-in of the same shape; `Sealed` sends the real
        // response in its place.
        let stand_in = format!(
            "user={user}\x01auth=Bearer exgate-redacted-{}\x01\x01",
            uuid::Uuid::new_v4().simple()
        );
        let mut client = client;
        client.get_mut().swap = Some((
            STANDARD.encode(&stand_in).into_bytes(),
            xoauth2::encoded_initial_response(user, &token.secret),
        ));
        let auth = XOAuth2 {
            response: Some(stand_in.into_bytes()),
        };
        let mut session = match client.authenticate("XOAUTH2", auth).await {
            Ok(mut s) => {
                s.get_mut().swap = None;
                s
            }
            Err((async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text), _)) => {
                if !fresh {
                    tracing::debug!("IMAP refused the token; trying once with a fresh one");
                    credentials.rejected().await;
                    fresh = true;
                    continue;
                }
                return Err(refused(
                    ImapRefusal::AuthenticateFailed,
                    user,
                    &server_text(&text),
                    connection,
                ));
            }
            Err((e, _)) => {
                return Err(MailboxError::Transport(format!(
                    "signing in to {url} failed: {}",
                    clean(&e.to_string())
                ))
                .into());
            }
        };
        let caps = match session.capabilities().await {
            Ok(c) => Caps {
                mv: c.has_str("MOVE"),
                uidplus: c.has_str("UIDPLUS"),
                idle: c.has_str("IDLE"),
            },
            Err(e) => {
                return Err(MailboxError::Transport(format!(
                    "reading the capabilities of {url} failed: {}",
                    clean(&e.to_string())
                ))
                .into());
            }
        };
        // Exchange accepts a token for a mailbox the identity has no right on, and answers the
        // next command that needs the mailbox with `BAD User is authenticated but not
        // connected.`: asking for the hierarchy delimiter finds out at once.
        match raw(&mut session, "LIST \"\" \"\"", "LIST").await {
            Ok(_) => {}
            Err(ImapFail::Broken(why)) if is_not_connected(&why) => {
                let text = why.split_once("BAD ").map_or(why.as_str(), |(_, t)| t);
                return Err(refused(ImapRefusal::NotConnected, user, text, connection));
            }
            Err(ImapFail::Broken(why)) => {
                return Err(MailboxError::Transport(format!("{url}: {why}")).into());
            }
            Err(ImapFail::Answer(e)) => return Err(e),
        }
        drain(&mut session);
        tracing::debug!(%url, ?caps, "IMAP session open");
        return Ok(Conn::new(session, caps));
    }
}

/// A client past the greeting, on TLS (implicit, or after STARTTLS).
async fn greet(
    connector: &MailConnector,
    url: &MailUrl,
) -> Result<async_imap::Client<Sealed>, Error> {
    let stream = connector
        .connect(url)
        .await
        .map_err(|e| connect_error(&e))?;
    let mut client = async_imap::Client::new(Sealed::new(stream));
    read_greeting(&mut client, url).await?;
    if url.security() == Security::StartTls {
        client
            .run_command_and_check_ok("STARTTLS", None)
            .await
            .map_err(|e| {
                Error::from(MailboxError::Transport(format!(
                    "{url} refused STARTTLS: {}",
                    server_text(&e.to_string())
                )))
            })?;
        // Whatever the server sent after its OK stays behind with the plain client: nothing
        // read before TLS is trusted (RFC 3207 §4.2 injection).
        let plain = client.into_inner().inner;
        let tls = connector
            .start_tls(plain, url)
            .await
            .map_err(|e| connect_error(&e))?;
        client = async_imap::Client::new(Sealed::new(tls));
    }
    Ok(client)
}

async fn read_greeting(
    client: &mut async_imap::Client<Sealed>,
    url: &MailUrl,
) -> Result<(), Error> {
    let greeting = client
        .read_response()
        .await
        .map_err(|e| MailboxError::Transport(format!("reading the greeting of {url}: {e}")))?
        .ok_or_else(|| {
            MailboxError::Transport(format!("{url} closed the connection before its greeting"))
        })?;
    match greeting.parsed() {
        Response::Data {
            status: Status::Ok, ..
        } => Ok(()),
        Response::Data { status, outcome } => Err(MailboxError::Transport(format!(
            "{url} greeted with {status:?}: {}",
            clean(outcome.information.as_deref().unwrap_or_default())
        ))
        .into()),
        _ => Err(MailboxError::Protocol(format!("{url} sent no IMAP greeting")).into()),
    }
}

/// Throws away what the server said on its own (EXISTS, EXPUNGE, FETCH of other changes):
/// async-imap keeps up to 100 of them; exgate asks again when it needs to know.
pub(crate) fn drain(session: &mut ImapSession) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

/// A few authenticated sessions per mailbox, ready for the next call.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
}

impl Pool {
    /// An idle session of `mailbox` that still answers, if there is one.
    pub(crate) async fn take(&self, mailbox: &str) -> Option<Conn> {
        loop {
            let mut conn = {
                let mut idle = self
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let list = idle.get_mut(mailbox)?;
                let conn = list.pop();
                if list.is_empty() {
                    idle.remove(mailbox);
                }
                conn?
            };
            let unused = conn.used.elapsed();
            if unused > STALE_AFTER {
                continue;
            }
            if unused > CHECK_AFTER {
                match tokio::time::timeout(Duration::from_secs(10), conn.session.noop()).await {
                    Ok(Ok(())) => drain(&mut conn.session),
                    _ => continue,
                }
            }
            conn.reused = true;
            return Some(conn);
        }
    }

    /// Keeps `conn` for the next call on `mailbox`, unless `max` are already kept.
    pub(crate) fn put(&self, mailbox: &str, mut conn: Conn, max: usize) {
        drain(&mut conn.session);
        conn.used = Instant::now();
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.entry(mailbox.to_owned()).or_default();
        if list.len() < max.max(1) {
            list.push(conn);
        }
    }
}

/// What a tagged command's answers said besides OK.
#[derive(Debug, Default)]
pub(crate) struct RawAnswer {
    /// `COPYUID` (RFC 4315): the destination's UIDVALIDITY and the source → destination UIDs.
    pub copy_uid: Option<(u32, Vec<(u32, u32)>)>,
}

fn expand(set: &[UidSetMember]) -> Vec<u32> {
    let mut out = Vec::new();
    for m in set {
        match m {
            UidSetMember::Uid(u) => out.push(*u),
            UidSetMember::UidRange(r) => {
                // A server's range is bounded by what was asked for: a few UIDs at a time.
                out.extend(r.clone().take(10_000));
            }
        }
    }
    out
}

fn copy_uid(code: Option<&ResponseCode<'_>>) -> Option<(u32, Vec<(u32, u32)>)> {
    match code {
        Some(ResponseCode::CopyUid(validity, from, to)) => {
            let pairs = expand(from).into_iter().zip(expand(to)).collect();
            Some((*validity, pairs))
        }
        _ => None,
    }
}

/// Runs a command and reads its answers up to the tagged one, keeping what exgate needs of
/// them (`COPYUID`, from the tagged OK of `UID COPY` or the untagged OK of `UID MOVE`).
pub(crate) async fn raw(
    session: &mut ImapSession,
    command: &str,
    what: &str,
) -> Result<RawAnswer, ImapFail> {
    let id = session
        .run_command(command)
        .await
        .map_err(|e| fail(e, what))?;
    let mut answer = RawAnswer::default();
    loop {
        let response = session
            .read_response()
            .await
            .map_err(|e| ImapFail::Broken(format!("{what}: {e}")))?
            .ok_or_else(|| ImapFail::Broken(format!("{what}: the server closed the connection")))?;
        match response.parsed() {
            Response::Done {
                tag,
                status,
                outcome,
            } if *tag == id => {
                let text = clean(outcome.information.as_deref().unwrap_or_default());
                return match status {
                    Status::Ok => {
                        if let Some(c) = copy_uid(outcome.code.as_ref()) {
                            answer.copy_uid = Some(c);
                        }
                        Ok(answer)
                    }
                    Status::No => Err(fail(
                        async_imap::error::Error::No(format!("info: Some(\"{text}\")")),
                        what,
                    )),
                    Status::Bad => Err(fail(
                        async_imap::error::Error::Bad(format!("info: Some(\"{text}\")")),
                        what,
                    )),
                    _ => Err(ImapFail::Broken(format!("{what}: {status:?} {text}"))),
                };
            }
            Response::Data {
                status: Status::Ok,
                outcome,
            } => {
                if let Some(c) = copy_uid(outcome.code.as_ref()) {
                    answer.copy_uid = Some(c);
                }
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                return Err(ImapFail::Broken(format!(
                    "{what}: the server said goodbye: {}",
                    clean(outcome.information.as_deref().unwrap_or_default())
                )));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_words_are_taken_from_async_imaps_text() {
        assert_eq!(
            server_text("code: None, info: Some(\"AUTHENTICATE failed.\")"),
            "AUTHENTICATE failed."
        );
        assert_eq!(
            server_text("code: None, info: Some(\"say \\\"hi\\\"\")"),
            "say \"hi\""
        );
        assert_eq!(server_text("plain\r\ntext"), "plaintext");
        assert_eq!(server_text(&"x".repeat(1000)).len(), MAX_TEXT);
    }

    #[test]
    fn later_is_told_from_no() {
        assert_eq!(
            busy(
                "code: None, info: Some(\"Request is throttled. Suggested Backoff Time: 4000 milliseconds\")"
            ),
            Some(Busy::Throttled(Duration::from_millis(4000)))
        );
        assert_eq!(
            busy("Request is throttled."),
            Some(Busy::Throttled(Duration::from_secs(1)))
        );
        assert_eq!(
            busy("[UNAVAILABLE] Server Unavailable. 15"),
            Some(Busy::Unavailable)
        );
        assert_eq!(busy("[INUSE] Mailbox in use"), Some(Busy::Unavailable));
        assert_eq!(busy("AUTHENTICATE failed."), None);
        assert_eq!(busy("Command Argument Error. 11"), None);
        // A hostile hint is capped.
        assert_eq!(
            busy(&format!(
                "throttled. Suggested Backoff Time: {} milliseconds",
                u64::MAX
            )),
            Some(Busy::Throttled(crate::net::MAX_HINT))
        );
    }

    #[test]
    fn copyuid_pairs_source_and_destination() {
        let code = ResponseCode::CopyUid(
            9,
            vec![UidSetMember::Uid(4), UidSetMember::UidRange(6..=7)],
            vec![UidSetMember::UidRange(100..=102)],
        );
        assert_eq!(
            copy_uid(Some(&code)),
            Some((9, vec![(4, 100), (6, 101), (7, 102)]))
        );
        assert_eq!(copy_uid(None), None);
    }
}
