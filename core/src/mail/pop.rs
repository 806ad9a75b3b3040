//! POP3 (RFC 1939) with STLS (RFC 2595) and SASL XOAUTH2 through `AUTH` (RFC 5034, the
//! initial response on the same line, as Exchange Online takes it), hand-written on
//! [`MailStream`]: a strict line reader with a length bound, multi-line answers with
//! dot-unstuffing and a size bound, and `STAT`, `UIDL`, `LIST`, `RETR`, `TOP`, `DELE`, `QUIT`.
//!
//! [`PopMailbox`] is the neutral mail capability over it, for the Inbox only: POP has no folders
//! and no flags. Messages are named by their UIDL (stable across sessions); a listing is newest
//! first, paged with tokens sealed to the mailbox; a delete is `DELE` committed by `QUIT`.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::claims::TokenClaims;
use super::explain::{self, MailFailure, Situation};
use super::smtp::TokenExpectation;
use super::url::{MailProtocol, MailUrl, Security};
use super::{MailConnector, MailStream, parse};
use crate::Error;
use crate::auth::credentials::{Credential, Credentials};
use crate::mailbox::{
    Attachment, BodyKind, Folder, FolderChanges, FolderRef, Mail, MailboxError, MailboxRef,
    Message, MessageQuery, MessageSummary, NewMessage, Page, Recipient, WellKnownFolder,
};
use crate::pipeline::{ByteStream, PageTokens, TokenScope};
use crate::secret::Secret;

/// The longest line taken from a server (RFC 1939 allows 512 octets for a status line; a
/// message line may be up to 998 plus CRLF; Exchange stays well under this).
pub const MAX_LINE: usize = 8 * 1024;

/// Why a POP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// The server answered `-ERR …` (the text after `-ERR`).
    #[error("the POP server refused: -ERR {0}")]
    Refused(String),
    #[error("the POP server's answer cannot be read: {0}")]
    Protocol(String),
    #[error("the POP connection failed: {0}")]
    Io(String),
    #[error("the message is larger than {0} bytes, the most exgate reads (limits.max_item_mb)")]
    TooLarge(u64),
}

/// A status line: `Ok(text)` for `+OK text`, `Err(Refused)` for `-ERR text`.
pub fn parse_status(line: &[u8]) -> Result<String, PopError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| PopError::Protocol("a status line is not UTF-8".into()))?
        .trim_end_matches(['\r', '\n']);
    if let Some(rest) = text.strip_prefix("+OK") {
        Ok(rest.trim_start().to_owned())
    } else if let Some(rest) = text.strip_prefix("-ERR") {
        Err(PopError::Refused(rest.trim_start().to_owned()))
    } else {
        Err(PopError::Protocol(format!(
            "expected +OK or -ERR, got `{}`",
            text.chars().take(80).collect::<String>().escape_debug()
        )))
    }
}

/// One line of a multi-line answer: `None` for the terminating `.`, else the line without its
/// byte-stuffed leading dot (RFC 1939 §3), CRLF kept.
pub fn unstuff(line: &[u8]) -> Option<&[u8]> {
    let bare = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line);
    if bare == b"." {
        return None;
    }
    Some(if line.starts_with(b"..") {
        &line[1..]
    } else {
        line
    })
}

/// A `UIDL` or `LIST` line: `n value`.
pub fn parse_listing_line(line: &[u8]) -> Result<(u32, String), PopError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| PopError::Protocol("a listing line is not UTF-8".into()))?
        .trim_end_matches(['\r', '\n']);
    let mut parts = text.split_whitespace();
    let n = parts
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| PopError::Protocol("a listing line without a message number".into()))?;
    let value = parts
        .next()
        .filter(|v| v.len() <= 70 && v.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or_else(|| PopError::Protocol("a listing line without a valid value".into()))?;
    Ok((n, value.to_owned()))
}

