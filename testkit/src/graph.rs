//! Mock Microsoft Graph v1.0 for Outlook resources: mail, calendar, contacts, users, `$batch`,
//! change-notification subscriptions (`subscriptions`, `push`).
//!
//! Served under `{base}/graph/v1.0` beside the mock Entra ID ([`crate::MockMicrosoft`]). Every
//! request needs a bearer token the mock Entra issued for `https://graph.microsoft.com`;
//! permissions are checked against its `scp` (delegated) or `roles` (app-only), mailbox rights
//! from the seed (FullAccess, SendAs) and application access policies (`mailbox_scope`).
//! Answers follow Microsoft's v1.0 JSON shapes, errors included. See `docs/testkit.md` for the
//! endpoints, the permission table, throttling and the fixtures.
//!
//! It reads the directory ([`crate::directory`]: mailboxes, rights, application access
//! policies) and serves the mail store ([`crate::mailstore`], where [`MailboxContent`] is a
//! mailbox's JSON form and every delivery is recorded, so tests can prove a send happened
//! exactly once); it never imports the Entra mock, whose tokens it verifies with the key it is
//! given.

mod apps;
mod auth;
mod batch;
mod calendar;
mod contacts;
mod dispatch;
mod error;
mod faults;
mod http;
pub(crate) mod ids;
mod mail;
mod odata;
mod push;
mod subscriptions;
mod throttle;
mod uploads;
mod users;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use jsonwebtoken::DecodingKey;
use time::OffsetDateTime;

/// The mailbox content types, at their old path (they live in [`crate::mailstore`]).
pub use crate::mailstore::content::{
    Address, AttachmentContent, AttendeeContent, AttendeeType, BodyType, ContactContent,
    ContentError, EventContent, ExceptionContent, FlagStatus, HeaderContent, Importance,
    MailboxContent, MessageContent, ResponseType, ShowAs,
};
/// The fixture generator, at its old path (it lives in [`crate::mailstore`]).
pub use crate::mailstore::fixtures;
pub use crate::mailstore::recurrence::{
    DayOfWeek, PatternType, RangeType, Recurrence, RecurrencePattern, RecurrenceRange, WeekIndex,
};
pub use push::{GraphSwitchChange, GraphSwitches, LifecycleEvent, LifecycleSend};
pub use throttle::ThrottlePolicy;

use crate::clock::Clock;
use crate::directory::{Directory, DirectoryData, Recipient};
use crate::faults::{Fault, Faults};
use crate::mailstore::MailStore;
use crate::mailstore::mailbox::Mailbox;
use crate::mailstore::mime;
use auth::Claims;
use ids::GraphIds as _;
use throttle::Throttle;

/// Request bodies above 4 MiB are refused with 413, as Graph does.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// Graph's own mutable state (the mailboxes are the mail store's, the directory the
/// directory's).
#[derive(Debug, Default)]
pub(crate) struct GraphOwn {
    pub fault: Option<(Fault, usize)>,
    pub latency: Duration,
    /// HTTP requests under `/graph/v1.0` (a `$batch` is one).
    pub requests: usize,
    /// Verified tokens and their claims (signature checked once per token).
    pub tokens: HashMap<String, Claims>,
    /// Attachment upload sessions by session ID.
    pub uploads: HashMap<String, uploads::UploadSession>,
}

/// What a Graph operation works on: Graph's own state and the mail store, both locked (in this
/// order), and the directory as it was when the locks were taken.
pub(crate) struct GraphInner<'a> {
    own: MutexGuard<'a, GraphOwn>,
    pub store: crate::mailstore::StoreGuard<'a>,
    pub dir: Arc<DirectoryData>,
}

impl Deref for GraphInner<'_> {
    type Target = GraphOwn;

    fn deref(&self) -> &GraphOwn {
        &self.own
    }
}

impl DerefMut for GraphInner<'_> {
    fn deref_mut(&mut self) -> &mut GraphOwn {
        &mut self.own
    }
}

impl GraphInner<'_> {
    pub(crate) fn mailbox(&self, address: &str) -> Option<&Mailbox> {
        self.store.mailbox(address)
    }

    pub(crate) fn mailbox_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.store.mailbox_mut(address)
    }

    /// The directory entry of an address in any tenant.
    pub(crate) fn entry(&self, address: &str) -> Option<Recipient> {
        self.dir.recipient(address)
    }
}

/// The shared state of one Graph mock. Cloning shares it; [`graph_router`] serves it.
#[derive(Clone)]
pub struct GraphState {
    directory: Directory,
    store: MailStore,
    clock: Clock,
    base_url: Arc<Mutex<String>>,
    faults: Faults,
    own: Arc<Mutex<GraphOwn>>,
    throttle: Throttle,
    decoding: Arc<DecodingKey>,
    /// Change-notification subscriptions and their task ([`push`]).
    push: push::Push,
}

