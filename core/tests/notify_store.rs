//! The `NotifyStore` contract (change notifications, issue 16), run over `dyn NotifyStore`
//! against every backend: SQLite (a real file), PostgreSQL (a throwaway cluster,
//! `exgate_testkit::postgres::TempPostgres`) and the in-memory store. Each check is one function
//! below; `conformance!` makes one test per check and backend (`sqlite::…`, `postgres::…`,
//! `memory::…`). The database backends are also read raw (no secret in clear) and copied
//! (`store::copy`) with their notification tables.

use std::path::PathBuf;
use std::sync::Arc;

use exgate_core::mailbox::FolderRef;
use exgate_core::model::{Connection, ConnectionId, ConnectionSpec, WatchId, WebhookId};
use exgate_core::notify::store::{
    DeadLetter, EventFilter, KnownItem, NotifyStore, SyncCommit, WatchRow, WebhookProgress,
    WebhookRow,
};
use exgate_core::notify::{ChangeEvent, EventKind, Watched, event::event_id};
use exgate_core::secret::{Secret, Vault};
use exgate_core::store::{
    MemoryStore, PostgresOptions, PostgresStore, SqliteStore, Store, StoreError, copy,
};
use exgate_testkit::postgres::TempPostgres;
use sqlx::Connection as _;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const CLIENT_STATE: &str = "client-state-HHHHHHHHHHHHHHHHHHHHHHHHHHHH";
const HOOK_SECRET: &str = "whsec-IIIIIIIIIIIIIIIIIIIIIIIIIIIIIIII";
const T0: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

/// A backend under test and what it takes to read it raw.
struct Backend {
    store: Arc<dyn Store>,
    kind: Kind,
    _dir: tempfile::TempDir,
}

enum Kind {
    Sqlite(PathBuf),
    Postgres { url: String, _cluster: TempPostgres },
    Memory,
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
        let db = dir.path().join("data/exgate.db");
        let store = Arc::new(SqliteStore::open(&db, vault).await.unwrap());
        Self {
            store,
            kind: Kind::Sqlite(db),
            _dir: dir,
        }
    }

    async fn postgres() -> Self {
        let cluster = TempPostgres::start();
        let url = cluster.create_database();
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
        let store = Arc::new(
            PostgresStore::open(&PostgresOptions::new(&url), vault)
                .await
                .unwrap(),
        );
        Self {
            store,
            kind: Kind::Postgres {
                url,
                _cluster: cluster,
            },
            _dir: dir,
        }
    }

    async fn memory() -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            kind: Kind::Memory,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    fn n(&self) -> &dyn NotifyStore {
        self.store
            .notifications()
            .expect("the store keeps notifications")
    }

    /// Every byte the database holds: its files (SQLite) or its notification rows as text
    /// (PostgreSQL, where BYTEA reads as hex; [`assert_not_in`] looks for both forms).
    async fn raw(&self) -> Vec<u8> {
        match &self.kind {
            Kind::Sqlite(db) => {
                let mut bytes = std::fs::read(db).unwrap();
                for suffix in ["-wal", "-shm"] {
                    let mut p = db.as_os_str().to_owned();
                    p.push(suffix);
                    bytes.extend(std::fs::read(PathBuf::from(p)).unwrap_or_default());
                }
                bytes
            }
            Kind::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let mut out = Vec::new();
                for table in [
                    "watches",
                    "watch_items",
                    "events",
                    "webhooks",
                    "dead_letters",
                ] {
                    let sql = format!("SELECT CAST(t AS TEXT) FROM {table} t");
                    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    for (row,) in rows {
                        out.extend(row.into_bytes());
                    }
                }
                out
            }
            Kind::Memory => unreachable!("the memory store has no database to read"),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_not_in(raw: &[u8], secret: &str) {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        !contains(raw, secret.as_bytes()),
        "`{secret}` found in clear"
    );
    assert!(
        !contains(raw, hex.as_bytes()),
        "`{secret}` found in clear (as hex)"
    );
}

fn connection(name: &str) -> Connection {
    let spec = ConnectionSpec {
        tenant: Some("contoso.onmicrosoft.com".into()),
        auth: Some("oauth2-app-only".into()),
        client_id: Some("11111111-2222-3333-4444-555555555555".into()),
        client_secret: Some(Secret::new("Xy7Q~client-secret-value-AAAAAAAAAAAAAAAAA")),
        ..ConnectionSpec::default()
    };
    Connection {
        id: ConnectionId::new_random(),
        name: name.parse().unwrap(),
        settings: spec.validate().unwrap(),
        created_at: T0,
        updated_at: T0,
    }
}

fn watch(connection: ConnectionId, principal: &str, created_at: OffsetDateTime) -> WatchRow {
    WatchRow {
        id: WatchId::new_random(),
        connection,
        principal: principal.parse().unwrap(),
        mailbox: None,
        watched: vec![
            Watched::Mail {
                folder: FolderRef::parse("inbox"),
            },
            Watched::Calendar,
        ],
        api_key: None,
        created_at,
    }
}

