//! Listening to an Exchange mailbox over EWS ([`crate::notify::Listen`]).
//!
//! One subscription per watched thing (a mail folder, the calendar), so a notification's
//! `SubscriptionId` says what changed. Streaming first (Exchange 2010 SP1 and later): one
//! `GetStreamingEvents` connection for all of them, read as it arrives, each envelope decoded
//! as soon as it is complete; `ConnectionStatus` `Closed` opens the next connection on the
//! same subscriptions (their events wait on the server meanwhile, nothing is missed). A
//! subscription the server no longer has (`ErrorSubscriptionNotFound`, expired, invalid) is
//! made again and reported as a [`Signal::Gap`]. A server without streaming (a schema
//! validation fault, as Exchange 2010 before SP1 answers) is polled instead: pull
//! subscriptions read with `GetEvents` every [`PULL_INTERVAL`] from their watermarks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::EwsMailbox;
use super::wire::{
    self, ConnectionStatus, EnvelopeSplitter, EwsError, GetStreamingEvents, Notification,
    PullEvents, ResponseCode, Subscribe, SubscriptionKind, Unsubscribe, WireError,
    notify::EventKind,
};
use crate::Error;
use crate::mailbox::{MailboxError, MailboxRef};
use crate::notify::{Listen, Listener, Signal, Watched};
use crate::pipeline::{ByteStream, Retry};

/// How often a pull subscription is read.
pub const PULL_INTERVAL: Duration = Duration::from_secs(30);

/// A pull subscription the server keeps this long without a `GetEvents` (minutes).
const PULL_TIMEOUT_MINUTES: u32 = 10;

/// How long one `GetStreamingEvents` connection is held (minutes; the schema's most).
const CONNECTION_TIMEOUT_MINUTES: u32 = 30;

/// The most bytes of one streamed envelope held while it arrives.
const MAX_ENVELOPE: usize = 4 * 1024 * 1024;

/// The EWS backend as a [`Listen`]er.
#[derive(Debug, Clone)]
pub struct EwsListen {
    ews: Arc<EwsMailbox>,
}

impl EwsListen {
    pub fn new(ews: Arc<EwsMailbox>) -> Self {
        Self { ews }
    }
}

#[async_trait]
impl Listen for EwsListen {
    async fn listen(
        &self,
        mailbox: &MailboxRef,
        watched: &[Watched],
    ) -> Result<Box<dyn Listener>, Error> {
        let mut listener = EwsListener {
            ews: Arc::clone(&self.ews),
            mailbox: mailbox.clone(),
            watched: watched.to_vec(),
            subscriptions: Vec::new(),
            mode: Mode::Streaming {
                stream: None,
                splitter: Box::new(EnvelopeSplitter::new(MAX_ENVELOPE)),
            },
            pending: VecDeque::new(),
            empty_ends: 0,
            heard: false,
        };
        listener.subscribe().await?;
        Ok(Box::new(listener))
    }
}

enum Mode {
    Streaming {
        stream: Option<ByteStream>,
        splitter: Box<EnvelopeSplitter>,
    },
    Pull {
        next_poll: Instant,
    },
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Streaming { stream, .. } => f
                .debug_struct("Streaming")
                .field("connected", &stream.is_some())
                .finish(),
            Self::Pull { .. } => f.write_str("Pull"),
        }
    }
}

/// One subscription: its ID, what it watches, and (pull) its watermark.
#[derive(Debug)]
struct Sub {
    id: String,
    watched: usize,
    watermark: Option<String>,
}

/// A listener on one mailbox's EWS subscriptions.
#[derive(Debug)]
pub struct EwsListener {
    ews: Arc<EwsMailbox>,
    mailbox: MailboxRef,
    watched: Vec<Watched>,
    subscriptions: Vec<Sub>,
    mode: Mode,
    pending: VecDeque<Signal>,
    /// Connections in a row that ended without a single envelope.
    empty_ends: u32,
    /// The open connection has answered an envelope.
    heard: bool,
}

/// A server that ends this many streams in a row without an envelope is not listened to.
const MAX_EMPTY_ENDS: u32 = 3;

/// The server does not know the subscription any more: subscribe again.
fn subscription_gone(e: &EwsError) -> bool {
    matches!(
        e.code.as_str(),
        "ErrorSubscriptionNotFound"
            | "ErrorExpiredSubscription"
            | "ErrorInvalidSubscription"
            | "ErrorInvalidPullSubscriptionId"
            | "ErrorSubscriptionUnsubscribed"
            | "ErrorInvalidWatermark"
            | "ErrorMissedNotificationEvents"
    )
}

/// The server does not offer streaming notifications (Exchange 2010 before SP1 refuses the
/// request's elements by schema, or the version).
fn no_streaming(e: &EwsError) -> bool {
    matches!(
        e.code,
        ResponseCode::ErrorSchemaValidation
            | ResponseCode::ErrorInvalidRequest
            | ResponseCode::ErrorInvalidServerVersion
    )
}

