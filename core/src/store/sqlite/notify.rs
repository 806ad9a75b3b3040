//! [`NotifyStore`] for [`SqliteStore`]: the SQL of `migrations/sqlite/0007_notifications.sql`'s
//! tables; row mapping and sealing are [`super::super::notify_rows`], shared with PostgreSQL.
//!
//! One gateway writes an SQLite file, and SQLite has one writer at a time: a transaction that
//! writes starts with its write (the version check of [`NotifyStore::commit_sync`] is an
//! `UPDATE`), so it waits for the file's lock instead of failing on a snapshot another commit
//! made stale, and `seq` (the rowid, highest + 1) is assigned in commit order.

use async_trait::async_trait;
use sqlx::Row;
use time::OffsetDateTime;

use super::SqliteStore;
use crate::model::{WatchId, WebhookId};
use crate::notify::ChangeEvent;
use crate::notify::store::{
    DeadLetter, EventFilter, KnownItem, NotifyStore, SyncCommit, WatchRow, WatchState,
    WebhookProgress, WebhookRow,
};
use crate::store::StoreError;
use crate::store::notify_rows::{
    dead_letter_from_row, event_body, event_from_body, event_mailbox, filter_kinds, filter_mailbox,
    open_watch_state, progress_columns, seal_watch_state, stale_sync, ts_ordered, watch_columns,
    watch_from_row, webhook_columns, webhook_from_row,
};
use crate::store::rows::{db, is_unique_violation};

const WATCH_COLUMNS: &str =
    "id, connection_id, principal, mailbox, watched, api_key_id, created_at";

