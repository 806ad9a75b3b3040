//! The mail store every mock serves: each mailbox's folders, messages, events and contacts,
//! and the record of what was delivered and submitted.
//!
//! It sits at the bottom of the testkit beside the directory ([`crate::directory`]) and knows
//! no protocol: items carry sequence numbers, and each mock makes its own IDs from them (Graph's
//! in `graph::ids`). [`MailboxContent`] is a mailbox as JSON (seed files, fixtures); time zones
//! (`tz`, chrono-tz with CLDR's Windows names) and series ([`recurrence`], rrule) are
//! expanded here so every protocol sees the same occurrences.

pub mod content;
pub mod fixtures;
pub(crate) mod mailbox;
pub(crate) mod mime;
pub(crate) mod parse;
pub mod recurrence;
pub(crate) mod tz;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

pub use content::{
    Address, AttachmentContent, AttendeeContent, AttendeeType, BodyType, ContactContent,
    ContentError, EventContent, ExceptionContent, FlagStatus, HeaderContent, Importance,
    MailboxContent, MessageContent, ResponseType, ShowAs,
};
pub use recurrence::{
    DayOfWeek, PatternType, RangeType, Recurrence, RecurrencePattern, RecurrenceRange, WeekIndex,
};

use mailbox::Mailbox;

/// The shared mail store. Cloning shares it.
#[derive(Clone)]
pub struct MailStore {
    inner: Arc<Mutex<Mailboxes>>,
    /// Bumped after every write through [`MailStore::lock`]: IMAP IDLE waits on it, so mail
    /// that arrives over any protocol wakes the idling sessions.
    changes: Arc<watch::Sender<u64>>,
}

/// The store under its lock. A write through it (any `DerefMut`) tells the store's watchers
/// once the lock is released.
pub(crate) struct StoreGuard<'a> {
    guard: MutexGuard<'a, Mailboxes>,
    changes: &'a watch::Sender<u64>,
    wrote: bool,
}

impl Deref for StoreGuard<'_> {
    type Target = Mailboxes;
    fn deref(&self) -> &Mailboxes {
        &self.guard
    }
}

impl DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Mailboxes {
        self.wrote = true;
        &mut self.guard
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if self.wrote {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

impl std::fmt::Debug for MailStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailStore")
            .field("mailboxes", &self.lock().mailboxes.len())
            .finish_non_exhaustive()
    }
}

/// `(internetMessageId, subject)` of a message handed over.
pub type Handover = (String, String);

/// What the store holds, under its lock.
#[derive(Debug, Default)]
pub(crate) struct Mailboxes {
    /// By lower-case address.
    pub mailboxes: HashMap<String, Mailbox>,
    /// Deliveries into a mailbox (lower-case address), oldest first.
    pub deliveries: HashMap<String, Vec<Handover>>,
    /// Submissions from a mailbox, oldest first.
    pub submissions: HashMap<String, Vec<Handover>>,
}

impl Mailboxes {
    pub(crate) fn mailbox(&self, address: &str) -> Option<&Mailbox> {
        self.mailboxes.get(&address.trim().to_ascii_lowercase())
    }

    pub(crate) fn mailbox_mut(&mut self, address: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&address.trim().to_ascii_lowercase())
    }

    /// Records a message delivered into `mailbox`.
    pub(crate) fn delivered(&mut self, mailbox: &str, internet_message_id: &str, subject: &str) {
        record(&mut self.deliveries, mailbox, internet_message_id, subject);
    }

    /// Records a message submitted from `mailbox`.
    pub(crate) fn submitted(&mut self, mailbox: &str, internet_message_id: &str, subject: &str) {
        record(&mut self.submissions, mailbox, internet_message_id, subject);
    }
}

fn record(
    log: &mut HashMap<String, Vec<Handover>>,
    mailbox: &str,
    internet_message_id: &str,
    subject: &str,
) {
    log.entry(mailbox.trim().to_ascii_lowercase())
        .or_default()
        .push((internet_message_id.to_string(), subject.to_string()));
}