impl std::fmt::Debug for GraphState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphState").finish_non_exhaustive()
    }
}

impl GraphState {
    /// Graph over `directory` and `store`, on `clock`, accepting access tokens that
    /// `token_key` verifies (the mock Entra ID's public key, from its
    /// `EntraState::token_verification_key`).
    pub fn new(
        directory: Directory,
        store: MailStore,
        clock: Clock,
        token_key: DecodingKey,
    ) -> GraphState {
        GraphState {
            directory,
            store,
            clock,
            base_url: Arc::new(Mutex::new(String::new())),
            faults: Faults::default(),
            own: Arc::new(Mutex::new(GraphOwn::default())),
            throttle: Throttle::default(),
            decoding: Arc::new(token_key),
            push: push::Push::default(),
        }
    }

    /// The fault plan Graph requests go through (shared with whoever holds a clone).
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Serves Graph with this fault plan instead of its own (the mock server shares one plan
    /// between its mocks).
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The mail store Graph serves.
    pub fn store(&self) -> MailStore {
        self.store.clone()
    }

    /// The directory Graph reads.
    pub fn directory(&self) -> Directory {
        self.directory.clone()
    }

    /// Sets the server's URL (`@odata` links, upload URLs), without a trailing slash.
    pub fn set_base_url(&self, base_url: &str) {
        *self.base_url.lock().unwrap_or_else(PoisonError::into_inner) =
            base_url.trim_end_matches('/').to_string();
    }

    /// Graph's own state and the mail store, locked, with a snapshot of the directory.
    pub(crate) fn lock(&self) -> GraphInner<'_> {
        let own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        GraphInner {
            own,
            store: self.store.lock(),
            dir: self.directory.read(),
        }
    }

    /// Graph's own state alone (no mail store lock).
    pub(crate) fn own(&self) -> MutexGuard<'_, GraphOwn> {
        self.own.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The directory now.
    pub(crate) fn dir(&self) -> Arc<DirectoryData> {
        self.directory.read()
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(crate) fn base_url(&self) -> String {
        self.base_url
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_throttling(&self, policy: Option<ThrottlePolicy>) {
        self.throttle.set_policy(policy);
    }

    pub(crate) fn fail_requests(&self, fault: Fault, count: usize) {
        self.own().fault = (count > 0).then_some((fault, count));
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        self.own().latency = latency;
    }

    pub(crate) fn requests(&self) -> usize {
        self.own().requests
    }

    pub(crate) fn max_concurrent_seen(&self, mailbox: &str) -> usize {
        self.throttle.max_seen(mailbox)
    }

    /// How many requests for `mailbox` the throttling policy refused with a 429 so far (every
    /// app; injected faults not counted).
    pub fn throttled(&self, mailbox: &str) -> usize {
        self.throttle.refused(mailbox)
    }

    /// Adds messages to a mailbox (a seeded user or shared mailbox) without touching the rest;
    /// answers their Graph IDs, in order.
    pub fn add_messages(
        &self,
        mailbox: &str,
        messages: &[MessageContent],
    ) -> Result<Vec<String>, ContentError> {
        let seqs = self.store.append_messages(mailbox, messages)?;
        let store = self.store.lock();
        let mb = store
            .mailbox(mailbox)
            .ok_or_else(|| ContentError::UnknownMailbox(mailbox.to_string()))?;
        Ok(seqs.into_iter().map(|seq| mb.message_id(seq)).collect())
    }

    /// Replaces a mailbox's content.
    pub fn load_mailbox(&self, content: MailboxContent) -> Result<(), ContentError> {
        self.store.load_mailbox(content)
    }
}

/// The Graph routes over `state`: everything under `/graph/v1.0/`.
pub fn graph_router(state: GraphState) -> Router {
    Router::new()
        .route("/graph/v1.0/{*rest}", any(entry))
        // Upload URLs of attachment upload sessions (Exchange's `/api/v2.0/…` on outlook.office.com).
        .route("/api/v2.0/{*rest}", any(upload_entry))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn upload_entry(State(state): State<GraphState>, request: Request) -> Response {
    let control = crate::conn::control(request.extensions());
    let resp = uploads::serve(&state, request).await;
    answer(resp, control).await
}

async fn entry(State(state): State<GraphState>, request: Request) -> Response {
    let control = crate::conn::control(request.extensions());
    let resp = dispatch::serve(&state, request).await;
    answer(resp, control).await
}

async fn answer(
    resp: http::Resp,
    control: Option<Arc<crate::conn::ConnectionControl>>,
) -> Response {
    if matches!(resp.body, http::RespBody::Reset)
        && let Some(control) = control
    {
        control.reset();
        // The connection task drops this future with the connection.
        std::future::pending::<()>().await;
    }
    resp.into_response()
}
