//! The IMAP backend: a mailbox read over IMAP4rev1 with SASL XOAUTH2 (Exchange Online's
//! `outlook.office365.com:993`, or any IMAP server that takes OAuth2 tokens), as the neutral
//! [`Mail`] capability.
//!
//! - **Sessions** ([`session`]): async-imap over [`MailStream`](crate::mail::MailStream);
//!   XOAUTH2 with a token for [`Resource::Imap`](crate::model::Resource::Imap) and
//!   `user=<mailbox>` (the caller's own, or another one for an app with FullAccess or a
//!   delegate); a refused token is dropped and a fresh one tried once; Exchange's refusals
//!   (`NO AUTHENTICATE failed.`, `BAD User is authenticated but not connected.`) become
//!   [`MailboxError::MailRefused`] with an [`ImapRefusal`] the connection test can explain. A
//!   few sessions per mailbox are kept and reused (the governor's per-mailbox concurrency
//!   bounds how many are in use: Exchange Online allows 20 IMAP connections per mailbox,
//!   shared with every other client, see [`governor_policy`]); a broken one is dropped.
//! - **IDs** ([`ids`]): a message is its folder, UIDVALIDITY and UID, tagged with its mailbox;
//!   an ID of another mailbox is refused, a stale UIDVALIDITY is "not found". A folder's ID
//!   is its IMAP name as the server lists it.
//! - **Listings** ([`search`]): the query as `UID SEARCH`, newest (highest UID) first, summaries
//!   from one `UID FETCH`; the page token is sealed to the mailbox, folder and query and holds
//!   the folder's UIDVALIDITY. Without a folder, every folder in LIST order.
//! - **Sync** ([`sync`]): UIDs and flags compared with the last state; a new UIDVALIDITY is a
//!   full resynchronisation ([`FolderChanges::reset`]).
//! - **Sending**: IMAP cannot send; [`Mail::send`], `reply` and `forward` answer
//!   [`MailboxError::Unsupported`] (a connection that reads over IMAP sends over SMTP).
//! - **New mail**: [`ImapMailbox::wait_for_new_mail`] waits with IDLE (RFC 2177), restarted
//!   every [`IDLE_PERIOD`].

mod folders;
mod ids;
mod listen;
mod message;
mod search;
mod session;
mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto::NameAttribute;
use async_imap::types::{Fetch, Flag};
use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tracing::Instrument as _;

use self::ids::{IdError, MessageId};
use self::message::{Fetched, MessageFlags};
use self::session::{Conn, ImapFail, Pool, fail, raw};
use self::sync::{Flags, SyncState};
use crate::Error;
use crate::auth::credentials::Credentials;
use crate::governor::{Governor, GovernorPolicy};
use crate::mail::{MailConnector, MailUrl};
use crate::mailbox::{
    Attachment, BodyKind, Folder, FolderChanges, FolderRef, Mail, MailboxError, MailboxRef,
    Message, MessageQuery, MessageSummary, NewMessage, Page, Recipient, WellKnownFolder,
};
use crate::pipeline::{ByteStream, Limits, PageTokens, TokenScope};

/// How long one IDLE runs before it is ended and started again: RFC 2177 asks clients to
/// re-issue IDLE at least every 29 minutes, and Exchange Online ends sessions idle for 30.
pub const IDLE_PERIOD: Duration = Duration::from_secs(29 * 60);

/// Messages one page holds when the query does not say.
const DEFAULT_PAGE: u32 = 50;
/// The most messages one page holds.
const MAX_PAGE: u32 = 500;
/// UIDs one summary FETCH asks for (a bound on the command's length: Exchange refuses
/// commands over 10 KB by default).
const FETCH_BATCH: usize = 200;
/// The most one batched MIME FETCH may answer; larger messages go in a batch of their own.
const MIME_BATCH_BYTES: u64 = 48 * 1024 * 1024;
/// Messages one batched MIME FETCH asks for.
const MIME_BATCH: usize = 50;

/// The governor policy of IMAP (per mailbox): Exchange Online allows 20 concurrent IMAP
/// connections per mailbox, shared with every other client of it (Exchange Server: 16 per
/// user by default); exgate uses at most 4 at once and keeps as many open for reuse. Exchange
/// publishes no IMAP request budget: 600 commands a minute with a burst of 20, as for EWS.
pub fn governor_policy() -> GovernorPolicy {
    GovernorPolicy {
        concurrent: 4,
        requests: 600,
        window: Duration::from_secs(60),
        burst: 20,
    }
}

/// Which of Exchange's refusals an IMAP server gave. Exchange's texts say nothing about the
/// cause; the connection test explains each with the checks and fixes that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImapRefusal {
    /// `NO AUTHENTICATE failed.`: the token (audience, role or scope, expiry), the app's service
    /// principal in Exchange, or IMAP for the mailbox (`Set-CASMailbox -ImapEnabled`).
    AuthenticateFailed,
    /// `BAD User is authenticated but not connected.`: the token is good, but its identity has
    /// no right on the `user=` mailbox (FullAccess missing), or the mailbox does not exist.
    NotConnected,
}

impl ImapRefusal {
    /// The code in [`MailboxError::MailRefused::refusal`].
    pub fn code(self) -> &'static str {
        match self {
            Self::AuthenticateFailed => "imap-authenticate-failed",
            Self::NotConnected => "imap-not-connected",
        }
    }

    /// The refusal an error reports, if it is one of IMAP's.
    pub fn of(error: &Error) -> Option<ImapRefusal> {
        match error {
            Error::Mailbox(MailboxError::MailRefused { refusal, .. }) => {
                [Self::AuthenticateFailed, Self::NotConnected]
                    .into_iter()
                    .find(|r| r.code() == *refusal)
            }
            _ => None,
        }
    }
}