/// A POP3 session on a stream.
#[derive(Debug)]
pub struct PopClient<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> PopClient<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream: BufReader::new(stream),
        }
    }

    pub fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    /// One line, CRLF included; at most [`MAX_LINE`] bytes.
    async fn line(&mut self) -> Result<Vec<u8>, PopError> {
        let mut out = Vec::new();
        loop {
            let buf = self
                .stream
                .fill_buf()
                .await
                .map_err(|e| PopError::Io(e.to_string()))?;
            if buf.is_empty() {
                return Err(PopError::Io("the server closed the connection".into()));
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if out.len() + take > MAX_LINE {
                return Err(PopError::Protocol(format!(
                    "a line longer than {MAX_LINE} bytes"
                )));
            }
            out.extend_from_slice(&buf[..take]);
            self.stream.consume(take);
            if done {
                return Ok(out);
            }
        }
    }

    /// The status line of an answer.
    pub async fn status(&mut self) -> Result<String, PopError> {
        let line = self.line().await?;
        parse_status(&line)
    }

    /// The body of a multi-line answer, unstuffed, at most `limit` bytes.
    async fn multiline(&mut self, limit: u64) -> Result<Vec<u8>, PopError> {
        let mut out = Vec::new();
        loop {
            let line = self.line().await?;
            match unstuff(&line) {
                None => return Ok(out),
                Some(l) => {
                    if (out.len() + l.len()) as u64 > limit {
                        return Err(PopError::TooLarge(limit));
                    }
                    out.extend_from_slice(l);
                }
            }
        }
    }

    async fn send(&mut self, command: &str) -> Result<(), PopError> {
        let s = self.stream.get_mut();
        s.write_all(command.as_bytes())
            .await
            .map_err(|e| PopError::Io(e.to_string()))?;
        s.write_all(b"\r\n")
            .await
            .map_err(|e| PopError::Io(e.to_string()))?;
        s.flush().await.map_err(|e| PopError::Io(e.to_string()))
    }

    /// A one-line command.
    pub async fn command(&mut self, command: &str) -> Result<String, PopError> {
        self.send(command).await?;
        self.status().await
    }

    /// A multi-line command: the status, then the body.
    pub async fn command_multi(&mut self, command: &str, limit: u64) -> Result<Vec<u8>, PopError> {
        self.command(command).await?;
        self.multiline(limit).await
    }

    /// `AUTH XOAUTH2 <initial response>`; a `+` challenge (an error report) is answered with
    /// an empty line to get the final `-ERR`.
    pub async fn auth_xoauth2(&mut self, user: &str, token: &Secret) -> Result<String, PopError> {
        let ir = super::xoauth2::encoded_initial_response(user, token);
        self.send(&format!("AUTH XOAUTH2 {}", ir.expose())).await?;
        let line = self.line().await?;
        // A continuation is `+` alone or `+ <challenge>`, not `+OK`.
        if line.starts_with(b"+") && !line.starts_with(b"+OK") {
            self.send("").await?;
            return self.status().await;
        }
        parse_status(&line)
    }

    /// `STAT`: message count and total size.
    pub async fn stat(&mut self) -> Result<(u32, u64), PopError> {
        let text = self.command("STAT").await?;
        let mut parts = text.split_whitespace();
        let n = parts.next().and_then(|n| n.parse().ok());
        let size = parts.next().and_then(|n| n.parse().ok());
        match (n, size) {
            (Some(n), Some(size)) => Ok((n, size)),
            _ => Err(PopError::Protocol(
                "STAT's answer has no count and size".into(),
            )),
        }
    }

    /// `UIDL`: message numbers and their unique IDs.
    pub async fn uidl(&mut self) -> Result<Vec<(u32, String)>, PopError> {
        let body = self.command_multi("UIDL", 64 * 1024 * 1024).await?;
        body.split_inclusive(|b| *b == b'\n')
            .map(parse_listing_line)
            .collect()
    }

    /// `LIST`: message numbers and sizes.
    pub async fn list(&mut self) -> Result<Vec<(u32, u64)>, PopError> {
        let body = self.command_multi("LIST", 64 * 1024 * 1024).await?;
        body.split_inclusive(|b| *b == b'\n')
            .map(|l| {
                let (n, v) = parse_listing_line(l)?;
                v.parse()
                    .map(|s| (n, s))
                    .map_err(|_| PopError::Protocol("a LIST size is not a number".into()))
            })
            .collect()
    }

    pub async fn retr(&mut self, n: u32, limit: u64) -> Result<Vec<u8>, PopError> {
        self.command_multi(&format!("RETR {n}"), limit).await
    }

    pub async fn top(&mut self, n: u32, lines: u32) -> Result<Vec<u8>, PopError> {
        self.command_multi(&format!("TOP {n} {lines}"), 1024 * 1024)
            .await
    }

    pub async fn dele(&mut self, n: u32) -> Result<String, PopError> {
        self.command(&format!("DELE {n}")).await
    }

    pub async fn quit(&mut self) -> Result<String, PopError> {
        self.command("QUIT").await
    }
}

