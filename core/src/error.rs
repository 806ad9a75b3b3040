//! The error every core entry point returns, with a classifier that frontends map to exit codes
//! and HTTP statuses.

use crate::auth::AuthError;
use crate::config::ConfigError;
use crate::mailbox::MailboxError;
use crate::model::InvalidInput;
use crate::secret::VaultError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(StoreError),
    #[error("{what} `{name}` does not exist")]
    NotFound { what: &'static str, name: String },
    #[error("{what} `{name}` already exists; nothing was changed")]
    AlreadyExists { what: &'static str, name: String },
    #[error("connection `{name}` is declared in {origin}; change it there")]
    ReadOnly { name: String, origin: String },
    /// A declared connection and a stored one have the same name: exgate does not guess.
    #[error(
        "connection `{name}` is declared in {origin} and also stored (with its own accounts); exgate will not guess which one is meant: remove or rename it in {origin}, or remove the stored one with `exgate connection remove {name}`"
    )]
    NameClash { name: String, origin: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error(transparent)]
    Registration(#[from] crate::appreg::RegistrationError),
    #[error(transparent)]
    Autodiscover(#[from] crate::ews::autodiscover::AutodiscoverError),
    /// The user must sign in (again) before exgate can act for them.
    #[error("{}{reason}", if principal.is_empty() { String::new() } else { format!("account `{principal}` needs to sign in again: ") })]
    NeedsSignIn { principal: String, reason: String },
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's input is wrong; fix it and retry.
    Invalid,
    /// The configuration, key file or environment is wrong.
    Config,
    NotFound,
    /// The operation conflicts with what exists (a taken name, a read-only entry).
    Conflict,
    /// The operation failed for a reason outside the caller's input.
    Failed,
    /// A user must sign in before the operation can succeed.
    NeedsSignIn,
    /// The caller lacks a permission or right.
    Forbidden,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::Config(_) | Self::Vault(_) => ErrorKind::Config,
            Self::Store(
                StoreError::Vault(_)
                | StoreError::WrongKey { .. }
                | StoreError::SchemaTooNew { .. },
            ) => ErrorKind::Config,
            Self::Store(StoreError::Conflict(_))
            | Self::AlreadyExists { .. }
            | Self::ReadOnly { .. }
            | Self::NameClash { .. } => ErrorKind::Conflict,
            Self::Store(_) => ErrorKind::Failed,
            Self::Autodiscover(crate::ews::autodiscover::AutodiscoverError::BadAddress(_)) => {
                ErrorKind::Invalid
            }
            Self::Autodiscover(_) => ErrorKind::Failed,
            Self::Registration(r) if r.is_forbidden() => ErrorKind::Forbidden,
            Self::Registration(crate::appreg::RegistrationError::Auth(a)) if a.needs_sign_in() => {
                ErrorKind::NeedsSignIn
            }
            Self::Registration(_) => ErrorKind::Failed,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::NeedsSignIn { .. } => ErrorKind::NeedsSignIn,
            Self::Auth(a) if a.needs_sign_in() => ErrorKind::NeedsSignIn,
            Self::Auth(AuthError::Unsupported(_)) => ErrorKind::Invalid,
            Self::Auth(_) => ErrorKind::Failed,
            Self::Mailbox(MailboxError::NotFound { .. } | MailboxError::UnknownMailbox { .. }) => {
                ErrorKind::NotFound
            }
            Self::Mailbox(
                MailboxError::MissingPermission { .. }
                | MailboxError::Forbidden { .. }
                | MailboxError::MailRefused { .. },
            ) => ErrorKind::Forbidden,
            Self::Mailbox(MailboxError::Mail(m)) => match m.kind {
                crate::mail::FailureKind::Refused => ErrorKind::Forbidden,
                crate::mail::FailureKind::Transient | crate::mail::FailureKind::Failed => {
                    ErrorKind::Failed
                }
            },
            Self::Mailbox(MailboxError::Invalid(_) | MailboxError::Unsupported(_)) => {
                ErrorKind::Invalid
            }
            Self::Mailbox(_) => ErrorKind::Failed,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Vault(v) => Self::Vault(v),
            other => Self::Store(other),
        }
    }
}
