//! Change notifications: the subscriptions Graph keeps ([`super::subscriptions`] serves them
//! over HTTP), the task that turns the mail store's changes into notifications POSTed to each
//! subscription's `notificationUrl`, lifecycle notifications, and the switches tests use to
//! drop, delay or cut them (`GET/POST /_mock/graph`, or the Rust methods of [`GraphState`]).
//!
//! One task per mock, started with the first subscription: it wakes on every write to the mail
//! store ([`crate::mailstore::MailStore::subscribe`]), reads each watched mailbox's change log
//! from the version it saw last (messages: created, updated, and removed from a folder — a move
//! is `deleted` in the old folder and `created` in the new one) and diffs its events against the
//! last snapshot, then sends, per subscription, one POST with every matching notification.
//! A subscription past its `expirationDateTime` on the mock's clock is forgotten.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use super::GraphState;
use super::http::fmt_instant;
use super::ids::{GraphIds as _, Kind};
use crate::mailstore::mailbox::{Change, Mailbox};

/// The longest a subscription to an Outlook resource (messages, events) may live: 4230 minutes
/// ("under 3 days").
pub(crate) const MAX_MINUTES: i64 = 4230;

/// What a subscription watches in its mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The messages of one folder (by sequence number).
    Folder(u64),
    /// Every message of the mailbox.
    Messages,
    /// The events of the mailbox.
    Events,
}

/// A change type a subscription asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Created,
    Updated,
    Deleted,
}

impl ChangeType {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "created" => Some(Self::Created),
            "updated" => Some(Self::Updated),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }
}

/// One subscription.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: String,
    /// The caller's tenant (index into the directory) and its ID.
    pub tenant: usize,
    pub tenant_id: String,
    pub app_id: String,
    pub creator_id: String,
    /// As the caller wrote it.
    pub resource: String,
    /// The mailbox's address and its user's object ID.
    pub mailbox: String,
    pub user_id: String,
    pub scope: Scope,
    /// As the caller wrote it (`created,updated`), and parsed.
    pub change_type: String,
    pub change_types: Vec<ChangeType>,
    pub client_state: Option<String>,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub expires: OffsetDateTime,
    /// The mailbox's change-log version when it was created: earlier changes are not told.
    pub since: u64,
    /// A `reauthorizationRequired` was sent and not answered yet.
    pub needs_reauthorization: bool,
}

impl Subscription {
    /// The subscription resource, as Graph answers it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": fmt_instant(self.expires),
            "creatorId": self.creator_id,
            "includeResourceData": null,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": null,
            "encryptionCertificateId": null,
            "notificationUrlAppId": null,
        })
    }
}

/// A lifecycle event Graph tells a subscription's `lifecycleNotificationUrl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LifecycleEvent {
    /// The subscription's access must be renewed (`POST /subscriptions/{id}/reauthorize`).
    ReauthorizationRequired,
    /// The subscription was removed: create a new one.
    SubscriptionRemoved,
    /// Notifications were not delivered: catch up by other means.
    Missed,
}

impl LifecycleEvent {
    fn name(self) -> &'static str {
        match self {
            Self::ReauthorizationRequired => "reauthorizationRequired",
            Self::SubscriptionRemoved => "subscriptionRemoved",
            Self::Missed => "missed",
        }
    }
}

/// The notification switches as they are now (`GET /_mock/graph`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphSwitches {
    /// Change notifications are dropped (not sent) while on.
    pub drop_notifications: bool,
    /// How many of the next change notifications are dropped.
    pub drop_next: u64,
    /// Change notifications wait this long before they are sent, milliseconds.
    pub notification_delay_ms: u64,
    /// Change notifications sent so far (each item of a POST's `value`).
    pub notifications_sent: u64,
    /// Change notifications dropped so far.
    pub notifications_dropped: u64,
    /// Lifecycle notifications sent so far.
    pub lifecycle_sent: u64,
    /// The IDs of the live subscriptions.
    pub subscriptions: Vec<String>,
}

/// A change of the switches (`POST /_mock/graph`): every member is optional; `expire` and
/// `lifecycle` are actions taken once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSwitchChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_notifications: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_next: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_delay_ms: Option<u64>,
    /// Subscriptions to expire now (removed; `subscriptionRemoved` is sent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expire: Vec<String>,
    /// Lifecycle notifications to send: `{"subscription": id, "event": "missed"}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle: Vec<LifecycleSend>,
}

/// One lifecycle notification to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSend {
    pub subscription: String,
    pub event: LifecycleEvent,
}