/// What a POP mailbox needs.
#[derive(Clone)]
pub struct PopSettings {
    pub url: MailUrl,
    pub connector: MailConnector,
    pub credentials: Arc<dyn Credentials>,
    pub expect: TokenExpectation,
    /// The mailbox of `MailboxRef::Me` (the signed-in user's address; app-only: none).
    pub me: Option<String>,
    pub connection: String,
    /// The largest message read (`limits.max_item_mb`).
    pub limit: u64,
}

impl std::fmt::Debug for PopSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PopSettings")
            .field("url", &self.url.to_string())
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// The Inbox of a mailbox over POP3.
#[derive(Debug)]
pub struct PopMailbox {
    settings: PopSettings,
    pages: PageTokens,
}

const INBOX: &str = "inbox";

fn pop_error(e: PopError) -> Error {
    match e {
        PopError::Io(m) => MailboxError::Transport(m).into(),
        PopError::TooLarge(limit) => MailboxError::TooLarge { limit }.into(),
        other => MailboxError::Protocol(other.to_string()).into(),
    }
}

fn no_folders(what: &str) -> Error {
    MailboxError::Unsupported(format!(
        "POP has no folders and no flags, so it cannot {what}; use a connection with --backend imap (or graph) for that"
    ))
    .into()
}

/// A step of the connection test (see [`super::smtp::ProbeStep`]).
pub use super::smtp::ProbeStep;

impl PopMailbox {
    pub fn new(settings: PopSettings, pages: PageTokens) -> Self {
        Self { settings, pages }
    }

    fn user(&self, mailbox: &MailboxRef) -> Result<String, Error> {
        match mailbox {
            MailboxRef::User(a) => Ok(a.trim().to_owned()),
            MailboxRef::Me => self.settings.me.clone().ok_or_else(|| {
                crate::model::InvalidInput::new(
                    "mailbox",
                    "an app-only connection reads a named mailbox: pass --mailbox ADDRESS".into(),
                )
                .into()
            }),
        }
    }

    async fn token(&self) -> Result<Secret, Error> {
        match self.settings.credentials.credential().await? {
            Credential::Bearer(t) => Ok(t.secret.clone()),
            Credential::Basic(_) | Credential::Ntlm(_) => {
                Err(MailboxError::Unsupported("POP needs an OAuth2 token (XOAUTH2)".into()).into())
            }
        }
    }

