//! Linked mailboxes ("known users") and static users ("additional users").

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::ids::{AccountId, ConnectionId, EmailAddress, Principal, StaticUserId};

/// What an account signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// A refresh token from a delegated OAuth2 sign-in, sealed in the store.
    RefreshToken,
    /// The connection's own app-only credential; the account holds no secret.
    AppOnly,
    /// The connection's Basic or NTLM service account; the account holds no secret.
    ServiceAccount,
    /// A session-only sign-in: its tokens live in the gateway's memory and are never stored.
    Session,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "refresh-token",
            Self::AppOnly => "app-only",
            Self::ServiceAccount => "service-account",
            Self::Session => "session",
        }
    }
}

/// Whether an account can be used without the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum AccountStatus {
    Active,
    /// The user must sign in again; `reason` says why (an AADSTS code and its meaning).
    NeedsSignIn {
        reason: String,
    },
}

impl AccountStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsSignIn { .. } => "needs-sign-in",
        }
    }
}

/// A mailbox linked to a connection for one principal.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub connection: ConnectionId,
    pub principal: Principal,
    /// The mailbox's address, once known (after sign-in).
    pub mailbox: Option<EmailAddress>,
    pub credential: CredentialKind,
    pub status: AccountStatus,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// How a connection's service identity reaches a static user's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailboxAccess {
    /// EWS ExchangeImpersonation, or Graph application permissions.
    Impersonation,
    /// Full Access or folder permissions granted to the service identity.
    Delegation,
}

impl MailboxAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Impersonation => "impersonation",
            Self::Delegation => "delegation",
        }
    }
}

/// A principal mapped to a mailbox that the connection's service identity may act on.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticUser {
    pub id: StaticUserId,
    pub connection: ConnectionId,
    pub principal: Principal,
    pub mailbox: EmailAddress,
    pub access: MailboxAccess,
    pub created_at: OffsetDateTime,
}

/// Who may sign in to the local bridge (`exgate bridge`) with a password, and what for: a
/// client that only knows passwords names `username` (a mailbox address) and its local password;
/// the bridge then reaches `mailbox` through `connection` with XOAUTH2, as the signed-in account
/// `principal` (delegated connections) or as the app (app-only connections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeUser {
    pub username: EmailAddress,
    pub connection: ConnectionId,
    pub principal: Option<Principal>,
    pub mailbox: EmailAddress,
    pub created_at: OffsetDateTime,
}