impl GraphSwitchChange {
    /// Reads a change from JSON (`POST /_mock/graph`'s body).
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a switch change: {e}"))
    }
}

/// What the task last saw of a mailbox.
#[derive(Debug, Default)]
struct Seen {
    version: u64,
    /// Events by sequence number, with their versions.
    events: HashMap<u64, u64>,
}

impl Seen {
    fn now(mb: &Mailbox) -> Self {
        Self {
            version: mb.version(),
            events: mb.events.iter().map(|(s, e)| (*s, e.version)).collect(),
        }
    }
}

/// One POST to make.
#[derive(Debug)]
struct Delivery {
    url: String,
    body: Value,
    /// A change notification batch (the delay applies), with how many items.
    changes: usize,
}

/// The push state of one mock.
#[derive(Debug, Default)]
pub(crate) struct PushState {
    pub subs: BTreeMap<String, Subscription>,
    seen: HashMap<String, Seen>,
    outbox: VecDeque<Delivery>,
    drop_all: bool,
    drop_next: u64,
    delay: Duration,
    sent: u64,
    dropped: u64,
    lifecycle_sent: u64,
    started: bool,
}

/// Shared between the mock's handlers and its notification task.
#[derive(Debug, Clone)]
pub(crate) struct Push {
    state: Arc<Mutex<PushState>>,
    wake: Arc<Notify>,
    /// The mail store's change count the task has told everything up to (sent, or dropped).
    done: Arc<watch::Sender<u64>>,
}

impl Default for Push {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            wake: Arc::default(),
            done: Arc::new(watch::channel(0).0),
        }
    }
}

impl Push {
    pub(crate) fn lock(&self) -> MutexGuard<'_, PushState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PushState {
    /// Remembers the mailbox as it is now, unless the task already follows it.
    pub(crate) fn follow(&mut self, mb: &Mailbox) {
        self.seen
            .entry(mb.address.to_ascii_lowercase())
            .or_insert_with(|| Seen::now(mb));
    }

    /// The live subscription `id` (one past its expiry is forgotten).
    pub(crate) fn live(&mut self, id: &str, now: OffsetDateTime) -> Option<&mut Subscription> {
        self.expire_due(now);
        self.subs.get_mut(id)
    }

    fn expire_due(&mut self, now: OffsetDateTime) {
        self.subs.retain(|_, s| s.expires > now);
    }

    fn lifecycle(&mut self, sub: &Subscription, event: LifecycleEvent) {
        let Some(url) = &sub.lifecycle_url else {
            return;
        };
        self.outbox.push_back(Delivery {
            url: url.clone(),
            body: json!({"value": [{
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": fmt_instant(sub.expires),
                "tenantId": sub.tenant_id,
                "clientState": sub.client_state,
                "lifecycleEvent": event.name(),
            }]}),
            changes: 0,
        });
    }
}

/// A change the task found.
#[derive(Debug)]
struct Found {
    version: u64,
    kind: ChangeType,
    /// A message that is where it is now: the version at which it appeared there (it is
    /// `created` for a subscription that had not seen it, else `updated`).
    appeared: Option<u64>,
    /// `None` for events.
    folder: Option<u64>,
    id: String,
}

impl Found {
    /// The change type for a subscription created at `since`, when the task had seen the
    /// mailbox up to `seen`.
    fn kind_for(&self, seen: u64, since: u64) -> ChangeType {
        match self.appeared {
            Some(v) if v > seen.max(since) => ChangeType::Created,
            Some(_) => ChangeType::Updated,
            None => self.kind,
        }
    }
}

impl GraphState {
    pub(crate) fn push(&self) -> &Push {
        &self.push
    }

    /// Starts the notification task, once.
    pub(crate) fn start_notifier(&self) {
        {
            let mut push = self.push.lock();
            if push.started {
                return;
            }
            push.started = true;
        }
        let state = self.clone();
        tokio::spawn(async move { state.notify_loop().await });
    }

