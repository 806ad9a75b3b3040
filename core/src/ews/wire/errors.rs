//! EWS's response codes and what they mean: [`ResponseCode`] (the ones exgate acts on, and any
//! other by name) and [`EwsError`], a refusal with its message, the server's back-off hint and
//! an explanation and fix a person can follow.

use std::fmt;
use std::time::Duration;

use crate::mailbox::MailboxError;

/// The date EWS in Exchange Online is switched off for good.
pub const EWS_ONLINE_SHUTDOWN: &str = "1 April 2027";

macro_rules! response_codes {
    ($( $(#[$doc:meta])* $variant:ident ),* $(,)?) => {
        /// An EWS `ResponseCode` (`m:ResponseCode`, or `e:ResponseCode` in a fault).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ResponseCode {
            $( $(#[$doc])* $variant, )*
            /// HTTP 403 without an EWS answer: EWS is switched off for the organization,
            /// the mailbox or the app (not an EWS code; exgate's name for the refusal).
            EwsDisabled,
            /// Any other code, by name.
            Other(String),
        }

        impl ResponseCode {
            /// The code as EWS spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => stringify!($variant), )*
                    Self::EwsDisabled => "EwsDisabled",
                    Self::Other(s) => s,
                }
            }

            /// Reads a code by name; an unknown one is kept as [`ResponseCode::Other`].
            pub fn parse(s: &str) -> Self {
                let s = s.trim();
                // Fault codes carry a prefix: `a:ErrorServerBusy`.
                let s = s.rsplit(':').next().unwrap_or(s);
                match s {
                    $( stringify!($variant) => Self::$variant, )*
                    "EwsDisabled" => Self::EwsDisabled,
                    other => Self::Other(other.to_owned()),
                }
            }
        }
    };
}

response_codes! {
    NoError,
    /// Throttled: the server asks the client to wait (`BackOffMilliseconds`).
    ErrorServerBusy,
    ErrorExceededConnectionCount,
    ErrorTooManyObjectsOpened,
    ErrorImpersonateUserDenied,
    ErrorImpersonationDenied,
    ErrorNonExistentMailbox,
    ErrorAccessDenied,
    ErrorItemNotFound,
    ErrorFolderNotFound,
    ErrorAttachmentNotFound,
    ErrorInvalidIdMalformed,
    ErrorInvalidIdNotAnItemAttachmentId,
    ErrorMailboxStoreUnavailable,
    ErrorInvalidSyncStateData,
    ErrorMailboxMoveInProgress,
    ErrorInternalServerTransientError,
    ErrorInternalServerError,
    ErrorTimeoutExpired,
    ErrorSchemaValidation,
    ErrorInvalidRequest,
    ErrorInvalidServerVersion,
    ErrorInvalidSchemaVersionForMailboxVersion,
    ErrorSendAsDenied,
    ErrorQuotaExceeded,
    ErrorMessageSizeExceeded,
    ErrorNameResolutionNoResults,
    ErrorNameResolutionMultipleResults,
    ErrorMailRecipientNotFound,
    ErrorBatchProcessingStopped,
    ErrorChangeKeyRequiredForWriteOperations,
    ErrorIrresolvableConflict,
    ErrorCalendarInvalidRecurrence,
    ErrorInvalidOperation,
    ErrorConnectionFailed,
    ErrorProxyRequestNotAllowed,
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `ResponseClass`: how a response message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    Success,
    Warning,
    Error,
}

/// A refusal from EWS: a response message that did not succeed, or a SOAP fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EwsError {
    pub code: ResponseCode,
    /// `MessageText`, `faultstring` or `e:Message`.
    pub message: String,
    /// `MessageXml`'s `BackOffMilliseconds`, when the server sent it.
    pub back_off: Option<Duration>,
    /// The HTTP status it came with, when it was a fault (500) or a bare refusal (403).
    pub http_status: Option<u16>,
}

