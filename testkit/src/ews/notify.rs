//! Notifications: `Subscribe` (streaming and pull subscriptions on folders, with event types),
//! `GetStreamingEvents` (a held, chunked answer: one SOAP envelope per batch of notifications,
//! a keep-alive envelope with `ConnectionStatus` `OK`, and `Closed` at `ConnectionTimeout`),
//! `GetEvents` (pull: the events after a watermark, `MoreEvents`) and `Unsubscribe`.
//!
//! Events come from the mail store: messages from its change log (a new message is a
//! `CreatedEvent`, and a `NewMailEvent` in the Inbox; a changed one a `ModifiedEvent`; one that
//! left a folder — deleted or moved away — a `DeletedEvent` there; a message moved in is created
//! in its new folder), calendar items by their versions (deletions by the items the
//! subscription already knew). A subscription keeps a cursor, the mailbox version it has
//! reported up to, so a streaming subscription's events wait for the next connection and a
//! watermark names a point in the mailbox's history.
//!
//! Switches ([`super::EwsSwitches`]): `streaming: false` answers as Exchange 2010 before SP1
//! (no streaming subscriptions: schema validation faults), `drop_notifications` advances
//! streamed subscriptions without sending their events; [`super::EwsState::expire_subscriptions`]
//! forgets every subscription and [`super::EwsState::close_streams`] ends every open stream
//! with `ConnectionStatus` `Closed`.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::EwsState;
use super::dispatch::Op;
use super::folders;
use super::ids::{Id, Kind, change_key};
use super::items::fmt_time;
use super::soap::{self, EwsError, EwsResult};
use super::switches::ServerVersion;
use super::xml::{Element, Xml};
use crate::mailstore::Mailboxes;
use crate::mailstore::mailbox::{Change, Mailbox};

/// How often an open stream with nothing to say sends `ConnectionStatus` `OK` (the mock's
/// choice, below the 30 s a client's read may wait).
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// A streaming subscription without a connection lives this long (Exchange: 30 minutes).
const STREAMING_LIFETIME: time::Duration = time::Duration::minutes(30);

/// The most events one `GetEvents` answer or one streamed notification carries.
const MAX_EVENTS: usize = 50;

/// The event types of the schema (`NotificationEventTypeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum EventType {
    Copied,
    Created,
    Deleted,
    Modified,
    Moved,
    NewMail,
    FreeBusyChanged,
}

impl EventType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "CopiedEvent" => Self::Copied,
            "CreatedEvent" => Self::Created,
            "DeletedEvent" => Self::Deleted,
            "ModifiedEvent" => Self::Modified,
            "MovedEvent" => Self::Moved,
            "NewMailEvent" => Self::NewMail,
            "FreeBusyChangedEvent" => Self::FreeBusyChanged,
            _ => return None,
        })
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Copied => "t:CopiedEvent",
            Self::Created => "t:CreatedEvent",
            Self::Deleted => "t:DeletedEvent",
            Self::Modified => "t:ModifiedEvent",
            Self::Moved => "t:MovedEvent",
            Self::NewMail => "t:NewMailEvent",
            Self::FreeBusyChanged => "t:FreeBusyChangedEvent",
        }
    }
}

/// Pull (`Timeout` minutes without a `GetEvents`) or streaming.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Pull { timeout: time::Duration },
    Streaming,
}

/// One subscription the mock keeps.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    /// Who made it (only they may read it).
    owner: String,
    /// Lower-case address.
    mailbox: String,
    /// `None`: every folder (`SubscribeToAllFolders`).
    folders: Option<Vec<u64>>,
    types: Vec<EventType>,
    mode: Mode,
    /// The mailbox version reported up to.
    cursor: u64,
    /// Calendar items already reported (their deletions show).
    known_events: BTreeSet<u64>,
    /// The last `GetEvents`, the end of the last stream, or the subscription.
    last_seen: OffsetDateTime,
    /// An open stream reads it.
    streaming_now: bool,
}

/// The subscriptions of one mock, by ID.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    by_id: HashMap<String, Subscription>,
    next: u64,
    /// Bumped by [`super::EwsState::close_streams`].
    pub closes: u64,
}

