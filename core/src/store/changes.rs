//! What one process writes that others cache: the change feed of a store shared by several
//! gateways (PostgreSQL's `LISTEN`/`NOTIFY`, sent by triggers; see
//! `core/migrations/postgres/0003_shared_operations.sql`). A store that one process owns has
//! none: its own writes clear its own caches.

use async_trait::async_trait;

use super::StoreError;
use crate::model::AccountId;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "exgate_changes";

/// A change written by some process, as its notification names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Connections,
    StaticUsers,
    ApiKeys,
    /// One account, or (`None`) any.
    Accounts(Option<AccountId>),
    /// Anything may have changed (a notification this build does not know).
    Everything,
}

impl Change {
    /// Reads a notification's payload: `connections`, `static_users`, `api_keys`, `accounts` or
    /// `accounts:<id>`. Anything else (a newer exgate's kind, garbage) is [`Change::Everything`]:
    /// dropping every cache is always safe.
    pub fn parse(payload: &str) -> Self {
        match payload.split_once(':') {
            None => match payload {
                "connections" => Self::Connections,
                "static_users" => Self::StaticUsers,
                "api_keys" => Self::ApiKeys,
                "accounts" => Self::Accounts(None),
                _ => Self::Everything,
            },
            Some(("accounts", id)) => id
                .parse::<AccountId>()
                .map_or(Self::Everything, |id| Self::Accounts(Some(id))),
            Some(_) => Self::Everything,
        }
    }
}

/// What a feed says next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEvent {
    /// Another (or this) process committed a change.
    Change(Change),
    /// The feed is (again) listening: notifications sent while it was not are lost, so
    /// everything must be treated as changed.
    Listening,
    /// The feed lost its connection; the next call reconnects.
    Lost,
}

/// A live feed of the changes committed to a shared store.
#[async_trait]
pub trait ChangeFeed: Send {
    /// Waits for the next event. The first call connects and answers [`FeedEvent::Listening`];
    /// after [`FeedEvent::Lost`] the next call reconnects (an error: not yet, try again later).
    async fn next(&mut self) -> Result<FeedEvent, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_what_changed_and_anything_unknown_is_everything() {
        let id = AccountId::new_random();
        assert_eq!(Change::parse("connections"), Change::Connections);
        assert_eq!(Change::parse("static_users"), Change::StaticUsers);
        assert_eq!(Change::parse("api_keys"), Change::ApiKeys);
        assert_eq!(Change::parse("accounts"), Change::Accounts(None));
        assert_eq!(
            Change::parse(&format!("accounts:{id}")),
            Change::Accounts(Some(id))
        );
        for other in ["", "accounts:not-an-id", "governor", "x:y", "CONNECTIONS"] {
            assert_eq!(Change::parse(other), Change::Everything, "{other:?}");
        }
    }
}
