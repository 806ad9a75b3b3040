//! The shared governor on PostgreSQL: three governors, each over its own pool on one database
//! (as three gateways would be), under load on one mailbox in real time, together never let more
//! than the policy's requests into any window nor more than its concurrency be in progress.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exgate_core::governor::{Governor, GovernorPolicy};
use exgate_core::secret::Vault;
use exgate_core::store::{PostgresOptions, PostgresStore, Store};
use exgate_testkit::postgres::TempPostgres;
use sqlx::Row;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn governors_on_one_postgres_keep_the_policy_together() {
    let cluster = TempPostgres::start();
    let url = cluster.create_database();
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(Vault::open_or_create(&dir.path().join("master.key")).unwrap());
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(
            PostgresStore::open(&PostgresOptions::new(url.clone()), Arc::clone(&vault))
                .await
                .unwrap(),
        );
    }
    let policy = GovernorPolicy {
        concurrent: 3,
        requests: 30,
        window: Duration::from_secs(1),
        burst: 10,
    };
    let govs: Vec<_> = stores
        .iter()
        .map(|s| Governor::shared(policy, "graph", s.governor_budget().unwrap()))
        .collect();
    let start = Instant::now();
    let run = Duration::from_millis(2_500);
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let (in_flight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let gov = Arc::clone(&govs[i % 3]);
            let (admitted, in_flight, peak) = (
                Arc::clone(&admitted),
                Arc::clone(&in_flight),
                Arc::clone(&peak),
            );
            tokio::spawn(async move {
                while start.elapsed() < run {
                    let permit = gov
                        .acquire_within("adele@contoso.com", 1, Duration::from_secs(60))
                        .await
                        .unwrap();
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    admitted.lock().unwrap().push(start.elapsed());
                    // A request in progress: it yields, as one waiting for its answer would.
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= policy.concurrent);
    let mut admitted = admitted.lock().unwrap().clone();
    admitted.sort();
    // The load reached the limit: more than one window's budget was asked for and let through.
    assert!(admitted.len() > 45, "{}", admitted.len());
    for (i, at) in admitted.iter().enumerate() {
        let in_window = admitted[i..]
            .iter()
            .take_while(|t| **t < *at + policy.window)
            .count();
        assert!(
            in_window <= policy.requests as usize,
            "{in_window} in the window from {at:?}"
        );
    }
    // One row holds the mailbox's ledger, whichever instance asked.
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM governor_ledgers")
        .fetch_one(stores[0].pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}