impl Subscriptions {
    /// Forgets every subscription.
    pub(crate) fn clear(&mut self) {
        self.by_id.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

fn owner_of(op: &Op<'_>) -> String {
    format!(
        "{}|{}|{}",
        op.principal.user.as_deref().unwrap_or_default(),
        op.principal.app_id.as_deref().unwrap_or_default(),
        op.acting
    )
    .to_ascii_lowercase()
}

fn watermark(id: &str, version: u64) -> String {
    STANDARD.encode(format!("W1|{id}|{version}"))
}

fn read_watermark(text: &str, id: &str) -> Option<u64> {
    let raw = String::from_utf8(STANDARD.decode(text.trim()).ok()?).ok()?;
    let mut parts = raw.split('|');
    if parts.next()? != "W1" || parts.next()? != id {
        return None;
    }
    let v = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some(v)
}

fn not_found() -> EwsError {
    EwsError::new(
        "ErrorSubscriptionNotFound",
        "The specified subscription was not found.",
    )
}

fn expired() -> EwsError {
    EwsError::new("ErrorExpiredSubscription", "The subscription has expired.")
}

/// Exchange 2010 before SP1 does not know streaming notifications: its schema refuses them.
fn no_streaming(element: &str) -> EwsError {
    EwsError::schema(format!(
        "The element '{element}' in namespace 'http://schemas.microsoft.com/exchange/services/2006/messages' is invalid."
    ))
}

/// `Subscribe`, `GetEvents`, `Unsubscribe` (whole answers); `Err` is a fault.
pub(crate) fn operation(
    state: &EwsState,
    op: &Op<'_>,
    store: &Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    match body.name.as_str() {
        "Subscribe" => subscribe(state, op, store, body),
        "GetEvents" => get_events(state, op, store, body),
        "Unsubscribe" => {
            let id = body.text_at(&["SubscriptionId"]).unwrap_or_default().trim();
            let mut own = state.own();
            let result = match own.subscriptions.by_id.get(id) {
                None => Err(not_found()),
                Some(s) if s.owner != owner_of(op) => Err(access_denied()),
                Some(_) => {
                    own.subscriptions.by_id.remove(id);
                    Ok(String::new())
                }
            };
            Ok(soap::response(
                "Unsubscribe",
                "UnsubscribeResponseMessage",
                &[result],
            ))
        }
        other => Err(EwsError::invalid_request(format!(
            "'{other}' is not a notification operation"
        ))),
    }
}

fn access_denied() -> EwsError {
    EwsError::new(
        "ErrorSubscriptionAccessDenied",
        "You do not have permission to access this subscription.",
    )
}

fn subscribe(
    state: &EwsState,
    op: &Op<'_>,
    store: &Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let request = body
        .children
        .iter()
        .find(|c| c.name.ends_with("SubscriptionRequest"))
        .ok_or_else(|| EwsError::schema("Subscribe needs a subscription request"))?;
    let mode = match request.name.as_str() {
        "StreamingSubscriptionRequest" => {
            if !state.switches().streaming {
                return Err(no_streaming("StreamingSubscriptionRequest"));
            }
            Mode::Streaming
        }
        "PullSubscriptionRequest" => {
            let minutes = request
                .text_at(&["Timeout"])
                .and_then(|t| t.trim().parse::<i64>().ok())
                .filter(|m| (1..=1440).contains(m))
                .ok_or_else(|| EwsError::schema("Timeout must be a number from 1 to 1440"))?;
            Mode::Pull {
                timeout: time::Duration::minutes(minutes),
            }
        }
        "PushSubscriptionRequest" => {
            return Err(EwsError::invalid_request(
                "The mock EWS does not send push notifications; use a pull or streaming subscription.",
            ));
        }
        other => return Err(EwsError::schema(format!("'{other}' is not expected"))),
    };
    let result = (|| {
        let all = request
            .attr("SubscribeToAllFolders")
            .is_some_and(|v| v.trim() == "true" || v.trim() == "1");
        let mut mailbox: Option<String> = None;
        let mut seqs = Vec::new();
        if let Some(ids) = request.child("FolderIds") {
            for el in &ids.children {
                let (address, seq) = folders::resolve(op, store, el)?;
                if mailbox.as_ref().is_some_and(|m| *m != address) {
                    return Err(EwsError::new(
                        "ErrorInvalidSubscriptionRequest",
                        "All the folders of a subscription must be in one mailbox.",
                    ));
                }
                mailbox = Some(address);
                seqs.push(seq);
            }
        }
        if seqs.is_empty() && !all {
            return Err(EwsError::new(
                "ErrorInvalidSubscriptionRequest",
                "The subscription names no folder.",
            ));
        }
        let types = request
            .child("EventTypes")
            .map(|t| {
                t.all("EventType")
                    .map(|e| EventType::parse(&e.text))
                    .collect::<Option<Vec<_>>>()
            })
            .unwrap_or_default()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| EwsError::schema("EventTypes must name known event types"))?;
        let mailbox = match mailbox {
            Some(m) => m,
            None => op.mailbox(None)?,
        };
        let mb = store
            .mailbox(&mailbox)
            .ok_or_else(|| EwsError::non_existent_mailbox(&mailbox))?;
        let mut subs = state.own();
        subs.subscriptions.next += 1;
        let id = STANDARD.encode(format!(
            "SUB{}|{}|{}",
            subs.subscriptions.next,
            mailbox,
            op.now.unix_timestamp_nanos()
        ));
        // A pull subscription may start from a watermark of an earlier one.
        let cursor = match (mode, request.text_at(&["Watermark"])) {
            (Mode::Pull { .. }, Some(w)) => {
                let raw = String::from_utf8(STANDARD.decode(w.trim()).unwrap_or_default())
                    .unwrap_or_default();
                raw.rsplit('|')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| raw.starts_with("W1|") && *v <= mb.version())
                    .ok_or_else(|| {
                        EwsError::new("ErrorInvalidWatermark", "The watermark is invalid.")
                    })?
            }
            _ => mb.version(),
        };
        let known_events = mb.events.keys().copied().collect();
        subs.subscriptions.by_id.insert(
            id.clone(),
            Subscription {
                owner: owner_of(op),
                mailbox: mb.address.to_ascii_lowercase(),
                folders: (!all).then_some(seqs),
                types,
                mode,
                cursor,
                known_events,
                last_seen: op.now,
                streaming_now: false,
            },
        );
        let mut x = Xml::new();
        x.leaf("m:SubscriptionId", &id);
        if matches!(mode, Mode::Pull { .. }) {
            x.leaf("m:Watermark", &watermark(&id, cursor));
        }
        Ok(x.finish())
    })();
    Ok(soap::response(
        "Subscribe",
        "SubscribeResponseMessage",
        &[result],
    ))
}