    /// Connects, upgrades a `pop3://` URL with STLS, reads the greeting.
    async fn connect(&self) -> Result<PopClient<MailStream>, Error> {
        let url = &self.settings.url;
        let transport = |e: super::stream::ConnectError| -> Error {
            MailFailure::transient(
                "pop_unreachable",
                MailProtocol::Pop,
                e.to_string(),
                "check pop_url (Exchange Online: pop3s://outlook.office365.com:995), a firewall on the way, and tls.ca_file for a private CA".into(),
            )
            .into()
        };
        let stream = self
            .settings
            .connector
            .connect(url)
            .await
            .map_err(transport)?;
        let mut client = PopClient::new(stream);
        client.status().await.map_err(pop_error)?;
        if url.security() == Security::StartTls {
            client.command("STLS").await.map_err(|e| -> Error {
                MailFailure::failed(
                    "no_starttls",
                    MailProtocol::Pop,
                    format!("{url} refused STLS ({e}); exgate never authenticates in the clear"),
                    "use pop3s:// (implicit TLS, port 995)".into(),
                )
                .into()
            })?;
            let plain = client.into_inner();
            let tls = self
                .settings
                .connector
                .start_tls(plain, url)
                .await
                .map_err(transport)?;
            client = PopClient::new(tls);
        }
        Ok(client)
    }

    /// An authenticated session for `user`; the token's claims are checked first, and a
    /// refused token is retried once with a fresh one.
    async fn session(&self, user: &str) -> Result<PopClient<MailStream>, Error> {
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let claims = TokenClaims::decode(&token);
            if let Some(c) = &claims {
                super::claims::check(c, &self.settings.expect.expected(MailProtocol::Pop))?;
            }
            let mut client = self.connect().await?;
            match client.auth_xoauth2(user, &token).await {
                Ok(_) => return Ok(client),
                Err(PopError::Refused(text)) => {
                    let _ = client.quit().await;
                    if !refreshed {
                        refreshed = true;
                        self.settings.credentials.rejected().await;
                        continue;
                    }
                    let s = Situation {
                        protocol: MailProtocol::Pop,
                        mailbox: user,
                        claims: claims.as_ref(),
                    };
                    let said = format!("-ERR {text}");
                    return Err(if text.to_ascii_lowercase().contains("disabled") {
                        explain::protocol_disabled(&s, &said)
                    } else {
                        explain::authentication_refused(&s, &said)
                    }
                    .into());
                }
                Err(e) => return Err(pop_error(e)),
            }
        }
    }

    /// The message number of UID `id` in this session.
    async fn number(client: &mut PopClient<MailStream>, id: &str) -> Result<u32, Error> {
        let uids = client.uidl().await.map_err(pop_error)?;
        uids.into_iter()
            .find(|(_, u)| u == id)
            .map(|(n, _)| n)
            .ok_or_else(|| {
                MailboxError::NotFound {
                    what: "message",
                    id: id.to_owned(),
                    request_id: String::new(),
                }
                .into()
            })
    }

    async fn retrieve(&self, mailbox: &MailboxRef, id: &str) -> Result<Vec<u8>, Error> {
        let user = self.user(mailbox)?;
        let mut client = self.session(&user).await?;
        let n = Self::number(&mut client, id).await?;
        let mime = client
            .retr(n, self.settings.limit)
            .await
            .map_err(pop_error)?;
        let _ = client.quit().await;
        Ok(mime)
    }

    fn check_folder(folder: Option<&FolderRef>) -> Result<(), Error> {
        match folder {
            None | Some(FolderRef::WellKnown(WellKnownFolder::Inbox)) => Ok(()),
            Some(FolderRef::Id(id)) if id.eq_ignore_ascii_case(INBOX) => Ok(()),
            Some(_) => Err(no_folders("read any folder but the Inbox")),
        }
    }

    /// The connection test over POP: server and TLS, the token's claims, XOAUTH2, `STAT`.
    pub async fn probe(&self, user: &str) -> Vec<ProbeStep> {
        let mut steps = Vec::new();
        let token = match self.token().await {
            Ok(t) => t,
            Err(e) => {
                steps.push(ProbeStep {
                    name: "POP token",
                    outcome: Err(MailFailure::failed(
                        "no_token",
                        MailProtocol::Pop,
                        format!("no token for POP: {e}"),
                        "see the credentials step".into(),
                    )),
                });
                return steps;
            }
        };
        let claims = TokenClaims::decode(&token);
        if let Some(c) = &claims
            && let Err(f) =
                super::claims::check(c, &self.settings.expect.expected(MailProtocol::Pop))
        {
            steps.push(ProbeStep {
                name: "POP token claims",
                outcome: Err(f),
            });
            return steps;
        }
        steps.push(ProbeStep {
            name: "POP token claims",
            outcome: Ok(claims.as_ref().map_or_else(
                || "the token is not a JWT: nothing to check locally".to_owned(),
                |c| {
                    format!(
                        "audience {}; {}",
                        c.audiences.join(", "),
                        if c.app_only {
                            format!("roles {}", c.roles.join(", "))
                        } else {
                            format!("scopes {}", c.scopes.join(" "))
                        }
                    )
                },
            )),
        });
        let url = &self.settings.url;
        let mut client = match self.connect().await {
            Ok(c) => c,
            Err(e) => {
                steps.push(ProbeStep {
                    name: "POP server",
                    outcome: Err(match e {
                        Error::Mailbox(MailboxError::Mail(f)) => f,
                        other => MailFailure::transient(
                            "pop_unreachable",
                            MailProtocol::Pop,
                            other.to_string(),
                            "check pop_url and the network".into(),
                        ),
                    }),
                });
                return steps;
            }
        };
        steps.push(ProbeStep {
            name: "POP server",
            outcome: Ok(format!(
                "{url} reached; TLS {}",
                match url.security() {
                    Security::Tls => "from the first byte (implicit)",
                    Security::StartTls => "by STLS, as the server agreed",
                }
            )),
        });
        let s = Situation {
            protocol: MailProtocol::Pop,
            mailbox: user,
            claims: claims.as_ref(),
        };
        match client.auth_xoauth2(user, &token).await {
            Ok(_) => steps.push(ProbeStep {
                name: "POP authentication",
                outcome: Ok(format!("AUTH XOAUTH2 accepted for {user}")),
            }),
            Err(PopError::Refused(text)) => {
                steps.push(ProbeStep {
                    name: "POP authentication",
                    outcome: Err(explain::authentication_refused(&s, &format!("-ERR {text}"))),
                });
                return steps;
            }
            Err(e) => {
                steps.push(ProbeStep {
                    name: "POP authentication",
                    outcome: Err(MailFailure::failed(
                        "pop_protocol",
                        MailProtocol::Pop,
                        e.to_string(),
                        "check that pop_url is a POP3 server".into(),
                    )),
                });
                return steps;
            }
        }
        match client.stat().await {
            Ok((n, size)) => steps.push(ProbeStep {
                name: "POP mailbox",
                outcome: Ok(format!("STAT: {n} messages, {size} bytes in the Inbox")),
            }),
            Err(e) => steps.push(ProbeStep {
                name: "POP mailbox",
                outcome: Err(MailFailure::refused(
                    "no_mailbox_permission",
                    MailProtocol::Pop,
                    format!("the Inbox of {user} cannot be read: {e}"),
                    "give the app's service principal (or user) FullAccess on the mailbox (Add-MailboxPermission)".into(),
                )),
            }),
        }
        let _ = client.quit().await;
        steps
    }
}