/// The error of a refusal, with a short hint; the connection test gives the full explanation.
pub(crate) fn refused(
    refusal: ImapRefusal,
    mailbox: &str,
    answer: &str,
    connection: &str,
) -> Error {
    let (status, hint) = match refusal {
        ImapRefusal::AuthenticateFailed => (
            "NO",
            "Exchange does not say why; the usual causes are a token without IMAP.AccessAsApp (app-only) or IMAP.AccessAsUser.All (delegated), the app's service principal not registered in Exchange Online (New-ServicePrincipal), or IMAP disabled for the mailbox (Set-CASMailbox -ImapEnabled $true)",
        ),
        ImapRefusal::NotConnected => (
            "BAD",
            "the token was accepted but its identity cannot open this mailbox: give the app's service principal (or the user) FullAccess on it (Add-MailboxPermission -AccessRights FullAccess), or check the mailbox's address",
        ),
    };
    MailboxError::MailRefused {
        protocol: "IMAP",
        refusal: refusal.code(),
        mailbox: mailbox.to_owned(),
        answer: format!("{status} {answer}"),
        hint: format!("{hint}; `exgate connection test {connection}` checks each cause"),
    }
    .into()
}

/// How an [`ImapMailbox`] reaches its server.
#[derive(Clone)]
pub struct ImapSettings {
    /// `imaps://` (implicit TLS) or `imap://` (STARTTLS before anything else).
    pub url: MailUrl,
    pub connector: MailConnector,
    /// Tokens for `Resource::Imap` (app-only or delegated).
    pub credentials: Arc<dyn Credentials>,
    /// The mailbox of [`MailboxRef::Me`] (the XOAUTH2 `user=`); empty for an app, which names
    /// every mailbox it opens.
    pub me: String,
    /// The connection's name, for messages.
    pub connection: String,
    /// Per-mailbox concurrency and pace ([`governor_policy`]); its concurrency is also how
    /// many sessions per mailbox are kept for reuse.
    pub governor: Arc<Governor>,
    /// The largest message read, how long the server's answers may take.
    pub limits: Limits,
}

impl std::fmt::Debug for ImapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSettings")
            .field("url", &self.url)
            .field("me", &self.me)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// One IMAP server, as one account (or the app) sees it.
#[derive(Debug)]
pub struct ImapMailbox {
    settings: ImapSettings,
    pages: PageTokens,
    pool: Pool,
}

/// What [`ImapMailbox::wait_for_new_mail`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum NewMail {
    /// Messages that arrived while waiting (newest first).
    Arrived(Vec<MessageSummary>),
    /// Nothing arrived in time.
    TimedOut,
}

/// A folder as LIST names it.
#[derive(Debug, Clone)]
struct Listed {
    name: String,
    delimiter: Option<String>,
    attributes: Vec<String>,
    selectable: bool,
}

impl Listed {
    fn role(&self) -> Option<WellKnownFolder> {
        folders::well_known(&self.name, &self.attributes, self.delimiter.as_deref())
    }
}

/// An open folder's identity.
#[derive(Debug, Clone, Copy)]
struct Opened {
    uid_validity: u32,
    exists: u32,
    uid_next: Option<u32>,
}

fn not_found(what: &'static str, id: &str) -> MailboxError {
    MailboxError::NotFound {
        what,
        id: id.to_owned(),
        request_id: String::new(),
    }
}

fn attribute_name(a: &NameAttribute<'_>) -> Option<String> {
    Some(
        match a {
            NameAttribute::NoInferiors => "\\Noinferiors",
            NameAttribute::NoSelect => "\\Noselect",
            NameAttribute::Marked => "\\Marked",
            NameAttribute::Unmarked => "\\Unmarked",
            NameAttribute::All => "\\All",
            NameAttribute::Archive => "\\Archive",
            NameAttribute::Drafts => "\\Drafts",
            NameAttribute::Flagged => "\\Flagged",
            NameAttribute::Junk => "\\Junk",
            NameAttribute::Sent => "\\Sent",
            NameAttribute::Trash => "\\Trash",
            NameAttribute::Extension(e) => return Some(e.to_string()),
            _ => return None,
        }
        .to_owned(),
    )
}

fn flags_of(f: &Fetch) -> MessageFlags {
    let mut out = MessageFlags::default();
    for flag in f.flags() {
        match flag {
            Flag::Seen => out.seen = true,
            Flag::Flagged => out.flagged = true,
            Flag::Deleted => out.deleted = true,
            _ => {}
        }
    }
    out
}

fn internal_date(f: &Fetch) -> Option<OffsetDateTime> {
    f.internal_date()
        .and_then(|d| OffsetDateTime::from_unix_timestamp(d.timestamp()).ok())
}

/// A stable digest of what a page or sync token is for.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

/// Where a listing continues: the folder, its UIDVALIDITY, and the UID below which the next
/// page starts (`None`: from the newest).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    folder: String,
    uid_validity: u32,
    below: Option<u32>,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.uid_validity,
            self.below.unwrap_or(0),
            self.folder
        )
    }

    fn decode(s: &str) -> Option<Cursor> {
        let mut parts = s.splitn(3, '\n');
        let uid_validity = parts.next()?.parse().ok()?;
        let below = parts.next()?.parse::<u32>().ok()?;
        let folder = parts.next()?.to_owned();
        Some(Cursor {
            folder,
            uid_validity,
            below: (below != 0).then_some(below),
        })
    }
}

/// One page's worth of a folder.
struct FolderPage {
    items: Vec<MessageSummary>,
    /// The UID the next page continues below, when there is more.
    next_below: Option<u32>,
}

impl ImapMailbox {
    pub fn new(settings: ImapSettings, pages: PageTokens) -> ImapMailbox {
        ImapMailbox {
            settings,
            pages,
            pool: Pool::default(),
        }
    }