/// The subscription `id` for its owner, or why not (forgotten, expired, another's).
fn check<'a>(
    subs: &'a mut Subscriptions,
    id: &str,
    owner: &str,
    now: OffsetDateTime,
) -> EwsResult<&'a mut Subscription> {
    let sub = subs.by_id.get(id).ok_or_else(not_found)?;
    if sub.owner != owner {
        return Err(access_denied());
    }
    let lifetime = match sub.mode {
        Mode::Pull { timeout } => timeout,
        Mode::Streaming => STREAMING_LIFETIME,
    };
    if !sub.streaming_now && now - sub.last_seen > lifetime {
        subs.by_id.remove(id);
        return Err(expired());
    }
    subs.by_id.get_mut(id).ok_or_else(not_found)
}

/// One event to report.
struct Event {
    kind: EventType,
    version: u64,
    item: String,
    change_key: String,
    parent: u64,
}

/// What a subscription reports after a watermark.
struct Batch {
    /// The version it starts after.
    previous: u64,
    events: Vec<Event>,
    /// The version it reaches.
    reached: u64,
    /// More events wait.
    more: bool,
}

/// The events of `sub` after `after` (at most `max`; more wait then). Updates the calendar
/// items the subscription knows.
fn collect(sub: &mut Subscription, mb: &Mailbox, after: u64, max: usize) -> Batch {
    let upto = mb.version();
    let watches = |folder: u64| sub.folders.as_ref().is_none_or(|f| f.contains(&folder));
    let wants = |t: EventType| sub.types.contains(&t);
    let inbox = mb.well_known("inbox");
    let mut out: Vec<Event> = Vec::new();
    for (version, change) in mb.changes(after, upto) {
        match change {
            Change::Message(seq) => {
                let Some(m) = mb.messages.get(&seq) else {
                    continue;
                };
                if !watches(m.folder) {
                    continue;
                }
                let item = Id::new(Kind::Message, &mb.address, seq).encode();
                let key = change_key(Kind::Message, m.version);
                let created = m.created_version > after;
                let kinds: &[EventType] = if !created {
                    &[EventType::Modified]
                } else if Some(m.folder) == inbox && !m.is_draft {
                    &[EventType::Created, EventType::NewMail]
                } else {
                    &[EventType::Created]
                };
                for kind in kinds.iter().copied().filter(|k| wants(*k)) {
                    out.push(Event {
                        kind,
                        version,
                        item: item.clone(),
                        change_key: key.clone(),
                        parent: m.folder,
                    });
                }
            }
            Change::Removed { folder, seq } => {
                if watches(folder) && wants(EventType::Deleted) {
                    out.push(Event {
                        kind: EventType::Deleted,
                        version,
                        item: Id::new(Kind::Message, &mb.address, seq).encode(),
                        change_key: change_key(Kind::Message, version),
                        parent: folder,
                    });
                }
            }
        }
    }
    if watches(mb.calendar_seq) {
        for e in mb
            .events
            .values()
            .filter(|e| e.version > after && e.version <= upto)
        {
            let kind = if sub.known_events.contains(&e.seq) {
                EventType::Modified
            } else {
                EventType::Created
            };
            sub.known_events.insert(e.seq);
            if wants(kind) {
                out.push(Event {
                    kind,
                    version: e.version,
                    item: Id::new(Kind::Event, &mb.address, e.seq).encode(),
                    change_key: change_key(Kind::Event, e.version),
                    parent: mb.calendar_seq,
                });
            }
        }
        let gone: Vec<u64> = sub
            .known_events
            .iter()
            .copied()
            .filter(|s| !mb.events.contains_key(s))
            .collect();
        for seq in gone {
            sub.known_events.remove(&seq);
            if wants(EventType::Deleted) {
                out.push(Event {
                    kind: EventType::Deleted,
                    version: upto,
                    item: Id::new(Kind::Event, &mb.address, seq).encode(),
                    change_key: change_key(Kind::Event, upto),
                    parent: mb.calendar_seq,
                });
            }
        }
    }
    out.sort_by_key(|e| e.version);
    if out.len() > max {
        // Cut at a version boundary so a watermark never splits one change's events.
        let cut_version = out[max].version;
        out.retain(|e| e.version < cut_version);
        if !out.is_empty() {
            let reached = out.last().map_or(upto, |e| e.version);
            return Batch {
                previous: after,
                events: out,
                reached,
                more: true,
            };
        }
    }
    Batch {
        previous: after,
        events: out,
        reached: upto,
        more: false,
    }
}