impl EwsListener {
    fn kind(&self) -> SubscriptionKind {
        match self.mode {
            Mode::Streaming { .. } => SubscriptionKind::Streaming,
            Mode::Pull { .. } => SubscriptionKind::Pull {
                timeout_minutes: PULL_TIMEOUT_MINUTES,
            },
        }
    }

    fn error(&self, e: &EwsError, what: &str) -> Error {
        e.to_mailbox_error("subscription", what, self.ews.address_of(&self.mailbox))
            .into()
    }

    /// Subscribes (again) to every watched thing, in the current mode; a server without
    /// streaming switches the listener to pull.
    async fn subscribe(&mut self) -> Result<(), Error> {
        self.subscriptions.clear();
        let mut i = 0;
        while i < self.watched.len() {
            let folder = match &self.watched[i] {
                Watched::Mail { folder } => self.ews.folder_spec(&self.mailbox, folder).await?,
                Watched::Calendar => wire::DistinguishedFolder::Calendar.into(),
            };
            let request = Subscribe {
                folders: vec![folder],
                kind: self.kind(),
            };
            let answer = self
                .ews
                .post_raw(&self.mailbox, &request, Retry::Always)
                .await?;
            let subscribed = answer.and_then(|body| {
                wire::decode_subscribe(&body)
                    .and_then(wire::Decoded::into_single)
                    .map_err(|e| match e {
                        WireError::Fault(e) | WireError::Refused(e) => e,
                        WireError::Malformed(m) => {
                            EwsError::new(ResponseCode::Other("Malformed".into()), m)
                        }
                    })
            });
            match subscribed {
                Ok(s) if !s.id.is_empty() => {
                    self.subscriptions.push(Sub {
                        id: s.id,
                        watched: i,
                        watermark: s.watermark,
                    });
                    i += 1;
                }
                Ok(_) => {
                    return Err(MailboxError::Protocol(
                        "EWS answered Subscribe without a SubscriptionId".into(),
                    )
                    .into());
                }
                Err(e) if no_streaming(&e) && matches!(self.mode, Mode::Streaming { .. }) => {
                    tracing::debug!(code = %e.code, "no streaming notifications; pulling");
                    self.switch_to_pull();
                    // Start over with pull subscriptions.
                    self.subscriptions.clear();
                    i = 0;
                }
                Err(e) => return Err(self.error(&e, "Subscribe")),
            }
        }
        Ok(())
    }

    fn switch_to_pull(&mut self) {
        self.mode = Mode::Pull {
            next_poll: Instant::now() + PULL_INTERVAL,
        };
    }

    /// Signals for a notification's events (not for status events).
    fn signals(&mut self, n: &Notification) {
        let Some(sub) = self.subscriptions.iter().find(|s| s.id == n.subscription) else {
            return;
        };
        let changed = n.events.iter().any(|e| e.kind != EventKind::Status);
        if changed {
            let signal = Signal::Changed(Some(self.watched[sub.watched].clone()));
            if !self.pending.contains(&signal) {
                self.pending.push_back(signal);
            }
        }
    }

    /// Subscribes again after the server lost the subscriptions: a gap.
    async fn resubscribe(&mut self) -> Result<(), Error> {
        if let Mode::Streaming { stream, splitter } = &mut self.mode {
            *stream = None;
            **splitter = EnvelopeSplitter::new(MAX_ENVELOPE);
        }
        self.subscribe().await?;
        self.pending.push_back(Signal::Gap);
        Ok(())
    }

