//! One mailbox: folders, messages, events and contacts with their sequence numbers, and the
//! change log that delta queries read. Protocol IDs are the protocols' business (Graph's are
//! in `graph::ids`, made from [`Mailbox::key`] and the sequence numbers).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest as _, Sha256};
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::content::{
    Address, AttachmentContent, AttendeeContent, AttendeeType, BodyType, ContactContent,
    ContentError, EventContent, ExceptionContent, FlagStatus, HeaderContent, Importance,
    MailboxContent, MessageContent, ResponseType, ShowAs,
};
use super::recurrence::{Recurrence, parse_local};
use super::tz::{self, Zone};

/// The well-known folders every mailbox has: (name usable in URLs, display name).
pub(crate) const WELL_KNOWN: &[(&str, &str)] = &[
    ("msgfolderroot", "Top of Information Store"),
    ("inbox", "Inbox"),
    ("drafts", "Drafts"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("archive", "Archive"),
    ("junkemail", "Junk Email"),
    ("outbox", "Outbox"),
];

/// The well-known name of a folder given by its well-known name or display name.
pub(crate) fn well_known_folder(name: &str) -> Option<&'static str> {
    let name = name.trim();
    WELL_KNOWN
        .iter()
        .find(|(wk, display)| wk.eq_ignore_ascii_case(name) || display.eq_ignore_ascii_case(name))
        .map(|(wk, _)| *wk)
}

