//! Page and sync tokens that cannot be turned against another mailbox.
//!
//! A server's paging link (`@odata.nextLink`, an EWS offset, an IMAP UID) is never handed to a
//! caller as it is: it is sealed with the vault (AES-256-GCM) under associated data naming the
//! connection, the account or app, the mailbox, the kind of listing and a digest of the folder
//! and query. A token is opened only under the same names, so one minted for another mailbox,
//! account, folder or query — or forged, or changed by one bit — is refused as invalid input.
//! Sealing also keeps the server's URL (and any mailbox address in it) opaque.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::mailbox::MailboxError;
use crate::secret::Vault;

const PREFIX: &str = "xg1.";

/// What a token continues: a kind of listing (`messages`, `contacts`, `changes`) of one
/// mailbox, with the folder and query that shaped it.
#[derive(Debug, Clone)]
pub struct TokenScope<'a> {
    pub kind: &'static str,
    /// The mailbox's governor key (its address, lowercased) or `me`.
    pub mailbox: &'a str,
    /// Folder and query, in any stable form.
    pub detail: String,
}

/// Seals and opens the tokens of one connection and account (or app).
#[derive(Clone)]
pub struct PageTokens {
    vault: Arc<Vault>,
    owner: String,
}

impl fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageTokens")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl PageTokens {
    /// Tokens for `connection` acting as `principal` (`None`: the app).
    pub fn new(vault: Arc<Vault>, connection: &str, principal: Option<&str>) -> Self {
        Self {
            vault,
            owner: format!(
                "{}/{}",
                connection.to_ascii_lowercase(),
                principal.map_or_else(|| "app".to_owned(), str::to_ascii_lowercase)
            ),
        }
    }

    fn context(&self, scope: &TokenScope<'_>) -> String {
        let digest = Sha256::digest(scope.detail.as_bytes());
        let detail: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!(
            "page-token/{}/{}/{}/{detail}",
            self.owner,
            scope.kind,
            scope.mailbox.to_ascii_lowercase()
        )
    }

    /// The opaque token for `state` (the server's link or state).
    pub fn seal(&self, scope: &TokenScope<'_>, state: &str) -> String {
        let sealed = self.vault.seal(&self.context(scope), state.as_bytes());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The server's link or state behind `token`, if it was sealed for exactly this scope.
    pub fn open(&self, scope: &TokenScope<'_>, token: &str) -> Result<String, MailboxError> {
        let invalid = || {
            MailboxError::Invalid(format!(
                "that {} token was not issued for this mailbox, folder and query (or is damaged); list again without it to start from the first page",
                if scope.kind == "changes" {
                    "sync"
                } else {
                    "page"
                }
            ))
        };
        let raw = token
            .trim()
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .ok_or_else(invalid)?;
        let plain = self
            .vault
            .open(&self.context(scope), &raw)
            .map_err(|_| invalid())?;
        String::from_utf8(plain).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(dir: &std::path::Path, principal: Option<&str>) -> PageTokens {
        let vault = Arc::new(Vault::open_or_create(&dir.join("key")).unwrap());
        PageTokens::new(vault, "contoso", principal)
    }

    #[test]
    fn a_token_opens_only_in_its_own_scope() {
        let dir = tempfile::tempdir().unwrap();
        let app = tokens(dir.path(), None);
        let scope = |mailbox, detail: &str| TokenScope {
            kind: "messages",
            mailbox,
            detail: detail.to_owned(),
        };
        let link = "https://graph.microsoft.com/v1.0/users/megan@contoso.com/messages?$skip=10";
        let token = app.seal(&scope("megan@contoso.com", "inbox"), link);
        assert!(!token.contains("megan"), "{token}");
        assert_eq!(
            app.open(&scope("Megan@Contoso.com", "inbox"), &token)
                .unwrap(),
            link
        );
        // Another mailbox, folder, kind, account or connection: refused.
        for (t, s) in [
            (&app, scope("adele@contoso.com", "inbox")),
            (&app, scope("megan@contoso.com", "sentitems")),
        ] {
            assert!(matches!(t.open(&s, &token), Err(MailboxError::Invalid(_))));
        }
        let contacts = TokenScope {
            kind: "contacts",
            ..scope("megan@contoso.com", "inbox")
        };
        assert!(app.open(&contacts, &token).is_err());
        let user = tokens(dir.path(), Some("megan@contoso.com"));
        assert!(
            user.open(&scope("megan@contoso.com", "inbox"), &token)
                .is_err()
        );
        // The server's raw link, a forged or a damaged token: refused.
        assert!(
            app.open(&scope("megan@contoso.com", "inbox"), link)
                .is_err()
        );
        let mut damaged = token.clone().into_bytes();
        let last = damaged.len() - 2;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        let damaged = String::from_utf8(damaged).unwrap();
        assert!(
            app.open(&scope("megan@contoso.com", "inbox"), &damaged)
                .is_err()
        );
    }
}
