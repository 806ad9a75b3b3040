//! [`NotifyStore`] for [`MemoryStore`]: the same contract as the database backends (the
//! conformance suite `core/tests/notify_store.rs` runs over all three), held in the store's one
//! mutex, so every method is atomic.
//!
//! As in the databases: the journal's `seq` never goes back (the newest event survives every
//! purge, as the journal's high-water mark), and deleting a connection deletes its watches and
//! webhooks (with their items and dead letters) but not its journal entries.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::model::{ConnectionId, WatchId, WebhookId};
use crate::notify::ChangeEvent;
use crate::notify::store::{
    DeadLetter, EventFilter, KnownItem, NotifyStore, SyncCommit, WatchRow, WatchState,
    WebhookProgress, WebhookRow,
};
use crate::secret::Secret;
use crate::store::StoreError;

/// Who runs a watch or delivers to a webhook, and until when.
#[derive(Debug, Clone, Default)]
struct Owner {
    name: Option<String>,
    until: Option<OffsetDateTime>,
}

impl Owner {
    /// Takes (or keeps) the claim for `owner` unless another holds it past `now`.
    fn claim(&mut self, owner: &str, now: OffsetDateTime, until: OffsetDateTime) -> bool {
        let free = match (&self.name, self.until) {
            (None, _) => true,
            (Some(held), _) if held == owner => true,
            (Some(_), Some(held_until)) => held_until <= now,
            (Some(_), None) => true,
        };
        if free {
            self.name = Some(owner.to_owned());
            self.until = Some(until);
        }
        free
    }
}

#[derive(Debug)]
struct Watch {
    row: WatchRow,
    version: i64,
    document: Option<Secret>,
    /// Known items by scope, then item ID.
    items: BTreeMap<String, BTreeMap<String, KnownItem>>,
    owner: Owner,
    /// Order of insertion, to list oldest first when creation times tie.
    order: u64,
}

#[derive(Debug)]
struct Webhook {
    row: WebhookRow,
    owner: Owner,
    /// Dead letters by `seq`.
    dead: BTreeMap<i64, DeadLetter>,
    order: u64,
}

/// The notification state of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(super) struct NotifyState {
    watches: BTreeMap<WatchId, Watch>,
    /// The journal by `seq`: each event with its watch and the watch's connection.
    events: BTreeMap<i64, (ConnectionId, WatchId, ChangeEvent)>,
    /// The (watch, event ID) pairs of the journal, to skip an event appended again.
    event_ids: HashSet<(WatchId, String)>,
    webhooks: BTreeMap<WebhookId, Webhook>,
    next_order: u64,
}

impl NotifyState {
    /// Deletes the connection's watches and webhooks (its journal entries stay until purged).
    pub(super) fn forget_connection(&mut self, id: ConnectionId) {
        self.watches.retain(|_, w| w.row.connection != id);
        self.webhooks.retain(|_, w| w.row.filter.connection != id);
    }

    fn last_seq(&self) -> i64 {
        self.events.keys().next_back().copied().unwrap_or(0)
    }

    fn order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }
}

/// Conflict answered when a sync started from an older state (or the watch is gone).
fn stale_sync(id: WatchId) -> StoreError {
    StoreError::Conflict(format!("a newer sync of watch {id} (or its deletion)"))
}

#[async_trait]
impl NotifyStore for MemoryStore {
    async fn insert_watch(&self, watch: &WatchRow) -> Result<(), StoreError> {
        let mut s = self.state();
        let n = &mut s.notify;
        if n.watches.contains_key(&watch.id) {
            return Err(StoreError::Conflict(format!("a watch {}", watch.id)));
        }
        let order = n.order();
        n.watches.insert(
            watch.id,
            Watch {
                row: watch.clone(),
                version: 0,
                document: None,
                items: BTreeMap::new(),
                owner: Owner::default(),
                order,
            },
        );
        Ok(())
    }

    async fn watch(&self, id: WatchId) -> Result<Option<WatchRow>, StoreError> {
        Ok(self.state().notify.watches.get(&id).map(|w| w.row.clone()))
    }

    async fn watches(&self) -> Result<Vec<WatchRow>, StoreError> {
        let s = self.state();
        let mut all: Vec<&Watch> = s.notify.watches.values().collect();
        all.sort_by_key(|w| (w.row.created_at, w.order));
        Ok(all.into_iter().map(|w| w.row.clone()).collect())
    }

    async fn delete_watch(&self, id: WatchId) -> Result<bool, StoreError> {
        Ok(self.state().notify.watches.remove(&id).is_some())
    }

    async fn watch_state(&self, id: WatchId) -> Result<Option<WatchState>, StoreError> {
        Ok(self.state().notify.watches.get(&id).map(|w| WatchState {
            version: w.version,
            document: w.document.clone(),
        }))
    }