/// `t:Notification` for `events` of subscription `id` (a `StatusEvent` when none).
fn notification(tag: &str, id: &str, mb: &Mailbox, batch: &Batch, now: OffsetDateTime) -> String {
    let mut x = Xml::new();
    x.open(tag, &[]);
    x.leaf("t:SubscriptionId", id);
    x.leaf("t:PreviousWatermark", &watermark(id, batch.previous));
    x.leaf("t:MoreEvents", if batch.more { "true" } else { "false" });
    if batch.events.is_empty() {
        x.open("t:StatusEvent", &[]);
        x.leaf("t:Watermark", &watermark(id, batch.reached));
        x.close("t:StatusEvent");
    }
    for e in &batch.events {
        let tag = e.kind.tag();
        x.open(tag, &[]);
        x.leaf("t:Watermark", &watermark(id, e.version));
        x.leaf("t:TimeStamp", &fmt_time(now));
        x.raw(&soap::id_element("ItemId", &e.item, &e.change_key));
        x.raw(&folders::folder_id_xml("ParentFolderId", mb, e.parent));
        x.close(tag);
    }
    x.close(tag);
    x.finish()
}

fn get_events(
    state: &EwsState,
    op: &Op<'_>,
    store: &Mailboxes,
    body: &Element,
) -> EwsResult<String> {
    let id = body.text_at(&["SubscriptionId"]).unwrap_or_default().trim();
    let mark = body.text_at(&["Watermark"]).unwrap_or_default();
    let result = (|| {
        let mut own = state.own();
        let sub = check(&mut own.subscriptions, id, &owner_of(op), op.now)?;
        if !matches!(sub.mode, Mode::Pull { .. }) {
            return Err(EwsError::new(
                "ErrorInvalidPullSubscriptionId",
                "The subscription is not a pull subscription.",
            ));
        }
        let after = read_watermark(mark, id)
            .ok_or_else(|| EwsError::new("ErrorInvalidWatermark", "The watermark is invalid."))?;
        let mb = store.mailbox(&sub.mailbox).ok_or_else(not_found)?;
        if after > mb.version() {
            return Err(EwsError::new(
                "ErrorInvalidWatermark",
                "The watermark is invalid.",
            ));
        }
        sub.last_seen = op.now;
        let batch = collect(sub, mb, after, MAX_EVENTS);
        sub.cursor = batch.reached;
        Ok(notification("m:Notification", id, mb, &batch, op.now))
    })();
    Ok(soap::response(
        "GetEvents",
        "GetEventsResponseMessage",
        &[result],
    ))
}

