//! Mock Microsoft Graph v1.0 for Outlook resources: mail, calendar, contacts, users, `$batch`.
//!
//! Served under `{base}/graph/v1.0` beside the mock Entra ID ([`crate::MockMicrosoft`]). Every
//! request needs a bearer token the mock Entra issued for `https://graph.microsoft.com`;
//! permissions are checked against its `scp` (delegated) or `roles` (app-only), mailbox rights
//! from the seed (FullAccess, SendAs) and application access policies (`mailbox_scope`).
//! Answers follow Microsoft's v1.0 JSON shapes, errors included. See `docs/testkit.md` for the
//! endpoints, the permission table, throttling and the fixtures.
//!
//! The mock keeps its mailboxes in memory ([`MailboxContent`] is their JSON form) and records
//! every delivery, so tests can prove a send happened exactly once.

mod auth;
mod batch;
mod calendar;
mod contacts;
mod content;
pub(crate) mod contoso;
mod dispatch;
mod error;
mod faults;
pub mod fixtures;
mod http;
mod mail;
mod mime;
mod odata;
mod recurrence;
mod store;
mod throttle;
mod tz;
mod uploads;
mod users;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use jsonwebtoken::DecodingKey;
use time::OffsetDateTime;

pub use content::{
    Address, AttachmentContent, AttendeeContent, AttendeeType, BodyType, ContactContent,
    ContentError, EventContent, ExceptionContent, FlagStatus, HeaderContent, Importance,
    MailboxContent, MessageContent, ResponseType, ShowAs,
};
pub use recurrence::{
    DayOfWeek, PatternType, RangeType, Recurrence, RecurrencePattern, RecurrenceRange, WeekIndex,
};
pub use throttle::ThrottlePolicy;

use crate::entra::seed::MailboxRight;
use crate::entra::{EntraState, Fault, Seed};
use crate::faults::Faults;
use auth::Claims;
use store::Mailbox;
use throttle::Throttle;

/// Request bodies above 4 MiB are refused with 413, as Graph does.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// A mailbox in the directory: a user's or a shared one.
#[derive(Debug, Clone)]
pub(crate) struct DirEntry {
    pub address: String,
    pub display_name: String,
    pub object_id: String,
    pub shared: bool,
}

/// What Graph knows of one tenant.
#[derive(Debug, Clone)]
pub(crate) struct TenantDir {
    pub id: String,
    pub entries: Vec<DirEntry>,
    /// (mailbox, user, rights), lower case.
    pub rights: Vec<(String, String, Vec<MailboxRight>)>,
    /// Application access policies by lower-case client ID.
    pub app_scopes: HashMap<String, Option<Vec<String>>>,
}

impl TenantDir {
    /// A user or shared mailbox by address/UPN or object ID.
    pub(crate) fn entry(&self, key: &str) -> Option<&DirEntry> {
        let key = key.trim();
        self.entries
            .iter()
            .find(|e| e.address.eq_ignore_ascii_case(key) || e.object_id.eq_ignore_ascii_case(key))
    }

    pub(crate) fn has_right(&self, mailbox: &str, user: &str, right: MailboxRight) -> bool {
        self.rights.iter().any(|(m, u, rights)| {
            m.eq_ignore_ascii_case(mailbox)
                && u.eq_ignore_ascii_case(user)
                && rights.contains(&right)
        })
    }
}

/// The mutable state of the Graph mock.
#[derive(Debug)]
pub(crate) struct GraphInner {
    pub tenants: Vec<TenantDir>,
    /// By lower-case address.
    pub mailboxes: HashMap<String, Mailbox>,
    /// Deliveries into a mailbox (lower-case address): (internetMessageId, subject).
    pub deliveries: HashMap<String, Vec<(String, String)>>,
    /// Submissions from a mailbox.
    pub submissions: HashMap<String, Vec<(String, String)>>,
    pub fault: Option<(Fault, usize)>,
    pub latency: Duration,
    /// HTTP requests under `/graph/v1.0` (a `$batch` is one).
    pub requests: usize,
    /// Verified tokens and their claims (signature checked once per token).
    pub tokens: HashMap<String, Claims>,
    /// Attachment upload sessions by session ID.
    pub uploads: HashMap<String, uploads::UploadSession>,
}

impl GraphInner {
    pub(crate) fn mailbox(&self, address: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&address.to_ascii_lowercase())
    }

    pub(crate) fn mailbox_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&address.to_ascii_lowercase())
    }

    /// The directory entry of an address in any tenant.
    pub(crate) fn entry(&self, address: &str) -> Option<&DirEntry> {
        self.tenants.iter().find_map(|t| {
            t.entries
                .iter()
                .find(|e| e.address.eq_ignore_ascii_case(address.trim()))
        })
    }

    pub(crate) fn record(
        log: &mut HashMap<String, Vec<(String, String)>>,
        mailbox: &str,
        internet_message_id: &str,
        subject: &str,
    ) {
        log.entry(mailbox.to_ascii_lowercase())
            .or_default()
            .push((internet_message_id.to_string(), subject.to_string()));
    }
}

