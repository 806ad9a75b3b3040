//! The domain model: connections, linked mailboxes ("known users") and static users.
//! Every type here is valid by construction; raw input goes through [`ConnectionSpec::validate`]
//! or a newtype's `FromStr`.

mod account;
mod connection;
mod ids;
mod token;

pub use account::{Account, AccountStatus, BridgeUser, CredentialKind, MailboxAccess, StaticUser};
pub use connection::{
    AppOnlyAuth, Auth, AuthKind, Backend, ClientCertificate, ClientCredential, Cloud, Connection,
    ConnectionSettings, ConnectionSpec, DelegatedAuth, DelegatedFlow, ExpirySource, MailEndpoints,
    PasswordAuth, SendVia, Sender, ServerVersion, Target, parse_credential_expires,
};
pub use ids::{
    AccountId, ClientId, ConnectionId, ConnectionName, EmailAddress, EndpointUrl, ParseError,
    Principal, ResourceIndicator, StaticUserId, Tenant, WatchId, WebhookId,
};
pub use token::{AccessToken, Resource, TokenKey};

/// A field that failed validation, and why. Never holds a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {field}: {message}", if *.missing { "missing" } else { "invalid" })]
pub struct InvalidInput {
    /// The field's name as in the configuration file (`client_secret`, `tenant`, …).
    pub field: &'static str,
    pub message: String,
    /// The field is required here and was not given.
    pub missing: bool,
}

impl InvalidInput {
    pub fn new(field: &'static str, message: String) -> Self {
        Self {
            field,
            message,
            missing: false,
        }
    }

    pub fn missing(field: &'static str, message: String) -> Self {
        Self {
            field,
            message,
            missing: true,
        }
    }
}
