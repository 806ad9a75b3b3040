//! Mock Exchange Web Services: `POST /EWS/Exchange.asmx` (SOAP 1.1) and autodiscover (POX
//! `/autodiscover/autodiscover.xml`, SOAP `/autodiscover/autodiscover.svc`, Exchange Online's
//! JSON `/autodiscover/autodiscover.json/v1.0/{address}`).
//!
//! It serves the same directory ([`crate::directory`]) and mail store ([`crate::mailstore`]) as
//! the mock Graph, so what one protocol writes the other reads; it never imports the Graph or
//! Entra mocks, and verifies bearer tokens with the key it is given. Callers authenticate with
//! a bearer token of the mock Entra (audience Exchange Online), Basic (seeded passwords) or
//! NTLMv2 (one connection; the mock's own verifier in `ews::ntlm`); impersonation, delegate
//! access, `EWSEnabled`, server versions, throttling and faults behave as Exchange's do. Every
//! answer is valid against Microsoft's EWS schema (`testkit/ews-schema`, checked by the tests
//! with [`crate::xsd::validate_soap`]). See `docs/testkit-ews.md` for the operations and
//! switches.

mod auth;
mod autodiscover;
mod calendar;
mod contacts;
mod create;
mod dispatch;
mod folders;
mod ids;
mod items;
mod notify;
mod ntlm;
mod people;
mod recurrence;
mod restrict;
mod soap;
mod switches;
mod sync;
mod throttle;
mod update;
mod xml;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use jsonwebtoken::DecodingKey;
use serde::Serialize;

pub use switches::{
    AutodiscoverRedirect, EwsSwitchChange, EwsSwitches, EwsThrottlePolicy, ServerVersion,
};

use crate::clock::Clock;
use crate::directory::Directory;
use crate::faults::Faults;
use crate::mailstore::MailStore;

/// Request bodies above this are refused (Exchange's default `maxReceivedMessageSize` for EWS
/// is 64 MiB; the mock keeps 35 MiB, Exchange Online's message size limit).
pub(crate) const MAX_BODY: usize = 35 * 1024 * 1024;

/// One autodiscover request the mock answered: whether it carried credentials (tests assert
/// that a client sent none to a host it was redirected to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutodiscoverRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The `Host` header.
    pub host: String,
    /// An `Authorization` header was present.
    pub authorization: bool,
}

/// EWS's own mutable state (the mailboxes are the mail store's, the directory the
/// directory's).
#[derive(Debug, Default)]
pub(crate) struct EwsOwn {
    pub switches: EwsSwitches,
    /// Verified bearer tokens and their claims.
    pub tokens: HashMap<String, auth::Claims>,
    /// NTLM state by connection.
    pub ntlm: HashMap<u64, auth::NtlmConn>,
    pub autodiscover: Vec<AutodiscoverRequest>,
    /// HTTP requests to `/EWS/Exchange.asmx`.
    pub requests: usize,
    /// Notification subscriptions (`Subscribe`).
    pub subscriptions: notify::Subscriptions,
}

/// The shared state of one EWS mock. Cloning shares it; [`ews_router`] serves it.
#[derive(Clone)]
pub struct EwsState {
    directory: Directory,
    store: MailStore,
    clock: Clock,
    faults: Faults,
    decoding: Arc<DecodingKey>,
    base_url: Arc<Mutex<String>>,
    own: Arc<Mutex<EwsOwn>>,
    throttle: throttle::Throttle,
    /// Bumped when subscriptions are forgotten or streams closed: open streams look again.
    stream_kicks: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for EwsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsState").finish_non_exhaustive()
    }
}

