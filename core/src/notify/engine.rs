//! The engine: watches, their syncs, and the tasks that run them.
//!
//! [`Notifier::sync`] is the only place events are made. It reads what changed since the
//! watch's stored sync state (`Mail::changes` for a mail folder; a window of the calendar for
//! events), compares it with the items the watch knew, and commits the new state, the items and
//! the events in one transaction that checks the state's version
//! ([`NotifyStore::commit_sync`]). So:
//! - a sync that runs twice (a notification and a timer, two gateways) commits once: the
//!   other's version check fails and it reports nothing;
//! - a gateway killed before the commit left the old state: the next sync reports the change;
//! - the same change has the same event ID however it was found.
//!
//! [`Notifier::run`] keeps a task per watch this process owns (on a shared store, each watch is
//! claimed by one gateway at a time): it keeps the backend's subscription (Graph: a subscription
//! to the gateway's public URL, renewed before it expires; EWS and IMAP: a listener on a held
//! connection) and syncs when told of a change, and on a timer as a safety net.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use url::Url;

use crate::Error;
use crate::apikeys::ApiKeyId;
use crate::clock::Clock;
use crate::connections::Connections;
use crate::mailbox::{Backend, FolderRef, MailboxError, MailboxRef, MessageSummary};
use crate::mailboxes::Mailboxes;
use crate::model::{
    Auth, Connection, ConnectionId, EmailAddress, InvalidInput, Principal, WatchId,
};
use crate::secret::{Secret, constant_time_eq, random_bytes};
use crate::store::{Store, StoreError};

use super::event::event_id;
use super::store::{KnownItem, NotifyStore, SyncCommit, WatchRow};
use super::{ChangeEvent, EventKind, PushSubscription, PushTarget, Signal, Watched};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// The gateway's public base URL, which Microsoft Graph posts notifications to
    /// (`{public_url}/notifications/graph/{watch}`). `None`: Graph watches are polled.
    pub public_url: Option<Url>,
    /// How often a watch whose backend cannot tell of changes is synced.
    pub poll_every: Duration,
    /// How often a watch whose backend tells of changes is synced anyway (the safety net for
    /// lost notifications).
    pub safety_every: Duration,
    /// This process's name as an owner of watches (several gateways on one store).
    pub owner: String,
    /// How long a claim on a watch lasts unless renewed.
    pub lease: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            public_url: None,
            poll_every: Duration::from_secs(30),
            safety_every: Duration::from_secs(300),
            owner: format!("exgate-{}", uuid::Uuid::new_v4()),
            lease: Duration::from_secs(60),
        }
    }
}

/// How far back and ahead a calendar watch looks: an event that ends before the window is
/// forgotten silently (it left the window; it was not deleted).
const CALENDAR_PAST: time::Duration = time::Duration::days(1);
const CALENDAR_AHEAD: time::Duration = time::Duration::days(365);

/// The most webhooks one connection may have.
pub const MAX_WEBHOOKS: usize = 100;

/// The lifetime asked of a Graph subscription (Graph grants at most 4,230 minutes for Outlook
/// resources), and when it is renewed: with a third of it left.
const PUSH_LIFETIME: time::Duration = time::Duration::minutes(4_200);

/// What a watch keeps between syncs (sealed in the store as one document).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WatchDoc {
    /// Each mail scope's sync state, as its backend issued it.
    #[serde(default)]
    states: BTreeMap<String, String>,
    /// The first sync is done: the items then present are known and were not reported.
    #[serde(default)]
    baseline: bool,
    /// The push backend's subscriptions for this watch.
    #[serde(default)]
    push: Vec<PushSubscription>,
    /// The secret each of this watch's Graph notifications must carry.
    #[serde(default)]
    client_state: Option<String>,
    /// The public URL the subscriptions post to: when the gateway's changed, they are made again.
    #[serde(default)]
    push_base: Option<String>,
}

impl WatchDoc {
    fn read(document: Option<&Secret>) -> Result<Self, Error> {
        match document {
            None => Ok(Self::default()),
            Some(doc) => serde_json::from_str(doc.expose()).map_err(|_| {
                StoreError::Corrupt("a watch's state document does not parse".into()).into()
            }),
        }
    }

    fn seal(&self) -> Secret {
        Secret::new(serde_json::to_string(self).unwrap_or_default())
    }
}

/// The scope of a watched thing in the store's known items.
pub fn scope(watched: &Watched) -> String {
    match watched {
        Watched::Mail { folder } => format!("mail:{}", folder_name(folder)),
        Watched::Calendar => "calendar".into(),
    }
}

