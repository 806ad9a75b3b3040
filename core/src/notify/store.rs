//! What notifications keep in the store: watches with their sync state and known items, the
//! journal of events, webhooks with their delivery position, and dead letters.
//!
//! SQLite, PostgreSQL and the memory store implement [`NotifyStore`]
//! ([`crate::store::Store::notifications`]); every method is atomic.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::apikeys::ApiKeyId;
use crate::model::{ConnectionId, Principal, WatchId, WebhookId};
use crate::secret::Secret;
use crate::store::StoreError;

use super::{ChangeEvent, EventKind, Watched};

/// A watch: a mailbox (reached as a principal on a connection) whose changes become events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRow {
    pub id: WatchId,
    pub connection: ConnectionId,
    pub principal: Principal,
    /// Another mailbox than the principal's own (shared, delegated), by address.
    pub mailbox: Option<String>,
    pub watched: Vec<Watched>,
    /// The API key that created it (`None`: an admin).
    pub api_key: Option<ApiKeyId>,
    pub created_at: OffsetDateTime,
}

/// A watch's state between syncs, as the engine wrote it (sync states, push subscriptions,
/// the `clientState` secret: one sealed document) and its version, which
/// [`NotifyStore::commit_sync`] checks.
#[derive(Debug, Clone)]
pub struct WatchState {
    /// 0 before the first commit.
    pub version: i64,
    /// `None` before the first commit.
    pub document: Option<Secret>,
}

/// An item a watch knows, in one of its scopes (`mail:<folder>` or `calendar`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownItem {
    pub item_id: String,
    /// Changes when the item changes in a way that is reported (`updated`).
    pub version: String,
    /// What the engine needs besides (a message's `internetMessageId`, to tell a move from a
    /// deletion and a creation; an event's end, to tell an event that left the window).
    pub extra: String,
}

/// The outcome of one sync of a watch, committed in one transaction by
/// [`NotifyStore::commit_sync`].
#[derive(Debug, Clone)]
pub struct SyncCommit {
    pub watch: WatchId,
    /// The [`WatchState::version`] the sync started from: when another sync (another gateway)
    /// committed since, nothing is written and the answer is [`StoreError::Conflict`].
    pub expected_version: i64,
    /// The watch's new state document.
    pub document: Secret,
    /// Items added or changed, by scope.
    pub upsert: Vec<(String, KnownItem)>,
    /// Items gone, by scope and ID.
    pub remove: Vec<(String, String)>,
    /// Events to append to the journal (their `seq` is assigned here; an event whose ID the
    /// watch's journal holds already is skipped).
    pub events: Vec<ChangeEvent>,
}

/// Which events a reader of the journal wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub connection: ConnectionId,
    /// Only those of this principal.
    pub principal: Option<Principal>,
    /// Only those of this mailbox (an address; case does not matter).
    pub mailbox: Option<String>,
    /// Only these kinds (empty: every kind).
    pub kinds: Vec<EventKind>,
}

impl EventFilter {
    /// Whether `event` (of `connection`) passes.
    pub fn matches(&self, connection: ConnectionId, event: &ChangeEvent) -> bool {
        connection == self.connection
            && self
                .principal
                .as_ref()
                .is_none_or(|p| p.as_str() == event.principal)
            && self.mailbox.as_deref().is_none_or(|m| {
                event
                    .mailbox
                    .as_deref()
                    .unwrap_or(&event.principal)
                    .eq_ignore_ascii_case(m)
            })
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
    }
}

/// A webhook: where an application receives the events its filter passes.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: WebhookId,
    /// The API key that registered it (`None`: an admin).
    pub api_key: Option<ApiKeyId>,
    /// The events it receives (its connection, and optionally principal, mailbox, kinds).
    pub filter: EventFilter,
    /// Where events are POSTed (https, or http to a loopback address).
    pub url: String,
    /// The HMAC key of its signatures (sealed in the store).
    pub secret: Secret,
    pub created_at: OffsetDateTime,
    pub progress: WebhookProgress,
}

