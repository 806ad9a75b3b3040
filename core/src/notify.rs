//! Change notifications: a mailbox's changes as events applications receive (issue 16).
//!
//! The shape, from the mailbox to the application:
//!
//! ```text
//! backend signal (Graph push to the gateway's URL | EWS streaming | IMAP IDLE | a timer)
//!   -> engine: the watch syncs its folders from the stored sync state (Mail::changes,
//!      a calendar window), compares with the items it knew, and commits — in one
//!      transaction — the new sync state, the items and the events (NotifyStore::commit_sync)
//!   -> journal (events, in order, each with an ID usable as an idempotency key)
//!   -> delivery: webhooks (signed, retried, in order, dead letters) and SSE streams
//! ```
//!
//! A signal only says "look now": what is reported comes from the sync, so a signal lost,
//! doubled or forged changes nothing but when the next sync runs, and after any gap (a restart,
//! dropped notifications, an expired subscription) the next sync reports every change once.

pub mod delivery;
pub mod engine;
pub mod event;
pub mod store;
pub mod webhook;

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;

use crate::Error;
use crate::mailbox::{FolderRef, MailboxRef};
use crate::secret::Secret;

pub use delivery::{Delivery, DeliveryOptions};
pub use engine::{
    Lifecycle, NewWatch, Notifier, NotifySettings, Pushed, PushedOutcome, WatchAccess,
};
pub use event::{ChangeEvent, EventKind};
pub use store::NotifyStore;

/// What a watch follows in its mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Watched {
    /// The messages of one mail folder.
    Mail { folder: FolderRef },
    /// The events of the mailbox's default calendar.
    Calendar,
}

/// What a backend's listener tells the engine: look now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Something changed in what the watch follows (`None`: in any of it).
    Changed(Option<Watched>),
    /// Notifications may have been missed (the listener reconnected, the server said so): a
    /// full catch-up of everything the watch follows.
    Gap,
}

/// A held connection that hears of changes (EWS streaming or pull, IMAP IDLE).
#[async_trait]
pub trait Listener: Send + Debug {
    /// Waits for the next signal. An error ends the listener: the engine opens a new one
    /// after a back-off and catches up (a [`Signal::Gap`]).
    async fn next(&mut self) -> Result<Signal, Error>;
}

/// A backend that is listened to over a connection it holds (EWS, IMAP).
#[async_trait]
pub trait Listen: Send + Sync + Debug {
    /// Starts listening for changes to `watched` in `mailbox`.
    async fn listen(
        &self,
        mailbox: &MailboxRef,
        watched: &[Watched],
    ) -> Result<Box<dyn Listener>, Error>;
}

/// A subscription a push backend (Microsoft Graph) keeps for a watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    /// The backend's ID of the subscription.
    pub id: String,
    pub watched: Watched,
    /// When the backend forgets it unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// Where and how a push backend delivers: the gateway's public URLs and the secret each
/// notification must carry.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// Change notifications (Graph: `notificationUrl`).
    pub notification_url: Url,
    /// Lifecycle notifications (Graph: `lifecycleNotificationUrl`).
    pub lifecycle_url: Url,
    /// Sent with every notification (Graph: `clientState`, at most 128 characters); a
    /// notification without it is refused.
    pub client_state: Secret,
    /// The expiry asked for; the backend may grant less (the answer says).
    pub expires: OffsetDateTime,
}

/// A backend that pushes notifications to a URL (Microsoft Graph subscriptions).
#[async_trait]
pub trait Push: Send + Sync + Debug {
    /// Creates a subscription for `watched` in `mailbox` (the backend validates the URL).
    async fn subscribe(
        &self,
        mailbox: &MailboxRef,
        watched: &Watched,
        target: &PushTarget,
    ) -> Result<PushSubscription, Error>;
    /// Extends a subscription; answers the expiry granted. A subscription the backend no longer
    /// has is [`crate::mailbox::MailboxError::NotFound`]: the engine subscribes again.
    async fn renew(&self, id: &str, expires: OffsetDateTime) -> Result<OffsetDateTime, Error>;
    /// Reauthorizes a subscription after a `reauthorizationRequired` lifecycle notification.
    async fn reauthorize(&self, id: &str) -> Result<(), Error>;
    /// Deletes a subscription (one already gone is not an error).
    async fn unsubscribe(&self, id: &str) -> Result<(), Error>;
}
