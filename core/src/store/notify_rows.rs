//! What the SQL backends share for change notifications ([`crate::notify::NotifyStore`]): the
//! columns of watches, webhooks, journal entries and dead letters, sealing (a watch's state and a
//! webhook's secret, each bound to its row like every sealed column of [`super::rows`]), and
//! row → model conversion. Each backend writes its own SQL (`sqlite/notify.rs`,
//! `postgres/notify.rs`).
//!
//! Times are stored as RFC 3339 text in UTC with nine fractional digits (`ts_ordered`): fixed
//! width, so the database compares and orders them as text (claims, purges, oldest first), and
//! exact, so a row reads back equal to what was written.

use serde_json::Value as Json;
use time::{OffsetDateTime, UtcOffset};

use super::StoreError;
use super::rows::{RawRow, db, parse_col, parse_ts};
use crate::apikeys::ApiKeyId;
use crate::model::{ConnectionId, WatchId, WebhookId};
use crate::notify::store::{DeadLetter, EventFilter, WatchRow, WebhookProgress, WebhookRow};
use crate::notify::{ChangeEvent, EventKind, Watched};
use crate::secret::{Secret, Vault};

/// A time as the notification tables hold it: `2026-12-01T10:00:00.000000000Z`.
pub(crate) fn ts_ordered(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

pub(crate) fn watch_state_context(id: WatchId) -> String {
    format!("watches/{id}/state")
}

pub(crate) fn webhook_secret_context(id: WebhookId) -> String {
    format!("webhooks/{id}/secret")
}

/// A journal entry's `mailbox` column: the address of the mailbox the event is of (the watch's
/// named mailbox, else the principal's own), folded as [`EventFilter::matches`] compares it
/// (ASCII case), so that filtering is an equality in SQL.
pub(crate) fn event_mailbox(event: &ChangeEvent) -> String {
    event
        .mailbox
        .as_deref()
        .unwrap_or(&event.principal)
        .to_ascii_lowercase()
}

/// A filter's mailbox as compared with [`event_mailbox`].
pub(crate) fn filter_mailbox(filter: &EventFilter) -> Option<String> {
    filter.mailbox.as_deref().map(str::to_ascii_lowercase)
}

/// A filter's kinds as a list of names (empty: every kind).
pub(crate) fn filter_kinds(filter: &EventFilter) -> Vec<String> {
    filter.kinds.iter().map(|k| k.as_str().to_owned()).collect()
}

/// An event's JSON without its `seq` (the row's own column).
pub(crate) fn event_body(event: &ChangeEvent) -> Result<String, StoreError> {
    let mut json = serde_json::to_value(event)
        .map_err(|e| StoreError::Corrupt(format!("event {} cannot be encoded: {e}", event.id)))?;
    if let Json::Object(map) = &mut json {
        map.remove("seq");
    }
    Ok(json.to_string())
}

/// An event from its JSON body and its `seq`.
pub(crate) fn event_from_body(body: &str, seq: i64) -> Result<ChangeEvent, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("event {seq}: {e}"));
    let mut json: Json = serde_json::from_str(body).map_err(corrupt)?;
    if let Json::Object(map) = &mut json {
        map.insert("seq".into(), Json::from(seq));
    }
    serde_json::from_value(json).map_err(corrupt)
}

/// A watch's columns but its state, ready to bind.
pub(crate) struct WatchColumns {
    pub id: String,
    pub connection_id: String,
    pub principal: String,
    pub mailbox: Option<String>,
    pub watched: String,
    pub api_key_id: Option<String>,
    pub created_at: String,
}

pub(crate) fn watch_columns(w: &WatchRow) -> Result<WatchColumns, StoreError> {
    Ok(WatchColumns {
        id: w.id.to_string(),
        connection_id: w.connection.to_string(),
        principal: w.principal.as_str().to_owned(),
        mailbox: w.mailbox.clone(),
        watched: serde_json::to_string(&w.watched)
            .map_err(|e| StoreError::Corrupt(format!("watch {} cannot be encoded: {e}", w.id)))?,
        api_key_id: w.api_key.map(|k| k.to_string()),
        created_at: ts_ordered(w.created_at),
    })
}

