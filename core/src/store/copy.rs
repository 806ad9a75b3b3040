//! `exgate-server store migrate`: every table of one store copied into another, rows as they
//! are (secrets stay sealed: both stores are opened with the same master key, which each checks
//! at open), in one transaction on the target, verified before it commits.
//!
//! Every table of either database must be named in [`TABLES`] (copied) or [`NOT_COPIED`]
//! (transient, a cache, or the backend's own bookkeeping). A table in neither list makes the copy
//! fail, so a new table cannot be left behind silently: whoever adds one classifies it here.

use sha2::{Digest, Sha256};

use super::{Store, StoreError};

/// How a column is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Bytes,
    Int,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Text,
    }
}

const fn bytes(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Bytes,
    }
}

const fn int(name: &'static str) -> Column {
    Column {
        name,
        ty: ColumnType::Int,
    }
}

/// A copied table and the columns both backends share (a backend may derive more: PostgreSQL's
/// `connections.name_folded`).
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [Column],
}

/// The tables copied, in an order that satisfies any reference between them.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "meta",
        columns: &[text("key"), bytes("value")],
    },
    TableSpec {
        name: "connections",
        columns: &[
            text("id"),
            text("name"),
            text("doc"),
            bytes("secret_sealed"),
            text("created_at"),
            text("updated_at"),
        ],
    },
    TableSpec {
        name: "accounts",
        columns: &[
            text("id"),
            text("connection_id"),
            text("principal"),
            text("mailbox"),
            text("credential_kind"),
            text("status"),
            text("status_reason"),
            bytes("refresh_token_sealed"),
            text("created_at"),
            text("last_used_at"),
        ],
    },
    TableSpec {
        name: "static_users",
        columns: &[
            text("id"),
            text("connection_id"),
            text("principal"),
            text("mailbox"),
            text("access"),
            text("created_at"),
        ],
    },
    TableSpec {
        name: "api_keys",
        columns: &[
            text("id"),
            text("name"),
            bytes("key_hash"),
            text("scope"),
            text("created_at"),
            text("last_used_at"),
            text("revoked_at"),
        ],
    },
    TableSpec {
        name: "admin_credential",
        columns: &[int("id"), text("password_hash"), text("created_at")],
    },
    TableSpec {
        name: "bridge_users",
        columns: &[
            text("username"),
            text("connection_id"),
            text("principal"),
            text("mailbox"),
            text("password_hash"),
            text("created_at"),
        ],
    },
    // Change notifications. A watch's or webhook's `owner` and `owner_until` are copied as they
    // are: they name a gateway of the source, whose claim simply ends at `owner_until`, after
    // which the target's gateways take the watch or webhook over.
    TableSpec {
        name: "watches",
        columns: &[
            text("id"),
            text("connection_id"),
            text("principal"),
            text("mailbox"),
            text("watched"),
            text("api_key_id"),
            text("created_at"),
            bytes("state_sealed"),
            int("version"),
            text("owner"),
            text("owner_until"),
        ],
    },
    TableSpec {
        name: "watch_items",
        columns: &[
            text("watch_id"),
            text("scope"),
            text("item_id"),
            text("version"),
            text("extra"),
        ],
    },
    // The journal, with its `seq`: the target's next entry follows the highest copied (the
    // newest entry is never purged), so webhooks' cursors and streams' positions stay valid.
    TableSpec {
        name: "events",
        columns: &[
            int("seq"),
            text("event_id"),
            text("watch_id"),
            text("connection_id"),
            text("principal"),
            text("mailbox"),
            text("kind"),
            text("body"),
            text("created_at"),
        ],
    },
    TableSpec {
        name: "webhooks",
        columns: &[
            text("id"),
            text("api_key_id"),
            text("connection_id"),
            text("principal"),
            text("mailbox"),
            text("kinds"),
            text("url"),
            bytes("secret_sealed"),
            text("created_at"),
            int("cursor"),
            int("attempts"),
            text("next_attempt_at"),
            text("last_error"),
            text("first_failed_at"),
            text("owner"),
            text("owner_until"),
        ],
    },
    TableSpec {
        name: "dead_letters",
        columns: &[
            text("webhook_id"),
            int("seq"),
            text("event"),
            int("attempts"),
            text("last_error"),
            text("failed_at"),
            int("replay"),
        ],
    },
];