#[async_trait]
impl Mail for PopMailbox {
    async fn folders(&self, mailbox: &MailboxRef) -> Result<Vec<Folder>, Error> {
        let user = self.user(mailbox)?;
        let mut client = self.session(&user).await?;
        let (n, _) = client.stat().await.map_err(pop_error)?;
        let _ = client.quit().await;
        Ok(vec![Folder {
            id: INBOX.into(),
            name: "Inbox".into(),
            parent_id: None,
            unread: 0,
            total: n,
            children: 0,
        }])
    }

    async fn messages(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        page: Option<&str>,
    ) -> Result<Page<MessageSummary>, Error> {
        Self::check_folder(query.folder.as_ref())?;
        let user = self.user(mailbox)?;
        let key = user.to_ascii_lowercase();
        let scope = TokenScope {
            kind: "messages",
            mailbox: &key,
            detail: format!(
                "pop inbox\n{}\n{:?}\n{}",
                query.from.as_deref().unwrap_or(""),
                query.since,
                query.with_attachments
            ),
        };
        let after = page.map(|t| self.pages.open(&scope, t)).transpose()?;
        let mut client = self.session(&user).await?;
        let mut uids = client.uidl().await.map_err(pop_error)?;
        // Newest first: POP numbers messages in arrival order.
        uids.reverse();
        let start = match &after {
            None => 0,
            // Continue at the UID the previous page stopped before; if it was deleted since,
            // at the first message older than it (message numbers only grow with age).
            Some(state) => {
                let (uid, n) = state.split_once('\n').unwrap_or((state.as_str(), "0"));
                let n: u32 = n.parse().unwrap_or(0);
                uids.iter()
                    .position(|(_, u)| u == uid)
                    .or_else(|| uids.iter().position(|(m, _)| *m <= n))
                    .unwrap_or(uids.len())
            }
        };
        let size = query.page_size.clamp(1, 100) as usize;
        let mut items = Vec::new();
        let mut i = start;
        while i < uids.len() && items.len() < size {
            let (n, uid) = &uids[i];
            i += 1;
            let head = client.top(*n, 0).await.map_err(pop_error)?;
            let Some(summary) = parse::summary(uid, INBOX, &head) else {
                continue;
            };
            if let Some(from) = &query.from {
                let matches = summary
                    .from
                    .as_ref()
                    .is_some_and(|f| f.address.eq_ignore_ascii_case(from.trim()));
                if !matches {
                    continue;
                }
            }
            if let (Some(since), Some(at)) = (query.since, summary.received_at)
                && at < since
            {
                continue;
            }
            if query.with_attachments && !summary.has_attachments {
                continue;
            }
            items.push(summary);
        }
        let _ = client.quit().await;
        let next = uids
            .get(i)
            .map(|(n, uid)| self.pages.seal(&scope, &format!("{uid}\n{n}")));
        Ok(Page { items, next })
    }