    /// The address a mailbox reference authenticates as (`user=`): an address without spaces
    /// or control characters (a `^A` would end the XOAUTH2 field and start another).
    fn user<'a>(&'a self, mailbox: &'a MailboxRef) -> Result<&'a str, Error> {
        let user = match mailbox {
            MailboxRef::User(u) => u.trim(),
            MailboxRef::Me => self.settings.me.as_str(),
        };
        if user.is_empty() {
            return Err(MailboxError::Invalid(
                "an app reads mail over IMAP only in a named mailbox; say which one (--mailbox)"
                    .into(),
            )
            .into());
        }
        if user.len() > 320 || user.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(MailboxError::Invalid(
                "the mailbox must be an email address, without spaces or control characters".into(),
            )
            .into());
        }
        Ok(user)
    }

    fn key(&self, mailbox: &MailboxRef) -> Result<String, Error> {
        Ok(self.user(mailbox)?.to_ascii_lowercase())
    }

    /// A session for `mailbox`: a kept one that still answers, or a new one.
    async fn checkout(&self, mailbox: &MailboxRef) -> Result<Conn, Error> {
        let key = self.key(mailbox)?;
        if let Some(conn) = self.pool.take(&key).await {
            return Ok(conn);
        }
        let user = self.user(mailbox)?;
        let s = &self.settings;
        match tokio::time::timeout(
            s.limits.answer_timeout,
            session::open(
                &s.connector,
                &s.url,
                s.credentials.as_ref(),
                user,
                &s.connection,
            ),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(MailboxError::Transport(format!(
                "signing in to {} took longer than {} s",
                s.url,
                s.limits.answer_timeout.as_secs()
            ))
            .into()),
        }
    }

    /// Runs `op` on a session of `mailbox` within a governor slot and the answer timeout. A
    /// session the operation broke is dropped; a read (`retry`) that broke a kept session is
    /// tried once more on a new one.
    async fn run<T, F, Fut>(&self, mailbox: &MailboxRef, retry: bool, mut op: F) -> Result<T, Error>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = (Conn, Result<T, ImapFail>)>,
    {
        let key = self.key(mailbox)?;
        let s = &self.settings;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let _permit = s
                .governor
                .acquire_within(&key, 1, s.limits.max_wait)
                .await
                .map_err(|left| MailboxError::Throttled { retry_after: left })?;
            let span = tracing::debug_span!(
                "imap",
                connection = %s.connection,
                mailbox = %key,
                attempt,
            );
            let conn = self.checkout(mailbox).instrument(span.clone()).await?;
            let reused = conn.reused;
            let answer = tokio::time::timeout(s.limits.answer_timeout, op(conn).instrument(span));
            let why = match answer.await {
                Ok((conn, Ok(v))) => {
                    self.pool.put(&key, conn, s.governor.policy().concurrent);
                    return Ok(v);
                }
                Ok((conn, Err(ImapFail::Answer(e)))) => {
                    self.pool.put(&key, conn, s.governor.policy().concurrent);
                    // A `NO` that says "later" left the command undone: it may go again, a
                    // change too, within the caps; every caller of the mailbox waits.
                    let wait = match &e {
                        Error::Mailbox(MailboxError::Throttled { retry_after }) => *retry_after,
                        Error::Mailbox(MailboxError::Server { .. }) => {
                            crate::pipeline::backoff(attempt)
                        }
                        _ => return Err(e),
                    };
                    s.governor.back_off(&key, wait);
                    if wait <= s.limits.max_wait && attempt < s.limits.attempts.max(1) {
                        tracing::debug!(
                            attempt,
                            wait_ms = wait.as_millis() as u64,
                            "the IMAP server asked to wait; trying again"
                        );
                        continue;
                    }
                    return Err(e);
                }
                Ok((_, Err(ImapFail::Broken(why)))) => why,
                Err(_) => format!(
                    "the server did not answer within {} s",
                    s.limits.answer_timeout.as_secs()
                ),
            };
            if (retry || reused) && attempt < 2 {
                // A session taken from the pool may have been closed meanwhile; a read may go
                // again after any break.
                tracing::debug!(error = %why, "an IMAP session broke; trying again on a new one");
                continue;
            }
            return Err(MailboxError::Transport(format!("IMAP {}: {why}", s.url)).into());
        }
    }

    fn decode_id(&self, mailbox: &MailboxRef, id: &str) -> Result<MessageId, Error> {
        let key = self.key(mailbox)?;
        MessageId::decode(id, &key).map_err(|e| match e {
            IdError::Malformed => MailboxError::Invalid(format!(
                "`{}` is not a message ID of an IMAP mailbox; use an ID `exgate mail list` gave for this connection",
                session::clean(&id.chars().take(80).collect::<String>())
            ))
            .into(),
            IdError::OtherMailbox => not_found("message", id).into(),
        })
    }

    /// Waits until new mail arrives in `folder` of `mailbox` or `timeout` has passed, with IDLE
    /// restarted every [`IDLE_PERIOD`]. The session used is the watcher's own (never a kept
    /// one) and counts as one of the mailbox's concurrent connections while it waits.
    pub async fn wait_for_new_mail(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
        timeout: Duration,
    ) -> Result<NewMail, Error> {
        let key = self.key(mailbox)?;
        let s = &self.settings;
        let deadline = tokio::time::Instant::now() + timeout;
        let name = self.resolve(mailbox, folder).await?;
        let _permit = s
            .governor
            .acquire_within(&key, 1, s.limits.max_wait)
            .await
            .map_err(|left| MailboxError::Throttled { retry_after: left })?;
        let user = self.user(mailbox)?;
        let mut conn = session::open(
            &s.connector,
            &s.url,
            s.credentials.as_ref(),
            user,
            &s.connection,
        )
        .await?;
        if !conn.caps.idle {
            return Err(MailboxError::Unsupported(format!(
                "{} does not offer IDLE; list the folder again instead",
                s.url
            ))
            .into());
        }
        let broken = |why: String| -> Error {
            MailboxError::Transport(format!("IMAP {}: waiting for new mail: {why}", s.url)).into()
        };
        let opened = open_folder(&mut conn, &name, false)
            .await
            .map_err(|e| match e {
                ImapFail::Answer(e) => e,
                ImapFail::Broken(why) => broken(why),
            })?;
        // New mail is what has a UID from UIDNEXT on; a server that does not say UIDNEXT is
        // asked for its highest UID.
        let first_new = match opened.uid_next {
            Some(n) => n,
            None => search_uids(&mut conn, "ALL")
                .await
                .map_err(|e| match e {
                    ImapFail::Answer(e) => e,
                    ImapFail::Broken(why) => broken(why),
                })?
                .first()
                .map_or(1, |u| u.saturating_add(1)),
        };
        let caps = conn.caps;
        let mut session = conn.session;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(NewMail::TimedOut);
            }
            let mut idle = session.idle();
            idle.init().await.map_err(|e| broken(e.to_string()))?;
            let period = left.min(IDLE_PERIOD);
            let seen = {
                let (wait, _stop) = idle.wait_with_timeout(period);
                match tokio::time::timeout(period, wait).await {
                    Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => true,
                    Ok(Ok(_)) | Err(_) => false,
                    Ok(Err(e)) => return Err(broken(e.to_string())),
                }
            };
            session = idle.done().await.map_err(|e| broken(e.to_string()))?;
            session::drain(&mut session);
            if !seen {
                continue;
            }
            let uids: Vec<u32> = session
                .uid_search(format!("UID {first_new}:*"))
                .await
                .map_err(|e| broken(e.to_string()))?
                .into_iter()
                .filter(|u| *u >= first_new)
                .collect();
            if uids.is_empty() {
                continue;
            }
            let mut conn = Conn::new(session, caps);
            let fetched = summaries(&mut conn, &name, opened.uid_validity, &uids, &key)
                .await
                .map_err(|e| match e {
                    ImapFail::Answer(e) => e,
                    ImapFail::Broken(why) => broken(why),
                })?;
            let _ = conn.session.logout().await;
            return Ok(NewMail::Arrived(fetched));
        }
    }
}