/// Tables that are not copied, and why. A name here need not exist in every build or backend.
pub const NOT_COPIED: &[(&str, &str)] = &[
    (
        "schema_migrations",
        "each backend's own schema history; the target has its own",
    ),
    (
        "access_tokens",
        "a cache: access tokens are fetched again with the copied refresh tokens",
    ),
    (
        "auth_failures",
        "transient: failed authentications of the last minute",
    ),
    (
        "pending_logins",
        "transient: browser sign-ins in progress (10 minutes at most)",
    ),
    (
        "login_status",
        "transient: the status of sign-ins applications started (an hour at most)",
    ),
    (
        "governor_ledgers",
        "transient: the per-mailbox governor's window and leases (a few minutes at most)",
    ),
];

/// The table that opening a store writes (the key check), so it does not make a target
/// "not empty".
const WRITTEN_AT_OPEN: &str = "meta";

/// A column's value as both backends hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

pub type Row = Vec<Value>;

/// What a table held: its number of rows and the SHA-256 of its rows (each row encoded with its
/// values' types and lengths, the encodings sorted, so the order rows are read in does not
/// matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDigest {
    pub rows: u64,
    pub sha256: [u8; 32],
}

impl TableDigest {
    pub fn of(rows: &[Row]) -> Self {
        let mut encoded: Vec<Vec<u8>> = rows.iter().map(|r| encode(r)).collect();
        encoded.sort_unstable();
        let mut hash = Sha256::new();
        for row in &encoded {
            hash.update((row.len() as u64).to_be_bytes());
            hash.update(row);
        }
        Self {
            rows: rows.len() as u64,
            sha256: hash.finalize().into(),
        }
    }

