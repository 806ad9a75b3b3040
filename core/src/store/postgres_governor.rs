//! The shared governor budget on PostgreSQL: one row per (governor, mailbox) holding its
//! [`Ledger`] as JSON, changed under the row's lock in one short transaction, on the database's
//! clock (see [`crate::governor::shared`]).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;

use super::StoreError;
use super::rows::db;
use crate::governor::shared::{Ask, Ledger, Reply, SharedBudget, Terms};

/// Ledgers in the `governor_ledgers` table (migration 5).
#[derive(Debug, Clone)]
pub struct PostgresBudget {
    pool: PgPool,
}

impl PostgresBudget {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SharedBudget for PostgresBudget {
    async fn exchange(
        &self,
        scope: &str,
        mailbox: &str,
        terms: &Terms,
        ask: &Ask,
    ) -> Result<Reply, StoreError> {
        let ctx = "exchanging with the shared governor budget";
        let mut tx = self.pool.begin().await.map_err(db(ctx))?;
        // Creates the row or locks it (a no-op update takes the row lock), and reads the ledger
        // and the time once the lock is held.
        let row = sqlx::query(
            "INSERT INTO governor_ledgers (scope, mailbox, ledger) VALUES ($1, $2, '{}') \
             ON CONFLICT (scope, mailbox) DO UPDATE SET ledger = governor_ledgers.ledger \
             RETURNING ledger, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT",
        )
        .bind(scope)
        .bind(mailbox)
        .fetch_one(&mut *tx)
        .await
        .map_err(db(ctx))?;
        let text: String = row.try_get(0).map_err(db(ctx))?;
        let now: i64 = row.try_get(1).map_err(db(ctx))?;
        let mut ledger: Ledger = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("governor ledger of {scope}: {e}")))?;
        let reply = ledger.exchange(terms, ask, now);
        if ledger.is_empty() {
            sqlx::query("DELETE FROM governor_ledgers WHERE scope = $1 AND mailbox = $2")
                .bind(scope)
                .bind(mailbox)
                .execute(&mut *tx)
                .await
                .map_err(db(ctx))?;
        } else {
            let text = serde_json::to_string(&ledger)
                .map_err(|e| StoreError::Corrupt(format!("governor ledger of {scope}: {e}")))?;
            sqlx::query(
                "UPDATE governor_ledgers SET ledger = $3 WHERE scope = $1 AND mailbox = $2",
            )
            .bind(scope)
            .bind(mailbox)
            .bind(text)
            .execute(&mut *tx)
            .await
            .map_err(db(ctx))?;
        }
        tx.commit().await.map_err(db(ctx))?;
        Ok(reply)
    }
}