    async fn notify_loop(self) {
        let mut changes = self.store.subscribe();
        let wake = Arc::clone(&self.push.wake);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        loop {
            let upto = *changes.borrow_and_update();
            self.collect();
            loop {
                let (next, delay) = {
                    let mut push = self.push.lock();
                    (push.outbox.pop_front(), push.delay)
                };
                let Some(delivery) = next else { break };
                if delivery.changes > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                // A receiver that fails is not retried: its subscription missed these.
                let _ = client
                    .post(&delivery.url)
                    .header("content-type", "application/json; charset=utf-8")
                    .body(delivery.body.to_string())
                    .send()
                    .await;
            }
            self.push.done.send_replace(upto);
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = wake.notified() => {}
            }
        }
    }

    /// Reads what changed in the watched mailboxes and queues the notifications.
    fn collect(&self) {
        let now = self.now();
        let mut guard = self.push.lock();
        let push = &mut *guard;
        push.expire_due(now);
        let store = self.store.lock();
        let addresses: Vec<String> = push.seen.keys().cloned().collect();
        for address in addresses {
            let watching = push
                .subs
                .values()
                .any(|s| s.mailbox.eq_ignore_ascii_case(&address));
            let Some(mb) = store.mailbox(&address) else {
                push.seen.remove(&address);
                continue;
            };
            if !watching {
                push.seen.remove(&address);
                continue;
            }
            let Some(seen) = push.seen.get_mut(&address) else {
                continue;
            };
            let found = changes(mb, seen);
            let seen_version = seen.version;
            *seen = Seen::now(mb);
            if found.is_empty() {
                continue;
            }
            let mut batches = Vec::new();
            for sub in push
                .subs
                .values()
                .filter(|s| s.mailbox.eq_ignore_ascii_case(&address))
            {
                let items: Vec<Value> = found
                    .iter()
                    .filter(|f| {
                        f.version > sub.since
                            && sub
                                .change_types
                                .contains(&f.kind_for(seen_version, sub.since))
                    })
                    .filter(|f| match (sub.scope, f.folder) {
                        (Scope::Folder(want), Some(folder)) => want == folder,
                        (Scope::Messages, Some(_)) => true,
                        (Scope::Events, None) => true,
                        _ => false,
                    })
                    .map(|f| notification(sub, f, f.kind_for(seen_version, sub.since)))
                    .collect();
                if !items.is_empty() {
                    batches.push((sub.notification_url.clone(), items));
                }
            }
            for (url, items) in batches {
                let mut kept = Vec::new();
                for item in items {
                    if push.drop_all {
                        push.dropped += 1;
                    } else if push.drop_next > 0 {
                        push.drop_next -= 1;
                        push.dropped += 1;
                    } else {
                        kept.push(item);
                    }
                }
                if !kept.is_empty() {
                    push.sent += kept.len() as u64;
                    push.outbox.push_back(Delivery {
                        url,
                        changes: kept.len(),
                        body: json!({ "value": kept }),
                    });
                }
            }
        }
    }

    /// The notification switches now.
    pub fn graph_switches(&self) -> GraphSwitches {
        let now = self.now();
        let mut push = self.push.lock();
        push.expire_due(now);
        GraphSwitches {
            drop_notifications: push.drop_all,
            drop_next: push.drop_next,
            notification_delay_ms: u64::try_from(push.delay.as_millis()).unwrap_or(u64::MAX),
            notifications_sent: push.sent,
            notifications_dropped: push.dropped,
            lifecycle_sent: push.lifecycle_sent,
            subscriptions: push.subs.keys().cloned().collect(),
        }
    }

    /// Applies `change` entirely, or nothing of it when it names a subscription the mock does
    /// not have; answers the switches as they are then.
    pub fn change_graph_switches(
        &self,
        change: &GraphSwitchChange,
    ) -> Result<GraphSwitches, String> {
        let now = self.now();
        {
            let mut push = self.push.lock();
            push.expire_due(now);
            let unknown = change
                .expire
                .iter()
                .chain(change.lifecycle.iter().map(|l| &l.subscription))
                .find(|id| !push.subs.contains_key(id.as_str()));
            if let Some(id) = unknown {
                return Err(format!("no live subscription has the ID `{id}`"));
            }
            if let Some(on) = change.drop_notifications {
                push.drop_all = on;
            }
            if let Some(n) = change.drop_next {
                push.drop_next = n;
            }
            if let Some(ms) = change.notification_delay_ms {
                push.delay = Duration::from_millis(ms);
            }
            for send in &change.lifecycle {
                if let Some(sub) = push.subs.get_mut(&send.subscription) {
                    if send.event == LifecycleEvent::ReauthorizationRequired {
                        sub.needs_reauthorization = true;
                    }
                    let sub = sub.clone();
                    if sub.lifecycle_url.is_some() {
                        push.lifecycle_sent += 1;
                    }
                    push.lifecycle(&sub, send.event);
                    if send.event == LifecycleEvent::SubscriptionRemoved {
                        push.subs.remove(&send.subscription);
                    }
                }
            }
            for id in &change.expire {
                if let Some(sub) = push.subs.remove(id) {
                    if sub.lifecycle_url.is_some() {
                        push.lifecycle_sent += 1;
                    }
                    push.lifecycle(&sub, LifecycleEvent::SubscriptionRemoved);
                }
            }
        }
        self.push.wake.notify_one();
        Ok(self.graph_switches())
    }

    /// Drops every change notification while `on` (counted, never sent).
    pub fn drop_notifications(&self, on: bool) {
        self.push.lock().drop_all = on;
    }

    /// Drops the next `count` change notifications.
    pub fn drop_next_notifications(&self, count: u64) {
        self.push.lock().drop_next = count;
    }

    /// Holds every change notification back by `delay` before it is sent.
    pub fn delay_notifications(&self, delay: Duration) {
        self.push.lock().delay = delay;
    }

    /// Expires subscription `id` now: it is removed and `subscriptionRemoved` is sent to its
    /// lifecycle URL. `false` when there is no such live subscription.
    pub fn expire_subscription(&self, id: &str) -> bool {
        self.change_graph_switches(&GraphSwitchChange {
            expire: vec![id.to_string()],
            ..GraphSwitchChange::default()
        })
        .is_ok()
    }

    /// Sends `event` to subscription `id`'s lifecycle URL (`subscriptionRemoved` also removes
    /// it). `false` when there is no such live subscription.
    pub fn send_lifecycle(&self, id: &str, event: LifecycleEvent) -> bool {
        self.change_graph_switches(&GraphSwitchChange {
            lifecycle: vec![LifecycleSend {
                subscription: id.to_string(),
                event,
            }],
            ..GraphSwitchChange::default()
        })
        .is_ok()
    }

    /// Waits until every change the mail store had when called has been told (its
    /// notifications sent, their receivers answered, or dropped), so a test can tell "not sent"
    /// from "not sent yet". Answers at once when nothing is subscribed.
    pub async fn notifications_settled(&self) {
        if !self.push.lock().started {
            return;
        }
        let target = *self.store.subscribe().borrow();
        let mut done = self.push.done.subscribe();
        let _ = done.wait_for(|v| *v >= target).await;
    }

    /// The live subscriptions' IDs.
    pub fn subscription_ids(&self) -> Vec<String> {
        self.graph_switches().subscriptions
    }

    /// Queues a batch (used when a subscription is created, to wake the task).
    pub(crate) fn wake_notifier(&self) {
        self.push.wake.notify_one();
    }
}

