//! The backend-neutral mailbox: what the CLI and the gateway call, whichever API (Microsoft Graph
//! for Exchange Online, EWS for Exchange Server) carries it.

mod recurrence;
mod timezone;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Error;
pub use crate::pipeline::ByteStream;

pub use recurrence::{
    DayOfWeek, InvalidRecurrence, Recurrence, RecurrencePattern, RecurrenceRange, WeekIndex,
};
pub use timezone::{TimeZone, UnknownTimeZone};
pub use types::{
    AttachmentInfo, Attendee, AttendeeKind, Body, BodyKind, BusySlot, Contact, ContactDraft, Event,
    EventDraft, EventKind, EventTime, FlagStatus, Folder, FolderChanges, FolderRef, FreeBusy,
    Importance, MailboxRef, Message, MessageQuery, MessageSummary, NewAttachment, NewMessage, Page,
    Recipient, Response, Sensitivity, ShowAs, WellKnownFolder, parse_local_date_time,
};

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    /// Create, change, move or delete.
    Write,
    Send,
}

/// Which part of a mailbox an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    Mail,
    Calendar,
    Contacts,
}

/// An operation on a mailbox: what is done to which part. Each backend names the permissions or
/// rights an operation needs in its own terms (Graph: `graph::permissions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation {
    action: Action,
    capability: Capability,
}

impl Operation {
    pub const READ_MAIL: Self = Self::new(Action::Read, Capability::Mail);
    pub const WRITE_MAIL: Self = Self::new(Action::Write, Capability::Mail);
    pub const SEND_MAIL: Self = Self::new(Action::Send, Capability::Mail);
    pub const READ_CALENDAR: Self = Self::new(Action::Read, Capability::Calendar);
    pub const WRITE_CALENDAR: Self = Self::new(Action::Write, Capability::Calendar);
    pub const READ_CONTACTS: Self = Self::new(Action::Read, Capability::Contacts);
    pub const WRITE_CONTACTS: Self = Self::new(Action::Write, Capability::Contacts);

    /// Every operation there is.
    pub const ALL: [Self; 7] = [
        Self::READ_MAIL,
        Self::WRITE_MAIL,
        Self::SEND_MAIL,
        Self::READ_CALENDAR,
        Self::WRITE_CALENDAR,
        Self::READ_CONTACTS,
        Self::WRITE_CONTACTS,
    ];

    const fn new(action: Action, capability: Capability) -> Self {
        Self { action, capability }
    }

    pub fn action(self) -> Action {
        self.action
    }

    pub fn capability(self) -> Capability {
        self.capability
    }

    /// What it does, for messages: "read mail", "change the calendar".
    pub fn name(self) -> &'static str {
        match (self.action, self.capability) {
            (Action::Read, Capability::Mail) => "read mail",
            (Action::Write, Capability::Mail) => "change mail",
            (Action::Send, Capability::Mail) => "send mail",
            (Action::Read, Capability::Calendar) => "read the calendar",
            (Action::Write, Capability::Calendar) => "change the calendar",
            // Invitations go out as mail from the calendar.
            (Action::Send, Capability::Calendar) => "send invitations",
            (Action::Read, Capability::Contacts) => "read contacts",
            (Action::Write | Action::Send, Capability::Contacts) => "change contacts",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// ` (request ID …)` after an error's message; nothing when the server gave no ID (EWS answers
/// without one).
fn request_id_note(request_id: &str) -> String {
    if request_id.is_empty() {
        String::new()
    } else {
        format!(" (request ID {request_id})")
    }
}

/// Why a mailbox call failed. Every variant says what to do; none holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MailboxError {
    #[error("{what} `{id}` was not found in the mailbox{}", request_id_note(.request_id))]
    NotFound {
        what: &'static str,
        id: String,
        request_id: String,
    },
    #[error("the mailbox `{mailbox}` does not exist or is not visible to this connection")]
    UnknownMailbox { mailbox: String },
    /// The credentials lack the permission (Graph) or right (EWS) the operation needs; the
    /// backend names it in its own terms.
    #[error(
        "cannot {operation}: the token has no {permission}; add it under API permissions and grant admin consent{}",
        request_id_note(.request_id)
    )]
    MissingPermission {
        operation: &'static str,
        permission: &'static str,
        request_id: String,
    },
    /// The token has the permission, but the server still refused (mailbox rights, policies).
    #[error("cannot {operation}: {message}{}", request_id_note(.request_id))]
    Forbidden {
        operation: &'static str,
        message: String,
        hint: String,
        request_id: String,
    },
    /// A mail server (IMAP, POP, SMTP) refused the sign-in or the mailbox with one of
    /// Exchange's uninformative answers. `refusal` names which, in the protocol's terms (IMAP:
    /// [`crate::mail::imap::ImapRefusal::code`]), for the connection test to explain with fixes.
    #[error("{protocol} refused access to the mailbox {mailbox}: the server answered `{answer}`")]
    MailRefused {
        protocol: &'static str,
        refusal: &'static str,
        mailbox: String,
        answer: String,
        hint: String,
    },
    #[error("the server rejected the token: {message}")]
    Unauthorized { message: String },
    #[error("the mailbox server is throttling this mailbox; retry after {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: std::time::Duration },
    /// An item over the configured size limit.
    #[error(
        "the item is larger than {} MiB, the most exgate reads or sends (limits.max_item_mb)",
        limit / (1024 * 1024)
    )]
    TooLarge { limit: u64 },
    /// The content could not be written where it was going (a file, a client).
    #[error("the content could not be written: {0}")]
    Sink(String),
    #[error(
        "the server refused the request ({status} {code}): {message}{}",
        request_id_note(.request_id)
    )]
    Rejected {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("the server failed ({status} {code}): {message}{}", request_id_note(.request_id))]
    Server {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("the mailbox server could not be reached: {0}")]
    Transport(String),
    #[error("the server's answer cannot be read: {0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    /// IMAP, POP or SMTP failed: explained with a code and the fix (see `mail::explain`).
    #[error("{0}")]
    Mail(crate::mail::MailFailure),
}

