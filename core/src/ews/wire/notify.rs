//! Notifications: `Subscribe` (a streaming or a pull subscription on folders), `GetStreamingEvents`
//! (one held answer made of one SOAP envelope per batch, split by [`EnvelopeSplitter`] as they
//! arrive), `GetEvents` (pull: the events after a watermark) and `Unsubscribe`.
//!
//! Only what tells *where* something changed is read: each event's kind, watermark and parent
//! folder (and old parent, for moves and copies). What changed is learned by syncing.

use super::WireError;
use super::envelope::{FolderSpec, RequestContext, ews_request};
use super::response::{Decoded, decode};
use super::xml::{Elem, Ns, Reader, Writer};

/// The event types every exgate subscription asks for.
const EVENT_TYPES: [&str; 6] = [
    "NewMailEvent",
    "CreatedEvent",
    "DeletedEvent",
    "ModifiedEvent",
    "MovedEvent",
    "CopiedEvent",
];

/// A streaming subscription (Exchange 2010 SP1 and later) or a pull one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    Streaming,
    /// Forgotten by the server after `timeout_minutes` (1 to 1440) without a `GetEvents`.
    Pull {
        timeout_minutes: u32,
    },
}

/// `Subscribe`: the events of `folders` (one mailbox's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub folders: Vec<FolderSpec>,
    pub kind: SubscriptionKind,
}

impl Subscribe {
    fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        w.open("m:Subscribe", &[]);
        let name = match self.kind {
            SubscriptionKind::Streaming => "m:StreamingSubscriptionRequest",
            SubscriptionKind::Pull { .. } => "m:PullSubscriptionRequest",
        };
        w.open(name, &[]);
        w.open("t:FolderIds", &[]);
        for f in &self.folders {
            f.write(w, ctx);
        }
        w.close("t:FolderIds");
        w.open("t:EventTypes", &[]);
        for t in EVENT_TYPES {
            w.leaf("t:EventType", t);
        }
        w.close("t:EventTypes");
        if let SubscriptionKind::Pull { timeout_minutes } = self.kind {
            w.leaf("t:Timeout", &timeout_minutes.clamp(1, 1440).to_string());
        }
        w.close(name);
        w.close("m:Subscribe");
    }
}

/// `GetStreamingEvents`: holds the connection up to `timeout_minutes` (1 to 30).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetStreamingEvents {
    pub subscriptions: Vec<String>,
    pub timeout_minutes: u32,
}

impl GetStreamingEvents {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        w.open("m:GetStreamingEvents", &[]);
        w.open("m:SubscriptionIds", &[]);
        for id in &self.subscriptions {
            w.leaf("t:SubscriptionId", id);
        }
        w.close("m:SubscriptionIds");
        w.leaf(
            "m:ConnectionTimeout",
            &self.timeout_minutes.clamp(1, 30).to_string(),
        );
        w.close("m:GetStreamingEvents");
    }
}

/// `GetEvents` of a pull subscription: the events after `watermark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullEvents {
    pub subscription: String,
    pub watermark: String,
}

impl PullEvents {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        w.open("m:GetEvents", &[]);
        w.leaf("m:SubscriptionId", &self.subscription);
        w.leaf("m:Watermark", &self.watermark);
        w.close("m:GetEvents");
    }
}

/// `Unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub subscription: String,
}

impl Unsubscribe {
    fn write(&self, w: &mut Writer, _ctx: &RequestContext) {
        w.open("m:Unsubscribe", &[]);
        w.leaf("m:SubscriptionId", &self.subscription);
        w.close("m:Unsubscribe");
    }
}

ews_request!(
    Subscribe => "Subscribe",
    GetStreamingEvents => "GetStreamingEvents",
    PullEvents => "GetEvents",
    Unsubscribe => "Unsubscribe",
);

/// What `Subscribe` answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribed {
    pub id: String,
    /// Pull subscriptions: where `GetEvents` starts.
    pub watermark: Option<String>,
}

/// An event's kind (`StatusEvent`: nothing happened, the watermark moved on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Copied,
    Created,
    Deleted,
    Modified,
    Moved,
    NewMail,
    FreeBusyChanged,
    Status,
}

impl EventKind {
    fn parse(local: &str) -> Option<Self> {
        Some(match local {
            "CopiedEvent" => Self::Copied,
            "CreatedEvent" => Self::Created,
            "DeletedEvent" => Self::Deleted,
            "ModifiedEvent" => Self::Modified,
            "MovedEvent" => Self::Moved,
            "NewMailEvent" => Self::NewMail,
            "FreeBusyChangedEvent" => Self::FreeBusyChanged,
            "StatusEvent" => Self::Status,
            _ => return None,
        })
    }
}

/// One event of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationEvent {
    pub kind: EventKind,
    pub watermark: Option<String>,
    /// The folder the item or folder is in.
    pub parent_folder: Option<String>,
    /// Moves and copies: the folder it came from.
    pub old_parent_folder: Option<String>,
}

