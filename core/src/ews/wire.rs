//! EWS on the wire, pure: typed requests that become complete SOAP 1.1 envelopes, and strict
//! decoders that turn EWS's answers into the neutral mailbox types. No I/O happens here.
//!
//! - [`envelope`]: the SOAP header ([`RequestContext`]: `RequestServerVersion` from the
//!   Exchange version, `ExchangeImpersonation`, `TimeZoneContext`; a delegate's mailbox in
//!   `DistinguishedFolderId/Mailbox`), folder and item IDs.
//! - [`response`]: the envelope of answers, SOAP faults, each message's `ResponseClass`,
//!   `ResponseCode`, `MessageText` and `BackOffMilliseconds`; [`errors`]: [`ResponseCode`] and
//!   [`EwsError`] with an explanation and a fix.
//! - one module per group of operations: [`folders`], [`mail`] (messages, attachments,
//!   moves, deletes, sends), [`calendar`] (events and recurrence), [`contacts`] (and
//!   `ResolveNames`), [`availability`] (free/busy) and [`sync`] (`SyncFolderItems`,
//!   `SyncFolderHierarchy`), [`notify`] (subscriptions, streamed and pulled events).
//!
//! Requests are written with fixed element names; every value is escaped, so no input can
//! change a document's structure. Answers are read with a pull parser (quick-xml's
//! `NsReader`) that checks namespaces, reads values strictly and skips what it does not need
//! without building a tree; nesting is bounded and no input panics.

pub mod availability;
pub mod calendar;
pub mod contacts;
pub mod envelope;
pub mod errors;
pub mod folders;
mod items;
pub mod mail;
pub mod notify;
mod recurrence;
pub mod response;
pub mod sync;
mod xml;

pub use availability::{GetUserAvailability, decode_get_user_availability};
pub use calendar::{
    CreateEvent, FindEvents, GetEvents, UpdateEvent, decode_find_events, decode_get_events,
};
pub use contacts::{
    CreateContact, FindContacts, GetContacts, ResolveNames, ResolvedName, UpdateContact,
    decode_find_contacts, decode_get_contacts, decode_resolve_names,
};
pub use envelope::{
    ConnectingSid, DistinguishedFolder, EwsRequest, FolderSpec, ItemId, MailboxAccess,
    RequestContext, RequestVersion,
};
pub use errors::{EWS_ONLINE_SHUTDOWN, EwsError, ResponseClass, ResponseCode};
pub use folders::{FindFolders, GetFolders, decode_find_folders, decode_get_folders};
pub use items::{
    ConflictResolution, DeleteItems, DeleteType, FoundItems, MAX_PAGE, MoveItems,
    decode_delete_items, decode_item_ids, decode_move_items,
};
pub use mail::{
    AttachmentContent, CreateAttachments, CreateMessage, FindMessages, FullMessage, GetAttachments,
    GetMessages, ReplyKind, ReplyMessage, SendItems, SetReadFlag, decode_create_attachments,
    decode_find_messages, decode_get_attachments, decode_get_messages, decode_send_items,
};
pub use notify::{
    ConnectionStatus, EnvelopeSplitter, GetStreamingEvents, Notification, NotificationEvent,
    PullEvents, StreamingEvents, Subscribe, Subscribed, SubscriptionKind, Unsubscribe,
    decode_pull_events, decode_streaming_events, decode_subscribe,
};
pub use recurrence::check_recurrence;
pub use response::{Decoded, ResponseMessage, ServerVersionInfo, decode_fault, find_busy};
pub use sync::{
    FolderHierarchyChanges, ItemChanges, SyncFolderHierarchy, SyncFolderItems,
    decode_sync_folder_hierarchy, decode_sync_folder_items,
};
pub use xml::{ERRORS, MESSAGES, SOAP, TYPES};

/// Why an answer could not be turned into a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The answer is a SOAP fault (usually with HTTP 500).
    #[error("EWS answered with a fault: {0}")]
    Fault(EwsError),
    /// The one response message the answer carried refused the request.
    #[error("EWS refused the request: {0}")]
    Refused(EwsError),
    /// The answer is not a well-formed EWS answer of the expected operation.
    #[error("the EWS answer cannot be read: {0}")]
    Malformed(String),
}

impl WireError {
    pub(crate) fn malformed(why: impl Into<String>) -> Self {
        Self::Malformed(why.into())
    }

    /// The EWS error, for a fault or a refusal.
    pub fn ews(&self) -> Option<&EwsError> {
        match self {
            Self::Fault(e) | Self::Refused(e) => Some(e),
            Self::Malformed(_) => None,
        }
    }
}