/// A folder path in one spelling: the first segment as its well-known name when it is one,
/// the rest lower case.
pub(crate) fn normalize_path(path: &str) -> String {
    path.split('/')
        .enumerate()
        .map(|(i, segment)| match (i, well_known_folder(segment)) {
            (0, Some(wk)) => wk.to_string(),
            _ => segment.trim().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Body {
    pub kind: BodyType,
    pub content: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Folder {
    pub seq: u64,
    pub parent: Option<u64>,
    pub name: String,
    pub well_known: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub seq: u64,
    pub name: String,
    pub content_type: String,
    /// Shared, never copied: a download answers slices of it.
    pub bytes: Bytes,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub modified: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub seq: u64,
    pub folder: u64,
    /// The change-log version of the last change.
    pub version: u64,
    /// The change-log version at which it appeared in its folder.
    pub created_version: u64,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub received: OffsetDateTime,
    pub sent: Option<OffsetDateTime>,
    pub internet_message_id: String,
    pub conversation_id: String,
    pub subject: String,
    pub body: Body,
    pub importance: Importance,
    pub is_read: bool,
    pub is_draft: bool,
    pub from: Option<Address>,
    pub sender: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub flag: FlagStatus,
    pub categories: Vec<String>,
    /// Custom internet headers (`X-…`).
    pub extra_headers: Vec<(String, String)>,
    pub in_reply_to: Option<String>,
    pub attachments: Vec<Attachment>,
    pub next_attachment: u64,
}

impl Message {
    /// A blank message: a draft with no recipients.
    pub(crate) fn blank(now: OffsetDateTime, internet_message_id: String) -> Self {
        let conversation_id = conversation_id_for(&internet_message_id);
        Self {
            seq: 0,
            folder: 0,
            version: 0,
            created_version: 0,
            created: now,
            modified: now,
            received: now,
            sent: None,
            internet_message_id,
            conversation_id,
            subject: String::new(),
            body: Body {
                kind: BodyType::Text,
                content: String::new(),
            },
            importance: Importance::Normal,
            is_read: true,
            is_draft: true,
            from: None,
            sender: None,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: Vec::new(),
            flag: FlagStatus::NotFlagged,
            categories: Vec::new(),
            extra_headers: Vec::new(),
            in_reply_to: None,
            attachments: Vec::new(),
            next_attachment: 1,
        }
    }

    /// Graph's `hasAttachments` ignores inline attachments.
    pub(crate) fn has_attachments(&self) -> bool {
        self.attachments.iter().any(|a| !a.is_inline)
    }

    pub(crate) fn add_attachment(&mut self, mut attachment: Attachment) -> u64 {
        attachment.seq = self.next_attachment;
        self.next_attachment += 1;
        let seq = attachment.seq;
        self.attachments.push(attachment);
        seq
    }
}

/// A conversation ID shared by a thread: derived from the thread's first Message-ID.
pub(crate) fn conversation_id_for(root_message_id: &str) -> String {
    let digest = Sha256::digest(format!("conversation:{root_message_id}").as_bytes());
    let mut bytes = vec![0x00, 0x03, 0x24, 0x10];
    bytes.extend_from_slice(&digest[..16]);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Clone)]
pub(crate) struct Attendee {
    pub address: Address,
    pub kind: AttendeeType,
    pub response: ResponseType,
    pub time: Option<OffsetDateTime>,
}

/// A changed occurrence.
#[derive(Debug, Clone)]
pub(crate) struct Exception {
    pub subject: Option<String>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub location: Option<String>,
    pub body: Option<Body>,
    pub show_as: Option<ShowAs>,
}

#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub seq: u64,
    pub version: u64,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub ical_uid: String,
    pub subject: String,
    pub body: Body,
    /// UTC; for all-day events, midnight UTC of the (floating) dates.
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// The zone the event was created in (a name [`tz::find`] knows).
    pub time_zone: String,
    pub is_all_day: bool,
    pub location: String,
    pub organizer: Address,
    pub is_organizer: bool,
    pub response: ResponseType,
    pub response_time: Option<OffsetDateTime>,
    pub attendees: Vec<Attendee>,
    pub show_as: ShowAs,
    pub online_meeting: Option<String>,
    pub recurrence: Option<Recurrence>,
    /// By original start (Unix seconds).
    pub exceptions: BTreeMap<i64, Exception>,
    /// Original starts (Unix seconds) of deleted occurrences.
    pub cancelled: BTreeSet<i64>,
    pub is_cancelled: bool,
    pub is_private: bool,
    pub categories: Vec<String>,
    pub importance: Importance,
}

impl Event {
    pub(crate) fn zone(&self) -> Zone {
        tz::find(&self.time_zone).unwrap_or_else(tz::utc)
    }

    pub(crate) fn duration(&self) -> Duration {
        self.end - self.start
    }

    fn local(&self, t: OffsetDateTime) -> PrimitiveDateTime {
        if self.is_all_day {
            PrimitiveDateTime::new(t.date(), t.time())
        } else {
            self.zone().to_local(t)
        }
    }

    /// The series' pattern occurrence starts (UTC), in order, up to `until` (inclusive), while
    /// `visit` returns true. Nothing for a single event. The pattern repeats the start's
    /// wall-clock time in the event's zone (all-day events: floating dates).
    pub(crate) fn pattern_starts(
        &self,
        until: OffsetDateTime,
        mut visit: impl FnMut(OffsetDateTime) -> bool,
    ) {
        let Some(recurrence) = &self.recurrence else {
            return;
        };
        let zone = if self.is_all_day {
            tz::utc()
        } else {
            self.zone()
        };
        let time_of_day = self.local(self.start).time();
        recurrence.starts(zone, time_of_day, |start| start <= until && visit(start));
    }

    /// Whether `start` is the original start of one of the series' occurrences.
    pub(crate) fn is_occurrence(&self, start: OffsetDateTime) -> bool {
        let mut found = false;
        self.pattern_starts(start, |s| {
            if s == start {
                found = true;
            }
            s < start
        });
        found
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Contact {
    pub seq: u64,
    pub version: u64,
    pub created: Option<OffsetDateTime>,
    pub modified: Option<OffsetDateTime>,
    pub given_name: String,
    pub surname: String,
    pub display_name: String,
    pub email_addresses: Vec<Address>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub home_phones: Vec<String>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub categories: Vec<String>,
}

/// One entry of the change log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change {
    /// A message created or changed (it is where it is now).
    Message(u64),
    /// A message that left `folder` (deleted, or moved: it has a new ID elsewhere).
    Removed { folder: u64, seq: u64 },
}

/// One mailbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    pub address: String,
    pub display_name: String,
    pub time_zone: String,
    key: [u8; 6],
    next_seq: u64,
    version: u64,
    pub folders: BTreeMap<u64, Folder>,
    pub messages: HashMap<u64, Message>,
    by_received: BTreeSet<(OffsetDateTime, u64)>,
    changes: BTreeMap<u64, Change>,
    pub events: BTreeMap<u64, Event>,
    pub contacts: BTreeMap<u64, Contact>,
    pub calendar_seq: u64,
    pub contact_folder_seq: u64,
}

impl Mailbox {
    /// An empty mailbox with the well-known folders.
    pub(crate) fn new(address: &str, display_name: &str) -> Self {
        let digest = Sha256::digest(format!("mailbox:{}", address.to_ascii_lowercase()).as_bytes());
        let mut key = [0u8; 6];
        key.copy_from_slice(&digest[..6]);
        let mut mailbox = Self {
            address: address.to_string(),
            display_name: display_name.to_string(),
            time_zone: "UTC".into(),
            key,
            next_seq: 1,
            version: 0,
            folders: BTreeMap::new(),
            messages: HashMap::new(),
            by_received: BTreeSet::new(),
            changes: BTreeMap::new(),
            events: BTreeMap::new(),
            contacts: BTreeMap::new(),
            calendar_seq: 0,
            contact_folder_seq: 0,
        };
        let root = mailbox.next();
        for (wk, display) in WELL_KNOWN {
            let seq = if *wk == "msgfolderroot" {
                root
            } else {
                mailbox.next()
            };
            mailbox.folders.insert(
                seq,
                Folder {
                    seq,
                    parent: (*wk != "msgfolderroot").then_some(root),
                    name: (*display).to_string(),
                    well_known: Some(wk),
                },
            );
        }
        mailbox.calendar_seq = mailbox.next();
        mailbox.contact_folder_seq = mailbox.next();
        mailbox
    }

    fn next(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// The sequence number the next new item will get (IMAP's `UIDNEXT`).
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The change-log version now (what a delta round that ends now has seen).
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// The mailbox's own key: 6 bytes derived from its address, for protocol IDs that must
    /// differ per mailbox.
    pub(crate) fn key(&self) -> [u8; 6] {
        self.key
    }

    // ----- folders -----

    pub(crate) fn well_known(&self, name: &str) -> Option<u64> {
        self.folders
            .values()
            .find(|f| f.well_known.is_some_and(|wk| wk.eq_ignore_ascii_case(name)))
            .map(|f| f.seq)
    }

    pub(crate) fn root(&self) -> u64 {
        self.well_known("msgfolderroot").unwrap_or(1)
    }

    pub(crate) fn create_folder(&mut self, parent: u64, name: &str) -> u64 {
        let seq = self.next();
        self.folders.insert(
            seq,
            Folder {
                seq,
                parent: Some(parent),
                name: name.to_string(),
                well_known: None,
            },
        );
        seq
    }

    pub(crate) fn children(&self, parent: u64) -> Vec<&Folder> {
        let mut children: Vec<&Folder> = self
            .folders
            .values()
            .filter(|f| f.parent == Some(parent))
            .collect();
        children.sort_by_key(|f| f.name.to_lowercase());
        children
    }

    /// The folder a content path names (well-known name, display names).
    fn folder_by_path(&self, path: &str) -> Option<u64> {
        let wanted = normalize_path(path);
        self.folders.keys().copied().find(|seq| {
            self.folder_path(*seq)
                .is_some_and(|p| normalize_path(&p) == wanted)
        })
    }

    /// A folder's path of display names (`Inbox/Projects`), or its well-known name for the
    /// well-known folders.
    pub(crate) fn folder_path(&self, seq: u64) -> Option<String> {
        let folder = self.folders.get(&seq)?;
        if let Some(wk) = folder.well_known {
            return Some(wk.to_string());
        }
        let parent = folder.parent?;
        let parent_folder = self.folders.get(&parent)?;
        if parent_folder.well_known == Some("msgfolderroot") {
            return Some(folder.name.clone());
        }
        let prefix = match parent_folder.well_known {
            Some(_) => parent_folder.name.clone(),
            None => self.folder_path(parent)?,
        };
        Some(format!("{prefix}/{}", folder.name))
    }

    // ----- messages -----

    /// Stores a message (a new one, or one arriving in another folder): gives it a sequence
    /// number and a change-log version.
    pub(crate) fn insert_message(&mut self, mut message: Message) -> u64 {
        message.seq = self.next();
        message.version = self.bump();
        message.created_version = message.version;
        let seq = message.seq;
        self.by_received.insert((message.received, seq));
        self.changes.insert(message.version, Change::Message(seq));
        self.messages.insert(seq, message);
        seq
    }

    /// Records a change to a message (after the caller changed it).
    pub(crate) fn touch_message(&mut self, seq: u64, now: OffsetDateTime) {
        let version = self.bump();
        if let Some(message) = self.messages.get_mut(&seq) {
            self.changes.remove(&message.version);
            message.version = version;
            message.modified = now;
            self.changes.insert(version, Change::Message(seq));
        }
    }

    /// Removes a message and records that it left its folder.
    pub(crate) fn remove_message(&mut self, seq: u64) -> Option<Message> {
        let message = self.messages.remove(&seq)?;
        self.by_received.remove(&(message.received, seq));
        self.changes.remove(&message.version);
        let version = self.bump();
        self.changes.insert(
            version,
            Change::Removed {
                folder: message.folder,
                seq,
            },
        );
        Some(message)
    }

    /// Moves a message to `folder`: it gets a new ID there. Returns the new sequence number.
    pub(crate) fn move_message(
        &mut self,
        seq: u64,
        folder: u64,
        now: OffsetDateTime,
    ) -> Option<u64> {
        let mut message = self.remove_message(seq)?;
        message.folder = folder;
        message.modified = now;
        Some(self.insert_message(message))
    }

    /// Messages by `receivedDateTime` (then arrival), newest first when `descending`.
    pub(crate) fn messages_by_received(
        &self,
        descending: bool,
    ) -> Box<dyn Iterator<Item = &Message> + '_> {
        let iter = self
            .by_received
            .iter()
            .filter_map(|(_, seq)| self.messages.get(seq));
        if descending {
            Box::new(
                self.by_received
                    .iter()
                    .rev()
                    .filter_map(|(_, seq)| self.messages.get(seq)),
            )
        } else {
            Box::new(iter)
        }
    }

    /// Change-log entries with versions in `(after, upto]`, oldest first.
    pub(crate) fn changes(
        &self,
        after: u64,
        upto: u64,
    ) -> impl Iterator<Item = (u64, Change)> + '_ {
        let range = if after < upto {
            self.changes.range(after + 1..=upto)
        } else {
            // An empty range (BTreeMap::range panics on reversed bounds).
            self.changes.range(1..1)
        };
        range.map(|(v, c)| (*v, *c))
    }

    // ----- events and contacts -----

    pub(crate) fn insert_event(&mut self, mut event: Event) -> u64 {
        event.seq = self.next();
        event.version = self.bump();
        if event.ical_uid.is_empty() {
            event.ical_uid = ical_uid(&self.address, event.seq);
        }
        let seq = event.seq;
        self.events.insert(seq, event);
        seq
    }

    pub(crate) fn touch_event(&mut self, seq: u64, now: OffsetDateTime) {
        let version = self.bump();
        if let Some(event) = self.events.get_mut(&seq) {
            event.version = version;
            event.modified = now;
        }
    }

    pub(crate) fn insert_contact(&mut self, mut contact: Contact) -> u64 {
        contact.seq = self.next();
        contact.version = self.bump();
        let seq = contact.seq;
        self.contacts.insert(seq, contact);
        seq
    }

    pub(crate) fn touch_contact(&mut self, seq: u64, now: OffsetDateTime) {
        let version = self.bump();
        if let Some(contact) = self.contacts.get_mut(&seq) {
            contact.version = version;
            contact.modified = Some(now);
        }
    }

    // ----- content -----

    /// A mailbox holding `content`.
    pub(crate) fn load(
        address: &str,
        display_name: &str,
        content: &MailboxContent,
    ) -> Result<Self, ContentError> {
        content.validate()?;
        let mut mailbox = Self::new(address, display_name);
        if let Some(zone) = &content.time_zone {
            mailbox.time_zone = zone.clone();
        }
        let root = mailbox.root();
        for path in &content.folders {
            let (parent, name) = match path.rsplit_once('/') {
                Some((parent, name)) => (mailbox.folder_by_path(parent), name),
                None => (Some(root), path.as_str()),
            };
            let parent = parent.ok_or_else(|| invalid(path, "its parent folder does not exist"))?;
            mailbox.create_folder(parent, name.trim());
        }
        for (i, m) in content.messages.iter().enumerate() {
            let folder = mailbox
                .folder_by_path(&m.folder)
                .ok_or_else(|| invalid(&format!("messages[{i}]"), "its folder does not exist"))?;
            let message = message_from_content(&mailbox.address, i, m, folder);
            mailbox.insert_message(message);
        }
        for (i, e) in content.events.iter().enumerate() {
            let event = event_from_content(&mailbox.address, &mailbox.display_name, e)
                .map_err(|problem| invalid(&format!("events[{i}] `{}`", e.subject), &problem))?;
            mailbox.insert_event(event);
        }
        for c in &content.contacts {
            mailbox.insert_contact(contact_from_content(c));
        }
        Ok(mailbox)
    }

    /// Adds messages to the mailbox as [`Mailbox::load`] would; answers their sequence numbers.
    pub(crate) fn append_messages(
        &mut self,
        messages: &[MessageContent],
    ) -> Result<Vec<u64>, ContentError> {
        let probe = MailboxContent {
            folders: self.folder_paths(),
            messages: messages.to_vec(),
            ..MailboxContent::empty(self.address.clone())
        };
        probe.validate()?;
        let folders = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                self.folder_by_path(&m.folder)
                    .ok_or_else(|| invalid(&format!("messages[{i}]"), "its folder does not exist"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let offset = self.messages.len();
        let mut ids = Vec::with_capacity(messages.len());
        for (i, (m, folder)) in messages.iter().zip(folders).enumerate() {
            let message = message_from_content(&self.address, offset + i, m, folder);
            let seq = self.insert_message(message);
            ids.push(seq);
        }
        Ok(ids)
    }

    /// The mailbox's content in the form [`Mailbox::load`] takes.
    /// The paths of the folders besides the well-known ones, parents first.
    fn folder_paths(&self) -> Vec<String> {
        let root = self.root();
        self.folders
            .values()
            .filter(|f| f.well_known.is_none() && f.seq != root)
            .filter_map(|f| self.folder_path(f.seq))
            .collect()
    }

    pub(crate) fn to_content(&self) -> MailboxContent {
        let folders = self.folder_paths();
        let mut messages: Vec<&Message> = self.messages.values().collect();
        messages.sort_by_key(|m| m.seq);
        MailboxContent {
            mailbox: self.address.clone(),
            time_zone: (self.time_zone != "UTC").then(|| self.time_zone.clone()),
            folders,
            messages: messages
                .into_iter()
                .map(|m| self.message_to_content(m))
                .collect(),
            events: self.events.values().map(event_to_content).collect(),
            contacts: self.contacts.values().map(contact_to_content).collect(),
        }
    }

    fn message_to_content(&self, m: &Message) -> MessageContent {
        MessageContent {
            folder: self.folder_path(m.folder).unwrap_or_else(|| "inbox".into()),
            subject: m.subject.clone(),
            body: m.body.content.clone(),
            body_type: m.body.kind,
            from: m
                .from
                .clone()
                .unwrap_or_else(|| Address::new(self.display_name.clone(), self.address.clone())),
            to: m.to.clone(),
            cc: m.cc.clone(),
            bcc: m.bcc.clone(),
            received: m.received,
            is_read: m.is_read,
            is_draft: m.is_draft,
            importance: m.importance,
            categories: m.categories.clone(),
            flag: m.flag,
            attachments: m
                .attachments
                .iter()
                .map(|a| AttachmentContent {
                    name: a.name.clone(),
                    content_type: a.content_type.clone(),
                    content_bytes: STANDARD.encode(&a.bytes),
                    generated_size: None,
                    is_inline: a.is_inline,
                    content_id: a.content_id.clone(),
                })
                .collect(),
            internet_message_id: Some(m.internet_message_id.clone()),
            headers: m
                .extra_headers
                .iter()
                .map(|(name, value)| HeaderContent {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

fn invalid(item: &str, problem: &str) -> ContentError {
    ContentError::Invalid {
        item: item.to_string(),
        problem: problem.to_string(),
    }
}

fn ical_uid(address: &str, seq: u64) -> String {
    let digest = Sha256::digest(format!("ical:{}:{seq}", address.to_ascii_lowercase()).as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02X}")).collect();
    format!("040000008200E00074C5B7101A82E00800000000{hex}")
}

/// A deterministic Message-ID for seeded messages without one.
fn seeded_message_id(address: &str, index: usize, from: &str) -> String {
    let digest =
        Sha256::digest(format!("seed:{}:{index}", address.to_ascii_lowercase()).as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02X}")).collect();
    let domain = from
        .rsplit_once('@')
        .map_or("contoso.onmicrosoft.com", |(_, d)| d);
    format!("<{hex}@{domain}>")
}

/// The thread a subject belongs to: the subject without `RE:`/`FW:` prefixes.
fn thread_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_ascii_lowercase();
        let Some(prefix) = ["re:", "fw:", "fwd:", "aw:", "wg:"]
            .iter()
            .find(|p| lower.starts_with(*p))
        else {
            break;
        };
        s = s.get(prefix.len()..).unwrap_or("").trim_start();
    }
    s.to_lowercase()
}

fn message_from_content(address: &str, index: usize, m: &MessageContent, folder: u64) -> Message {
    let internet_message_id = m
        .internet_message_id
        .clone()
        .unwrap_or_else(|| seeded_message_id(address, index, &m.from.address));
    let mut message = Message::blank(m.received, internet_message_id);
    message.conversation_id = conversation_id_for(&thread_subject(&m.subject));
    message.folder = folder;
    message.sent = (!m.is_draft).then(|| {
        m.received
            .checked_sub(Duration::seconds(3))
            .unwrap_or(m.received)
    });
    message.created = m.received;
    message.modified = m.received;
    message.subject = m.subject.clone();
    message.body = Body {
        kind: m.body_type,
        content: m.body.clone(),
    };
    message.importance = m.importance;
    message.is_read = m.is_read;
    message.is_draft = m.is_draft;
    message.from = Some(m.from.clone());
    message.sender = Some(m.from.clone());
    message.to = m.to.clone();
    message.cc = m.cc.clone();
    message.bcc = m.bcc.clone();
    message.flag = m.flag;
    message.categories = m.categories.clone();
    message.extra_headers = m
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    for a in &m.attachments {
        message.add_attachment(Attachment {
            seq: 0,
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            bytes: Bytes::from(a.bytes()),
            is_inline: a.is_inline,
            content_id: a.content_id.clone(),
            modified: m.received,
        });
    }
    message
}

fn event_from_content(
    address: &str,
    display_name: &str,
    e: &EventContent,
) -> Result<Event, String> {
    let zone =
        tz::find(&e.time_zone).ok_or_else(|| format!("unknown time zone `{}`", e.time_zone))?;
    let to_instant = |s: &str| -> Result<OffsetDateTime, String> {
        let local = parse_local(s).ok_or_else(|| format!("`{s}` is not a local date-time"))?;
        Ok(if e.is_all_day {
            local.assume_utc()
        } else {
            zone.to_utc(local)
        })
    };
    let start = to_instant(&e.start)?;
    let end = to_instant(&e.end)?;
    let organizer = e
        .organizer
        .clone()
        .unwrap_or_else(|| Address::new(display_name, address));
    let is_organizer = organizer.address.eq_ignore_ascii_case(address);
    let mut event = Event {
        seq: 0,
        version: 0,
        created: start.checked_sub(Duration::days(14)).unwrap_or(start),
        modified: start.checked_sub(Duration::days(14)).unwrap_or(start),
        ical_uid: String::new(),
        subject: e.subject.clone(),
        body: Body {
            kind: e.body_type,
            content: e.body.clone(),
        },
        start,
        end,
        time_zone: e.time_zone.clone(),
        is_all_day: e.is_all_day,
        location: e.location.clone(),
        organizer,
        is_organizer,
        response: e.response.unwrap_or(if is_organizer {
            ResponseType::Organizer
        } else {
            ResponseType::NotResponded
        }),
        response_time: None,
        attendees: e.attendees.iter().map(attendee_from_content).collect(),
        show_as: e.show_as,
        online_meeting: e.online_meeting_url.clone(),
        recurrence: e.recurrence.clone(),
        exceptions: BTreeMap::new(),
        cancelled: BTreeSet::new(),
        is_cancelled: e.is_cancelled,
        is_private: e.is_private,
        categories: e.categories.clone(),
        importance: Importance::Normal,
    };
    let duration = event.duration();
    for x in &e.exceptions {
        let original = to_instant(&x.original_start)?;
        if !event.is_occurrence(original) {
            return Err(format!(
                "exception `{}` is not an occurrence of the series",
                x.original_start
            ));
        }
        let start = x
            .start
            .as_deref()
            .map(to_instant)
            .transpose()?
            .unwrap_or(original);
        let end = x
            .end
            .as_deref()
            .map(to_instant)
            .transpose()?
            .unwrap_or(start.checked_add(duration).unwrap_or(start));
        event.exceptions.insert(
            original.unix_timestamp(),
            Exception {
                subject: x.subject.clone(),
                start,
                end,
                location: x.location.clone(),
                body: None,
                show_as: None,
            },
        );
    }
    for c in &e.cancelled_occurrences {
        let original = to_instant(c)?;
        if !event.is_occurrence(original) {
            return Err(format!(
                "cancelled occurrence `{c}` is not an occurrence of the series"
            ));
        }
        event.cancelled.insert(original.unix_timestamp());
    }
    Ok(event)
}

fn attendee_from_content(a: &AttendeeContent) -> Attendee {
    Attendee {
        address: Address::new(a.name.clone(), a.address.clone()),
        kind: a.kind,
        response: a.response,
        time: None,
    }
}

fn local_string(event: &Event, t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    event.local(t).format(fmt).unwrap_or_default()
}

fn event_to_content(e: &Event) -> EventContent {
    EventContent {
        subject: e.subject.clone(),
        body: e.body.content.clone(),
        body_type: e.body.kind,
        start: local_string(e, e.start),
        end: local_string(e, e.end),
        time_zone: e.time_zone.clone(),
        is_all_day: e.is_all_day,
        location: e.location.clone(),
        organizer: Some(e.organizer.clone()),
        attendees: e
            .attendees
            .iter()
            .map(|a| AttendeeContent {
                name: a.address.name.clone(),
                address: a.address.address.clone(),
                kind: a.kind,
                response: a.response,
            })
            .collect(),
        show_as: e.show_as,
        response: Some(e.response),
        online_meeting_url: e.online_meeting.clone(),
        recurrence: e.recurrence.clone(),
        exceptions: e
            .exceptions
            .iter()
            .filter_map(|(original, x)| {
                let original = OffsetDateTime::from_unix_timestamp(*original).ok()?;
                Some(ExceptionContent {
                    original_start: local_string(e, original),
                    subject: x.subject.clone(),
                    start: Some(local_string(e, x.start)),
                    end: Some(local_string(e, x.end)),
                    location: x.location.clone(),
                })
            })
            .collect(),
        cancelled_occurrences: e
            .cancelled
            .iter()
            .filter_map(|t| OffsetDateTime::from_unix_timestamp(*t).ok())
            .map(|t| local_string(e, t))
            .collect(),
        is_cancelled: e.is_cancelled,
        is_private: e.is_private,
        categories: e.categories.clone(),
    }
}

fn contact_from_content(c: &ContactContent) -> Contact {
    let display_name = c
        .display_name
        .clone()
        .unwrap_or_else(|| format!("{} {}", c.given_name, c.surname).trim().to_string());
    Contact {
        given_name: c.given_name.clone(),
        surname: c.surname.clone(),
        display_name,
        email_addresses: c.email_addresses.clone(),
        business_phones: c.business_phones.clone(),
        mobile_phone: c.mobile_phone.clone(),
        home_phones: c.home_phones.clone(),
        company_name: c.company_name.clone(),
        job_title: c.job_title.clone(),
        ..Contact::default()
    }
}

fn contact_to_content(c: &Contact) -> ContactContent {
    ContactContent {
        given_name: c.given_name.clone(),
        surname: c.surname.clone(),
        display_name: Some(c.display_name.clone()),
        email_addresses: c.email_addresses.clone(),
        business_phones: c.business_phones.clone(),
        mobile_phone: c.mobile_phone.clone(),
        home_phones: c.home_phones.clone(),
        company_name: c.company_name.clone(),
        job_title: c.job_title.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_paths_resolve_by_well_known_and_display_names() {
        let mut m = Mailbox::new("a@b.c", "A");
        let inbox = m.well_known("inbox").unwrap();
        let projects = m.create_folder(inbox, "Projects");
        assert_eq!(m.folder_path(projects).as_deref(), Some("Inbox/Projects"));
        assert_eq!(m.folder_by_path("inbox/projects"), Some(projects));
        assert_eq!(m.folder_by_path("Sent Items"), m.well_known("sentitems"));
        assert_eq!(m.folder_by_path("SentItems"), m.well_known("sentitems"));
        assert_eq!(m.folder_by_path("Projects"), None);
        assert_eq!(normalize_path("Sent Items/Old"), "sentitems/old");
    }
}