/// How far a webhook's delivery is: every event up to `cursor` was delivered or dead-lettered;
/// the next one matching its filter has failed `attempts` times and is tried again at
/// `next_attempt_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookProgress {
    pub cursor: i64,
    pub attempts: u32,
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Why the last attempt failed (status or transport error; never a body or a secret).
    pub last_error: Option<String>,
    /// When the next event first failed (`None` while nothing fails): it becomes a dead letter
    /// once it has failed for longer than the delivery's `retry_for`. A store that does not keep
    /// it answers `None`, and delivery estimates it from `attempts` and the back-off.
    pub first_failed_at: Option<OffsetDateTime>,
}

/// An event a webhook gave up on, kept for the admin to see and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub webhook: WebhookId,
    pub event: ChangeEvent,
    pub attempts: u32,
    pub last_error: String,
    pub failed_at: OffsetDateTime,
    /// An admin asked for it to be delivered again.
    pub replay: bool,
}

/// The notification state of a store.
#[async_trait]
pub trait NotifyStore: Send + Sync + std::fmt::Debug {
    // ---- watches ----

    async fn insert_watch(&self, watch: &WatchRow) -> Result<(), StoreError>;
    async fn watch(&self, id: WatchId) -> Result<Option<WatchRow>, StoreError>;
    /// Every watch (of every connection), oldest first.
    async fn watches(&self) -> Result<Vec<WatchRow>, StoreError>;
    /// Deletes the watch with its state and known items (its journal entries stay until
    /// purged). False if there is none.
    async fn delete_watch(&self, id: WatchId) -> Result<bool, StoreError>;
    async fn watch_state(&self, id: WatchId) -> Result<Option<WatchState>, StoreError>;
    /// The items the watch knows in `scope`.
    async fn known_items(&self, id: WatchId, scope: &str) -> Result<Vec<KnownItem>, StoreError>;
    /// Commits a sync ([`SyncCommit`]) and answers the events appended, with their `seq`.
    async fn commit_sync(&self, commit: &SyncCommit) -> Result<Vec<ChangeEvent>, StoreError>;
    /// Takes (or keeps) the watch for `owner` until `until`, unless another owner holds it past
    /// `now`. Several gateways on one store: one of them runs each watch.
    async fn claim_watch(
        &self,
        id: WatchId,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Gives the watch up (a gateway stopping) if `owner` holds it.
    async fn release_watch(&self, id: WatchId, owner: &str) -> Result<(), StoreError>;

    // ---- the journal ----

    /// Events after `after` (by `seq`) that `filter` passes, oldest first, at most `limit`.
    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<ChangeEvent>, StoreError>;
    /// The highest `seq` in the journal (0 when empty).
    async fn last_event_seq(&self) -> Result<i64, StoreError>;
    /// Forgets events committed before `before`. Answers how many.
    async fn purge_events(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    // ---- webhooks ----

    async fn insert_webhook(&self, webhook: &WebhookRow) -> Result<(), StoreError>;
    async fn webhook(&self, id: WebhookId) -> Result<Option<WebhookRow>, StoreError>;
    async fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError>;
    /// Deletes the webhook and its dead letters. False if there is none.
    async fn delete_webhook(&self, id: WebhookId) -> Result<bool, StoreError>;
    /// Records delivery progress and, in the same transaction, the event given up on (if any).
    /// False if there is no such webhook.
    async fn set_webhook_progress(
        &self,
        id: WebhookId,
        progress: &WebhookProgress,
        dead: Option<&DeadLetter>,
    ) -> Result<bool, StoreError>;
    /// Takes (or keeps) the webhook's delivery for `owner` until `until` (see
    /// [`NotifyStore::claim_watch`]).
    async fn claim_webhook(
        &self,
        id: WebhookId,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    // ---- dead letters ----

    /// The webhook's dead letters, oldest first.
    async fn dead_letters(&self, webhook: WebhookId) -> Result<Vec<DeadLetter>, StoreError>;
    /// Marks dead letters for replay (one by `seq`, or all). Answers how many.
    async fn request_replay(&self, webhook: WebhookId, seq: Option<i64>)
    -> Result<u64, StoreError>;
    /// A replayed dead letter was delivered (it is forgotten) or failed again (it stays, not
    /// marked for replay, with the new error).
    async fn finish_replay(
        &self,
        webhook: WebhookId,
        seq: i64,
        delivered: bool,
        error: Option<&str>,
    ) -> Result<(), StoreError>;
}