/// Every folder LIST names.
async fn list(conn: &mut Conn) -> Result<Vec<Listed>, ImapFail> {
    let names: Vec<_> = conn
        .session
        .list(Some(""), Some("*"))
        .await
        .map_err(|e| fail(e, "LIST"))?
        .try_collect()
        .await
        .map_err(|e| fail(e, "LIST"))?;
    Ok(names
        .iter()
        .map(|n| {
            let attributes: Vec<String> =
                n.attributes().iter().filter_map(attribute_name).collect();
            Listed {
                name: n.name().to_owned(),
                delimiter: n.delimiter().map(str::to_owned),
                selectable: !attributes.iter().any(|a| {
                    a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
                }),
                attributes,
            }
        })
        .collect())
}

/// The IMAP name of a folder reference: INBOX, a role found in LIST, or a listed name.
async fn resolve(conn: &mut Conn, folder: &FolderRef) -> Result<String, ImapFail> {
    match folder {
        FolderRef::WellKnown(WellKnownFolder::Inbox) => Ok("INBOX".to_owned()),
        FolderRef::WellKnown(role) => list(conn)
            .await?
            .into_iter()
            .find(|f| f.selectable && f.role() == Some(*role))
            .map(|f| f.name)
            .ok_or_else(|| not_found("folder", role.name()).into()),
        FolderRef::Id(name) => {
            if !ids::valid_folder_name(name) {
                return Err(MailboxError::Invalid(format!(
                    "`{}` is not an IMAP folder ID; use a name `exgate mail folders` lists",
                    session::clean(&name.chars().take(80).collect::<String>())
                ))
                .into());
            }
            Ok(name.clone())
        }
    }
}

/// SELECT (`write`) or EXAMINE a folder; a folder the server does not know is "not found".
async fn open_folder(conn: &mut Conn, name: &str, write: bool) -> Result<Opened, ImapFail> {
    let verb = if write { "SELECT" } else { "EXAMINE" };
    let opened = if write {
        conn.session.select(name).await
    } else {
        conn.session.examine(name).await
    };
    let mailbox = match opened {
        Ok(m) => m,
        Err(async_imap::error::Error::No(_)) => return Err(not_found("folder", name).into()),
        Err(e) => return Err(fail(e, verb)),
    };
    let uid_validity = mailbox.uid_validity.filter(|v| *v != 0).ok_or_else(|| {
        ImapFail::Answer(
            MailboxError::Protocol(format!("{verb} {name} answered no UIDVALIDITY")).into(),
        )
    })?;
    Ok(Opened {
        uid_validity,
        exists: mailbox.exists,
        uid_next: mailbox.uid_next,
    })
}

/// Opens the folder of `id` and checks that its UIDVALIDITY is still the ID's; otherwise the
/// UID may name another message now, and the message is "not found".
async fn open_message(
    conn: &mut Conn,
    id: &MessageId,
    text: &str,
    write: bool,
) -> Result<Opened, ImapFail> {
    let opened = match open_folder(conn, &id.folder, write).await {
        Err(ImapFail::Answer(Error::Mailbox(MailboxError::NotFound { .. }))) => {
            return Err(not_found("message", text).into());
        }
        other => other?,
    };
    if opened.uid_validity != id.uid_validity {
        return Err(not_found("message", text).into());
    }
    Ok(opened)
}

/// The UIDs SEARCH finds, newest (highest) first.
async fn search_uids(conn: &mut Conn, criteria: &str) -> Result<Vec<u32>, ImapFail> {
    let mut uids: Vec<u32> = conn
        .session
        .uid_search(criteria)
        .await
        .map_err(|e| fail(e, "UID SEARCH"))?
        .into_iter()
        .collect();
    uids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(uids)
}

async fn fetch(conn: &mut Conn, uids: &[u32], items: &str) -> Result<Vec<Fetch>, ImapFail> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    conn.session
        .uid_fetch(search::uid_set(uids), items)
        .await
        .map_err(|e| fail(e, "UID FETCH"))?
        .try_collect()
        .await
        .map_err(|e| fail(e, "UID FETCH"))
}

/// Summaries of `uids` of the open `folder`, newest first; messages marked deleted are left out.
async fn summaries(
    conn: &mut Conn,
    folder: &str,
    uid_validity: u32,
    uids: &[u32],
    key: &str,
) -> Result<Vec<MessageSummary>, ImapFail> {
    let mut out = Vec::with_capacity(uids.len());
    for chunk in uids.chunks(FETCH_BATCH) {
        let fetched = fetch(conn, chunk, message::SUMMARY_ITEMS).await?;
        let mut items: Vec<(u32, MessageSummary)> = fetched
            .iter()
            .filter_map(|f| {
                let uid = f.uid.filter(|u| chunk.contains(u))?;
                let flags = flags_of(f);
                if flags.deleted {
                    return None;
                }
                let id = MessageId {
                    folder: folder.to_owned(),
                    uid_validity,
                    uid,
                }
                .encode(key);
                Some((
                    uid,
                    message::summary(&Fetched {
                        id,
                        folder: folder.to_owned(),
                        flags,
                        internal_date: internal_date(f),
                        header: f.header().unwrap_or_default(),
                        has_attachments: f.bodystructure().is_some_and(message::has_attachments),
                    }),
                ))
            })
            .collect();
        items.sort_by_key(|i| std::cmp::Reverse(i.0));
        items.dedup_by_key(|i| i.0);
        out.extend(items.into_iter().map(|(_, s)| s));
    }
    Ok(out)
}