/// The shared state of one Graph mock. Cloning shares it; [`graph_router`] serves it.
#[derive(Clone)]
pub struct GraphState {
    entra: EntraState,
    faults: Faults,
    inner: Arc<Mutex<GraphInner>>,
    throttle: Throttle,
    decoding: Arc<DecodingKey>,
}

impl std::fmt::Debug for GraphState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphState").finish_non_exhaustive()
    }
}

impl GraphState {
    /// Graph over the directory of `entra`, with `contents` loaded into their mailboxes (every
    /// other mailbox starts empty).
    pub fn new(entra: EntraState, contents: Vec<MailboxContent>) -> std::io::Result<Self> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let decoding = entra.key.decoding_key().map_err(std::io::Error::other)?;
        let tenants = {
            let inner = entra.lock();
            directory(&inner.seed)
        };
        let mut mailboxes = HashMap::new();
        for entry in tenants.iter().flat_map(|t| &t.entries) {
            mailboxes.insert(
                entry.address.to_ascii_lowercase(),
                Mailbox::new(&entry.address, &entry.display_name),
            );
        }
        let state = Self {
            entra,
            faults: Faults::default(),
            inner: Arc::new(Mutex::new(GraphInner {
                tenants,
                mailboxes,
                deliveries: HashMap::new(),
                submissions: HashMap::new(),
                fault: None,
                latency: Duration::ZERO,
                requests: 0,
                tokens: HashMap::new(),
                uploads: HashMap::new(),
            })),
            throttle: Throttle::default(),
            decoding: Arc::new(decoding),
        };
        for content in contents {
            state
                .load_mailbox(content)
                .map_err(|e| invalid(e.to_string()))?;
        }
        Ok(state)
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, GraphInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.entra.lock().now()
    }

    pub(crate) fn base_url(&self) -> String {
        self.entra.base_url()
    }

    pub(crate) fn set_throttling(&self, policy: Option<ThrottlePolicy>) {
        self.throttle.set_policy(policy);
    }

    pub(crate) fn fail_requests(&self, fault: Fault, count: usize) {
        self.lock().fault = (count > 0).then_some((fault, count));
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    pub(crate) fn requests(&self) -> usize {
        self.lock().requests
    }

    pub(crate) fn max_concurrent_seen(&self, mailbox: &str) -> usize {
        self.throttle.max_seen(mailbox)
    }

    pub(crate) fn delivered(&self, mailbox: &str) -> Vec<(String, String)> {
        self.lock()
            .deliveries
            .get(&mailbox.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn submitted(&self, mailbox: &str) -> Vec<(String, String)> {
        self.lock()
            .submissions
            .get(&mailbox.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// Adds messages to a mailbox (a seeded user or shared mailbox) without touching the rest;
    /// answers their Graph IDs, in order.
    pub fn add_messages(
        &self,
        mailbox: &str,
        messages: &[MessageContent],
    ) -> Result<Vec<String>, ContentError> {
        let mut inner = self.lock();
        let mb = inner
            .mailbox_mut(mailbox)
            .ok_or_else(|| ContentError::UnknownMailbox(mailbox.to_string()))?;
        mb.append_messages(messages)
    }

    /// Replaces a mailbox's content.
    pub fn load_mailbox(&self, content: MailboxContent) -> Result<(), ContentError> {
        let mut inner = self.lock();
        let entry = inner
            .entry(&content.mailbox)
            .cloned()
            .ok_or_else(|| ContentError::UnknownMailbox(content.mailbox.clone()))?;
        let mailbox = Mailbox::load(&entry.address, &entry.display_name, &content)?;
        inner
            .mailboxes
            .insert(entry.address.to_ascii_lowercase(), mailbox);
        Ok(())
    }

    pub(crate) fn mailbox_content(&self, mailbox: &str) -> Option<MailboxContent> {
        self.lock().mailbox(mailbox).map(Mailbox::to_content)
    }

    pub(crate) fn set_mailbox_scope(&self, client_id: &str, scope: Option<Vec<String>>) {
        let mut inner = self.lock();
        for tenant in &mut inner.tenants {
            tenant
                .app_scopes
                .insert(client_id.to_ascii_lowercase(), scope.clone());
        }
    }
}

/// Every tenant's mailboxes, rights and app policies, from the seed.
fn directory(seed: &Seed) -> Vec<TenantDir> {
    seed.tenants
        .iter()
        .map(|t| TenantDir {
            id: t.id.clone(),
            entries: t
                .users
                .iter()
                .map(|u| DirEntry {
                    address: u.upn.clone(),
                    display_name: u.display_name.clone(),
                    object_id: u.object_id.clone(),
                    shared: false,
                })
                .chain(t.shared_mailboxes.iter().map(|s| DirEntry {
                    address: s.address.clone(),
                    display_name: s.display_name.clone(),
                    object_id: s.object_id.clone(),
                    shared: true,
                }))
                .collect(),
            rights: t
                .mailbox_permissions
                .iter()
                .map(|p| {
                    (
                        p.mailbox.to_ascii_lowercase(),
                        p.user.to_ascii_lowercase(),
                        p.rights.clone(),
                    )
                })
                .collect(),
            app_scopes: t
                .apps
                .iter()
                .map(|a| (a.client_id.to_ascii_lowercase(), a.mailbox_scope.clone()))
                .collect(),
        })
        .collect()
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