fn event(w: &WatchRow, kind: EventKind, item: &str, version: &str) -> ChangeEvent {
    ChangeEvent {
        id: event_id(w.id, kind, item, version),
        seq: 0,
        kind,
        watch: w.id,
        connection: "contoso".into(),
        principal: w.principal.as_str().to_owned(),
        mailbox: w.mailbox.clone(),
        folder: "inbox".into(),
        item_id: item.into(),
        previous_folder: None,
        previous_item_id: None,
        detected_at: T0,
    }
}

fn item(id: &str, version: &str) -> KnownItem {
    KnownItem {
        item_id: id.into(),
        version: version.into(),
        extra: format!("<{id}@contoso.com>"),
    }
}

fn commit(w: &WatchRow, expected_version: i64, events: Vec<ChangeEvent>) -> SyncCommit {
    SyncCommit {
        watch: w.id,
        expected_version,
        document: Secret::new(format!(
            "{{\"version\":{expected_version},\"clientState\":\"{CLIENT_STATE}\"}}"
        )),
        upsert: vec![],
        remove: vec![],
        events,
    }
}

fn webhook(connection: ConnectionId, created_at: OffsetDateTime) -> WebhookRow {
    WebhookRow {
        id: WebhookId::new_random(),
        api_key: None,
        filter: EventFilter {
            connection,
            principal: Some("alice@contoso.com".parse().unwrap()),
            mailbox: Some("Shared@Contoso.com".into()),
            kinds: vec![EventKind::MessageCreated, EventKind::MessageMoved],
        },
        url: "https://hooks.example.com/exgate".into(),
        secret: Secret::new(HOOK_SECRET),
        created_at,
        progress: WebhookProgress::default(),
    }
}