    async fn message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        body: Option<BodyKind>,
    ) -> Result<Message, Error> {
        let mime = self.retrieve(mailbox, id).await?;
        parse::message(id, INBOX, &mime, body).ok_or_else(|| {
            MailboxError::Protocol(format!("message `{id}` is not readable MIME")).into()
        })
    }

    async fn attachment(
        &self,
        mailbox: &MailboxRef,
        message: &str,
        attachment: &str,
    ) -> Result<Attachment, Error> {
        let mime = self.retrieve(mailbox, message).await?;
        let (info, content) = parse::attachment(&mime, attachment).ok_or_else(|| -> Error {
            MailboxError::NotFound {
                what: "attachment",
                id: attachment.to_owned(),
                request_id: String::new(),
            }
            .into()
        })?;
        Ok(Attachment {
            info,
            content: ByteStream::from_bytes(content),
        })
    }

    async fn mime(&self, mailbox: &MailboxRef, id: &str) -> Result<ByteStream, Error> {
        Ok(ByteStream::from_bytes(self.retrieve(mailbox, id).await?))
    }

    async fn send(&self, _: &MailboxRef, _: &NewMessage) -> Result<(), Error> {
        Err(MailboxError::Unsupported(
            "POP cannot send; this connection sends over SMTP (--send smtp)".into(),
        )
        .into())
    }

    async fn reply(&self, _: &MailboxRef, _: &str, _: &str, _: bool) -> Result<(), Error> {
        Err(MailboxError::Unsupported("POP cannot send; replies go over SMTP".into()).into())
    }

    async fn forward(
        &self,
        _: &MailboxRef,
        _: &str,
        _: &[Recipient],
        _: &str,
    ) -> Result<(), Error> {
        Err(MailboxError::Unsupported("POP cannot send; forwards go over SMTP".into()).into())
    }

    async fn move_message(&self, _: &MailboxRef, _: &str, _: &FolderRef) -> Result<String, Error> {
        Err(no_folders("move a message"))
    }

    async fn delete_message(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        let user = self.user(mailbox)?;
        let mut client = self.session(&user).await?;
        let n = Self::number(&mut client, id).await?;
        client.dele(n).await.map_err(pop_error)?;
        // The deletion happens in the UPDATE state, which QUIT enters.
        client.quit().await.map_err(pop_error)?;
        Ok(())
    }

    async fn set_read(&self, _: &MailboxRef, _: &str, _: bool) -> Result<(), Error> {
        Err(no_folders("mark a message read or unread"))
    }

    async fn changes(
        &self,
        _: &MailboxRef,
        _: &FolderRef,
        _: Option<&str>,
    ) -> Result<FolderChanges, Error> {
        Err(no_folders("follow a folder's changes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    async fn answers(
        server: &[u8],
        f: impl AsyncFnOnce(&mut PopClient<tokio::io::DuplexStream>),
    ) -> Vec<u8> {
        let (client, mut server_end) = tokio::io::duplex(1 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut server_end, server)
            .await
            .unwrap();
        // The server says nothing more: a read past its answers ends, it never waits.
        tokio::io::AsyncWriteExt::shutdown(&mut server_end)
            .await
            .unwrap();
        let mut c = PopClient::new(client);
        f(&mut c).await;
        drop(c);
        let mut sent = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server_end, &mut sent)
            .await
            .unwrap();
        sent
    }

    #[tokio::test]
    async fn multi_line_answers_are_unstuffed_and_commands_are_lines() {
        let sent = answers(
            b"+OK 2 messages\r\n1 aa-1\r\n2 aa-2\r\n.\r\n+OK 9 octets\r\nSubject: x\r\n\r\n..dot\r\n.\r\n-ERR The specified message is out of range.\r\n",
            async |c| {
                assert_eq!(c.uidl().await.unwrap(), [(1, "aa-1".to_owned()), (2, "aa-2".to_owned())]);
                assert_eq!(c.retr(1, 1000).await.unwrap(), b"Subject: x\r\n\r\n.dot\r\n");
                assert_eq!(
                    c.dele(9).await.unwrap_err(),
                    PopError::Refused("The specified message is out of range.".into())
                );
            },
        )
        .await;
        assert_eq!(sent, b"UIDL\r\nRETR 1\r\nDELE 9\r\n");
    }

    #[tokio::test]
    async fn xoauth2_goes_on_the_auth_line_and_a_challenge_gets_an_empty_answer() {
        let token = Secret::new("tok");
        let sent = answers(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n-ERR Authentication failure: unknown user name or bad password.\r\n", async |c| {
            let e = c.auth_xoauth2("a@b.c", &token).await.unwrap_err();
            assert!(matches!(e, PopError::Refused(t) if t.starts_with("Authentication failure")));
        })
        .await;
        let ir = super::super::xoauth2::encoded_initial_response("a@b.c", &token);
        assert_eq!(
            sent,
            format!("AUTH XOAUTH2 {}\r\n\r\n", ir.expose()).into_bytes()
        );
    }

    #[tokio::test]
    async fn a_line_or_message_over_its_bound_is_refused() {
        let mut long = b"+OK ".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        answers(&long, async |c| {
            assert!(matches!(c.status().await, Err(PopError::Protocol(_))));
        })
        .await;
        answers(b"+OK\r\n0123456789\r\n0123456789\r\n.\r\n", async |c| {
            assert_eq!(c.retr(1, 15).await, Err(PopError::TooLarge(15)));
        })
        .await;
    }

    proptest! {
        #[test]
        fn the_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_status(&bytes);
            let _ = unstuff(&bytes);
            let _ = parse_listing_line(&bytes);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut input = bytes.clone();
                input.extend_from_slice(b"\r\n.\r\n");
                answers(&input, async |c| {
                    let _ = c.uidl().await;
                    let _ = c.retr(1, 4096).await;
                    let _ = c.stat().await;
                }).await;
            });
        }
    }
}
