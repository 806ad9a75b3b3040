//! How long a cached token takes to serve: the fast path every mailbox call goes through.
//! Run with `cargo bench -p exgate-core --bench token_cache` (or `cargo xtask bench`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use exgate_core::Error;
use exgate_core::auth::{RetryPolicy, TokenCache, TokenSource};
use exgate_core::clock::{Clock, SystemClock};
use exgate_core::model::{AccessToken, ConnectionId, Resource, TokenKey};
use exgate_core::secret::Secret;

/// Issues one-hour tokens without I/O; after the first call the cache never asks again.
#[derive(Debug)]
struct Issuer;

#[async_trait]
impl TokenSource for Issuer {
    async fn stored(&self, _: &TokenKey) -> Result<Option<AccessToken>, Error> {
        Ok(None)
    }
    async fn fetch(&self, _: &TokenKey) -> Result<AccessToken, Error> {
        let (expires_at, refresh_at) =
            AccessToken::timing(SystemClock.now(), Duration::from_secs(3600), None);
        Ok(AccessToken {
            secret: Secret::new("x".repeat(1500)),
            expires_at,
            refresh_at,
        })
    }
}

fn cached_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cache = TokenCache::new(
        Arc::new(Issuer),
        Arc::new(SystemClock),
        RetryPolicy::default(),
    );
    // A gateway holds tokens for many keys at once.
    let keys: Vec<TokenKey> = (0..1000)
        .map(|_| TokenKey {
            connection: ConnectionId::new_random(),
            account: None,
            resource: Resource::Graph,
        })
        .collect();
    for key in &keys {
        rt.block_on(cache.get(*key)).unwrap();
    }
    let key = keys[500];
    c.bench_function("token_cache/fresh (sync, from memory)", |b| {
        b.iter(|| black_box(cache.fresh(black_box(&key))))
    });
    c.bench_function("token_cache/get (async, cached)", |b| {
        b.iter(|| black_box(rt.block_on(cache.get(black_box(key))).unwrap()))
    });
}

criterion_group!(benches, cached_lookup);
criterion_main!(benches);