fn seqs(events: &[ChangeEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

fn ids(events: &[ChangeEvent]) -> Vec<&str> {
    events.iter().map(|e| e.item_id.as_str()).collect()
}

fn all(connection: ConnectionId) -> EventFilter {
    EventFilter {
        connection,
        principal: None,
        mailbox: None,
        kinds: vec![],
    }
}

// ---- the checks ----

async fn watches_round_trip_and_go_with_their_connection(b: Backend) {
    let n = b.n();
    let kept = connection("kept");
    let gone = connection("gone");
    b.store.insert_connection(&kept).await.unwrap();
    b.store.insert_connection(&gone).await.unwrap();

    let mut newer = watch(kept.id, "alice@contoso.com", T0 + Duration::hours(1));
    newer.mailbox = Some("Shared@Contoso.com".into());
    newer.api_key = Some(exgate_core::apikeys::ApiKeyId(uuid::Uuid::new_v4()));
    // Nanoseconds survive the round trip.
    let older = watch(
        kept.id,
        "bob@contoso.com",
        T0 + Duration::nanoseconds(123_456_789),
    );
    let doomed = watch(gone.id, "carol@contoso.com", T0);
    // A connection declared in a configuration file has no row: its watches are kept all the same.
    let declared = watch(ConnectionId::new_random(), "dave@contoso.com", T0);
    for w in [&newer, &older, &doomed, &declared] {
        n.insert_watch(w).await.unwrap();
    }
    assert!(matches!(
        n.insert_watch(&newer).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(n.watch(newer.id).await.unwrap(), Some(newer.clone()));
    let listed: Vec<WatchId> = n.watches().await.unwrap().iter().map(|w| w.id).collect();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[2], older.id, "oldest first: {listed:?}");
    assert_eq!(listed[3], newer.id, "oldest first: {listed:?}");

    let state = n.watch_state(newer.id).await.unwrap().unwrap();
    assert_eq!(state.version, 0);
    assert!(state.document.is_none());
    assert!(
        n.watch_state(WatchId::new_random())
            .await
            .unwrap()
            .is_none()
    );

    // Items, and a webhook, on the connection about to go.
    let mut c = commit(
        &doomed,
        0,
        vec![event(&doomed, EventKind::MessageCreated, "m1", "v1")],
    );
    c.upsert = vec![("mail:inbox".into(), item("m1", "v1"))];
    n.commit_sync(&c).await.unwrap();
    let hook = webhook(gone.id, T0);
    n.insert_webhook(&hook).await.unwrap();
    let kept_hook = webhook(kept.id, T0);
    n.insert_webhook(&kept_hook).await.unwrap();

    assert!(b.store.delete_connection(&gone.name).await.unwrap());
    assert!(n.watch(doomed.id).await.unwrap().is_none());
    assert!(n.watch_state(doomed.id).await.unwrap().is_none());
    assert!(
        n.known_items(doomed.id, "mail:inbox")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(n.webhook(hook.id).await.unwrap().is_none());
    assert!(n.webhook(kept_hook.id).await.unwrap().is_some());
    assert_eq!(n.watches().await.unwrap().len(), 3);
    // Its journal entries stay until purged.
    assert_eq!(n.events_after(0, &all(gone.id), 10).await.unwrap().len(), 1);

    // Deleting a watch forgets its state and items, not its journal.
    let mut c = commit(
        &older,
        0,
        vec![event(&older, EventKind::MessageCreated, "m2", "v1")],
    );
    c.upsert = vec![("mail:inbox".into(), item("m2", "v1"))];
    n.commit_sync(&c).await.unwrap();
    assert!(n.delete_watch(older.id).await.unwrap());
    assert!(!n.delete_watch(older.id).await.unwrap());
    assert!(n.watch_state(older.id).await.unwrap().is_none());
    assert!(
        n.known_items(older.id, "mail:inbox")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(n.events_after(0, &all(kept.id), 10).await.unwrap().len(), 1);
    // A watch inserted again with the same ID starts afresh.
    n.insert_watch(&older).await.unwrap();
    assert_eq!(n.watch_state(older.id).await.unwrap().unwrap().version, 0);
    assert!(
        n.known_items(older.id, "mail:inbox")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_sync_commits_state_items_and_events_together(b: Backend) {
    let n = b.n();
    let w = watch(ConnectionId::new_random(), "alice@contoso.com", T0);
    n.insert_watch(&w).await.unwrap();

    let mut c = commit(
        &w,
        0,
        vec![event(&w, EventKind::MessageCreated, "m1", "v1")],
    );
    c.upsert = vec![
        ("mail:inbox".into(), item("m1", "v1")),
        ("mail:inbox".into(), item("m2", "v1")),
        ("calendar".into(), item("e1", "v1")),
    ];
    let appended = n.commit_sync(&c).await.unwrap();
    assert_eq!(appended.len(), 1);
    let state = n.watch_state(w.id).await.unwrap().unwrap();
    assert_eq!(state.version, 1);
    assert!(state.document.unwrap().expose().contains(CLIENT_STATE));
    assert_eq!(
        n.known_items(w.id, "mail:inbox").await.unwrap(),
        vec![item("m1", "v1"), item("m2", "v1")]
    );
    assert_eq!(
        n.known_items(w.id, "calendar").await.unwrap(),
        vec![item("e1", "v1")]
    );

    // A second sync from version 1: one item changed, one gone.
    let mut c = commit(
        &w,
        1,
        vec![event(&w, EventKind::MessageUpdated, "m1", "v2")],
    );
    c.upsert = vec![("mail:inbox".into(), item("m1", "v2"))];
    c.remove = vec![
        ("mail:inbox".into(), "m2".into()),
        ("mail:inbox".into(), "never-known".into()),
    ];
    n.commit_sync(&c).await.unwrap();
    assert_eq!(
        n.known_items(w.id, "mail:inbox").await.unwrap(),
        vec![item("m1", "v2")]
    );
    assert_eq!(n.watch_state(w.id).await.unwrap().unwrap().version, 2);
}

async fn a_stale_sync_is_a_conflict_and_writes_nothing(b: Backend) {
    let n = b.n();
    let w = watch(ConnectionId::new_random(), "alice@contoso.com", T0);
    n.insert_watch(&w).await.unwrap();
    let mut first = commit(
        &w,
        0,
        vec![event(&w, EventKind::MessageCreated, "m1", "v1")],
    );
    first.upsert = vec![("mail:inbox".into(), item("m1", "v1"))];
    n.commit_sync(&first).await.unwrap();
    let before = n.watch_state(w.id).await.unwrap().unwrap();

    // Another gateway's sync that also started from version 0.
    let mut stale = commit(
        &w,
        0,
        vec![event(&w, EventKind::MessageCreated, "m9", "v1")],
    );
    stale.document = Secret::new("stale");
    stale.upsert = vec![("mail:inbox".into(), item("m9", "v1"))];
    stale.remove = vec![("mail:inbox".into(), "m1".into())];
    let err = n.commit_sync(&stale).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    let after = n.watch_state(w.id).await.unwrap().unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(
        after.document.unwrap().expose(),
        before.document.unwrap().expose()
    );
    assert_eq!(
        n.known_items(w.id, "mail:inbox").await.unwrap(),
        vec![item("m1", "v1")]
    );
    assert_eq!(
        ids(&n.events_after(0, &all(w.connection), 10).await.unwrap()),
        vec!["m1"]
    );

    // A sync of a watch that is gone is refused the same way.
    let gone = watch(w.connection, "bob@contoso.com", T0);
    let err = n.commit_sync(&commit(&gone, 0, vec![])).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

async fn events_get_increasing_seqs_and_an_event_id_is_appended_once(b: Backend) {
    let n = b.n();
    assert_eq!(n.last_event_seq().await.unwrap(), 0);
    let w = watch(ConnectionId::new_random(), "alice@contoso.com", T0);
    let other = watch(w.connection, "bob@contoso.com", T0);
    n.insert_watch(&w).await.unwrap();
    n.insert_watch(&other).await.unwrap();

    let e1 = event(&w, EventKind::MessageCreated, "m1", "v1");
    let e2 = event(&w, EventKind::MessageCreated, "m2", "v1");
    // Twice in the same commit: once in the journal.
    let first = n
        .commit_sync(&commit(&w, 0, vec![e1.clone(), e2.clone(), e1.clone()]))
        .await
        .unwrap();
    assert_eq!(ids(&first), vec!["m1", "m2"]);
    assert!(first[0].seq > 0 && first[1].seq > first[0].seq);
    assert_eq!(
        first[0],
        ChangeEvent {
            seq: first[0].seq,
            ..e1.clone()
        }
    );

    // Reported again after a gap: skipped; a new one follows.
    let e3 = event(&w, EventKind::MessageDeleted, "m1", "v1");
    let second = n
        .commit_sync(&commit(&w, 1, vec![e2.clone(), e3.clone()]))
        .await
        .unwrap();
    assert_eq!(ids(&second), vec!["m1"]);
    assert_eq!(second[0].kind, EventKind::MessageDeleted);
    assert!(second[0].seq > first[1].seq);

    // The same event ID in another watch's journal is another event.
    let mut same_id = e3.clone();
    same_id.watch = other.id;
    let third = n
        .commit_sync(&commit(&other, 0, vec![same_id]))
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    assert!(third[0].seq > second[0].seq);

    // Nothing new: nothing appended, but the state moves on.
    assert!(
        n.commit_sync(&commit(&w, 2, vec![e1, e2, e3]))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(n.watch_state(w.id).await.unwrap().unwrap().version, 3);

    let journal = n.events_after(0, &all(w.connection), 100).await.unwrap();
    assert_eq!(
        seqs(&journal),
        vec![first[0].seq, first[1].seq, second[0].seq, third[0].seq]
    );
    assert_eq!(journal[0], first[0]);
    assert_eq!(n.last_event_seq().await.unwrap(), third[0].seq);
}

async fn events_after_filters_in_order(b: Backend) {
    let n = b.n();
    let conn = ConnectionId::new_random();
    let alice = watch(conn, "alice@contoso.com", T0);
    let mut shared = watch(conn, "alice@contoso.com", T0);
    shared.mailbox = Some("Shared@Contoso.com".into());
    let bob = watch(conn, "Bob@Contoso.com", T0);
    let elsewhere = watch(ConnectionId::new_random(), "alice@contoso.com", T0);
    for w in [&alice, &shared, &bob, &elsewhere] {
        n.insert_watch(w).await.unwrap();
    }
    n.commit_sync(&commit(
        &alice,
        0,
        vec![
            event(&alice, EventKind::MessageCreated, "a1", "v1"),
            event(&alice, EventKind::EventCreated, "a2", "v1"),
        ],
    ))
    .await
    .unwrap();
    n.commit_sync(&commit(
        &elsewhere,
        0,
        vec![event(&elsewhere, EventKind::MessageCreated, "x1", "v1")],
    ))
    .await
    .unwrap();
    n.commit_sync(&commit(
        &shared,
        0,
        vec![
            event(&shared, EventKind::MessageMoved, "s1", "v1"),
            event(&shared, EventKind::MessageDeleted, "s2", "v1"),
        ],
    ))
    .await
    .unwrap();
    n.commit_sync(&commit(
        &bob,
        0,
        vec![event(&bob, EventKind::MessageCreated, "b1", "v1")],
    ))
    .await
    .unwrap();
    n.commit_sync(&commit(
        &alice,
        1,
        vec![event(&alice, EventKind::MessageUpdated, "a1", "v2")],
    ))
    .await
    .unwrap();

    let every = n.events_after(0, &all(conn), 100).await.unwrap();
    assert_eq!(ids(&every), vec!["a1", "a2", "s1", "s2", "b1", "a1"]);
    assert!(every.windows(2).all(|p| p[0].seq < p[1].seq));
    assert!(every.iter().all(|e| all(conn).matches(conn, e)));

    // After a position, and at most `limit`.
    let page = n.events_after(every[1].seq, &all(conn), 2).await.unwrap();
    assert_eq!(ids(&page), vec!["s1", "s2"]);
    let rest = n.events_after(page[1].seq, &all(conn), 2).await.unwrap();
    assert_eq!(ids(&rest), vec!["b1", "a1"]);
    assert!(
        n.events_after(rest[1].seq, &all(conn), 2)
            .await
            .unwrap()
            .is_empty()
    );

    let filter =
        |principal: Option<&str>, mailbox: Option<&str>, kinds: Vec<EventKind>| EventFilter {
            connection: conn,
            principal: principal.map(|p| p.parse().unwrap()),
            mailbox: mailbox.map(str::to_owned),
            kinds,
        };
    let cases = [
        // A principal: its own mailbox and those it reaches.
        (
            filter(Some("alice@contoso.com"), None, vec![]),
            vec!["a1", "a2", "s1", "s2", "a1"],
        ),
        // A principal is matched as written.
        (filter(Some("bob@contoso.com"), None, vec![]), vec![]),
        // A mailbox, in any case: a watch's named mailbox...
        (
            filter(None, Some("SHARED@contoso.COM"), vec![]),
            vec!["s1", "s2"],
        ),
        // ... or the principal's own, for events that name none.
        (
            filter(None, Some("alice@CONTOSO.com"), vec![]),
            vec!["a1", "a2", "a1"],
        ),
        (filter(None, Some("bob@contoso.com"), vec![]), vec!["b1"]),
        (
            filter(None, None, vec![EventKind::MessageCreated]),
            vec!["a1", "b1"],
        ),
        (
            filter(
                Some("alice@contoso.com"),
                Some("shared@contoso.com"),
                vec![EventKind::MessageMoved, EventKind::EventCreated],
            ),
            vec!["s1"],
        ),
    ];
    for (f, want) in cases {
        let got = n.events_after(0, &f, 100).await.unwrap();
        assert_eq!(ids(&got), want, "{f:?}");
        // The store's filter and the model's agree.
        let by_model: Vec<&ChangeEvent> = every.iter().filter(|e| f.matches(conn, e)).collect();
        assert_eq!(got.len(), by_model.len(), "{f:?}");
    }
    // Another connection's journal.
    assert_eq!(
        ids(&n
            .events_after(0, &all(elsewhere.connection), 10)
            .await
            .unwrap()),
        vec!["x1"]
    );
    assert!(
        n.events_after(0, &all(ConnectionId::new_random()), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn purging_forgets_old_events_and_seq_never_goes_back(b: Backend) {
    let n = b.n();
    let w = watch(ConnectionId::new_random(), "alice@contoso.com", T0);
    n.insert_watch(&w).await.unwrap();
    let at = |item: &str, t: OffsetDateTime| ChangeEvent {
        detected_at: t,
        ..event(&w, EventKind::MessageCreated, item, "v1")
    };
    let appended = n
        .commit_sync(&commit(
            &w,
            0,
            vec![
                at("old1", T0 - Duration::days(8)),
                at("old2", T0 - Duration::days(7)),
                at("new", T0),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(n.purge_events(T0 - Duration::days(7)).await.unwrap(), 1);
    assert_eq!(
        ids(&n.events_after(0, &all(w.connection), 10).await.unwrap()),
        vec!["old2", "new"]
    );
    assert_eq!(n.purge_events(T0 - Duration::days(7)).await.unwrap(), 0);

    // Everything is old: the newest stays, as the journal's high-water mark.
    assert_eq!(n.purge_events(T0 + Duration::days(30)).await.unwrap(), 1);
    let left = n.events_after(0, &all(w.connection), 10).await.unwrap();
    assert_eq!(left, vec![appended[2].clone()]);
    assert_eq!(n.last_event_seq().await.unwrap(), appended[2].seq);
    let next = n
        .commit_sync(&commit(&w, 1, vec![at("newer", T0 + Duration::days(31))]))
        .await
        .unwrap();
    assert!(next[0].seq > appended[2].seq);

    // A purged event's ID may be reported again: it is a new journal entry.
    let again = n
        .commit_sync(&commit(&w, 2, vec![at("old1", T0 + Duration::days(32))]))
        .await
        .unwrap();
    assert_eq!(ids(&again), vec!["old1"]);
    assert!(again[0].seq > next[0].seq);
}

async fn webhooks_record_progress_and_dead_letters_together(b: Backend) {
    let n = b.n();
    let conn = ConnectionId::new_random();
    let newer = webhook(conn, T0 + Duration::minutes(5));
    let mut older = webhook(conn, T0);
    older.api_key = Some(exgate_core::apikeys::ApiKeyId(uuid::Uuid::new_v4()));
    older.filter.principal = None;
    older.filter.mailbox = None;
    older.filter.kinds = vec![];
    older.progress.cursor = 7;
    n.insert_webhook(&newer).await.unwrap();
    n.insert_webhook(&older).await.unwrap();
    assert!(matches!(
        n.insert_webhook(&newer).await,
        Err(StoreError::Conflict(_))
    ));
    let read = n.webhook(newer.id).await.unwrap().unwrap();
    assert_eq!(read.filter, newer.filter);
    assert_eq!(read.url, newer.url);
    assert_eq!(read.secret.expose(), HOOK_SECRET);
    assert_eq!(read.created_at, newer.created_at);
    assert_eq!(read.progress, WebhookProgress::default());
    assert_eq!(read.api_key, None);
    let listed = n.webhooks().await.unwrap();
    assert_eq!(
        listed.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![older.id, newer.id]
    );
    assert_eq!(listed[0].api_key, older.api_key);
    assert_eq!(listed[0].progress.cursor, 7);
    assert_eq!(listed[0].filter, older.filter);

    // A failure: the attempt is recorded, nothing dead yet.
    let failing = WebhookProgress {
        cursor: 0,
        attempts: 3,
        next_attempt_at: Some(T0 + Duration::seconds(90)),
        last_error: Some("HTTP 503".into()),
        first_failed_at: Some(T0 - Duration::seconds(30)),
    };
    assert!(
        n.set_webhook_progress(newer.id, &failing, None)
            .await
            .unwrap()
    );
    assert_eq!(
        n.webhook(newer.id).await.unwrap().unwrap().progress,
        failing
    );
    assert!(n.dead_letters(newer.id).await.unwrap().is_empty());

    // Given up on: the cursor passes it and the dead letter is kept, together.
    let w = watch(conn, "alice@contoso.com", T0);
    let given_up = |seq: i64, item: &str| DeadLetter {
        webhook: newer.id,
        event: ChangeEvent {
            seq,
            ..event(&w, EventKind::MessageCreated, item, "v1")
        },
        attempts: 20,
        last_error: "HTTP 500".into(),
        failed_at: T0 + Duration::days(1),
        replay: false,
    };
    let passed = WebhookProgress {
        cursor: 12,
        ..WebhookProgress::default()
    };
    let first = given_up(12, "m12");
    assert!(
        n.set_webhook_progress(newer.id, &passed, Some(&first))
            .await
            .unwrap()
    );
    let second = given_up(15, "m15");
    let passed = WebhookProgress {
        cursor: 15,
        ..WebhookProgress::default()
    };
    n.set_webhook_progress(newer.id, &passed, Some(&second))
        .await
        .unwrap();
    assert_eq!(n.webhook(newer.id).await.unwrap().unwrap().progress, passed);
    assert_eq!(
        n.dead_letters(newer.id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert!(n.dead_letters(older.id).await.unwrap().is_empty());

    // No such webhook: nothing written, the dead letter neither.
    let stray = WebhookId::new_random();
    assert!(
        !n.set_webhook_progress(stray, &passed, Some(&first))
            .await
            .unwrap()
    );
    assert!(n.dead_letters(stray).await.unwrap().is_empty());
    assert!(n.webhook(stray).await.unwrap().is_none());

    // Replay: one, then all.
    assert_eq!(n.request_replay(newer.id, Some(15)).await.unwrap(), 1);
    assert_eq!(n.request_replay(newer.id, Some(99)).await.unwrap(), 0);
    let letters = n.dead_letters(newer.id).await.unwrap();
    assert_eq!(
        letters.iter().map(|d| d.replay).collect::<Vec<_>>(),
        vec![false, true]
    );
    assert_eq!(n.request_replay(newer.id, None).await.unwrap(), 2);
    assert!(
        n.dead_letters(newer.id)
            .await
            .unwrap()
            .iter()
            .all(|d| d.replay)
    );
    // Delivered: forgotten. Failed again: kept, no longer marked, with the new error.
    n.finish_replay(newer.id, 12, true, None).await.unwrap();
    n.finish_replay(newer.id, 15, false, Some("HTTP 410"))
        .await
        .unwrap();
    let letters = n.dead_letters(newer.id).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event, second.event);
    assert!(!letters[0].replay);
    assert_eq!(letters[0].last_error, "HTTP 410");
    assert_eq!(letters[0].attempts, 21);

    // Deleting the webhook deletes its dead letters.
    assert!(n.delete_webhook(newer.id).await.unwrap());
    assert!(!n.delete_webhook(newer.id).await.unwrap());
    assert!(n.webhook(newer.id).await.unwrap().is_none());
    assert!(n.dead_letters(newer.id).await.unwrap().is_empty());
    assert_eq!(n.webhooks().await.unwrap().len(), 1);
}

async fn one_owner_at_a_time_holds_a_claim_until_it_ends(b: Backend) {
    let n = b.n();
    let w = watch(ConnectionId::new_random(), "alice@contoso.com", T0);
    n.insert_watch(&w).await.unwrap();
    let h = webhook(w.connection, T0);
    n.insert_webhook(&h).await.unwrap();
    let minute = Duration::minutes(1);

    assert!(n.claim_watch(w.id, "gw-a", T0, T0 + minute).await.unwrap());
    assert!(
        !n.claim_watch(w.id, "gw-b", T0 + Duration::seconds(30), T0 + 2 * minute)
            .await
            .unwrap()
    );
    // The holder renews.
    assert!(
        n.claim_watch(w.id, "gw-a", T0 + Duration::seconds(30), T0 + 2 * minute)
            .await
            .unwrap()
    );
    assert!(
        !n.claim_watch(w.id, "gw-b", T0 + minute, T0 + 3 * minute)
            .await
            .unwrap()
    );
    // Once the claim has ended, another takes it.
    assert!(
        n.claim_watch(w.id, "gw-b", T0 + 2 * minute, T0 + 3 * minute)
            .await
            .unwrap()
    );
    assert!(
        !n.claim_watch(w.id, "gw-a", T0 + 2 * minute, T0 + 3 * minute)
            .await
            .unwrap()
    );
    // Given up by another than its holder: nothing changes; by its holder: free at once.
    n.release_watch(w.id, "gw-a").await.unwrap();
    assert!(
        !n.claim_watch(w.id, "gw-a", T0 + 2 * minute, T0 + 3 * minute)
            .await
            .unwrap()
    );
    n.release_watch(w.id, "gw-b").await.unwrap();
    assert!(
        n.claim_watch(w.id, "gw-a", T0 + 2 * minute, T0 + 3 * minute)
            .await
            .unwrap()
    );
    assert!(
        !n.claim_watch(WatchId::new_random(), "gw-a", T0, T0 + minute)
            .await
            .unwrap()
    );

    assert!(
        n.claim_webhook(h.id, "gw-a", T0, T0 + minute)
            .await
            .unwrap()
    );
    assert!(
        !n.claim_webhook(h.id, "gw-b", T0 + Duration::seconds(59), T0 + 2 * minute)
            .await
            .unwrap()
    );
    assert!(
        n.claim_webhook(h.id, "gw-a", T0 + Duration::seconds(59), T0 + 2 * minute)
            .await
            .unwrap()
    );
    assert!(
        n.claim_webhook(h.id, "gw-b", T0 + 2 * minute, T0 + 3 * minute)
            .await
            .unwrap()
    );
    assert!(
        !n.claim_webhook(WebhookId::new_random(), "gw-a", T0, T0 + minute)
            .await
            .unwrap()
    );
}

/// Syncs of many watches commit at once while a reader follows the journal from its last
/// position: it must see every event (a position it passed is never filled in later).
async fn a_reader_following_the_journal_misses_nothing_of_concurrent_commits(b: Backend) {
    const WATCHES: usize = 8;
    const ROUNDS: i64 = 10;
    let conn = ConnectionId::new_random();
    let watches: Vec<WatchRow> = (0..WATCHES)
        .map(|i| watch(conn, &format!("user{i}@contoso.com"), T0))
        .collect();
    for w in &watches {
        b.n().insert_watch(w).await.unwrap();
    }
    let store = Arc::clone(&b.store);
    let writers: Vec<_> = watches
        .into_iter()
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let n = store.notifications().unwrap();
                for round in 0..ROUNDS {
                    let e = event(&w, EventKind::MessageCreated, &format!("m{round}"), "v1");
                    n.commit_sync(&commit(&w, round, vec![e])).await.unwrap();
                }
            })
        })
        .collect();
    let total = WATCHES * ROUNDS as usize;
    let mut seen = Vec::new();
    let mut cursor = 0;
    while seen.len() < total {
        let page = b.n().events_after(cursor, &all(conn), 1000).await.unwrap();
        if let Some(last) = page.last() {
            cursor = last.seq;
        }
        seen.extend(page);
        if writers.iter().all(|w| w.is_finished()) {
            let rest = b.n().events_after(cursor, &all(conn), 1000).await.unwrap();
            seen.extend(rest);
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(seen.len(), total, "the reader missed events");
    assert!(seen.windows(2).all(|p| p[0].seq < p[1].seq));
}

// ---- the database backends only ----

async fn secrets_are_sealed_in_the_database(b: Backend) {
    let n = b.n();
    let w = watch(ConnectionId::new_random(), "alice@contoso.com", T0);
    n.insert_watch(&w).await.unwrap();
    n.commit_sync(&commit(
        &w,
        0,
        vec![event(&w, EventKind::MessageCreated, "m1", "v1")],
    ))
    .await
    .unwrap();
    let h = webhook(w.connection, T0);
    n.insert_webhook(&h).await.unwrap();
    // What is not secret is there to see (the check can fail).
    let raw = b.raw().await;
    assert!(contains(&raw, b"alice@contoso.com"));
    assert!(contains(&raw, b"hooks.example.com"));
    assert_not_in(&raw, CLIENT_STATE);
    assert_not_in(&raw, HOOK_SECRET);
    // And it opens.
    let state = n.watch_state(w.id).await.unwrap().unwrap();
    assert!(state.document.unwrap().expose().contains(CLIENT_STATE));
    assert_eq!(
        n.webhook(h.id).await.unwrap().unwrap().secret.expose(),
        HOOK_SECRET
    );
}

macro_rules! conformance {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Backend::$backend().await).await;
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($check:ident),* $(,)?) => {
        mod all {
            use super::*;
            conformance!(sqlite: $($check),*);
            conformance!(postgres: $($check),*);
            conformance!(memory: $($check),*);
        }
    };
}

every_backend!(
    watches_round_trip_and_go_with_their_connection,
    a_sync_commits_state_items_and_events_together,
    a_stale_sync_is_a_conflict_and_writes_nothing,
    events_get_increasing_seqs_and_an_event_id_is_appended_once,
    events_after_filters_in_order,
    purging_forgets_old_events_and_seq_never_goes_back,
    webhooks_record_progress_and_dead_letters_together,
    one_owner_at_a_time_holds_a_claim_until_it_ends,
    a_reader_following_the_journal_misses_nothing_of_concurrent_commits,
);

mod databases {
    use super::*;
    conformance!(sqlite: secrets_are_sealed_in_the_database);
    conformance!(postgres: secrets_are_sealed_in_the_database);
}

/// `store migrate` copies the notification tables (state still sealed to its rows), and the
/// journal goes on after the copied events on the target.
#[tokio::test]
async fn the_notification_tables_are_copied_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
    let source = SqliteStore::open(&dir.path().join("source.db"), Arc::clone(&vault))
        .await
        .unwrap();
    let cluster = TempPostgres::start();
    let url = cluster.create_database();
    let target = PostgresStore::open(&PostgresOptions::new(&url), Arc::clone(&vault))
        .await
        .unwrap();

    let n = source.notifications().unwrap();
    let w = watch(ConnectionId::new_random(), "alice@contoso.com", T0);
    n.insert_watch(&w).await.unwrap();
    let mut c = commit(
        &w,
        0,
        vec![
            event(&w, EventKind::MessageCreated, "m1", "v1"),
            event(&w, EventKind::MessageCreated, "m2", "v1"),
        ],
    );
    c.upsert = vec![("mail:inbox".into(), item("m1", "v1"))];
    let appended = n.commit_sync(&c).await.unwrap();
    n.claim_watch(w.id, "gw-a", T0, T0 + Duration::minutes(1))
        .await
        .unwrap();
    let h = webhook(w.connection, T0);
    n.insert_webhook(&h).await.unwrap();
    let dead = DeadLetter {
        webhook: h.id,
        event: appended[0].clone(),
        attempts: 20,
        last_error: "HTTP 500".into(),
        failed_at: T0,
        replay: true,
    };
    let progress = WebhookProgress {
        cursor: appended[0].seq,
        ..WebhookProgress::default()
    };
    n.set_webhook_progress(h.id, &progress, Some(&dead))
        .await
        .unwrap();

    let report = copy::copy(&source, &target, false).await.unwrap();
    for table in [
        "watches",
        "watch_items",
        "events",
        "webhooks",
        "dead_letters",
    ] {
        assert!(
            report.copied.iter().any(|(t, d)| *t == table && d.rows > 0),
            "{table} not copied: {:?}",
            report.copied
        );
    }

    let t = target.notifications().unwrap();
    assert_eq!(t.watch(w.id).await.unwrap(), Some(w.clone()));
    let state = t.watch_state(w.id).await.unwrap().unwrap();
    assert_eq!(state.version, 1);
    assert!(state.document.unwrap().expose().contains(CLIENT_STATE));
    assert_eq!(
        t.known_items(w.id, "mail:inbox").await.unwrap(),
        vec![item("m1", "v1")]
    );
    assert_eq!(
        t.events_after(0, &all(w.connection), 10).await.unwrap(),
        appended
    );
    assert_eq!(t.last_event_seq().await.unwrap(), appended[1].seq);
    let copied = t.webhook(h.id).await.unwrap().unwrap();
    assert_eq!(copied.secret.expose(), HOOK_SECRET);
    assert_eq!(copied.progress, progress);
    assert_eq!(t.dead_letters(h.id).await.unwrap(), vec![dead]);
    // The copy's owner is the source's: the claim ends when it would have.
    assert!(
        !t.claim_watch(w.id, "gw-b", T0, T0 + Duration::minutes(1))
            .await
            .unwrap()
    );
    assert!(
        t.claim_watch(
            w.id,
            "gw-b",
            T0 + Duration::minutes(1),
            T0 + Duration::minutes(2)
        )
        .await
        .unwrap()
    );

    // The journal goes on after the copied events; the state's version check holds.
    let next = t
        .commit_sync(&commit(
            &w,
            1,
            vec![event(&w, EventKind::MessageCreated, "m3", "v1")],
        ))
        .await
        .unwrap();
    assert!(next[0].seq > appended[1].seq);
    assert!(matches!(
        t.commit_sync(&commit(&w, 1, vec![])).await,
        Err(StoreError::Conflict(_))
    ));
}