/// One `m:GetStreamingEventsResponse` envelope with one message.
fn stream_envelope(version: ServerVersion, content: &EwsResult<String>) -> String {
    let mut x = Xml::new();
    x.open("m:GetStreamingEventsResponse", &[]);
    x.open("m:ResponseMessages", &[]);
    soap::message(&mut x, "GetStreamingEventsResponseMessage", content);
    x.close("m:ResponseMessages");
    x.close("m:GetStreamingEventsResponse");
    soap::envelope(version, &x.finish())
}

fn status(text: &str) -> String {
    format!("<m:ConnectionStatus>{text}</m:ConnectionStatus>")
}

/// An error for the subscriptions `ids` (`ErrorSubscriptionIds`), as a whole answer.
fn subscription_error(version: ServerVersion, error: &EwsError, ids: &[String]) -> String {
    let mut x = Xml::new();
    x.open("m:ErrorSubscriptionIds", &[]);
    for id in ids {
        x.leaf("t:SubscriptionId", id);
    }
    x.close("m:ErrorSubscriptionIds");
    let mut out = Xml::new();
    out.open("m:GetStreamingEventsResponse", &[]);
    out.open("m:ResponseMessages", &[]);
    out.open(
        "m:GetStreamingEventsResponseMessage",
        &[("ResponseClass", "Error")],
    );
    out.leaf("m:MessageText", &error.text);
    out.leaf("m:ResponseCode", error.code);
    out.leaf("m:DescriptiveLinkKey", "0");
    out.raw(&x.finish());
    out.raw(&status("Closed"));
    out.close("m:GetStreamingEventsResponseMessage");
    out.close("m:ResponseMessages");
    out.close("m:GetStreamingEventsResponse");
    soap::envelope(version, &out.finish())
}

/// What a stream sends next: notifications (maybe none), or the subscriptions gone.
fn pending(
    state: &EwsState,
    ids: &[String],
    owner: &str,
    now: OffsetDateTime,
) -> Result<Vec<String>, (EwsError, Vec<String>)> {
    let store = state.store.lock();
    let mut own = state.own();
    let mut out = Vec::new();
    let mut failed: Option<(EwsError, Vec<String>)> = None;
    for id in ids {
        let sub = match check(&mut own.subscriptions, id, owner, now) {
            Ok(s) => s,
            Err(e) => {
                let f = failed.get_or_insert_with(|| (e, Vec::new()));
                f.1.push(id.clone());
                continue;
            }
        };
        let Some(mb) = store.mailbox(&sub.mailbox) else {
            continue;
        };
        loop {
            let after = sub.cursor;
            let batch = collect(sub, mb, after, MAX_EVENTS);
            sub.cursor = batch.reached;
            if !batch.events.is_empty() {
                out.push(notification("t:Notification", id, mb, &batch, now));
            }
            if !batch.more {
                break;
            }
        }
    }
    match failed {
        Some(f) => Err(f),
        None => Ok(out),
    }
}

fn mark_streaming(state: &EwsState, ids: &[String], on: bool, now: OffsetDateTime) {
    let mut own = state.own();
    for id in ids {
        if let Some(s) = own.subscriptions.by_id.get_mut(id) {
            s.streaming_now = on;
            s.last_seen = now;
        }
    }
}