fn folder_name(folder: &FolderRef) -> String {
    match folder {
        FolderRef::WellKnown(w) => w.name().to_owned(),
        FolderRef::Id(id) => id.clone(),
    }
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A message's reported state: what an application sees change (`updated`).
fn message_version(m: &MessageSummary) -> String {
    let visible = serde_json::json!([
        m.subject,
        m.is_read,
        m.flag,
        m.importance,
        m.categories,
        m.has_attachments
    ]);
    short_hash(&[visible.to_string().as_bytes()])
}

/// What pairs a message that left one watched folder with the one that arrived in another in
/// the same sync (a move: backends give the moved message a new ID).
fn message_identity(m: &MessageSummary) -> String {
    let received = m
        .received_at
        .map(|t| t.unix_timestamp().to_string())
        .unwrap_or_default();
    let from = m
        .from
        .as_ref()
        .map(|r| r.address.to_ascii_lowercase())
        .unwrap_or_default();
    short_hash(&[m.subject.as_bytes(), received.as_bytes(), from.as_bytes()])
}

/// One change found by a sync, before it becomes an event.
#[derive(Debug)]
struct Found {
    kind: EventKind,
    scope: String,
    item_id: String,
    version: String,
    extra: String,
}

/// What a notification pushed to the gateway says, once parsed (Graph).
#[derive(Debug, Clone)]
pub struct Pushed {
    pub subscription_id: String,
    /// The `clientState` it carried.
    pub client_state: Option<String>,
    /// `None` for a change notification; the lifecycle event otherwise.
    pub lifecycle: Option<Lifecycle>,
}

/// A Graph lifecycle notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    ReauthorizationRequired,
    SubscriptionRemoved,
    Missed,
}

/// What the engine made of pushed notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushedOutcome {
    /// Notifications accepted (their subscription and secret matched).
    pub accepted: usize,
    /// Refused: unknown subscription, or a wrong or missing `clientState`.
    pub refused: usize,
}

/// Whose rights open a watch's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchAccess {
    /// The principal's, as the gateway's mailbox routes check them
    /// ([`Mailboxes::for_connection`]): a linked account on a delegated connection; on a
    /// connection with a service identity (app-only, Basic, NTLM), a static user and the mailbox
    /// an admin mapped to it.
    #[default]
    Principal,
    /// The connection's own, as the command line's mailbox commands use them
    /// ([`Mailboxes::open`]): on a delegated connection the principal is the account that acts
    /// (on its own mailbox or the one the watch names); a service identity acts itself on the
    /// mailbox the watch names (its own when none, for Basic and NTLM), and the principal only
    /// names who the watch is for.
    Connection,
}

/// A watch the caller asks for.
#[derive(Debug, Clone)]
pub struct NewWatch {
    pub connection: String,
    pub principal: Principal,
    pub mailbox: Option<EmailAddress>,
    /// What to follow (empty: the inbox).
    pub watched: Vec<Watched>,
    pub api_key: Option<ApiKeyId>,
}

/// The watches, their syncs and the tasks that run them.
#[derive(Debug)]
pub struct Notifier {
    store: Arc<dyn Store>,
    connections: Arc<Connections>,
    mailboxes: Arc<Mailboxes>,
    clock: Arc<dyn Clock>,
    settings: NotifySettings,
    /// The highest journal `seq` this process committed (delivery and streams wait on it).
    committed: watch::Sender<i64>,
    /// The wake-up of each watch this process runs.
    running: Mutex<HashMap<WatchId, Running>>,
    /// [`Notifier::run`] was called: watches get tasks.
    active: std::sync::atomic::AtomicBool,
    access: WatchAccess,
}