    /// Reads the stream until it yields signals, closes, or the subscriptions are gone.
    async fn stream_step(&mut self) -> Result<(), Error> {
        let Mode::Streaming { stream, .. } = &mut self.mode else {
            return Ok(());
        };
        if stream.is_none() {
            let request = GetStreamingEvents {
                subscriptions: self.subscriptions.iter().map(|s| s.id.clone()).collect(),
                timeout_minutes: CONNECTION_TIMEOUT_MINUTES,
            };
            match self.ews.open_stream(&self.mailbox, &request).await? {
                Ok(body) => {
                    self.heard = false;
                    if let Mode::Streaming { stream, splitter } = &mut self.mode {
                        *stream = Some(body);
                        **splitter = EnvelopeSplitter::new(MAX_ENVELOPE);
                    }
                }
                Err(e) if subscription_gone(&e) => return self.resubscribe().await,
                Err(e) if no_streaming(&e) => {
                    tracing::debug!(code = %e.code, "GetStreamingEvents refused; pulling");
                    self.switch_to_pull();
                    self.subscribe().await?;
                    // Events between the streaming subscription and the pull one are lost.
                    self.pending.push_back(Signal::Gap);
                    return Ok(());
                }
                Err(e) => return Err(self.error(&e, "GetStreamingEvents")),
            }
        }
        let Mode::Streaming {
            stream: Some(body),
            splitter,
        } = &mut self.mode
        else {
            return Ok(());
        };
        let chunk = body.next_chunk().await;
        let mut envelopes = Vec::new();
        let ended = match chunk {
            Ok(Some(bytes)) => {
                splitter
                    .push(&bytes)
                    .map_err(|e| MailboxError::Protocol(e.to_string()))?;
                while let Some(e) = splitter.next_envelope() {
                    envelopes.push(e);
                }
                false
            }
            // The server ended the answer without saying Closed, the connection dropped, or
            // it went quiet past the client's read timeout.
            Ok(None) => true,
            Err(e) => {
                tracing::debug!(error = %e, "the notification stream broke; reconnecting");
                true
            }
        };
        // Either way the subscriptions keep their events: the next connection reads them. A
        // server that keeps ending connections before saying anything is not listened to.
        if ended {
            if let Mode::Streaming { stream, .. } = &mut self.mode {
                *stream = None;
            }
            if !self.heard {
                self.empty_ends += 1;
                if self.empty_ends >= MAX_EMPTY_ENDS {
                    return Err(MailboxError::Protocol(
                        "EWS ended GetStreamingEvents answers without notifications or a status"
                            .into(),
                    )
                    .into());
                }
            }
            return Ok(());
        }
        if !envelopes.is_empty() {
            self.empty_ends = 0;
            self.heard = true;
        }
        for envelope in envelopes {
            let decoded = match wire::decode_streaming_events(&envelope) {
                Ok(d) => d,
                Err(WireError::Fault(e)) if subscription_gone(&e) => {
                    return self.resubscribe().await;
                }
                Err(WireError::Fault(e)) => return Err(self.error(&e, "GetStreamingEvents")),
                Err(e) => return Err(MailboxError::Protocol(e.to_string()).into()),
            };
            for message in decoded.messages {
                if let Some(e) = message.error() {
                    if subscription_gone(&e) {
                        return self.resubscribe().await;
                    }
                    return Err(self.error(&e, "GetStreamingEvents"));
                }
                let Some(events) = message.value else {
                    continue;
                };
                for n in &events.notifications {
                    self.signals(n);
                }
                if events.status == Some(ConnectionStatus::Closed)
                    && let Mode::Streaming { stream, .. } = &mut self.mode
                {
                    *stream = None;
                }
            }
        }
        Ok(())
    }

    /// Waits for the next poll and reads every pull subscription.
    async fn pull_step(&mut self) -> Result<(), Error> {
        let Mode::Pull { next_poll } = &mut self.mode else {
            return Ok(());
        };
        tokio::time::sleep_until(*next_poll).await;
        *next_poll = Instant::now() + PULL_INTERVAL;
        for i in 0..self.subscriptions.len() {
            loop {
                let sub = &self.subscriptions[i];
                let Some(watermark) = sub.watermark.clone() else {
                    return Err(MailboxError::Protocol(
                        "EWS answered a pull Subscribe without a Watermark".into(),
                    )
                    .into());
                };
                let request = PullEvents {
                    subscription: sub.id.clone(),
                    watermark,
                };
                let answer = self
                    .ews
                    .post_raw(&self.mailbox, &request, Retry::Always)
                    .await?;
                let notification = answer.and_then(|body| {
                    wire::decode_pull_events(&body)
                        .and_then(wire::Decoded::into_single)
                        .map_err(|e| match e {
                            WireError::Fault(e) | WireError::Refused(e) => e,
                            WireError::Malformed(m) => {
                                EwsError::new(ResponseCode::Other("Malformed".into()), m)
                            }
                        })
                });
                match notification {
                    Ok(n) => {
                        if let Some(w) = n.last_watermark() {
                            self.subscriptions[i].watermark = Some(w.to_owned());
                        }
                        self.signals(&n);
                        if !n.more_events {
                            break;
                        }
                    }
                    Err(e) if subscription_gone(&e) => return self.resubscribe().await,
                    Err(e) => return Err(self.error(&e, "GetEvents")),
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Listener for EwsListener {
    async fn next(&mut self) -> Result<Signal, Error> {
        loop {
            if let Some(signal) = self.pending.pop_front() {
                return Ok(signal);
            }
            if self.subscriptions.is_empty() {
                // Nothing watched: nothing will ever change.
                std::future::pending::<()>().await;
            }
            match self.mode {
                Mode::Streaming { .. } => self.stream_step().await?,
                Mode::Pull { .. } => self.pull_step().await?,
            }
        }
    }
}

impl Drop for EwsListener {
    /// Ends the subscriptions on the server (in the background, when a runtime runs); one not
    /// ended expires there on its own (30 minutes without a connection, or its pull timeout).
    fn drop(&mut self) {
        let ids: Vec<String> = self.subscriptions.drain(..).map(|s| s.id).collect();
        if ids.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let ews = Arc::clone(&self.ews);
        let mailbox = self.mailbox.clone();
        runtime.spawn(async move {
            for subscription in ids {
                let request = Unsubscribe { subscription };
                if let Err(e) = ews.post_raw(&mailbox, &request, Retry::Always).await {
                    tracing::debug!(error = %e, "Unsubscribe failed; the subscription expires");
                }
            }
        });
    }
}