/// One page of the open `folder` below `below`.
async fn folder_page(
    conn: &mut Conn,
    folder: &str,
    uid_validity: u32,
    query: &MessageQuery,
    below: Option<u32>,
    size: usize,
    key: &str,
) -> Result<FolderPage, ImapFail> {
    if below.is_some_and(|b| b <= 1) {
        return Ok(FolderPage {
            items: Vec::new(),
            next_below: None,
        });
    }
    let (criteria, filter) = search::criteria(query, below);
    let uids = search_uids(conn, &criteria).await?;
    let mut items = Vec::new();
    let mut examined = 0;
    while items.len() < size && examined < uids.len() {
        let want = if filter.is_empty() {
            size - items.len()
        } else {
            FETCH_BATCH
        };
        let chunk = &uids[examined..(examined + want).min(uids.len())];
        let mut found = summaries(conn, folder, uid_validity, chunk, key).await?;
        found.retain(|s| filter.accepts(s));
        // Only as many as fit; the rest of the chunk is examined again on the next page.
        let room = size - items.len();
        if found.len() > room {
            let last_id = found[room - 1].id.clone();
            found.truncate(room);
            let last_uid = MessageId::decode(&last_id, key).map(|m| m.uid).unwrap_or(0);
            examined += chunk
                .iter()
                .position(|u| *u == last_uid)
                .map_or(chunk.len(), |p| p + 1);
        } else {
            examined += chunk.len();
        }
        items.extend(found);
    }
    let next_below = if examined < uids.len() {
        uids.get(examined.saturating_sub(1))
            .copied()
            .filter(|u| *u > 1)
    } else {
        None
    };
    // `examined` counts from the newest: the next page continues below the last one examined.
    Ok(FolderPage { items, next_below })
}

/// The counts of a folder (STATUS MESSAGES UNSEEN).
async fn status(conn: &mut Conn, name: &str) -> Result<(u32, u32), ImapFail> {
    let m = conn
        .session
        .status(name, "(MESSAGES UNSEEN)")
        .await
        .map_err(|e| fail(e, "STATUS"))?;
    Ok((m.exists, m.unseen.unwrap_or(0)))
}

/// Size, flags and `INTERNALDATE` of one message of the open folder.
async fn meta(
    conn: &mut Conn,
    uid: u32,
    text: &str,
) -> Result<(u64, MessageFlags, Option<OffsetDateTime>), ImapFail> {
    let fetched = fetch(conn, &[uid], "(UID FLAGS RFC822.SIZE INTERNALDATE)").await?;
    let f = fetched
        .iter()
        .find(|f| f.uid == Some(uid))
        .ok_or_else(|| ImapFail::from(not_found("message", text)))?;
    let flags = flags_of(f);
    if flags.deleted {
        return Err(not_found("message", text).into());
    }
    Ok((u64::from(f.size.unwrap_or(0)), flags, internal_date(f)))
}

/// The MIME of messages of the open folder, by UID.
async fn bodies(conn: &mut Conn, uids: &[u32]) -> Result<HashMap<u32, Vec<u8>>, ImapFail> {
    let fetched = fetch(conn, uids, "(UID BODY.PEEK[])").await?;
    Ok(fetched
        .iter()
        .filter_map(|f| {
            let uid = f.uid.filter(|u| uids.contains(u))?;
            Some((uid, f.body()?.to_vec()))
        })
        .collect())
}

/// The MIME of one message, within the size limit.
async fn mime_of(
    conn: &mut Conn,
    id: &MessageId,
    text: &str,
    limit: u64,
) -> Result<(Vec<u8>, MessageFlags, Option<OffsetDateTime>), ImapFail> {
    open_message(conn, id, text, false).await?;
    let (size, flags, date) = meta(conn, id.uid, text).await?;
    if size > limit {
        return Err(MailboxError::TooLarge { limit }.into());
    }
    let mut got = bodies(conn, &[id.uid]).await?;
    let mime = got
        .remove(&id.uid)
        .ok_or_else(|| ImapFail::from(not_found("message", text)))?;
    if mime.len() as u64 > limit {
        return Err(MailboxError::TooLarge { limit }.into());
    }
    Ok((mime, flags, date))
}

/// Moves a message (its folder is open read-write) to `to`; answers its UID there and the
/// destination's UIDVALIDITY.
async fn move_uid(conn: &mut Conn, uid: u32, to: &str) -> Result<Option<(u32, u32)>, ImapFail> {
    let quoted = search::quoted(to).ok_or_else(|| {
        ImapFail::from(MailboxError::Invalid(format!(
            "`{to}` cannot be named in IMAP"
        )))
    })?;
    let answer = if conn.caps.mv {
        raw(
            &mut conn.session,
            &format!("UID MOVE {uid} {quoted}"),
            "UID MOVE",
        )
        .await?
    } else {
        let answer = raw(
            &mut conn.session,
            &format!("UID COPY {uid} {quoted}"),
            "UID COPY",
        )
        .await?;
        raw(
            &mut conn.session,
            &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
            "UID STORE",
        )
        .await?;
        if conn.caps.uidplus {
            raw(
                &mut conn.session,
                &format!("UID EXPUNGE {uid}"),
                "UID EXPUNGE",
            )
            .await?;
        }
        answer
    };
    Ok(answer.copy_uid.and_then(|(validity, pairs)| {
        pairs
            .into_iter()
            .find(|(from, _)| *from == uid)
            .map(|(_, to)| (validity, to))
    }))
}

/// UIDs and flags of the open folder (`UID FETCH 1:* (FLAGS)`).
async fn snapshot(conn: &mut Conn, opened: Opened) -> Result<SyncState, ImapFail> {
    let mut messages = std::collections::BTreeMap::new();
    if opened.exists > 0 {
        let fetched: Vec<Fetch> = conn
            .session
            .uid_fetch("1:*", "(UID FLAGS)")
            .await
            .map_err(|e| fail(e, "UID FETCH"))?
            .try_collect()
            .await
            .map_err(|e| fail(e, "UID FETCH"))?;
        for f in &fetched {
            let Some(uid) = f.uid.filter(|u| *u != 0) else {
                continue;
            };
            let flags = flags_of(f);
            if flags.deleted {
                continue;
            }
            messages.insert(
                uid,
                Flags {
                    seen: flags.seen,
                    flagged: flags.flagged,
                },
            );
        }
    }
    Ok(SyncState {
        uid_validity: opened.uid_validity,
        messages,
    })
}