impl EwsState {
    /// EWS over `directory` and `store`, on `clock`, accepting bearer tokens that `token_key`
    /// verifies (the mock Entra ID's public key).
    pub fn new(
        directory: Directory,
        store: MailStore,
        clock: Clock,
        token_key: DecodingKey,
    ) -> EwsState {
        EwsState {
            directory,
            store,
            clock,
            faults: Faults::default(),
            decoding: Arc::new(token_key),
            base_url: Arc::new(Mutex::new(String::new())),
            own: Arc::new(Mutex::new(EwsOwn::default())),
            throttle: throttle::Throttle::default(),
            stream_kicks: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Serves EWS with this fault plan (rules with `"service": "ews"`).
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Sets the server's URL (autodiscover answers `{base}/EWS/Exchange.asmx`).
    pub fn set_base_url(&self, base_url: &str) {
        *self.base_url.lock().unwrap_or_else(PoisonError::into_inner) =
            base_url.trim_end_matches('/').to_string();
    }

    pub(crate) fn base_url(&self) -> String {
        self.base_url
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `{base}/EWS/Exchange.asmx`
    pub fn ews_url(&self) -> String {
        format!("{}/EWS/Exchange.asmx", self.base_url())
    }

    pub(crate) fn own(&self) -> MutexGuard<'_, EwsOwn> {
        self.own.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The switches as they are now.
    pub fn switches(&self) -> EwsSwitches {
        self.own().switches.clone()
    }

    /// Applies a change of the switches whole, or none of it.
    pub fn change_switches(&self, change: &EwsSwitchChange) -> Result<EwsSwitches, String> {
        let mut own = self.own();
        let next = change.apply(&own.switches)?;
        let throttling_changed = own.switches.throttling != next.throttling;
        own.switches = next.clone();
        drop(own);
        // Other switches leave the throttling windows as they are.
        if throttling_changed {
            self.throttle.set_policy(next.throttling);
        }
        Ok(next)
    }

    /// Every autodiscover request answered so far, oldest first.
    pub fn autodiscover_requests(&self) -> Vec<AutodiscoverRequest> {
        self.own().autodiscover.clone()
    }

    /// How many requests reached `/EWS/Exchange.asmx` so far.
    pub fn requests(&self) -> usize {
        self.own().requests
    }

    /// The most requests for `mailbox` in progress at once so far (refused ones included).
    pub fn max_concurrent_seen(&self, mailbox: &str) -> usize {
        self.throttle.max_seen(mailbox)
    }

    /// Forgets every notification subscription, as Exchange does when a mailbox moves or its
    /// server restarts: the next `GetEvents` or `GetStreamingEvents` for one answers
    /// `ErrorSubscriptionNotFound` (an open stream says so at once).
    pub fn expire_subscriptions(&self) {
        self.own().subscriptions.clear();
        self.stream_kicks.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ends every open `GetStreamingEvents` connection with `ConnectionStatus` `Closed`, as
    /// Exchange does at the request's `ConnectionTimeout`; the subscriptions stay.
    pub fn close_streams(&self) {
        self.own().subscriptions.closes += 1;
        self.stream_kicks.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// How many notification subscriptions the mock keeps.
    pub fn subscriptions(&self) -> usize {
        self.own().subscriptions.len()
    }

    /// How many requests for `mailbox` the throttling policy refused so far
    /// (`ErrorExceededConnectionCount` and `ErrorServerBusy`; injected faults not counted).
    pub fn throttled(&self, mailbox: &str) -> usize {
        self.throttle.refused(mailbox)
    }
}

/// The EWS and autodiscover routes over `state`.
pub fn ews_router(state: EwsState) -> Router {
    Router::new()
        .route("/EWS/Exchange.asmx", post(entry).get(entry))
        .route("/ews/exchange.asmx", post(entry).get(entry))
        .route(
            "/autodiscover/autodiscover.xml",
            post(autodiscover::pox).get(autodiscover::pox),
        )
        .route(
            "/Autodiscover/Autodiscover.xml",
            post(autodiscover::pox).get(autodiscover::pox),
        )
        .route("/autodiscover/autodiscover.svc", post(autodiscover::soap))
        .route("/Autodiscover/Autodiscover.svc", post(autodiscover::soap))
        .route(
            "/autodiscover/autodiscover.json/v1.0/{address}",
            get(autodiscover::json),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn entry(State(state): State<EwsState>, request: Request) -> Response {
    let control = crate::conn::control(request.extensions());
    dispatch::serve(&state, request, control).await
}