    async fn known_items(&self, id: WatchId, scope: &str) -> Result<Vec<KnownItem>, StoreError> {
        Ok(self
            .state()
            .notify
            .watches
            .get(&id)
            .and_then(|w| w.items.get(scope))
            .map(|items| items.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn commit_sync(&self, commit: &SyncCommit) -> Result<Vec<ChangeEvent>, StoreError> {
        let mut s = self.state();
        let n = &mut s.notify;
        let watch = n
            .watches
            .get_mut(&commit.watch)
            .filter(|w| w.version == commit.expected_version)
            .ok_or_else(|| stale_sync(commit.watch))?;
        watch.version += 1;
        watch.document = Some(commit.document.clone());
        for (scope, item) in &commit.upsert {
            watch
                .items
                .entry(scope.clone())
                .or_default()
                .insert(item.item_id.clone(), item.clone());
        }
        for (scope, item_id) in &commit.remove {
            if let Some(items) = watch.items.get_mut(scope) {
                items.remove(item_id);
                if items.is_empty() {
                    watch.items.remove(scope);
                }
            }
        }
        let connection = watch.row.connection;
        let mut appended = Vec::new();
        for event in &commit.events {
            if !n.event_ids.insert((commit.watch, event.id.clone())) {
                continue;
            }
            let seq = n.last_seq() + 1;
            let event = ChangeEvent {
                seq,
                ..event.clone()
            };
            n.events
                .insert(seq, (connection, commit.watch, event.clone()));
            appended.push(event);
        }
        Ok(appended)
    }

    async fn claim_watch(
        &self,
        id: WatchId,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self
            .state()
            .notify
            .watches
            .get_mut(&id)
            .is_some_and(|w| w.owner.claim(owner, now, until)))
    }

    async fn release_watch(&self, id: WatchId, owner: &str) -> Result<(), StoreError> {
        if let Some(w) = self.state().notify.watches.get_mut(&id)
            && w.owner.name.as_deref() == Some(owner)
        {
            w.owner = Owner::default();
        }
        Ok(())
    }

    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        let s = self.state();
        Ok(s.notify
            .events
            .range(after.saturating_add(1)..)
            .filter(|(_, (connection, _, event))| filter.matches(*connection, event))
            .take(limit as usize)
            .map(|(_, (_, _, event))| event.clone())
            .collect())
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        Ok(self.state().notify.last_seq())
    }

    async fn purge_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut s = self.state();
        let n = &mut s.notify;
        let newest = n.last_seq();
        let gone: Vec<i64> = n
            .events
            .iter()
            .filter(|(seq, (_, _, e))| **seq < newest && e.detected_at < before)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &gone {
            if let Some((_, watch, e)) = n.events.remove(seq) {
                n.event_ids.remove(&(watch, e.id));
            }
        }
        Ok(gone.len() as u64)
    }

    async fn insert_webhook(&self, webhook: &WebhookRow) -> Result<(), StoreError> {
        let mut s = self.state();
        let n = &mut s.notify;
        if n.webhooks.contains_key(&webhook.id) {
            return Err(StoreError::Conflict(format!("a webhook {}", webhook.id)));
        }
        let order = n.order();
        n.webhooks.insert(
            webhook.id,
            Webhook {
                row: webhook.clone(),
                owner: Owner::default(),
                dead: BTreeMap::new(),
                order,
            },
        );
        Ok(())
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<WebhookRow>, StoreError> {
        Ok(self.state().notify.webhooks.get(&id).map(|w| w.row.clone()))
    }

    async fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        let s = self.state();
        let mut all: Vec<&Webhook> = s.notify.webhooks.values().collect();
        all.sort_by_key(|w| (w.row.created_at, w.order));
        Ok(all.into_iter().map(|w| w.row.clone()).collect())
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<bool, StoreError> {
        Ok(self.state().notify.webhooks.remove(&id).is_some())
    }

    async fn set_webhook_progress(
        &self,
        id: WebhookId,
        progress: &WebhookProgress,
        dead: Option<&DeadLetter>,
    ) -> Result<bool, StoreError> {
        let mut s = self.state();
        let Some(w) = s.notify.webhooks.get_mut(&id) else {
            return Ok(false);
        };
        w.row.progress = progress.clone();
        if let Some(dead) = dead {
            let letter = DeadLetter {
                webhook: id,
                ..dead.clone()
            };
            w.dead.insert(letter.event.seq, letter);
        }
        Ok(true)
    }

    async fn claim_webhook(
        &self,
        id: WebhookId,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self
            .state()
            .notify
            .webhooks
            .get_mut(&id)
            .is_some_and(|w| w.owner.claim(owner, now, until)))
    }

    async fn dead_letters(&self, webhook: WebhookId) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .state()
            .notify
            .webhooks
            .get(&webhook)
            .map(|w| w.dead.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn request_replay(
        &self,
        webhook: WebhookId,
        seq: Option<i64>,
    ) -> Result<u64, StoreError> {
        let mut s = self.state();
        let Some(w) = s.notify.webhooks.get_mut(&webhook) else {
            return Ok(0);
        };
        let mut marked = 0;
        for letter in w
            .dead
            .values_mut()
            .filter(|d| seq.is_none_or(|seq| d.event.seq == seq))
        {
            letter.replay = true;
            marked += 1;
        }
        Ok(marked)
    }

    async fn finish_replay(
        &self,
        webhook: WebhookId,
        seq: i64,
        delivered: bool,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut s = self.state();
        let Some(w) = s.notify.webhooks.get_mut(&webhook) else {
            return Ok(());
        };
        if delivered {
            w.dead.remove(&seq);
        } else if let Some(letter) = w.dead.get_mut(&seq) {
            letter.replay = false;
            letter.attempts = letter.attempts.saturating_add(1);
            if let Some(error) = error {
                letter.last_error = error.to_owned();
            }
        }
        Ok(())
    }
}