pub(crate) fn watch_from_row(row: &dyn RawRow) -> Result<WatchRow, StoreError> {
    let ctx = "reading a watch";
    let get = |col: &str| row.text(col).map_err(db(ctx));
    let opt = |col: &str| row.opt_text(col).map_err(db(ctx));
    let id: WatchId = parse_col(&get("id")?, "watch id")?;
    let watched: Vec<Watched> = serde_json::from_str(&get("watched")?)
        .map_err(|e| StoreError::Corrupt(format!("watch {id}: {e}")))?;
    Ok(WatchRow {
        id,
        connection: parse_col(&get("connection_id")?, "connection id")?,
        principal: parse_col(&get("principal")?, "principal")?,
        mailbox: opt("mailbox")?,
        watched,
        api_key: opt("api_key_id")?
            .map(|k| parse_col(&k, "API key id").map(ApiKeyId))
            .transpose()?,
        created_at: parse_ts(&get("created_at")?)?,
    })
}

/// A watch's state document, sealed to its row.
pub(crate) fn seal_watch_state(vault: &Vault, id: WatchId, document: &Secret) -> Vec<u8> {
    vault.seal_secret(&watch_state_context(id), document)
}

pub(crate) fn open_watch_state(
    vault: &Vault,
    id: WatchId,
    sealed: Option<Vec<u8>>,
) -> Result<Option<Secret>, StoreError> {
    Ok(sealed
        .map(|s| vault.open_secret(&watch_state_context(id), &s))
        .transpose()?)
}

/// A webhook's columns, ready to bind.
pub(crate) struct WebhookColumns {
    pub id: String,
    pub api_key_id: Option<String>,
    pub connection_id: String,
    pub principal: Option<String>,
    pub mailbox: Option<String>,
    pub kinds: String,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub created_at: String,
    pub progress: ProgressColumns,
}

/// A webhook's delivery progress, ready to bind.
pub(crate) struct ProgressColumns {
    pub cursor: i64,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub first_failed_at: Option<String>,
}

pub(crate) fn progress_columns(p: &WebhookProgress) -> ProgressColumns {
    ProgressColumns {
        cursor: p.cursor,
        attempts: i64::from(p.attempts),
        next_attempt_at: p.next_attempt_at.map(ts_ordered),
        last_error: p.last_error.clone(),
        first_failed_at: p.first_failed_at.map(ts_ordered),
    }
}

pub(crate) fn webhook_columns(vault: &Vault, h: &WebhookRow) -> Result<WebhookColumns, StoreError> {
    Ok(WebhookColumns {
        id: h.id.to_string(),
        api_key_id: h.api_key.map(|k| k.to_string()),
        connection_id: h.filter.connection.to_string(),
        principal: h.filter.principal.as_ref().map(|p| p.as_str().to_owned()),
        mailbox: h.filter.mailbox.clone(),
        kinds: serde_json::to_string(&filter_kinds(&h.filter))
            .map_err(|e| StoreError::Corrupt(format!("webhook {} cannot be encoded: {e}", h.id)))?,
        url: h.url.clone(),
        secret_sealed: vault.seal_secret(&webhook_secret_context(h.id), &h.secret),
        created_at: ts_ordered(h.created_at),
        progress: progress_columns(&h.progress),
    })
}