#[async_trait]
impl NotifyStore for SqliteStore {
    async fn insert_watch(&self, watch: &WatchRow) -> Result<(), StoreError> {
        let cols = watch_columns(watch)?;
        let result = sqlx::query(
            "INSERT INTO watches (id, connection_id, principal, mailbox, watched, api_key_id, created_at, version) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(cols.id)
        .bind(cols.connection_id)
        .bind(cols.principal)
        .bind(cols.mailbox)
        .bind(cols.watched)
        .bind(cols.api_key_id)
        .bind(cols.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("a watch {}", watch.id)))
            }
            Err(e) => Err(db("inserting a watch")(e)),
        }
    }

    async fn watch(&self, id: WatchId) -> Result<Option<WatchRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WATCH_COLUMNS} FROM watches WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a watch"))?
        .map(|row| watch_from_row(&row))
        .transpose()
    }

    async fn watches(&self) -> Result<Vec<WatchRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WATCH_COLUMNS} FROM watches ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing watches"))?
        .iter()
        .map(|row| watch_from_row(row))
        .collect()
    }

    async fn delete_watch(&self, id: WatchId) -> Result<bool, StoreError> {
        // Its items follow by cascade.
        let r = sqlx::query("DELETE FROM watches WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db("deleting a watch"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn watch_state(&self, id: WatchId) -> Result<Option<WatchState>, StoreError> {
        let ctx = "reading a watch's state";
        let row = sqlx::query("SELECT version, state_sealed FROM watches WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db(ctx))?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(WatchState {
            version: row.try_get("version").map_err(db(ctx))?,
            document: open_watch_state(
                &self.vault,
                id,
                row.try_get("state_sealed").map_err(db(ctx))?,
            )?,
        }))
    }

    async fn known_items(&self, id: WatchId, scope: &str) -> Result<Vec<KnownItem>, StoreError> {
        let ctx = "reading a watch's items";
        sqlx::query(
            "SELECT item_id, version, extra FROM watch_items WHERE watch_id = ? AND scope = ? \
             ORDER BY item_id",
        )
        .bind(id.to_string())
        .bind(scope)
        .fetch_all(&self.pool)
        .await
        .map_err(db(ctx))?
        .iter()
        .map(|row| {
            Ok(KnownItem {
                item_id: row.try_get("item_id").map_err(db(ctx))?,
                version: row.try_get("version").map_err(db(ctx))?,
                extra: row.try_get("extra").map_err(db(ctx))?,
            })
        })
        .collect()
    }

    async fn commit_sync(&self, commit: &SyncCommit) -> Result<Vec<ChangeEvent>, StoreError> {
        let ctx = "committing a watch's sync";
        let watch = commit.watch.to_string();
        let mut bodies = Vec::with_capacity(commit.events.len());
        for event in &commit.events {
            bodies.push(event_body(event)?);
        }
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        // The version check first: it is the transaction's first statement and a write.
        let row = sqlx::query(
            "UPDATE watches SET state_sealed = ?, version = version + 1 \
             WHERE id = ? AND version = ? RETURNING connection_id",
        )
        .bind(seal_watch_state(
            &self.vault,
            commit.watch,
            &commit.document,
        ))
        .bind(&watch)
        .bind(commit.expected_version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(ctx))?;
        let Some(row) = row else {
            return Err(stale_sync(commit.watch));
        };
        let connection: String = row.try_get(0).map_err(db(ctx))?;
        for (scope, item) in &commit.upsert {
            sqlx::query(
                "INSERT INTO watch_items (watch_id, scope, item_id, version, extra) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (watch_id, scope, item_id) DO UPDATE SET version = excluded.version, extra = excluded.extra",
            )
            .bind(&watch)
            .bind(scope)
            .bind(&item.item_id)
            .bind(&item.version)
            .bind(&item.extra)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        }
        for (scope, item_id) in &commit.remove {
            sqlx::query("DELETE FROM watch_items WHERE watch_id = ? AND scope = ? AND item_id = ?")
                .bind(&watch)
                .bind(scope)
                .bind(item_id)
                .execute(&mut *tx)
                .await
                .map_err(db(ctx))?;
        }
        let mut appended = Vec::new();
        for (event, body) in commit.events.iter().zip(bodies) {
            let row = sqlx::query(
                "INSERT INTO events (event_id, watch_id, connection_id, principal, mailbox, kind, body, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (watch_id, event_id) DO NOTHING RETURNING seq",
            )
            .bind(&event.id)
            .bind(&watch)
            .bind(&connection)
            .bind(&event.principal)
            .bind(event_mailbox(event))
            .bind(event.kind.as_str())
            .bind(body)
            .bind(ts_ordered(event.detected_at))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(ctx))?;
            if let Some(row) = row {
                appended.push(ChangeEvent {
                    seq: row.try_get(0).map_err(db(ctx))?,
                    ..event.clone()
                });
            }
        }
        tx.commit().await.map_err(db(ctx))?;
        Ok(appended)
    }

    async fn claim_watch(
        &self,
        id: WatchId,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE watches SET owner = ?1, owner_until = ?2 WHERE id = ?3 \
             AND (owner IS NULL OR owner = ?1 OR owner_until IS NULL OR owner_until <= ?4)",
        )
        .bind(owner)
        .bind(ts_ordered(until))
        .bind(id.to_string())
        .bind(ts_ordered(now))
        .execute(&self.pool)
        .await
        .map_err(db("claiming a watch"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn release_watch(&self, id: WatchId, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE watches SET owner = NULL, owner_until = NULL WHERE id = ? AND owner = ?",
        )
        .bind(id.to_string())
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db("releasing a watch"))?;
        Ok(())
    }

    async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        let ctx = "reading the journal";
        let kinds = serde_json::to_string(&filter_kinds(filter))
            .map_err(|e| StoreError::Corrupt(format!("event kinds: {e}")))?;
        sqlx::query(
            "SELECT seq, body FROM events WHERE seq > ?1 AND connection_id = ?2 \
             AND (?3 IS NULL OR principal = ?3) AND (?4 IS NULL OR mailbox = ?4) \
             AND (?5 = '[]' OR kind IN (SELECT value FROM json_each(?5))) \
             ORDER BY seq LIMIT ?6",
        )
        .bind(after)
        .bind(filter.connection.to_string())
        .bind(filter.principal.as_ref().map(|p| p.as_str().to_owned()))
        .bind(filter_mailbox(filter))
        .bind(kinds)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db(ctx))?
        .iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq").map_err(db(ctx))?;
            let body: String = row.try_get("body").map_err(db(ctx))?;
            event_from_body(&body, seq)
        })
        .collect()
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db("reading the journal's position"))
    }

    async fn purge_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        // The newest entry stays: the next `seq` is the highest + 1.
        let r = sqlx::query(
            "DELETE FROM events WHERE created_at < ? AND seq < (SELECT MAX(seq) FROM events)",
        )
        .bind(ts_ordered(before))
        .execute(&self.pool)
        .await
        .map_err(db("purging the journal"))?;
        Ok(r.rows_affected())
    }

    async fn insert_webhook(&self, webhook: &WebhookRow) -> Result<(), StoreError> {
        let cols = webhook_columns(&self.vault, webhook)?;
        let result = sqlx::query(
            "INSERT INTO webhooks (id, api_key_id, connection_id, principal, mailbox, kinds, url, secret_sealed, \
             created_at, cursor, attempts, next_attempt_at, last_error, first_failed_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(cols.id)
        .bind(cols.api_key_id)
        .bind(cols.connection_id)
        .bind(cols.principal)
        .bind(cols.mailbox)
        .bind(cols.kinds)
        .bind(cols.url)
        .bind(cols.secret_sealed)
        .bind(cols.created_at)
        .bind(cols.progress.cursor)
        .bind(cols.progress.attempts)
        .bind(cols.progress.next_attempt_at)
        .bind(cols.progress.last_error)
        .bind(cols.progress.first_failed_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("a webhook {}", webhook.id)))
            }
            Err(e) => Err(db("inserting a webhook")(e)),
        }
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<WebhookRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM webhooks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a webhook"))?;
        row.map(|row| self.webhook_from(&row)).transpose()
    }

    async fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        sqlx::query("SELECT * FROM webhooks ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing webhooks"))?
            .iter()
            .map(|row| self.webhook_from(row))
            .collect()
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<bool, StoreError> {
        // Its dead letters follow by cascade.
        let r = sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db("deleting a webhook"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn set_webhook_progress(
        &self,
        id: WebhookId,
        progress: &WebhookProgress,
        dead: Option<&DeadLetter>,
    ) -> Result<bool, StoreError> {
        let ctx = "recording a webhook's progress";
        let p = progress_columns(progress);
        let dead = dead
            .map(|d| event_body(&d.event).map(|body| (d, body)))
            .transpose()?;
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        let r = sqlx::query(
            "UPDATE webhooks SET cursor = ?, attempts = ?, next_attempt_at = ?, last_error = ?, \
             first_failed_at = ? WHERE id = ?",
        )
        .bind(p.cursor)
        .bind(p.attempts)
        .bind(p.next_attempt_at)
        .bind(p.last_error)
        .bind(p.first_failed_at)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db(ctx))?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some((d, body)) = dead {
            sqlx::query(
                "INSERT INTO dead_letters (webhook_id, seq, event, attempts, last_error, failed_at, replay) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id, seq) DO UPDATE SET \
                 event = excluded.event, attempts = excluded.attempts, last_error = excluded.last_error, \
                 failed_at = excluded.failed_at, replay = excluded.replay",
            )
            .bind(id.to_string())
            .bind(d.event.seq)
            .bind(body)
            .bind(i64::from(d.attempts))
            .bind(&d.last_error)
            .bind(ts_ordered(d.failed_at))
            .bind(i64::from(d.replay))
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        }
        tx.commit().await.map_err(db(ctx))?;
        Ok(true)
    }

    async fn claim_webhook(
        &self,
        id: WebhookId,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE webhooks SET owner = ?1, owner_until = ?2 WHERE id = ?3 \
             AND (owner IS NULL OR owner = ?1 OR owner_until IS NULL OR owner_until <= ?4)",
        )
        .bind(owner)
        .bind(ts_ordered(until))
        .bind(id.to_string())
        .bind(ts_ordered(now))
        .execute(&self.pool)
        .await
        .map_err(db("claiming a webhook"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn dead_letters(&self, webhook: WebhookId) -> Result<Vec<DeadLetter>, StoreError> {
        let ctx = "reading dead letters";
        sqlx::query("SELECT * FROM dead_letters WHERE webhook_id = ? ORDER BY seq")
            .bind(webhook.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db(ctx))?
            .iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq").map_err(db(ctx))?;
                let attempts: i64 = row.try_get("attempts").map_err(db(ctx))?;
                let replay: i64 = row.try_get("replay").map_err(db(ctx))?;
                dead_letter_from_row(row, seq, attempts, replay != 0)
            })
            .collect()
    }

    async fn request_replay(
        &self,
        webhook: WebhookId,
        seq: Option<i64>,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE dead_letters SET replay = 1 WHERE webhook_id = ?1 AND (?2 IS NULL OR seq = ?2)",
        )
        .bind(webhook.to_string())
        .bind(seq)
        .execute(&self.pool)
        .await
        .map_err(db("marking dead letters for replay"))?;
        Ok(r.rows_affected())
    }

    async fn finish_replay(
        &self,
        webhook: WebhookId,
        seq: i64,
        delivered: bool,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let q = if delivered {
            sqlx::query("DELETE FROM dead_letters WHERE webhook_id = ? AND seq = ?")
                .bind(webhook.to_string())
                .bind(seq)
        } else {
            sqlx::query(
                "UPDATE dead_letters SET replay = 0, attempts = attempts + 1, \
                 last_error = COALESCE(?, last_error) WHERE webhook_id = ? AND seq = ?",
            )
            .bind(error)
            .bind(webhook.to_string())
            .bind(seq)
        };
        q.execute(&self.pool)
            .await
            .map_err(db("recording a replay"))?;
        Ok(())
    }
}

impl SqliteStore {
    fn webhook_from(&self, row: &sqlx::sqlite::SqliteRow) -> Result<WebhookRow, StoreError> {
        let ctx = "reading a webhook";
        let cursor: i64 = row.try_get("cursor").map_err(db(ctx))?;
        let attempts: i64 = row.try_get("attempts").map_err(db(ctx))?;
        webhook_from_row(&self.vault, row, cursor, attempts)
    }
}