/// `GetStreamingEvents`: `Ok(body)` streams; `Err(xml)` is a whole (error) answer.
pub(crate) fn get_streaming_events(
    state: &EwsState,
    op: &Op<'_>,
    body: &Element,
) -> Result<Body, Result<String, EwsError>> {
    let version = state.switches().version;
    if !state.switches().streaming {
        return Err(Err(no_streaming("GetStreamingEvents")));
    }
    let ids: Vec<String> = body
        .child("SubscriptionIds")
        .map(|s| {
            s.all("SubscriptionId")
                .map(|e| e.text.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(Err(EwsError::schema(
            "SubscriptionIds must name a subscription",
        )));
    }
    let minutes = body
        .text_at(&["ConnectionTimeout"])
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|m| (1..=30).contains(m))
        .ok_or_else(|| {
            Err(EwsError::schema(
                "ConnectionTimeout must be a number from 1 to 30",
            ))
        })?;
    let owner = owner_of(op);
    {
        let mut own = state.own();
        let mut bad = Vec::new();
        let mut first = None;
        for id in &ids {
            match check(&mut own.subscriptions, id, &owner, op.now) {
                Ok(s) if matches!(s.mode, Mode::Streaming) => {}
                Ok(_) => {
                    first.get_or_insert(EwsError::new(
                        "ErrorInvalidSubscription",
                        "The subscription is not a streaming subscription.",
                    ));
                    bad.push(id.clone());
                }
                Err(e) => {
                    first.get_or_insert(e);
                    bad.push(id.clone());
                }
            }
        }
        if let Some(e) = first {
            return Err(Ok(subscription_error(version, &e, &bad)));
        }
    }
    mark_streaming(state, &ids, true, op.now);
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    let state = state.clone();
    tokio::spawn(async move {
        let mut changes = state.store.subscribe();
        let mut kicks = state.stream_kicks.subscribe();
        let closes = state.own().subscriptions.closes;
        let deadline = tokio::time::sleep(Duration::from_secs(minutes * 60));
        tokio::pin!(deadline);
        let send = |text: String| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(text))).await.is_ok() }
        };
        // The connection is up: say so at once.
        let mut open = send(stream_envelope(version, &Ok(status("OK")))).await;
        let mut keep_alive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        while open {
            let now = state.clock.now();
            match pending(&state, &ids, &owner, now) {
                Err((e, bad)) => {
                    let _ = send(subscription_error(version, &e, &bad)).await;
                    break;
                }
                Ok(notifications) if !notifications.is_empty() => {
                    if !state.switches().drop_notifications {
                        let content = format!(
                            "<m:Notifications>{}</m:Notifications>",
                            notifications.concat()
                        );
                        open = send(stream_envelope(version, &Ok(content))).await;
                        continue;
                    }
                }
                Ok(_) => {}
            }
            if state.own().subscriptions.closes != closes {
                let _ = send(stream_envelope(version, &Ok(status("Closed")))).await;
                break;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = kicks.changed() => {}
                _ = keep_alive.tick() => {
                    open = send(stream_envelope(version, &Ok(status("OK")))).await;
                }
                () = &mut deadline => {
                    let _ = send(stream_envelope(version, &Ok(status("Closed")))).await;
                    break;
                }
                () = tx.closed() => break,
            }
        }
        mark_streaming(&state, &ids, false, state.clock.now());
    });
    Ok(Body::from_stream(futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_name_their_subscription() {
        let w = watermark("abc", 42);
        assert_eq!(read_watermark(&w, "abc"), Some(42));
        assert_eq!(read_watermark(&w, "other"), None);
        assert_eq!(read_watermark("!!", "abc"), None);
        assert_eq!(read_watermark(&STANDARD.encode("W1|abc|1|2"), "abc"), None);
    }

    #[test]
    fn event_types_parse_only_the_schemas() {
        assert_eq!(EventType::parse("NewMailEvent"), Some(EventType::NewMail));
        assert_eq!(EventType::parse("StatusEvent"), None);
        assert_eq!(EventType::Created.tag(), "t:CreatedEvent");
    }
}