impl From<crate::mail::MailFailure> for MailboxError {
    fn from(e: crate::mail::MailFailure) -> Self {
        Self::Mail(e)
    }
}

impl From<crate::mail::MailFailure> for crate::Error {
    fn from(e: crate::mail::MailFailure) -> Self {
        Self::Mailbox(MailboxError::Mail(e))
    }
}

impl From<InvalidRecurrence> for MailboxError {
    fn from(e: InvalidRecurrence) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<UnknownTimeZone> for MailboxError {
    fn from(e: UnknownTimeZone) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl MailboxError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Server { .. } | Self::Transport(_)
        ) || matches!(self, Self::Mail(m) if m.kind == crate::mail::FailureKind::Transient)
    }

    /// What to do, when the message alone does not say.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Self::Forbidden { hint, .. } | Self::MailRefused { hint, .. } => Some(hint),
            Self::Mail(m) => Some(&m.hint),
            _ => None,
        }
    }
}

/// Mail: folders, messages, MIME, attachments, sending. Every method takes the mailbox it acts
/// on: the caller's own (`MailboxRef::Me`) or another one by address.
#[async_trait]
pub trait Mail: Send + Sync + std::fmt::Debug {
    async fn folders(&self, mailbox: &MailboxRef) -> Result<Vec<Folder>, Error>;
    /// One page of messages; pass the previous page's `next` to continue. Page tokens are bound
    /// to the mailbox, folder and query they were issued for.
    async fn messages(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        page: Option<&str>,
    ) -> Result<Page<MessageSummary>, Error>;
    /// A whole message; `body` asks for the body as text or HTML (default: as stored).
    async fn message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        body: Option<BodyKind>,
    ) -> Result<Message, Error>;
    /// An attachment's metadata, and its content as it arrives.
    async fn attachment(
        &self,
        mailbox: &MailboxRef,
        message: &str,
        attachment: &str,
    ) -> Result<Attachment, Error>;
    /// The message as MIME (RFC 5322), as it arrives.
    async fn mime(&self, mailbox: &MailboxRef, id: &str) -> Result<ByteStream, Error>;
    /// Several messages as MIME, each with its own result (in `ids` order). A backend that can
    /// batch does; a failure of one never fails the others.
    async fn mime_many(
        &self,
        mailbox: &MailboxRef,
        ids: &[String],
    ) -> Result<Vec<Result<Vec<u8>, Error>>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(match self.mime(mailbox, id).await {
                Ok(body) => body.into_bytes().await.map_err(Error::from),
                Err(e) => Err(e),
            });
        }
        Ok(out)
    }
    /// Sends a message. A retry after a timeout never delivers it twice.
    async fn send(&self, mailbox: &MailboxRef, message: &NewMessage) -> Result<(), Error>;
    async fn reply(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        comment: &str,
        all: bool,
    ) -> Result<(), Error>;
    async fn forward(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &[Recipient],
        comment: &str,
    ) -> Result<(), Error>;
    /// Moves a message; returns its new ID.
    async fn move_message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &FolderRef,
    ) -> Result<String, Error>;
    async fn delete_message(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error>;
    async fn set_read(&self, mailbox: &MailboxRef, id: &str, read: bool) -> Result<(), Error>;
    /// What changed in a folder since `state` (all of it when `None`). The state is bound to
    /// the mailbox and folder it was issued for.
    async fn changes(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<FolderChanges, Error>;
}

/// Calendar events.
#[async_trait]
pub trait Calendar: Send + Sync + std::fmt::Debug {
    /// Events overlapping a range, recurrences expanded, times in `time_zone` (default UTC).
    async fn events(
        &self,
        mailbox: &MailboxRef,
        start: OffsetDateTime,
        end: OffsetDateTime,
        time_zone: Option<&TimeZone>,
    ) -> Result<Vec<Event>, Error>;
    async fn create_event(&self, mailbox: &MailboxRef, event: &EventDraft) -> Result<Event, Error>;
    async fn update_event(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        change: &EventDraft,
    ) -> Result<Event, Error>;
    async fn delete_event(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error>;
}

/// Free/busy of several mailboxes at once.
#[async_trait]
pub trait Availability: Send + Sync + std::fmt::Debug {
    async fn free_busy(
        &self,
        mailbox: &MailboxRef,
        who: &[String],
        start: OffsetDateTime,
        end: OffsetDateTime,
        interval_minutes: u32,
    ) -> Result<Vec<FreeBusy>, Error>;
}

/// Contacts.
#[async_trait]
pub trait Contacts: Send + Sync + std::fmt::Debug {
    async fn contacts(
        &self,
        mailbox: &MailboxRef,
        page: Option<&str>,
    ) -> Result<Page<Contact>, Error>;
    async fn contact(&self, mailbox: &MailboxRef, id: &str) -> Result<Contact, Error>;
    async fn create_contact(
        &self,
        mailbox: &MailboxRef,
        contact: &ContactDraft,
    ) -> Result<Contact, Error>;
    async fn update_contact(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        change: &ContactDraft,
    ) -> Result<Contact, Error>;
    async fn delete_contact(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error>;
}

/// An attachment's metadata and its content, streamed.
#[derive(Debug)]
pub struct Attachment {
    pub info: AttachmentInfo,
    pub content: ByteStream,
}

/// What a connection's backend can do: each capability its protocol has (Graph and EWS have
/// all; IMAP and POP only mail).
#[derive(Debug, Clone)]
pub struct Backend {
    /// The protocol, as people call it ("Microsoft Graph").
    pub protocol: &'static str,
    pub mail: Option<Arc<dyn Mail>>,
    pub calendar: Option<Arc<dyn Calendar>>,
    pub availability: Option<Arc<dyn Availability>>,
    pub contacts: Option<Arc<dyn Contacts>>,
    /// How it tells of changes, if it can: pushed to a URL (Graph subscriptions) or heard over
    /// a held connection (EWS streaming, IMAP IDLE). A backend with neither is polled.
    pub push: Option<Arc<dyn crate::notify::Push>>,
    pub listen: Option<Arc<dyn crate::notify::Listen>>,
}

impl Backend {
    /// A backend with every capability, all served by `b`.
    pub fn full<B: Mail + Calendar + Availability + Contacts + 'static>(
        protocol: &'static str,
        b: Arc<B>,
    ) -> Self {
        Self {
            protocol,
            mail: Some(Arc::clone(&b) as Arc<dyn Mail>),
            calendar: Some(Arc::clone(&b) as Arc<dyn Calendar>),
            availability: Some(Arc::clone(&b) as Arc<dyn Availability>),
            contacts: Some(b as Arc<dyn Contacts>),
            push: None,
            listen: None,
        }
    }

    fn lacks(&self, what: &str) -> Error {
        MailboxError::Unsupported(format!(
            "this connection reaches the mailbox over {}, which has no {what}; use a connection with the Graph or EWS backend",
            self.protocol
        ))
        .into()
    }

    pub fn mail(&self) -> Result<&dyn Mail, Error> {
        self.mail.as_deref().ok_or_else(|| self.lacks("mail"))
    }
    /// The mail capability, to hand to a task (an export).
    pub fn mail_handle(&self) -> Result<Arc<dyn Mail>, Error> {
        self.mail.clone().ok_or_else(|| self.lacks("mail"))
    }
    pub fn calendar(&self) -> Result<&dyn Calendar, Error> {
        self.calendar
            .as_deref()
            .ok_or_else(|| self.lacks("calendar"))
    }
    pub fn availability(&self) -> Result<&dyn Availability, Error> {
        self.availability
            .as_deref()
            .ok_or_else(|| self.lacks("free/busy lookup"))
    }
    pub fn contacts(&self) -> Result<&dyn Contacts, Error> {
        self.contacts
            .as_deref()
            .ok_or_else(|| self.lacks("contacts"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_shown_only_when_the_server_gave_one() {
        let forbidden = |request_id: &str| MailboxError::Forbidden {
            operation: "use the mailbox",
            message: "denied".into(),
            hint: String::new(),
            request_id: request_id.into(),
        };
        assert_eq!(forbidden("").to_string(), "cannot use the mailbox: denied");
        assert_eq!(
            forbidden("abc-1").to_string(),
            "cannot use the mailbox: denied (request ID abc-1)"
        );
    }
}