/// What changed in `mb` since `seen`.
fn changes(mb: &Mailbox, seen: &Seen) -> Vec<Found> {
    let mut found = Vec::new();
    for (version, change) in mb.changes(seen.version, mb.version()) {
        match change {
            Change::Message(seq) => {
                let Some(m) = mb.messages.get(&seq) else {
                    continue;
                };
                found.push(Found {
                    version,
                    kind: ChangeType::Updated,
                    appeared: Some(m.created_version),
                    folder: Some(m.folder),
                    id: mb.message_id(seq),
                });
            }
            Change::Removed { folder, seq } => found.push(Found {
                version,
                kind: ChangeType::Deleted,
                appeared: None,
                folder: Some(folder),
                id: mb.message_id(seq),
            }),
        }
    }
    for (seq, event) in &mb.events {
        let kind = match seen.events.get(seq) {
            None => ChangeType::Created,
            Some(v) if *v != event.version => ChangeType::Updated,
            Some(_) => continue,
        };
        found.push(Found {
            version: event.version,
            kind,
            appeared: None,
            folder: None,
            id: mb.id(Kind::Event, *seq, None),
        });
    }
    for seq in seen.events.keys().filter(|s| !mb.events.contains_key(s)) {
        found.push(Found {
            version: mb.version().max(seen.version + 1),
            kind: ChangeType::Deleted,
            appeared: None,
            folder: None,
            id: mb.id(Kind::Event, *seq, None),
        });
    }
    found.sort_by_key(|f| f.version);
    found
}

/// One change notification, as Graph sends it.
fn notification(sub: &Subscription, f: &Found, kind: ChangeType) -> Value {
    let (collection, odata_type) = match f.folder {
        Some(_) => ("Messages", "#Microsoft.Graph.Message"),
        None => ("Events", "#Microsoft.Graph.Event"),
    };
    let resource = format!("Users/{}/{collection}/{}", sub.user_id, f.id);
    json!({
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": fmt_instant(sub.expires),
        "changeType": kind.name(),
        "resource": resource,
        "resourceData": {
            "@odata.type": odata_type,
            "@odata.id": resource,
            "@odata.etag": format!("W/\"{}\"", f.version),
            "id": f.id,
        },
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    })
}