/// Runs `$body` (an expression using `c: &mut Conn`) on a session from `run`.
macro_rules! on_session {
    ($self:ident, $mailbox:expr, $retry:expr, |$c:ident| $body:expr) => {
        $self
            .run($mailbox, $retry, |mut conn| async move {
                let result = {
                    let $c = &mut conn;
                    $body.await
                };
                (conn, result)
            })
            .await
    };
}

impl ImapMailbox {
    async fn resolve(&self, mailbox: &MailboxRef, folder: &FolderRef) -> Result<String, Error> {
        on_session!(self, mailbox, true, |c| resolve(c, folder))
    }

    fn scope<'a>(&self, kind: &'static str, key: &'a str, detail: String) -> TokenScope<'a> {
        TokenScope {
            kind,
            mailbox: key,
            detail,
        }
    }

    fn limit(&self) -> u64 {
        self.settings.limits.max_item_bytes
    }

    fn sending(&self) -> Error {
        MailboxError::Unsupported(format!(
            "connection `{}` reads mail over IMAP, which cannot send; sending goes over SMTP (give the connection an SMTP server to send with)",
            self.settings.connection
        ))
        .into()
    }
}

#[async_trait]
impl Mail for ImapMailbox {
    async fn folders(&self, mailbox: &MailboxRef) -> Result<Vec<Folder>, Error> {
        let listed = on_session!(self, mailbox, true, |c| async {
            let listed = list(c).await?;
            let mut out = Vec::with_capacity(listed.len());
            for f in listed {
                let counts = if f.selectable {
                    status(c, &f.name).await?
                } else {
                    (0, 0)
                };
                out.push((f, counts));
            }
            Ok::<_, ImapFail>(out)
        })?;
        let names: std::collections::HashSet<&str> =
            listed.iter().map(|(f, _)| f.name.as_str()).collect();
        let parent_of = |f: &Listed| -> Option<String> {
            let d = f.delimiter.as_deref().filter(|d| !d.is_empty())?;
            let (parent, _) = f.name.rsplit_once(d)?;
            names.contains(parent).then(|| parent.to_owned())
        };
        let parents: Vec<Option<String>> = listed.iter().map(|(f, _)| parent_of(f)).collect();
        Ok(listed
            .iter()
            .zip(&parents)
            .filter(|((f, _), _)| f.selectable)
            .map(|((f, (total, unread)), parent)| {
                let leaf = match f.delimiter.as_deref().filter(|d| !d.is_empty()) {
                    Some(d) => f.name.rsplit(d).next().unwrap_or(&f.name),
                    None => &f.name,
                };
                let name = if f.name.eq_ignore_ascii_case("INBOX") {
                    "Inbox".to_owned()
                } else {
                    folders::decode_utf7(leaf)
                };
                Folder {
                    id: f.name.clone(),
                    name,
                    parent_id: parent.clone(),
                    unread: *unread,
                    total: *total,
                    children: u32::try_from(
                        parents
                            .iter()
                            .filter(|p| p.as_deref() == Some(f.name.as_str()))
                            .count(),
                    )
                    .unwrap_or(u32::MAX),
                }
            })
            .collect())
    }

    async fn messages(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        page: Option<&str>,
    ) -> Result<Page<MessageSummary>, Error> {
        let key = self.key(mailbox)?;
        let detail = digest(&[
            &query
                .folder
                .as_ref()
                .map_or_else(|| "all".to_owned(), |f| format!("{f:?}")),
            &query.unread_only.to_string(),
            query.from.as_deref().unwrap_or_default(),
            &query
                .since
                .map(|t| t.unix_timestamp().to_string())
                .unwrap_or_default(),
            &query.with_attachments.to_string(),
            &query.page_size.to_string(),
        ]);
        let scope = self.scope("messages", &key, detail);
        let cursor = match page {
            Some(token) => Some(
                Cursor::decode(&self.pages.open(&scope, token)?)
                    .ok_or_else(|| MailboxError::Invalid("a damaged page token".into()))?,
            ),
            None => None,
        };
        let size = if query.page_size == 0 {
            DEFAULT_PAGE
        } else {
            query.page_size.min(MAX_PAGE)
        } as usize;
        let key_ref = key.as_str();
        let cursor_ref = cursor.as_ref();
        let (items, next) = on_session!(self, mailbox, true, |c| async {
            // The folders to walk: the one asked for, or every folder from the cursor's on.
            let folders: Vec<String> = match &query.folder {
                Some(f) => vec![resolve(c, f).await?],
                None => list(c)
                    .await?
                    .into_iter()
                    .filter(|f| f.selectable)
                    .map(|f| f.name)
                    .collect(),
            };
            let mut index = 0;
            let mut below = None;
            let mut expected_validity = None;
            if let Some(cur) = cursor_ref {
                index = folders
                    .iter()
                    .position(|f| *f == cur.folder)
                    .ok_or_else(|| {
                        ImapFail::from(MailboxError::Invalid(
                        "the folder this page token continues in is gone; list again without it"
                            .into(),
                    ))
                    })?;
                below = cur.below;
                // A cursor into a folder not opened yet carries no UIDVALIDITY (0).
                expected_validity = Some(cur.uid_validity).filter(|v| *v != 0);
            }
            let mut items = Vec::new();
            while let Some(folder) = folders.get(index) {
                let opened = open_folder(c, folder, false).await?;
                if let Some(v) = expected_validity.take()
                    && v != opened.uid_validity
                {
                    return Err(MailboxError::Invalid(
                        "the folder was renumbered (its UIDVALIDITY changed) since this page token was issued; list again without it".into(),
                    )
                    .into());
                }
                let page = folder_page(
                    c,
                    folder,
                    opened.uid_validity,
                    query,
                    below,
                    size - items.len(),
                    key_ref,
                )
                .await?;
                items.extend(page.items);
                let next = match page.next_below {
                    Some(b) => Some(Cursor {
                        folder: folder.clone(),
                        uid_validity: opened.uid_validity,
                        below: Some(b),
                    }),
                    None => folders.get(index + 1).map(|f| Cursor {
                        folder: f.clone(),
                        uid_validity: 0,
                        below: None,
                    }),
                };
                if items.len() >= size || next.is_none() {
                    return Ok::<_, ImapFail>((items, next));
                }
                let next = next.unwrap_or_else(|| unreachable!("checked above"));
                if next.folder != *folder {
                    index += 1;
                }
                below = next.below;
            }
            Ok((items, None))
        })?;
        let next = next.map(|cur| self.pages.seal(&scope, &cur.encode()));
        Ok(Page { items, next })
    }