/// A webhook from its row; `cursor` and `attempts` are read by the backend (integer columns).
pub(crate) fn webhook_from_row(
    vault: &Vault,
    row: &dyn RawRow,
    cursor: i64,
    attempts: i64,
) -> Result<WebhookRow, StoreError> {
    let ctx = "reading a webhook";
    let get = |col: &str| row.text(col).map_err(db(ctx));
    let opt = |col: &str| row.opt_text(col).map_err(db(ctx));
    let id: WebhookId = parse_col(&get("id")?, "webhook id")?;
    let kinds: Vec<String> = serde_json::from_str(&get("kinds")?)
        .map_err(|e| StoreError::Corrupt(format!("webhook {id}: {e}")))?;
    let kinds = kinds
        .iter()
        .map(|k| {
            EventKind::parse(k).ok_or_else(|| StoreError::Corrupt(format!("event kind `{k}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sealed = row
        .opt_bytes("secret_sealed")
        .map_err(db(ctx))?
        .ok_or_else(|| StoreError::Corrupt(format!("webhook {id} without its secret")))?;
    let connection: ConnectionId = parse_col(&get("connection_id")?, "connection id")?;
    Ok(WebhookRow {
        id,
        api_key: opt("api_key_id")?
            .map(|k| parse_col(&k, "API key id").map(ApiKeyId))
            .transpose()?,
        filter: EventFilter {
            connection,
            principal: opt("principal")?
                .map(|p| parse_col(&p, "principal"))
                .transpose()?,
            mailbox: opt("mailbox")?,
            kinds,
        },
        url: get("url")?,
        secret: vault.open_secret(&webhook_secret_context(id), &sealed)?,
        created_at: parse_ts(&get("created_at")?)?,
        progress: WebhookProgress {
            cursor,
            attempts: u32::try_from(attempts)
                .map_err(|_| StoreError::Corrupt(format!("webhook {id}: attempts {attempts}")))?,
            next_attempt_at: opt("next_attempt_at")?.map(|t| parse_ts(&t)).transpose()?,
            last_error: opt("last_error")?,
            first_failed_at: opt("first_failed_at")?.map(|t| parse_ts(&t)).transpose()?,
        },
    })
}

/// A dead letter from its row; the integer columns are read by the backend.
pub(crate) fn dead_letter_from_row(
    row: &dyn RawRow,
    seq: i64,
    attempts: i64,
    replay: bool,
) -> Result<DeadLetter, StoreError> {
    let ctx = "reading a dead letter";
    let get = |col: &str| row.text(col).map_err(db(ctx));
    Ok(DeadLetter {
        webhook: parse_col(&get("webhook_id")?, "webhook id")?,
        event: event_from_body(&get("event")?, seq)?,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("dead letter {seq}: attempts {attempts}")))?,
        last_error: get("last_error")?,
        failed_at: parse_ts(&get("failed_at")?)?,
        replay,
    })
}

/// Conflict answered when a sync started from an older state (or its watch is gone).
pub(crate) fn stale_sync(id: WatchId) -> StoreError {
    StoreError::Conflict(format!("a newer sync of watch {id} (or its deletion)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ordered_times_are_fixed_width_exact_and_sort_as_text() {
        let times = [
            datetime!(2026-12-01 10:00 UTC),
            datetime!(2026-12-01 10:00:00.5 UTC),
            datetime!(2026-12-01 12:00:00.000000001 +02:00) + time::Duration::hours(1),
            datetime!(2026-12-01 11:30 UTC),
        ];
        let texts: Vec<String> = times.iter().map(|t| ts_ordered(*t)).collect();
        assert!(texts.iter().all(|t| t.len() == texts[0].len()));
        assert_eq!(texts[1], "2026-12-01T10:00:00.500000000Z");
        for (t, s) in times.iter().zip(&texts) {
            assert_eq!(parse_ts(s).unwrap(), *t);
        }
        for (a, b) in times.iter().zip(&texts) {
            for (c, d) in times.iter().zip(&texts) {
                assert_eq!(a.cmp(c), b.cmp(d), "{b} vs {d}");
            }
        }
    }

    #[test]
    fn an_event_body_has_no_seq_and_reads_back_with_the_rows() {
        let event = ChangeEvent {
            id: "evt_1".into(),
            seq: 41,
            kind: EventKind::MessageMoved,
            watch: WatchId::new_random(),
            connection: "contoso".into(),
            principal: "alice@contoso.com".into(),
            mailbox: Some("Shared@Contoso.com".into()),
            folder: "archive".into(),
            item_id: "AAMk2".into(),
            previous_folder: Some("inbox".into()),
            previous_item_id: Some("AAMk1".into()),
            detected_at: datetime!(2026-12-01 10:00:00.123456789 UTC),
        };
        let body = event_body(&event).unwrap();
        assert!(!body.contains("\"seq\""), "{body}");
        assert_eq!(event_from_body(&body, 41).unwrap(), event);
        assert_eq!(event_mailbox(&event), "shared@contoso.com");
        let own = ChangeEvent {
            mailbox: None,
            ..event
        };
        assert_eq!(event_mailbox(&own), "alice@contoso.com");
        assert!(matches!(
            event_from_body("{", 1),
            Err(StoreError::Corrupt(_))
        ));
    }
}