#[derive(Debug)]
struct Running {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        connections: Arc<Connections>,
        mailboxes: Arc<Mailboxes>,
        clock: Arc<dyn Clock>,
        settings: NotifySettings,
    ) -> Self {
        Self {
            store,
            connections,
            mailboxes,
            clock,
            settings,
            committed: watch::channel(0).0,
            running: Mutex::default(),
            active: std::sync::atomic::AtomicBool::new(false),
            access: WatchAccess::default(),
        }
    }

    /// Opens watches' mailboxes with these rights (default: [`WatchAccess::Principal`]).
    #[must_use]
    pub fn with_access(mut self, access: WatchAccess) -> Self {
        self.access = access;
        self
    }

    pub fn settings(&self) -> &NotifySettings {
        &self.settings
    }

    fn notes(&self) -> Result<&dyn NotifyStore, Error> {
        self.store.notifications().ok_or_else(|| {
            MailboxError::Unsupported("this store keeps no change notifications".into()).into()
        })
    }

    /// The store's notification state (webhooks, the journal).
    pub fn store(&self) -> Result<&dyn NotifyStore, Error> {
        self.notes()
    }

    /// Wakes after each commit of events by this process, with the highest `seq`.
    pub fn committed(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }

    /// Creates a watch after checking that the principal reaches the mailbox, and runs its
    /// first sync (what is there now is known, not reported): events start from here.
    pub async fn create_watch(self: &Arc<Self>, new: NewWatch) -> Result<WatchRow, Error> {
        let conn = self.connections.get_shared(&new.connection).await?;
        let mut watched = new.watched;
        if watched.is_empty() {
            watched.push(Watched::Mail {
                folder: FolderRef::WellKnown(crate::mailbox::WellKnownFolder::Inbox),
            });
        }
        let mut seen = HashSet::new();
        watched.retain(|w| seen.insert(scope(w)));
        if watched.len() > 16 {
            return Err(InvalidInput::new("watched", "at most 16 folders per watch".into()).into());
        }
        let (backend, mailbox) = self
            .open_mailbox(&conn, &new.principal, new.mailbox.as_ref())
            .await?;
        for w in &watched {
            match w {
                Watched::Mail { .. } if backend.mail.is_none() => {
                    return Err(MailboxError::Unsupported(format!(
                        "this connection reaches the mailbox over {}, which has no mail",
                        backend.protocol
                    ))
                    .into());
                }
                Watched::Calendar if backend.calendar.is_none() => {
                    return Err(MailboxError::Unsupported(format!(
                        "this connection reaches the mailbox over {}, which has no calendar; watch mail folders, or use a connection with the Graph or EWS backend",
                        backend.protocol
                    ))
                    .into());
                }
                _ => {}
            }
        }
        let row = WatchRow {
            id: WatchId::new_random(),
            connection: conn.id,
            principal: new.principal,
            mailbox: new.mailbox.map(|m| m.to_string().to_ascii_lowercase()),
            watched,
            api_key: new.api_key,
            created_at: self.clock.now(),
        };
        let notes = self.notes()?;
        notes.insert_watch(&row).await?;
        if let Err(e) = self.sync(row.id).await {
            let _ = notes.delete_watch(row.id).await;
            return Err(e);
        }
        // A gateway that runs its watches subscribes before it answers, so changes from here on
        // are pushed (a failure is logged; the watch's task tries again and polls meanwhile).
        if self.active.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.keep_push(&row, &backend, &mailbox).await
        {
            tracing::warn!(watch = %row.id, error = %e, "the Graph subscription could not be made yet; polling meanwhile");
        }
        self.start_watch(&row);
        Ok(row)
    }

    /// Deletes a watch: its task stops and its push subscriptions are deleted (best effort).
    pub async fn delete_watch(&self, id: WatchId) -> Result<bool, Error> {
        let notes = self.notes()?;
        let Some(row) = notes.watch(id).await? else {
            return Ok(false);
        };
        self.lock_running().remove(&id);
        if let Some(state) = notes.watch_state(id).await?
            && let Ok(doc) = WatchDoc::read(state.document.as_ref())
            && !doc.push.is_empty()
            && let Ok((backend, _)) = self.open(&row).await
            && let Some(push) = backend.push
        {
            for sub in &doc.push {
                if let Err(e) = push.unsubscribe(&sub.id).await {
                    tracing::info!(watch = %id, error = %e, "a Graph subscription was not deleted; it expires on its own");
                }
            }
        }
        Ok(notes.delete_watch(id).await?)
    }

    /// The watch `id` of `connection`; one of another connection (or an ID that is none) is
    /// "not found", so a caller learns nothing of other connections' watches.
    pub async fn watch_of(&self, connection: ConnectionId, id: &str) -> Result<WatchRow, Error> {
        let not_found = || Error::NotFound {
            what: "watch",
            name: id.to_owned(),
        };
        let id: WatchId = id.parse().map_err(|_| not_found())?;
        let row = self.notes()?.watch(id).await?;
        row.filter(|r| r.connection == connection)
            .ok_or_else(not_found)
    }

    /// The webhook `id` of `connection`, as [`Notifier::watch_of`] finds a watch.
    pub async fn webhook_of(
        &self,
        connection: ConnectionId,
        id: &str,
    ) -> Result<super::store::WebhookRow, Error> {
        let not_found = || Error::NotFound {
            what: "webhook",
            name: id.to_owned(),
        };
        let id: crate::model::WebhookId = id.parse().map_err(|_| not_found())?;
        let row = self.notes()?.webhook(id).await?;
        row.filter(|r| r.filter.connection == connection)
            .ok_or_else(not_found)
    }

    /// The watches of a connection (all when `None`).
    pub async fn watches(&self, connection: Option<ConnectionId>) -> Result<Vec<WatchRow>, Error> {
        let mut all = self.notes()?.watches().await?;
        if let Some(c) = connection {
            all.retain(|w| w.connection == c);
        }
        Ok(all)
    }

    async fn open(&self, row: &WatchRow) -> Result<(Backend, MailboxRef), Error> {
        let conn = self.connections.by_id(row.connection).await?;
        self.open_on(&conn, row).await
    }

    /// [`Notifier::open`] on the watch's connection, already looked up.
    async fn open_on(
        &self,
        conn: &Connection,
        row: &WatchRow,
    ) -> Result<(Backend, MailboxRef), Error> {
        let mailbox = row
            .mailbox
            .as_deref()
            .map(str::parse::<EmailAddress>)
            .transpose()
            .map_err(|_| StoreError::Corrupt("a watch's mailbox is not an address".into()))?;
        self.open_mailbox(conn, &row.principal, mailbox.as_ref())
            .await
    }

    /// The backend and mailbox of a watch, with the rights [`WatchAccess`] says.
    async fn open_mailbox(
        &self,
        conn: &Connection,
        principal: &Principal,
        mailbox: Option<&EmailAddress>,
    ) -> Result<(Backend, MailboxRef), Error> {
        match self.access {
            WatchAccess::Principal => {
                self.mailboxes
                    .for_connection(conn, principal, mailbox)
                    .await
            }
            WatchAccess::Connection => {
                let account =
                    matches!(conn.settings.auth, Auth::OAuth2Delegated(_)).then_some(principal);
                let backend = self
                    .mailboxes
                    .open(Some(conn.name.as_str()), account)
                    .await?;
                let target = mailbox.map_or(MailboxRef::Me, |m| MailboxRef::User(m.to_string()));
                Ok((backend, target))
            }
        }
    }

    /// Syncs a watch: what changed since its last sync becomes events, committed with the new
    /// state. Answers the events this call committed (none when another sync committed first).
    pub async fn sync(&self, id: WatchId) -> Result<Vec<ChangeEvent>, Error> {
        let notes = self.notes()?;
        let row = notes.watch(id).await?.ok_or_else(|| Error::NotFound {
            what: "watch",
            name: id.to_string(),
        })?;
        let state = notes
            .watch_state(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "watch",
                name: id.to_string(),
            })?;
        let mut doc = WatchDoc::read(state.document.as_ref())?;
        // The connection is looked up once: for the backend and for the events' name.
        let conn = self.connections.by_id(row.connection).await?;
        let (backend, mailbox) = self.open_on(&conn, &row).await?;
        let connection_name = conn.name.to_string();
        let now = self.clock.now();
        let baseline = !doc.baseline;

        let mut found: Vec<Found> = Vec::new();
        let mut upsert: Vec<(String, KnownItem)> = Vec::new();
        let mut remove: Vec<(String, String)> = Vec::new();
        for watched in &row.watched {
            let scope = scope(watched);
            let known: HashMap<String, KnownItem> = notes
                .known_items(id, &scope)
                .await?
                .into_iter()
                .map(|k| (k.item_id.clone(), k))
                .collect();
            match watched {
                Watched::Mail { folder } => {
                    let mail = backend.mail.as_ref().ok_or_else(|| {
                        Error::from(MailboxError::Unsupported(format!(
                            "{} has no mail",
                            backend.protocol
                        )))
                    })?;
                    let previous = doc.states.get(&scope).map(String::as_str);
                    let changes = mail.changes(&mailbox, folder, previous).await?;
                    let mut present = HashSet::new();
                    for m in &changes.changed {
                        present.insert(m.id.clone());
                        let item = KnownItem {
                            item_id: m.id.clone(),
                            version: message_version(m),
                            extra: message_identity(m),
                        };
                        let kind = match known.get(&m.id) {
                            None => Some(EventKind::MessageCreated),
                            Some(k) if k.version != item.version => Some(EventKind::MessageUpdated),
                            Some(_) => None,
                        };
                        if let Some(kind) = kind {
                            found.push(Found {
                                kind,
                                scope: scope.clone(),
                                item_id: item.item_id.clone(),
                                version: item.version.clone(),
                                extra: item.extra.clone(),
                            });
                            upsert.push((scope.clone(), item));
                        }
                    }
                    let mut gone: Vec<&KnownItem> = changes
                        .removed
                        .iter()
                        .filter_map(|r| known.get(r))
                        .collect();
                    if changes.reset {
                        // The whole folder was listed: what is known and not listed is gone.
                        gone.extend(known.values().filter(|k| !present.contains(&k.item_id)));
                    }
                    for k in gone {
                        found.push(Found {
                            kind: EventKind::MessageDeleted,
                            scope: scope.clone(),
                            item_id: k.item_id.clone(),
                            version: k.version.clone(),
                            extra: k.extra.clone(),
                        });
                        remove.push((scope.clone(), k.item_id.clone()));
                    }
                    doc.states.insert(scope.clone(), changes.state);
                }
                Watched::Calendar => {
                    let calendar = backend.calendar.as_ref().ok_or_else(|| {
                        Error::from(MailboxError::Unsupported(format!(
                            "{} has no calendar",
                            backend.protocol
                        )))
                    })?;
                    let (start, end) = (now - CALENDAR_PAST, now + CALENDAR_AHEAD);
                    let events = calendar.events(&mailbox, start, end, None).await?;
                    let mut present = HashSet::new();
                    for e in &events {
                        if !present.insert(e.id.clone()) {
                            continue;
                        }
                        let json = serde_json::to_string(e).unwrap_or_default();
                        let item = KnownItem {
                            item_id: e.id.clone(),
                            version: short_hash(&[json.as_bytes()]),
                            extra: e.end.instant().unix_timestamp().to_string(),
                        };
                        let kind = match known.get(&e.id) {
                            None => Some(EventKind::EventCreated),
                            Some(k) if k.version != item.version => Some(EventKind::EventUpdated),
                            Some(_) => None,
                        };
                        if let Some(kind) = kind {
                            found.push(Found {
                                kind,
                                scope: scope.clone(),
                                item_id: item.item_id.clone(),
                                version: item.version.clone(),
                                extra: item.extra.clone(),
                            });
                            upsert.push((scope.clone(), item));
                        }
                    }
                    for k in known.values().filter(|k| !present.contains(&k.item_id)) {
                        remove.push((scope.clone(), k.item_id.clone()));
                        let ended = k
                            .extra
                            .parse::<i64>()
                            .is_ok_and(|t| t < start.unix_timestamp());
                        if !ended {
                            found.push(Found {
                                kind: EventKind::EventDeleted,
                                scope: scope.clone(),
                                item_id: k.item_id.clone(),
                                version: k.version.clone(),
                                extra: k.extra.clone(),
                            });
                        }
                    }
                }
            }
        }

        let events = if baseline {
            Vec::new()
        } else {
            self.events_of(&row, &connection_name, found, now)
        };
        doc.baseline = true;
        let commit = SyncCommit {
            watch: id,
            expected_version: state.version,
            document: doc.seal(),
            upsert,
            remove,
            events,
        };
        match notes.commit_sync(&commit).await {
            Ok(appended) => {
                if let Some(last) = appended.iter().map(|e| e.seq).max() {
                    self.committed.send_if_modified(|s| {
                        let newer = last > *s;
                        *s = (*s).max(last);
                        newer
                    });
                }
                Ok(appended)
            }
            // Another sync (another gateway) committed since this one read the state: its
            // events are in the journal; this one's would be the same or older.
            Err(StoreError::Conflict(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Turns what a sync found into events; a message that left one watched folder and
    /// arrived in another is one `message.moved`.
    fn events_of(
        &self,
        row: &WatchRow,
        connection: &str,
        found: Vec<Found>,
        now: OffsetDateTime,
    ) -> Vec<ChangeEvent> {
        let mut created_by_identity: HashMap<(String, String), usize> = HashMap::new();
        for (i, f) in found.iter().enumerate() {
            if f.kind == EventKind::MessageCreated {
                created_by_identity.insert((f.scope.clone(), f.extra.clone()), i);
            }
        }
        let mut moved_into: HashMap<usize, &Found> = HashMap::new();
        let mut skip = HashSet::new();
        for (i, f) in found.iter().enumerate() {
            if f.kind != EventKind::MessageDeleted {
                continue;
            }
            let target = created_by_identity
                .iter()
                .find(|((s, x), j)| *s != f.scope && *x == f.extra && !moved_into.contains_key(j))
                .map(|(_, j)| *j);
            if let Some(j) = target {
                moved_into.insert(j, f);
                skip.insert(i);
            }
        }
        let folder_of = |scope: &str| scope.strip_prefix("mail:").unwrap_or(scope).to_owned();
        found
            .iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .map(|(i, f)| {
                let from = moved_into.get(&i);
                let kind = if from.is_some() {
                    EventKind::MessageMoved
                } else {
                    f.kind
                };
                let version = match from {
                    Some(old) => format!("{}<{}", f.version, old.item_id),
                    None => f.version.clone(),
                };
                ChangeEvent {
                    id: event_id(row.id, kind, &f.item_id, &version),
                    seq: 0,
                    kind,
                    watch: row.id,
                    connection: connection.to_owned(),
                    principal: row.principal.to_string(),
                    mailbox: row.mailbox.clone(),
                    folder: folder_of(&f.scope),
                    item_id: f.item_id.clone(),
                    previous_folder: from.map(|o| folder_of(&o.scope)),
                    previous_item_id: from.map(|o| o.item_id.clone()),
                    detected_at: now,
                }
            })
            .collect()
    }

    // ---- webhooks ----

    /// Registers a webhook for the events `filter` passes, from the next one committed on:
    /// its URL checked (`https`, or `http` to loopback unless `allow_plain_http`), a new secret
    /// (in the answer, the only time it is shown), at most [`MAX_WEBHOOKS`] per connection.
    pub async fn create_webhook(
        &self,
        filter: super::store::EventFilter,
        url: &str,
        allow_plain_http: bool,
        api_key: Option<ApiKeyId>,
    ) -> Result<super::store::WebhookRow, Error> {
        let url = super::webhook::validate_url(url, allow_plain_http)?;
        let notes = self.notes()?;
        let kept = notes
            .webhooks()
            .await?
            .iter()
            .filter(|w| w.filter.connection == filter.connection)
            .count();
        if kept >= MAX_WEBHOOKS {
            return Err(InvalidInput::new(
                "url",
                format!(
                    "the connection has {MAX_WEBHOOKS} webhooks already; delete those it no longer needs, or filter by mailbox"
                ),
            )
            .into());
        }
        let row = super::store::WebhookRow {
            id: crate::model::WebhookId::new_random(),
            api_key,
            filter,
            url: url.to_string(),
            secret: super::webhook::generate_secret(),
            created_at: self.clock.now(),
            progress: super::store::WebhookProgress {
                cursor: notes.last_event_seq().await?,
                ..super::store::WebhookProgress::default()
            },
        };
        notes.insert_webhook(&row).await?;
        Ok(row)
    }

    // ---- pushed notifications (Graph) ----

    /// Notifications Microsoft Graph posted for `watch`: each must name one of the watch's
    /// subscriptions and carry its `clientState` (compared in constant time), or it is
    /// refused. An accepted change or `missed` wakes the watch's sync; `subscriptionRemoved`
    /// subscribes again; `reauthorizationRequired` reauthorizes.
    pub async fn pushed(
        self: &Arc<Self>,
        watch: WatchId,
        notifications: &[Pushed],
    ) -> PushedOutcome {
        let mut outcome = PushedOutcome::default();
        let doc = match self.notes() {
            Ok(notes) => match notes.watch_state(watch).await {
                Ok(Some(state)) => WatchDoc::read(state.document.as_ref()).ok(),
                _ => None,
            },
            Err(_) => None,
        };
        let Some(doc) = doc else {
            outcome.refused = notifications.len();
            return outcome;
        };
        let secret = doc.client_state.as_deref().unwrap_or_default();
        let mut lifecycle = Vec::new();
        for n in notifications {
            let known = doc.push.iter().any(|s| s.id == n.subscription_id);
            let matches = !secret.is_empty()
                && n.client_state
                    .as_deref()
                    .is_some_and(|c| constant_time_eq(c.as_bytes(), secret.as_bytes()));
            if known && matches {
                outcome.accepted += 1;
                if let Some(l) = n.lifecycle {
                    lifecycle.push((n.subscription_id.clone(), l));
                }
            } else {
                outcome.refused += 1;
            }
        }
        if outcome.refused > 0 {
            tracing::warn!(%watch, refused = outcome.refused, "notifications refused: unknown subscription or wrong clientState");
        }
        if outcome.accepted > 0 {
            for (sub, l) in lifecycle {
                self.lifecycle(watch, &sub, l).await;
            }
            if self.runs(watch) {
                self.wake(watch);
            } else {
                // Another gateway runs the watch (the load balancer sent Graph here): this one
                // syncs it; the commit's version check keeps each change reported once.
                let me = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(e) = me.sync(watch).await {
                        tracing::warn!(%watch, error = %e, "a notified watch could not be synced here");
                    }
                });
            }
        }
        outcome
    }

    async fn lifecycle(&self, watch: WatchId, subscription: &str, event: Lifecycle) {
        let Ok(notes) = self.notes() else { return };
        let Ok(Some(row)) = notes.watch(watch).await else {
            return;
        };
        let Ok((backend, _)) = self.open(&row).await else {
            return;
        };
        let Some(push) = backend.push else { return };
        let outcome = match event {
            Lifecycle::ReauthorizationRequired => push.reauthorize(subscription).await,
            // The subscription is gone: the watch's task subscribes again on its next round;
            // the sync it is woken for catches up.
            Lifecycle::SubscriptionRemoved => {
                self.forget_subscription(watch, subscription).await;
                Ok(())
            }
            Lifecycle::Missed => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::warn!(%watch, error = %e, "a lifecycle notification could not be acted on");
        }
    }

    async fn forget_subscription(&self, watch: WatchId, subscription: &str) {
        let _ = self
            .update_doc(watch, |doc| doc.push.retain(|s| s.id != subscription))
            .await;
    }

    /// Changes a watch's state document (not its items), with the version check; retried a
    /// few times when another writer committed in between.
    async fn update_doc(
        &self,
        watch: WatchId,
        change: impl Fn(&mut WatchDoc),
    ) -> Result<WatchDoc, Error> {
        let notes = self.notes()?;
        for _ in 0..5 {
            let state = notes
                .watch_state(watch)
                .await?
                .ok_or_else(|| Error::NotFound {
                    what: "watch",
                    name: watch.to_string(),
                })?;
            let mut doc = WatchDoc::read(state.document.as_ref())?;
            change(&mut doc);
            let commit = SyncCommit {
                watch,
                expected_version: state.version,
                document: doc.seal(),
                upsert: Vec::new(),
                remove: Vec::new(),
                events: Vec::new(),
            };
            match notes.commit_sync(&commit).await {
                Ok(_) => return Ok(doc),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict("the watch's state kept changing".into()).into())
    }

    /// Keeps the watch's push subscriptions: one per watched thing, renewed with a third of
    /// its life left, made again when the backend lost it.
    async fn keep_push(
        &self,
        row: &WatchRow,
        backend: &Backend,
        mailbox: &MailboxRef,
    ) -> Result<bool, Error> {
        let (Some(push), Some(base)) = (backend.push.as_ref(), self.settings.public_url.as_ref())
        else {
            return Ok(false);
        };
        let notes = self.notes()?;
        let state = notes
            .watch_state(row.id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "watch",
                name: row.id.to_string(),
            })?;
        let doc = WatchDoc::read(state.document.as_ref())?;
        let now = self.clock.now();
        let client_state = doc.client_state.clone().unwrap_or_else(|| {
            let bytes: [u8; 32] = random_bytes();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        });
        let mut kept = Vec::new();
        let moved = doc.push_base.as_deref() != Some(base.as_str());
        let mut changed = doc.client_state.is_none() || moved;
        if moved {
            // Subscriptions to another URL (the gateway's public URL changed) are of no use.
            for old in &doc.push {
                let _ = push.unsubscribe(&old.id).await;
            }
        }
        for watched in &row.watched {
            let existing = doc
                .push
                .iter()
                .find(|s| &s.watched == watched && !moved)
                .cloned();
            let wanted = now + PUSH_LIFETIME;
            match existing {
                Some(sub) if sub.expires - now > PUSH_LIFETIME / 3 => kept.push(sub),
                Some(sub) => match push.renew(&sub.id, wanted).await {
                    Ok(expires) => {
                        changed = true;
                        kept.push(PushSubscription { expires, ..sub });
                    }
                    Err(Error::Mailbox(MailboxError::NotFound { .. })) => {
                        changed = true;
                        let target = self.target(base, row.id, &client_state, wanted)?;
                        kept.push(push.subscribe(mailbox, watched, &target).await?);
                        self.wake(row.id);
                    }
                    Err(e) => return Err(e),
                },
                None => {
                    changed = true;
                    let target = self.target(base, row.id, &client_state, wanted)?;
                    kept.push(push.subscribe(mailbox, watched, &target).await?);
                    // Changes between the last sync and the subscription are caught up.
                    self.wake(row.id);
                }
            }
        }
        if changed {
            let base = base.to_string();
            self.update_doc(row.id, move |d| {
                d.push = kept.clone();
                d.client_state = Some(client_state.clone());
                d.push_base = Some(base.clone());
            })
            .await?;
        }
        Ok(true)
    }

    fn target(
        &self,
        base: &Url,
        watch: WatchId,
        client_state: &str,
        expires: OffsetDateTime,
    ) -> Result<PushTarget, Error> {
        let url = |tail: &str| {
            base.join(&format!("notifications/graph/{watch}{tail}"))
                .map_err(|_| {
                    Error::from(InvalidInput::new(
                        "notify.public_url",
                        "is not a base URL notifications can be posted under".into(),
                    ))
                })
        };
        Ok(PushTarget {
            notification_url: url("")?,
            lifecycle_url: url("/lifecycle")?,
            client_state: Secret::new(client_state),
            expires,
        })
    }

    // ---- the tasks ----

    /// Wakes the watch's sync (if this process runs it).
    pub fn wake(&self, watch: WatchId) {
        if let Some(r) = self.lock_running().get(&watch) {
            r.wake.notify_one();
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<WatchId, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this process runs the watch.
    pub fn runs(&self, watch: WatchId) -> bool {
        self.lock_running().contains_key(&watch)
    }

    fn start_watch(self: &Arc<Self>, row: &WatchRow) {
        if !self.active.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let me = Arc::clone(self);
        let mut running = self.lock_running();
        if running.contains_key(&row.id) {
            return;
        }
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run_watch(me, row.clone(), Arc::clone(&wake)));
        running.insert(row.id, Running { wake, task });
    }

    /// Runs every watch this process owns until the returned handle is aborted: every
    /// `lease / 3` it claims the watches no live gateway holds (all of them on a store only
    /// this process uses), starts their tasks, and stops those of watches that were deleted or
    /// taken over.
    pub fn run(self: &Arc<Self>) -> JoinHandle<()> {
        self.active
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.supervise().await {
                    tracing::warn!(error = %e, "watches could not be read; retrying");
                }
                tokio::time::sleep(me.settings.lease / 3).await;
            }
        })
    }

    async fn supervise(self: &Arc<Self>) -> Result<(), Error> {
        let notes = self.notes()?;
        let now = self.clock.now();
        let until = now + self.settings.lease;
        let rows = notes.watches().await?;
        // A store only this process uses (SQLite, memory) needs no claims: every watch is ours,
        // and a thousand watches do not cost a thousand writes every round.
        let shared = self.store.shares_auth_failures();
        let mut mine = HashSet::new();
        for row in &rows {
            if !shared
                || notes
                    .claim_watch(row.id, &self.settings.owner, now, until)
                    .await?
            {
                mine.insert(row.id);
                self.start_watch(row);
            }
        }
        self.lock_running().retain(|id, _| mine.contains(id));
        Ok(())
    }

    /// Stops every task and gives the watches up for another gateway.
    pub async fn shutdown(&self) {
        let ids: Vec<WatchId> = self.lock_running().drain().map(|(id, _)| id).collect();
        if let Ok(notes) = self.notes() {
            for id in ids {
                let _ = notes.release_watch(id, &self.settings.owner).await;
            }
        }
    }
}