impl MailStore {
    /// A store with an empty mailbox (the well-known folders only) for each `(address,
    /// display name)`.
    pub fn new<'a>(mailboxes: impl IntoIterator<Item = (&'a str, &'a str)>) -> MailStore {
        let mut store = Mailboxes::default();
        for (address, display_name) in mailboxes {
            store.mailboxes.insert(
                address.trim().to_ascii_lowercase(),
                Mailbox::new(address.trim(), display_name),
            );
        }
        MailStore {
            inner: Arc::new(Mutex::new(store)),
            changes: Arc::new(watch::channel(0).0),
        }
    }

    pub(crate) fn lock(&self) -> StoreGuard<'_> {
        StoreGuard {
            guard: self.inner.lock().unwrap_or_else(PoisonError::into_inner),
            changes: &self.changes,
            wrote: false,
        }
    }

    /// Wakes after each later write to the store (whichever protocol wrote).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Replaces the content of the mailbox `content.mailbox` (one the store has); nothing
    /// changes when the content is not valid.
    pub fn load_mailbox(&self, content: MailboxContent) -> Result<(), ContentError> {
        let mut store = self.lock();
        let (address, display_name) = store
            .mailbox(&content.mailbox)
            .map(|mb| (mb.address.clone(), mb.display_name.clone()))
            .ok_or_else(|| ContentError::UnknownMailbox(content.mailbox.clone()))?;
        let mailbox = Mailbox::load(&address, &display_name, &content)?;
        store
            .mailboxes
            .insert(address.to_ascii_lowercase(), mailbox);
        Ok(())
    }

    /// Adds messages to a mailbox without touching the rest; answers their sequence numbers
    /// in the mailbox, in order.
    pub(crate) fn append_messages(
        &self,
        mailbox: &str,
        messages: &[MessageContent],
    ) -> Result<Vec<u64>, ContentError> {
        let mut store = self.lock();
        store
            .mailbox_mut(mailbox)
            .ok_or_else(|| ContentError::UnknownMailbox(mailbox.to_string()))?
            .append_messages(messages)
    }

    /// The content of a mailbox, in the form [`MailStore::load_mailbox`] takes.
    pub fn mailbox_content(&self, mailbox: &str) -> Option<MailboxContent> {
        self.lock().mailbox(mailbox).map(Mailbox::to_content)
    }

    /// Every message delivered into `mailbox` so far, oldest first.
    pub fn delivered(&self, mailbox: &str) -> Vec<Handover> {
        self.lock()
            .deliveries
            .get(&mailbox.trim().to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// Every message submitted from `mailbox` so far, oldest first.
    pub fn submitted(&self, mailbox: &str) -> Vec<Handover> {
        self.lock()
            .submissions
            .get(&mailbox.trim().to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_load_keep_and_answer_their_content() {
        let store = MailStore::new([
            ("adele@contoso.example", "Adele"),
            ("sales@contoso.example", "Sales"),
        ]);
        let mut content = MailboxContent::empty("ADELE@contoso.example");
        content.time_zone = Some("Europe/Berlin".into());
        content.folders = vec!["Inbox/Projects".into()];
        store.load_mailbox(content).unwrap();
        let back = store.mailbox_content("adele@contoso.example").unwrap();
        assert_eq!(
            back.mailbox, "adele@contoso.example",
            "the store's spelling"
        );
        assert_eq!(back.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(back.folders, ["Inbox/Projects"]);
        assert!(matches!(
            store.load_mailbox(MailboxContent::empty("nobody@contoso.example")),
            Err(ContentError::UnknownMailbox(_))
        ));
        let mut bad = MailboxContent::empty("sales@contoso.example");
        bad.time_zone = Some("Mars/Olympus_Mons".into());
        assert!(store.load_mailbox(bad).is_err());
        assert!(store.mailbox_content("sales@contoso.example").is_some());

        let message = MessageContent::new(
            "Inbox/Projects",
            "Hello",
            Address::new("Lee", "lee@contoso.example"),
            time::macros::datetime!(2026-11-02 09:00 UTC),
        );
        let seqs = store
            .append_messages("adele@contoso.example", &[message.clone(), message])
            .unwrap();
        assert_eq!(seqs.len(), 2);
        assert!(seqs[0] < seqs[1]);

        store
            .lock()
            .delivered("Sales@contoso.example", "<1@x>", "Hi");
        store
            .lock()
            .submitted("adele@contoso.example", "<1@x>", "Hi");
        assert_eq!(
            store.delivered("sales@contoso.example"),
            [("<1@x>".to_string(), "Hi".to_string())]
        );
        assert_eq!(store.submitted("ADELE@contoso.example").len(), 1);
        assert!(store.delivered("adele@contoso.example").is_empty());
    }
}