impl EwsError {
    pub fn new(code: ResponseCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            back_off: None,
            http_status: None,
        }
    }

    /// HTTP 403 with no EWS answer: EWS is disabled for the organization, mailbox or app.
    pub fn ews_disabled() -> Self {
        Self {
            code: ResponseCode::EwsDisabled,
            message: "the server refused EWS (HTTP 403)".into(),
            back_off: None,
            http_status: Some(403),
        }
    }

    /// The server is busy and did not act on the request: retry after the hint.
    pub fn is_busy(&self) -> bool {
        matches!(
            self.code,
            ResponseCode::ErrorServerBusy
                | ResponseCode::ErrorExceededConnectionCount
                | ResponseCode::ErrorTooManyObjectsOpened
        )
    }

    /// Trying again later may succeed (busy, transient, a mailbox being moved).
    pub fn is_retryable(&self) -> bool {
        self.is_busy()
            || matches!(
                self.code,
                ResponseCode::ErrorInternalServerTransientError
                    | ResponseCode::ErrorMailboxStoreUnavailable
                    | ResponseCode::ErrorMailboxMoveInProgress
                    | ResponseCode::ErrorTimeoutExpired
                    | ResponseCode::ErrorConnectionFailed
            )
    }

    /// What the code means.
    pub fn explanation(&self) -> &'static str {
        use ResponseCode as C;
        match &self.code {
            C::NoError => "the request succeeded",
            C::ErrorServerBusy => "Exchange is throttling this account (EWS throttling policy)",
            C::ErrorExceededConnectionCount => {
                "this account has more concurrent EWS connections open than its throttling policy allows"
            }
            C::ErrorTooManyObjectsOpened => {
                "this account holds more open mailbox objects (or subscriptions) than its throttling policy allows"
            }
            C::ErrorImpersonateUserDenied | C::ErrorImpersonationDenied => {
                "the service account may not impersonate this mailbox"
            }
            C::ErrorNonExistentMailbox => "the mailbox does not exist",
            C::ErrorAccessDenied => "the account has no right to this mailbox, folder or item",
            C::ErrorItemNotFound | C::ErrorFolderNotFound | C::ErrorAttachmentNotFound => {
                "the item, folder or attachment is not there (deleted or moved)"
            }
            C::ErrorInvalidIdMalformed | C::ErrorInvalidIdNotAnItemAttachmentId => {
                "the ID is not an EWS ID of this kind"
            }
            C::ErrorMailboxStoreUnavailable => "the mailbox database is not available right now",
            C::ErrorInvalidSyncStateData => "the sync state is not valid for this folder any more",
            C::ErrorMailboxMoveInProgress => "the mailbox is being moved to another database",
            C::ErrorInternalServerTransientError => "Exchange had a transient internal failure",
            C::ErrorInternalServerError => "Exchange failed internally",
            C::ErrorTimeoutExpired => "the request took longer than Exchange allows",
            C::ErrorSchemaValidation | C::ErrorInvalidRequest => {
                "Exchange refused the request as malformed"
            }
            C::ErrorInvalidServerVersion | C::ErrorInvalidSchemaVersionForMailboxVersion => {
                "the requested server version does not match the mailbox's Exchange version"
            }
            C::ErrorSendAsDenied => "the account may not send as this address",
            C::ErrorQuotaExceeded => "the mailbox is over its storage quota",
            C::ErrorMessageSizeExceeded => "the message is larger than the server accepts",
            C::ErrorNameResolutionNoResults => "no directory entry or contact matches the name",
            C::ErrorNameResolutionMultipleResults => "several entries match the name",
            C::ErrorMailRecipientNotFound => "a recipient is not in the directory",
            C::ErrorBatchProcessingStopped => {
                "an earlier item of the same request failed, so Exchange stopped"
            }
            C::ErrorChangeKeyRequiredForWriteOperations | C::ErrorIrresolvableConflict => {
                "the item changed since it was read"
            }
            C::ErrorCalendarInvalidRecurrence => "Exchange refused the recurrence pattern",
            C::ErrorInvalidOperation => "the operation is not allowed on this item",
            C::ErrorConnectionFailed => "Exchange could not reach the mailbox server",
            C::ErrorProxyRequestNotAllowed => {
                "the request cannot be proxied to the mailbox's server"
            }
            C::EwsDisabled => {
                "EWS is disabled for this organization, mailbox or app; in Exchange Online EWS is \
                 blocked since 1 October 2026 unless EWSEnabled is set and the app is allow-listed"
            }
            C::Other(_) => "Exchange refused the request",
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        use ResponseCode as C;
        match &self.code {
            C::ErrorServerBusy => match self.back_off {
                Some(d) => format!(
                    "wait {} ms before the next request to this mailbox (exgate does); if it persists, \
                     ask the Exchange admin to raise the account's EWS throttling policy \
                     (New-ThrottlingPolicy / Set-ThrottlingPolicyAssociation)",
                    d.as_millis()
                ),
                None => "wait before retrying (exgate backs off); if it persists, ask the Exchange admin \
                         to raise the account's EWS throttling policy (Set-ThrottlingPolicyAssociation)"
                    .into(),
            },
            C::ErrorExceededConnectionCount | C::ErrorTooManyObjectsOpened => {
                "lower the concurrency against this mailbox, or have the Exchange admin raise \
                 EwsMaxConcurrency / EwsMaxSubscriptions in the account's throttling policy"
                    .into()
            }
            C::ErrorImpersonateUserDenied | C::ErrorImpersonationDenied => {
                "on Exchange Server give the service account the ApplicationImpersonation role \
                 (New-ManagementRoleAssignment -Role ApplicationImpersonation -User <service account>); \
                 app-only in Exchange Online needs full_access_as_app with admin consent"
                    .into()
            }
            C::ErrorNonExistentMailbox => {
                "check the address: it must be the mailbox's primary SMTP address".into()
            }
            C::ErrorAccessDenied => {
                "grant the account access to the mailbox (Add-MailboxPermission -AccessRights FullAccess, \
                 or folder permissions with Add-MailboxFolderPermission), or use impersonation"
                    .into()
            }
            C::ErrorItemNotFound | C::ErrorFolderNotFound | C::ErrorAttachmentNotFound => {
                "list the folder again to get current IDs".into()
            }
            C::ErrorInvalidIdMalformed | C::ErrorInvalidIdNotAnItemAttachmentId => {
                "pass an ID exgate returned for this connection (EWS IDs differ from Graph IDs)".into()
            }
            C::ErrorMailboxStoreUnavailable
            | C::ErrorInternalServerTransientError
            | C::ErrorTimeoutExpired
            | C::ErrorConnectionFailed => "retry in a few seconds (exgate does)".into(),
            C::ErrorMailboxMoveInProgress => {
                "retry after the move completes (Get-MoveRequest shows its progress)".into()
            }
            C::ErrorInvalidSyncStateData => {
                "start the sync again without a state (a full resynchronisation)".into()
            }
            C::ErrorInvalidServerVersion | C::ErrorInvalidSchemaVersionForMailboxVersion => {
                "set the connection's server_version to the Exchange version the mailbox is on".into()
            }
            C::ErrorSendAsDenied => {
                "grant Send As: Add-ADPermission (on premises) or Add-RecipientPermission -AccessRights SendAs".into()
            }
            C::ErrorQuotaExceeded => "free space in the mailbox or raise its quota".into(),
            C::ErrorMessageSizeExceeded => {
                "send smaller attachments, or raise the organization's message size limit".into()
            }
            C::ErrorChangeKeyRequiredForWriteOperations | C::ErrorIrresolvableConflict => {
                "read the item again and repeat the change".into()
            }
            C::EwsDisabled => format!(
                "on Exchange Online, an admin runs Set-OrganizationConfig -EwsEnabled $true and, while the \
                 organization keeps an allow list of apps, adds the app's client ID to it \
                 (Set-OrganizationConfig -EwsAllowedAppIDs, which writes the whole list); check \
                 Set-CASMailbox -EwsEnabled for the mailbox. EWS in Exchange Online is switched off on {EWS_ONLINE_SHUTDOWN}: move this \
                 connection to the Graph backend (backend = \"graph\")"
            ),
            C::ErrorInternalServerError
            | C::ErrorSchemaValidation
            | C::ErrorInvalidRequest
            | C::ErrorNameResolutionNoResults
            | C::ErrorNameResolutionMultipleResults
            | C::ErrorMailRecipientNotFound
            | C::ErrorBatchProcessingStopped
            | C::ErrorCalendarInvalidRecurrence
            | C::ErrorInvalidOperation
            | C::ErrorProxyRequestNotAllowed
            | C::NoError
            | C::Other(_) => "see the server's message; the Exchange event log has details".into(),
        }
    }

    /// The neutral error a backend reports. `what` and `id` name the object for not-found
    /// errors; `mailbox` is the address acted on.
    pub fn to_mailbox_error(&self, what: &'static str, id: &str, mailbox: &str) -> MailboxError {
        use ResponseCode as C;
        let request_id = String::new();
        match &self.code {
            _ if self.is_busy() => MailboxError::Throttled {
                retry_after: self.back_off.unwrap_or(Duration::from_secs(1)),
            },
            C::ErrorItemNotFound
            | C::ErrorFolderNotFound
            | C::ErrorAttachmentNotFound
            | C::ErrorInvalidIdMalformed
            | C::ErrorInvalidIdNotAnItemAttachmentId => MailboxError::NotFound {
                what,
                id: id.to_owned(),
                request_id,
            },
            C::ErrorNonExistentMailbox => MailboxError::UnknownMailbox {
                mailbox: mailbox.to_owned(),
            },
            C::ErrorAccessDenied
            | C::ErrorImpersonateUserDenied
            | C::ErrorImpersonationDenied
            | C::ErrorSendAsDenied
            | C::EwsDisabled => MailboxError::Forbidden {
                operation: "use the mailbox",
                message: if mailbox.is_empty() {
                    format!("{}: {}", self.code, self.explanation())
                } else {
                    format!("{}: {} ({mailbox})", self.code, self.explanation())
                },
                hint: self.fix(),
                request_id,
            },
            _ if self.is_retryable() => MailboxError::Server {
                status: self.http_status.unwrap_or(500),
                code: self.code.to_string(),
                message: self.message.clone(),
                request_id,
            },
            _ => MailboxError::Rejected {
                status: self.http_status.unwrap_or(200),
                code: self.code.to_string(),
                message: self.message.clone(),
                request_id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_mailbox_is_named() {
        let e = EwsError::new(ResponseCode::ErrorAccessDenied, "Access is denied.");
        let text = e
            .to_mailbox_error("message", "", "sales@contoso.com")
            .to_string();
        assert!(text.contains("ErrorAccessDenied"), "{text}");
        assert!(text.contains("(sales@contoso.com)"), "{text}");
    }

    #[test]
    fn codes_parse_by_name_with_or_without_a_prefix() {
        assert_eq!(
            ResponseCode::parse("a:ErrorServerBusy"),
            ResponseCode::ErrorServerBusy
        );
        assert_eq!(ResponseCode::parse(" NoError "), ResponseCode::NoError);
        assert_eq!(
            ResponseCode::parse("ErrorSomethingNew"),
            ResponseCode::Other("ErrorSomethingNew".into())
        );
        assert_eq!(
            ResponseCode::ErrorItemNotFound.as_str(),
            "ErrorItemNotFound"
        );
    }

    #[test]
    fn every_named_code_has_an_explanation_and_a_fix() {
        let busy = EwsError {
            back_off: Some(Duration::from_millis(2500)),
            ..EwsError::new(ResponseCode::ErrorServerBusy, "busy")
        };
        assert!(busy.fix().contains("2500 ms"));
        assert!(busy.is_busy() && busy.is_retryable());
        assert!(matches!(
            busy.to_mailbox_error("message", "x", "a@b"),
            MailboxError::Throttled { retry_after } if retry_after == Duration::from_millis(2500)
        ));
        let disabled = EwsError::ews_disabled();
        assert!(
            disabled
                .fix()
                .contains("Set-OrganizationConfig -EwsEnabled $true")
        );
        assert!(disabled.fix().contains(EWS_ONLINE_SHUTDOWN));
        assert!(disabled.explanation().contains("1 October 2026"));
        let denied = EwsError::new(ResponseCode::ErrorImpersonateUserDenied, "no");
        assert!(denied.fix().contains("ApplicationImpersonation"));
        assert!(!denied.is_retryable());
        let moving = EwsError::new(ResponseCode::ErrorMailboxMoveInProgress, "moving");
        assert!(moving.is_retryable() && !moving.is_busy());
        let missing = EwsError::new(ResponseCode::ErrorItemNotFound, "gone");
        assert!(matches!(
            missing.to_mailbox_error("message", "AAMk", "a@b"),
            MailboxError::NotFound { id, .. } if id == "AAMk"
        ));
        let nobody = EwsError::new(ResponseCode::ErrorNonExistentMailbox, "x");
        assert!(matches!(
            nobody.to_mailbox_error("message", "", "a@b"),
            MailboxError::UnknownMailbox { mailbox } if mailbox == "a@b"
        ));
    }
}