/// One watch's task: keeps its subscription or listener, and syncs when woken, on its timer,
/// and after any error (with a back-off).
async fn run_watch(me: Arc<Notifier>, row: WatchRow, wake: Arc<Notify>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let (backend, mailbox) = match me.open(&row).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(watch = %row.id, error = %e, "the watch's mailbox cannot be opened; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
                continue;
            }
        };
        // A listener (EWS, IMAP) wakes the sync from its own task.
        let listener = backend.listen.clone().map(|listen| {
            let wake = Arc::clone(&wake);
            let (mailbox, watched, id) = (mailbox.clone(), row.watched.clone(), row.id);
            tokio::spawn(async move {
                let mut backoff = Duration::from_secs(1);
                loop {
                    match listen.listen(&mailbox, &watched).await {
                        Ok(mut l) => {
                            backoff = Duration::from_secs(1);
                            // What happened while no listener ran is caught up.
                            wake.notify_one();
                            loop {
                                match l.next().await {
                                    Ok(Signal::Changed(_) | Signal::Gap) => wake.notify_one(),
                                    Err(e) => {
                                        tracing::info!(watch = %id, error = %e, "the listener ended; listening again");
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(watch = %id, error = %e, "cannot listen for changes; retrying");
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(120));
                }
            })
        });
        let _listener = listener.map(AbortOnDrop);
        loop {
            let pushed = match me.keep_push(&row, &backend, &mailbox).await {
                Ok(pushed) => pushed,
                Err(e) => {
                    tracing::warn!(watch = %row.id, error = %e, "the Graph subscription could not be kept; polling meanwhile");
                    false
                }
            };
            let every = if pushed || backend.listen.is_some() {
                me.settings.safety_every
            } else {
                me.settings.poll_every
            };
            if let Err(e) = me.sync(row.id).await {
                if matches!(e, Error::NotFound { what: "watch", .. }) {
                    return;
                }
                tracing::warn!(watch = %row.id, error = %e, "the watch's sync failed; retrying");
                break;
            }
            backoff = Duration::from_secs(1);
            // Subscriptions are looked at every 10 minutes at least.
            let renew_in = Duration::from_secs(600).min(every);
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(renew_in) => {}
            }
        }
        // The sync failed: the mailbox is opened again after a back-off.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(300));
    }
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