/// `t:Notification`: one subscription's events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notification {
    pub subscription: String,
    pub previous_watermark: Option<String>,
    pub more_events: bool,
    pub events: Vec<NotificationEvent>,
}

impl Notification {
    /// The watermark to ask from next: the last event's, else the previous one.
    pub fn last_watermark(&self) -> Option<&str> {
        self.events
            .iter()
            .rev()
            .find_map(|e| e.watermark.as_deref())
            .or(self.previous_watermark.as_deref())
    }
}

/// `ConnectionStatus` of a streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// The connection stays open (a keep-alive, or notifications follow).
    Ok,
    /// The server ends the connection (`ConnectionTimeout` reached): open a new one.
    Closed,
}

/// One streamed `GetStreamingEventsResponseMessage`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamingEvents {
    pub notifications: Vec<Notification>,
    /// Subscriptions the error of the message is about.
    pub error_subscriptions: Vec<String>,
    pub status: Option<ConnectionStatus>,
}

fn text_bool(r: &mut Reader<'_>, what: &str) -> Result<bool, WireError> {
    match r.text()?.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(WireError::malformed(format!(
            "{what} is not a boolean: `{other}`"
        ))),
    }
}

/// A `t:Notification` (the reader is inside it).
fn read_notification(r: &mut Reader<'_>) -> Result<Notification, WireError> {
    let mut out = Notification::default();
    let mut id = None;
    while let Some(e) = r.child()? {
        if e.ns != Ns::Types {
            r.skip()?;
            continue;
        }
        match e.local() {
            "SubscriptionId" => id = Some(r.text()?.trim().to_owned()),
            "PreviousWatermark" => out.previous_watermark = Some(r.text()?.trim().to_owned()),
            "MoreEvents" => out.more_events = text_bool(r, "MoreEvents")?,
            local => match EventKind::parse(local) {
                Some(kind) => out.events.push(read_event(r, kind)?),
                None => r.skip()?,
            },
        }
    }
    out.subscription = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| WireError::malformed("a notification without SubscriptionId"))?;
    Ok(out)
}

fn folder_id(e: &Elem<'_>) -> Result<String, WireError> {
    e.need_attr("Id")
}

/// One event (the reader is inside it).
fn read_event(r: &mut Reader<'_>, kind: EventKind) -> Result<NotificationEvent, WireError> {
    let mut out = NotificationEvent {
        kind,
        watermark: None,
        parent_folder: None,
        old_parent_folder: None,
    };
    while let Some(e) = r.child()? {
        match (e.ns, e.local()) {
            (Ns::Types, "Watermark") => out.watermark = Some(r.text()?.trim().to_owned()),
            (Ns::Types, "ParentFolderId") => {
                out.parent_folder = Some(folder_id(&e)?);
                r.skip()?;
            }
            (Ns::Types, "OldParentFolderId") => {
                out.old_parent_folder = Some(folder_id(&e)?);
                r.skip()?;
            }
            _ => r.skip()?,
        }
    }
    Ok(out)
}