    async fn message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        body: Option<BodyKind>,
    ) -> Result<Message, Error> {
        let mid = &self.decode_id(mailbox, id)?;
        let limit = self.limit();
        let (mime, flags, date) = on_session!(self, mailbox, true, |c| mime_of(c, mid, id, limit))?;
        let base = message::summary(&Fetched {
            id: id.to_owned(),
            folder: mid.folder.clone(),
            flags,
            internal_date: date,
            ..Fetched::default()
        });
        message::message(&mime, base, body).ok_or_else(|| {
            MailboxError::Protocol("the message's MIME cannot be read".into()).into()
        })
    }

    async fn attachment(
        &self,
        mailbox: &MailboxRef,
        message_id: &str,
        attachment: &str,
    ) -> Result<Attachment, Error> {
        let mid = &self.decode_id(mailbox, message_id)?;
        if message::attachment_index(attachment).is_none() {
            return Err(not_found("attachment", attachment).into());
        }
        let limit = self.limit();
        let (mime, _, _) =
            on_session!(self, mailbox, true, |c| mime_of(c, mid, message_id, limit))?;
        let (info, content) = message::attachment(&mime, attachment)
            .ok_or_else(|| not_found("attachment", attachment))?;
        Ok(Attachment {
            info,
            content: ByteStream::from_bytes(content),
        })
    }

    async fn mime(&self, mailbox: &MailboxRef, id: &str) -> Result<ByteStream, Error> {
        let mid = &self.decode_id(mailbox, id)?;
        let limit = self.limit();
        let (mime, _, _) = on_session!(self, mailbox, true, |c| mime_of(c, mid, id, limit))?;
        Ok(ByteStream::from_bytes(mime))
    }

    /// One `UID FETCH` per folder for many messages (batches of [`MIME_BATCH`] and at most
    /// [`MIME_BATCH_BYTES`]); each message has its own result.
    async fn mime_many(
        &self,
        mailbox: &MailboxRef,
        ids: &[String],
    ) -> Result<Vec<Result<Vec<u8>, Error>>, Error> {
        let mut out: Vec<Option<Result<Vec<u8>, Error>>> = (0..ids.len()).map(|_| None).collect();
        // Positions by folder and UIDVALIDITY.
        let mut groups: Vec<((String, u32), Vec<(usize, u32)>)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.decode_id(mailbox, id) {
                Ok(m) => {
                    let k = (m.folder, m.uid_validity);
                    match groups.iter_mut().find(|(g, _)| *g == k) {
                        Some((_, v)) => v.push((i, m.uid)),
                        None => groups.push((k, vec![(i, m.uid)])),
                    }
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let limit = self.limit();
        for ((folder, validity), members) in groups {
            let members_ref = &members;
            let folder_ref = folder.as_str();
            let fetched = on_session!(self, mailbox, true, |c| async {
                let probe = MessageId {
                    folder: folder_ref.to_owned(),
                    uid_validity: validity,
                    uid: 1,
                };
                let mut got: HashMap<u32, Result<Vec<u8>, MailboxError>> = HashMap::new();
                match open_message(c, &probe, "", false).await {
                    Ok(_) => {}
                    Err(ImapFail::Answer(Error::Mailbox(MailboxError::NotFound { .. }))) => {
                        return Ok::<_, ImapFail>(got);
                    }
                    Err(e) => return Err(e),
                }
                let uids: Vec<u32> = members_ref.iter().map(|(_, u)| *u).collect();
                let mut sizes = HashMap::new();
                for chunk in uids.chunks(FETCH_BATCH) {
                    for f in fetch(c, chunk, "(UID FLAGS RFC822.SIZE)").await? {
                        if let Some(uid) = f.uid
                            && !flags_of(&f).deleted
                        {
                            sizes.insert(uid, u64::from(f.size.unwrap_or(0)));
                        }
                    }
                }
                let mut batch: Vec<u32> = Vec::new();
                let mut batch_bytes = 0u64;
                let mut wanted: Vec<u32> = Vec::new();
                for uid in &uids {
                    match sizes.get(uid) {
                        Some(size) if *size > limit => {
                            got.insert(*uid, Err(MailboxError::TooLarge { limit }));
                        }
                        Some(_) => wanted.push(*uid),
                        None => {}
                    }
                }
                wanted.dedup();
                for uid in wanted {
                    let size = sizes.get(&uid).copied().unwrap_or(0);
                    if !batch.is_empty()
                        && (batch.len() >= MIME_BATCH || batch_bytes + size > MIME_BATCH_BYTES)
                    {
                        for (u, m) in bodies(c, &batch).await? {
                            got.insert(u, Ok(m));
                        }
                        batch.clear();
                        batch_bytes = 0;
                    }
                    batch.push(uid);
                    batch_bytes += size;
                }
                if !batch.is_empty() {
                    for (u, m) in bodies(c, &batch).await? {
                        got.insert(u, Ok(m));
                    }
                }
                Ok(got)
            });
            match fetched {
                Ok(mut got) => {
                    for (i, uid) in &members {
                        out[*i] = Some(match got.remove(uid) {
                            Some(r) => r.map_err(Error::from),
                            None => Err(not_found("message", &ids[*i]).into()),
                        });
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    for (i, _) in &members {
                        out[*i] = Some(Err(MailboxError::Transport(format!(
                            "its batch failed: {why}"
                        ))
                        .into()));
                    }
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(MailboxError::Protocol("no answer for this message".into()).into())
                })
            })
            .collect())
    }

    async fn send(&self, _mailbox: &MailboxRef, _message: &NewMessage) -> Result<(), Error> {
        Err(self.sending())
    }

    async fn reply(
        &self,
        _mailbox: &MailboxRef,
        _id: &str,
        _comment: &str,
        _all: bool,
    ) -> Result<(), Error> {
        Err(self.sending())
    }

    async fn forward(
        &self,
        _mailbox: &MailboxRef,
        _id: &str,
        _to: &[Recipient],
        _comment: &str,
    ) -> Result<(), Error> {
        Err(self.sending())
    }

    async fn move_message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &FolderRef,
    ) -> Result<String, Error> {
        let mid = &self.decode_id(mailbox, id)?;
        let key = self.key(mailbox)?;
        let key_ref = key.as_str();
        on_session!(self, mailbox, false, |c| async {
            let dest = resolve(c, to).await?;
            open_message(c, mid, id, true).await?;
            meta(c, mid.uid, id).await?;
            if dest == mid.folder {
                return Ok::<_, ImapFail>(id.to_owned());
            }
            match move_uid(c, mid.uid, &dest).await? {
                Some((validity, uid)) => Ok(MessageId {
                    folder: dest,
                    uid_validity: validity,
                    uid,
                }
                .encode(key_ref)),
                None => Err(MailboxError::Protocol(format!(
                    "the server moved the message to {dest} but did not say its new UID (no COPYUID); list {dest} to find it"
                ))
                .into()),
            }
        })
    }

    async fn delete_message(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        let mid = &self.decode_id(mailbox, id)?;
        on_session!(self, mailbox, false, |c| async {
            let trash = resolve(c, &FolderRef::WellKnown(WellKnownFolder::DeletedItems))
                .await
                .ok();
            open_message(c, mid, id, true).await?;
            meta(c, mid.uid, id).await?;
            match trash {
                // As Outlook does: into Deleted Items, and from there for good.
                Some(trash) if trash != mid.folder => {
                    move_uid(c, mid.uid, &trash).await?;
                }
                _ => {
                    let uid = mid.uid;
                    raw(
                        &mut c.session,
                        &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
                        "UID STORE",
                    )
                    .await?;
                    if c.caps.uidplus {
                        raw(&mut c.session, &format!("UID EXPUNGE {uid}"), "UID EXPUNGE").await?;
                    }
                }
            }
            Ok::<_, ImapFail>(())
        })
    }

    async fn set_read(&self, mailbox: &MailboxRef, id: &str, read: bool) -> Result<(), Error> {
        let mid = &self.decode_id(mailbox, id)?;
        on_session!(self, mailbox, true, |c| async {
            open_message(c, mid, id, true).await?;
            meta(c, mid.uid, id).await?;
            let sign = if read { '+' } else { '-' };
            raw(
                &mut c.session,
                &format!("UID STORE {} {sign}FLAGS.SILENT (\\Seen)", mid.uid),
                "UID STORE",
            )
            .await?;
            Ok::<_, ImapFail>(())
        })
    }

    async fn changes(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<FolderChanges, Error> {
        let key = self.key(mailbox)?;
        let name = self.resolve(mailbox, folder).await?;
        let scope = self.scope("changes", &key, digest(&[&name]));
        let before = match state {
            Some(token) => Some(
                SyncState::decode(&self.pages.open(&scope, token)?)
                    .ok_or_else(|| MailboxError::Invalid("a damaged sync token".into()))?,
            ),
            None => None,
        };
        let key_ref = key.as_str();
        let name_ref = name.as_str();
        let before_ref = before.as_ref();
        let (now, diff, changed) = on_session!(self, mailbox, true, |c| async {
            let opened = open_folder(c, name_ref, false).await?;
            let now = snapshot(c, opened).await?;
            let diff = SyncState::diff(before_ref, &now);
            let changed = summaries(c, name_ref, now.uid_validity, &diff.changed, key_ref).await?;
            Ok::<_, ImapFail>((now, diff, changed))
        })?;
        let removed = match &before {
            Some(b) if !diff.reset => diff
                .removed
                .iter()
                .map(|uid| {
                    MessageId {
                        folder: name.clone(),
                        uid_validity: b.uid_validity,
                        uid: *uid,
                    }
                    .encode(&key)
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(FolderChanges {
            changed,
            removed,
            state: self.pages.seal(&scope, &now.encode()),
            reset: diff.reset,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_page_state_decodes_or_is_refused(s in "\\PC{0,80}") {
            if let Some(c) = Cursor::decode(&s) {
                prop_assert_eq!(Cursor::decode(&c.encode()), Some(c));
            }
        }

        #[test]
        fn any_server_text_is_read_without_panic(s in "\\PC{0,400}") {
            let text = session::server_text(&s);
            prop_assert!(text.chars().count() <= 300);
            prop_assert!(!text.chars().any(char::is_control));
            let _ = session::busy(&s);
        }
    }

    #[test]
    fn a_cursor_round_trips() {
        let c = Cursor {
            folder: "INBOX/a\nb".into(),
            uid_validity: 9,
            below: Some(40),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let top = Cursor {
            folder: "Sent Items".into(),
            uid_validity: 0,
            below: None,
        };
        assert_eq!(Cursor::decode(&top.encode()), Some(top));
        assert_eq!(Cursor::decode("x\n1\nINBOX"), None);
        assert_eq!(Cursor::decode("1\n1"), None);
    }

    #[test]
    fn refusals_are_found_again_in_the_error() {
        let e = refused(
            ImapRefusal::NotConnected,
            "sales@contoso.com",
            "User is authenticated but not connected.",
            "contoso",
        );
        assert_eq!(ImapRefusal::of(&e), Some(ImapRefusal::NotConnected));
        let text = e.to_string();
        assert!(
            text.contains("IMAP") && text.contains("sales@contoso.com"),
            "{text}"
        );
        assert!(
            text.contains("BAD User is authenticated but not connected."),
            "{text}"
        );
        assert!(
            matches!(&e, Error::Mailbox(m) if m.hint().is_some_and(|h| h.contains("exgate connection test contoso")))
        );
        assert_eq!(
            ImapRefusal::of(&MailboxError::Invalid("x".into()).into()),
            None
        );
    }
}