    pub fn hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn encode(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in row {
        match value {
            Value::Null => out.push(0),
            Value::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Text(s) => {
                out.push(2);
                out.extend_from_slice(&(s.len() as u64).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytes(b) => {
                out.push(3);
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    out
}

/// What a copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Each copied table with what both stores now hold.
    pub copied: Vec<(&'static str, TableDigest)>,
    /// The tables of the source left out, with the reason.
    pub not_copied: Vec<(&'static str, &'static str)>,
}

/// How the target's transaction is asked to write.
#[derive(Debug, Clone, Copy)]
pub struct WritePlan<'a> {
    pub tables: &'a [TableSpec],
    /// Empty the copied tables (and the target's caches: [`NOT_COPIED`] tables it has, but its
    /// schema history) first; otherwise a target holding rows is refused.
    pub replace: bool,
    /// What the target must hold when the transaction is about to commit.
    pub expect: &'a [TableDigest],
}

/// The tables of a database that neither list names.
pub fn unclassified(tables: &[String]) -> Vec<String> {
    tables
        .iter()
        .filter(|t| {
            !TABLES.iter().any(|s| s.name == t.as_str()) && !NOT_COPIED.iter().any(|(n, _)| n == t)
        })
        .cloned()
        .collect()
}

/// The [`NOT_COPIED`] tables a target empties on `--replace` (its caches and transient state).
pub fn cleared_on_replace(tables: &[String]) -> Vec<&'static str> {
    NOT_COPIED
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "schema_migrations" && tables.iter().any(|t| t == n))
        .collect()
}

/// Whether a table's rows make a target "not empty".
pub fn counts_as_data(table: &str) -> bool {
    table != WRITTEN_AT_OPEN
}

fn refuse(message: String) -> StoreError {
    StoreError::Copy(message)
}

/// Copies every [`TABLES`] table of `from` into `to` and verifies it; see the module
/// documentation. Nothing is written to `to` unless the whole copy verifies.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    replace: bool,
) -> Result<CopyReport, StoreError> {
    let source_tables = from.table_names().await?;
    let target_tables = to.table_names().await?;
    for (which, tables) in [("source", &source_tables), ("target", &target_tables)] {
        let unknown = unclassified(tables);
        if !unknown.is_empty() {
            return Err(refuse(format!(
                "the {which} store has tables this exgate does not know how to copy ({}); \
                 use the exgate that wrote them, or classify them in store::copy",
                unknown.join(", ")
            )));
        }
    }
    for spec in TABLES {
        for (which, tables) in [("source", &source_tables), ("target", &target_tables)] {
            if !tables.iter().any(|t| t == spec.name) {
                return Err(refuse(format!(
                    "the {which} store has no table `{}`",
                    spec.name
                )));
            }
        }
    }
    let rows = from.read_tables(TABLES).await?;
    let digests: Vec<TableDigest> = rows.iter().map(|r| TableDigest::of(r)).collect();
    to.write_tables(
        WritePlan {
            tables: TABLES,
            replace,
            expect: &digests,
        },
        &rows,
    )
    .await?;
    // Read back after the commit too: what the target holds now is what was read.
    let written = to.read_tables(TABLES).await?;
    for ((spec, want), got) in TABLES.iter().zip(&digests).zip(&written) {
        if TableDigest::of(got) != *want {
            return Err(refuse(format!(
                "table `{}` differs after the copy committed (another writer?); stop every gateway on the target and run the migration again with --replace",
                spec.name
            )));
        }
    }
    Ok(CopyReport {
        copied: TABLES.iter().map(|s| s.name).zip(digests).collect(),
        not_copied: NOT_COPIED
            .iter()
            .filter(|(n, _)| source_tables.iter().any(|t| t == n))
            .copied()
            .collect(),
    })
}

/// Checks what a target transaction holds against the plan, before it commits.
pub(crate) fn verify(plan: &WritePlan<'_>, read_back: &[Vec<Row>]) -> Result<(), StoreError> {
    for ((spec, want), got) in plan.tables.iter().zip(plan.expect).zip(read_back) {
        let got = TableDigest::of(got);
        if got != *want {
            return Err(refuse(format!(
                "table `{}`: the target holds {} rows (sha256 {}) where the source has {} (sha256 {}); nothing was written",
                spec.name,
                got.rows,
                got.hex(),
                want.rows,
                want.hex()
            )));
        }
    }
    Ok(())
}

/// The refusal of a target that holds rows.
pub(crate) fn not_empty(table: &str, rows: i64) -> StoreError {
    refuse(format!(
        "the target store is not empty (table `{table}` holds {rows} rows); \
         give --replace to replace its contents, or migrate into an empty database"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_ignore_row_order_but_not_values_or_types() {
        let a = vec![Value::Text("a".into()), Value::Null];
        let b = vec![Value::Text("b".into()), Value::Bytes(vec![1, 2])];
        let one = TableDigest::of(&[a.clone(), b.clone()]);
        assert_eq!(one, TableDigest::of(&[b.clone(), a.clone()]));
        assert_eq!(one.rows, 2);
        let changed = vec![Value::Text("b".into()), Value::Bytes(vec![1, 3])];
        assert_ne!(one, TableDigest::of(&[a.clone(), changed]));
        let retyped = vec![Value::Bytes(b"a".to_vec()), Value::Null];
        assert_ne!(one, TableDigest::of(&[retyped, b.clone()]));
        // No concatenation ambiguity: ("ab", "") is not ("a", "b").
        let left = vec![Value::Text("ab".into()), Value::Text(String::new())];
        let right = vec![Value::Text("a".into()), Value::Text("b".into())];
        assert_ne!(TableDigest::of(&[left]), TableDigest::of(&[right]));
    }

    #[test]
    fn every_table_is_classified_once() {
        for spec in TABLES {
            assert!(
                !NOT_COPIED.iter().any(|(n, _)| *n == spec.name),
                "{} is in both lists",
                spec.name
            );
        }
        let names = vec!["connections".to_owned(), "governor_budget".to_owned()];
        assert_eq!(unclassified(&names), vec!["governor_budget".to_owned()]);
    }
}
