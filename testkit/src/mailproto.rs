//! What the mock IMAP, POP and SMTP servers share, below them (they never import one another):
//! the state they read ([`MailState`]: directory, mail store, clock, the token key, switches,
//! recorded sessions), Exchange Online's authentication and authorization of a mailbox
//! ([`auth`]: SASL XOAUTH2 and PLAIN, the token checks, the service principal and its
//! mailbox rights, the protocol settings), and the line-based connection plumbing with
//! implicit TLS and STARTTLS ([`conn`]).

pub(crate) mod auth;
pub(crate) mod conn;
pub(crate) mod folders;
mod switches;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use serde::Serialize;

use crate::clock::Clock;
use crate::directory::Directory;
use crate::mailstore::MailStore;

pub use switches::{MailSwitchChange, MailSwitches, MailboxProtocols, ServicePrincipalSwitch};

/// The host name the mail servers give themselves (Exchange Online's are like
/// `AM3PR05CA0094.outlook.office365.com`).
pub(crate) const MAIL_HOST: &str = "EXGATEMOCK01.outlook.office365.com";

/// What Exchange puts in brackets after its IMAP and POP greetings: the serving host's name,
/// UTF-16LE, base64.
pub(crate) fn greeting_tag() -> String {
    use base64::Engine as _;
    let utf16: Vec<u8> = MAIL_HOST
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(utf16)
}

/// The mail protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailProtocol {
    Imap,
    Pop,
    Smtp,
}

/// One connection to a mock mail server, as recorded for assertions. Tokens and passwords are
/// never recorded: only that authentication happened, with which mechanism and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailSession {
    /// Unique per connection, in accept order.
    pub id: u64,
    pub protocol: MailProtocol,
    /// Implicit TLS or STARTTLS done.
    pub tls: bool,
    /// The SASL mechanism (`XOAUTH2`, `PLAIN`, `LOGIN`) or `USER/PASS`, once tried.
    pub mechanism: Option<String>,
    /// The mailbox the session was authenticated for (the XOAUTH2 `user=`).
    pub mailbox: Option<String>,
    /// `ok`, `failed`, `not_connected` (IMAP: authenticated, no mailbox), or Exchange's 5.7.139
    /// reasons (`smtp_disabled_mailbox`, `smtp_disabled_tenant`, `security_defaults`).
    pub outcome: Option<String>,
    /// App-only (a token with roles) rather than a user.
    pub app_only: bool,
    /// The commands in order: the verb and harmless arguments (folder names, envelope
    /// addresses), never credentials.
    pub commands: Vec<String>,
}

/// Extra IMAP flags the store has no field for (`\Deleted`, `\Answered`), per message.
pub(crate) type ExtraFlags = BTreeSet<&'static str>;

/// Mutable state shared by the mail servers.
#[derive(Debug)]
pub(crate) struct MailOwn {
    pub sessions: Vec<MailSession>,
    /// Open authenticated IMAP sessions per mailbox (lower case).
    pub imap_open: HashMap<String, usize>,
    pub imap_connection_limit: usize,
    /// UIDVALIDITY per (mailbox lower case, folder sequence number), once changed by a switch.
    pub uid_validity: HashMap<(String, u64), u32>,
    /// `\Deleted` and `\Answered` per (mailbox lower case, message sequence number).
    pub imap_flags: HashMap<(String, u64), ExtraFlags>,
    pub idle_timeout: Duration,
    pub max_message_size: usize,
}

/// What the mail servers share. Cloning shares it.
#[derive(Clone)]
pub struct MailState {
    pub(crate) directory: Directory,
    pub(crate) store: MailStore,
    pub(crate) clock: Clock,
    pub(crate) decoding: Arc<DecodingKey>,
    own: Arc<Mutex<MailOwn>>,
    /// The UIDVALIDITY base: the mock's start, so values stay stable for its life.
    pub(crate) epoch: u32,
}

impl std::fmt::Debug for MailState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailState").finish_non_exhaustive()
    }
}

/// Exchange Online's limit of simultaneous IMAP connections per mailbox.
pub const IMAP_CONNECTION_LIMIT: usize = 20;
/// The largest message SMTP takes: what Exchange Online's EHLO advertises (`SIZE 157286400`).
pub const MAX_MESSAGE_SIZE: usize = 157_286_400;
/// How long a connection may stay silent (IMAP's autologout is at least 30 minutes).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl MailState {
    pub(crate) fn new(
        directory: Directory,
        store: MailStore,
        clock: Clock,
        decoding: DecodingKey,
    ) -> Self {
        let epoch = u32::try_from(clock.now().unix_timestamp().rem_euclid(1 << 30)).unwrap_or(1);
        Self {
            directory,
            store,
            clock,
            decoding: Arc::new(decoding),
            own: Arc::new(Mutex::new(MailOwn {
                sessions: Vec::new(),
                imap_open: HashMap::new(),
                imap_connection_limit: IMAP_CONNECTION_LIMIT,
                uid_validity: HashMap::new(),
                imap_flags: HashMap::new(),
                idle_timeout: IDLE_TIMEOUT,
                max_message_size: MAX_MESSAGE_SIZE,
            })),
            epoch: epoch.max(1),
        }
    }

    pub(crate) fn own(&self) -> MutexGuard<'_, MailOwn> {
        self.own.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts recording a session; answers its ID.
    pub(crate) fn open_session(&self, protocol: MailProtocol, tls: bool) -> u64 {
        let mut own = self.own();
        let id = own.sessions.len() as u64 + 1;
        // A long-running mock keeps the last 10,000 sessions.
        if own.sessions.len() >= 10_000 {
            own.sessions.remove(0);
        }
        own.sessions.push(MailSession {
            id,
            protocol,
            tls,
            mechanism: None,
            mailbox: None,
            outcome: None,
            app_only: false,
            commands: Vec::new(),
        });
        id
    }

    /// Changes the recorded session `id`.
    pub(crate) fn record(&self, id: u64, change: impl FnOnce(&mut MailSession)) {
        let mut own = self.own();
        if let Some(session) = own.sessions.iter_mut().rev().find(|s| s.id == id) {
            change(session);
        }
    }

    /// Records a command of session `id` (at most 1,000 per session).
    pub(crate) fn record_command(&self, id: u64, command: impl Into<String>) {
        let command = command.into();
        self.record(id, |s| {
            if s.commands.len() < 1_000 {
                s.commands.push(command);
            }
        });
    }

    /// Every session so far, oldest first.
    pub fn sessions(&self) -> Vec<MailSession> {
        self.own().sessions.clone()
    }

    pub(crate) fn idle_timeout(&self) -> Duration {
        self.own().idle_timeout
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.own().max_message_size
    }

    /// The UIDVALIDITY of a folder: stable for the mock's life unless a switch changed it.
    pub(crate) fn uid_validity(&self, mailbox: &str, folder: u64) -> u32 {
        let key = (mailbox.to_ascii_lowercase(), folder);
        self.own()
            .uid_validity
            .get(&key)
            .copied()
            .unwrap_or_else(|| {
                self.epoch
                    .wrapping_add(u32::try_from(folder).unwrap_or(0))
                    .max(1)
            })
    }
}