/// The answer to [`Subscribe`].
pub fn decode_subscribe(xml: &[u8]) -> Result<Decoded<Subscribed>, WireError> {
    decode(xml, "Subscribe", |r, e, out: &mut Subscribed| {
        match (e.ns, e.local()) {
            (Ns::Messages, "SubscriptionId") => out.id = r.text()?.trim().to_owned(),
            (Ns::Messages, "Watermark") => out.watermark = Some(r.text()?.trim().to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// The answer to [`PullEvents`] (`GetEvents`).
pub fn decode_pull_events(xml: &[u8]) -> Result<Decoded<Notification>, WireError> {
    decode(xml, "GetEvents", |r, e, out: &mut Notification| {
        if e.is_m("Notification") {
            *out = read_notification(r)?;
            Ok(true)
        } else {
            Ok(false)
        }
    })
}

/// One envelope of a `GetStreamingEvents` answer (see [`EnvelopeSplitter`]).
pub fn decode_streaming_events(xml: &[u8]) -> Result<Decoded<StreamingEvents>, WireError> {
    decode(
        xml,
        "GetStreamingEvents",
        |r, e, out: &mut StreamingEvents| {
            match (e.ns, e.local()) {
                (Ns::Messages, "Notifications") => {
                    while let Some(n) = r.child()? {
                        if n.is_t("Notification") || n.is_m("Notification") {
                            out.notifications.push(read_notification(r)?);
                        } else {
                            r.skip()?;
                        }
                    }
                }
                (Ns::Messages, "ErrorSubscriptionIds") => {
                    while let Some(id) = r.child()? {
                        if id.is_t("SubscriptionId") {
                            out.error_subscriptions.push(r.text()?.trim().to_owned());
                        } else {
                            r.skip()?;
                        }
                    }
                }
                (Ns::Messages, "ConnectionStatus") => {
                    out.status = Some(match r.text()?.trim() {
                        "OK" => ConnectionStatus::Ok,
                        "Closed" => ConnectionStatus::Closed,
                        other => {
                            return Err(WireError::malformed(format!(
                                "unknown ConnectionStatus `{other}`"
                            )));
                        }
                    });
                }
                _ => return Ok(false),
            }
            Ok(true)
        },
    )
}

/// Splits a `GetStreamingEvents` answer, read as it arrives, into its envelopes: Exchange
/// writes one complete SOAP envelope per batch of notifications (and per keep-alive) into the
/// one chunked answer. Holds at most `limit` bytes of an unfinished envelope.
#[derive(Debug)]
pub struct EnvelopeSplitter {
    buf: Vec<u8>,
    /// Where the search for an end tag goes on (what is before was searched).
    scanned: usize,
    limit: usize,
}

/// How far back from the end an end tag may have started (`</` + a prefix + `Envelope` + `>`).
const TAIL: usize = 96;

impl EnvelopeSplitter {
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            limit,
        }
    }

    /// Adds bytes that arrived; an error when an envelope grows beyond the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if self.buf.len().saturating_add(bytes.len()) > self.limit
            && self.end_of_first(bytes).is_none()
        {
            return Err(WireError::malformed(format!(
                "a streamed envelope is larger than {} bytes",
                self.limit
            )));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Whether `more` would complete the first envelope (so the bound is not hit by it).
    fn end_of_first(&self, more: &[u8]) -> Option<usize> {
        let mut joined = Vec::with_capacity(self.buf.len().min(TAIL) + more.len());
        let start = self.buf.len().saturating_sub(TAIL);
        joined.extend_from_slice(&self.buf[start..]);
        joined.extend_from_slice(more);
        let end = find_end(&joined, 0)?;
        (start + end <= self.limit).then_some(end)
    }

    /// The next complete envelope, if one has arrived (without the whitespace between).
    pub fn next_envelope(&mut self) -> Option<Vec<u8>> {
        let end = find_end(&self.buf, self.scanned);
        match end {
            Some(end) => {
                let rest = self.buf.split_off(end);
                let envelope = std::mem::replace(&mut self.buf, rest);
                self.scanned = 0;
                let first = envelope
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .unwrap_or(envelope.len());
                Some(envelope[first..].to_vec())
            }
            None => {
                self.scanned = self.buf.len().saturating_sub(TAIL);
                None
            }
        }
    }

    /// Bytes held of an unfinished envelope (whitespace aside).
    pub fn pending(&self) -> usize {
        self.buf.iter().filter(|b| !b.is_ascii_whitespace()).count()
    }
}

/// The index just past the first `</Envelope>` (any prefix, optional whitespace before `>`)
/// at or after `from`. Markup characters cannot appear escaped in content, so an end tag in
/// the bytes is an end tag.
fn find_end(buf: &[u8], from: usize) -> Option<usize> {
    const NAME: &[u8] = b"Envelope";
    let mut i = from;
    while i + NAME.len() <= buf.len() {
        let pos = buf[i..]
            .windows(NAME.len())
            .position(|w| w == NAME)
            .map(|p| p + i)?;
        i = pos + 1;
        // After the name: whitespace, then `>`.
        let mut after = pos + NAME.len();
        while after < buf.len() && buf[after].is_ascii_whitespace() {
            after += 1;
        }
        if after >= buf.len() || buf[after] != b'>' {
            continue;
        }
        // Before it: `</` or `</prefix:`.
        let mut start = pos;
        if start > 0 && buf[start - 1] == b':' {
            start -= 1;
            while start > 0
                && (buf[start - 1].is_ascii_alphanumeric()
                    || matches!(buf[start - 1], b'_' | b'-' | b'.'))
            {
                start -= 1;
            }
        }
        if start >= 2 && buf[start - 1] == b'/' && buf[start - 2] == b'<' {
            return Some(after + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_split_whatever_the_chunks() {
        let one = b"<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"x\"><s:Body/></s:Envelope>";
        let two = b"<Envelope xmlns=\"x\"><Body/></Envelope >";
        let mut all = Vec::new();
        all.extend_from_slice(one);
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(two);
        for size in 1..all.len() {
            let mut s = EnvelopeSplitter::new(1024);
            let mut got = Vec::new();
            for chunk in all.chunks(size) {
                s.push(chunk).unwrap();
                while let Some(e) = s.next_envelope() {
                    got.push(e);
                }
            }
            assert_eq!(got, vec![one.to_vec(), two.to_vec()], "chunks of {size}");
            assert_eq!(s.pending(), 0);
        }
    }

    #[test]
    fn an_endless_envelope_is_refused() {
        let mut s = EnvelopeSplitter::new(64);
        s.push(b"<s:Envelope>").unwrap();
        assert!(s.push(&[b'a'; 100]).is_err());
    }
}
