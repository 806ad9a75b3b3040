//! The directory every mock reads: tenants, their users and shared mailboxes, app
//! registrations with their certificates and service principals, Exchange mailbox rights
//! (FullAccess, SendAs) and per-mailbox Exchange settings (EWS, IMAP, POP, SMTP AUTH).
//!
//! It sits at the bottom of the testkit beside the mail store ([`crate::mailstore`]): the
//! protocol mocks (Entra, Graph, and later EWS, IMAP, POP, SMTP) read it and never import one
//! another. It is made from a [`Seed`] (without the mailbox content, which the mail store
//! holds) and changes only through switches (public client flows, application access
//! policies, Exchange settings). Readers take a snapshot (`Directory::read`); a change
//! replaces the data for later readers, so no reader ever holds a lock on it.

pub(crate) mod cert;
pub(crate) mod objects;
pub(crate) mod resources;
pub mod seed;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

pub use seed::{
    AppSeed, ExchangeServicePrincipalSeed, ExchangeSettings, MailboxPermissionSeed, MailboxRight,
    OrganizationSettings, SecretSeed, Seed, SeedError, SharedMailboxSeed, TenantSeed, UserSeed,
};

use cert::AppCert;
use objects::TenantObjects;

/// The shared directory. Cloning shares it.
#[derive(Clone)]
pub struct Directory {
    data: Arc<Mutex<Arc<DirectoryData>>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("tenants", &self.read().tenants.len())
            .finish_non_exhaustive()
    }
}

/// One state of the directory.
#[derive(Debug, Clone)]
pub(crate) struct DirectoryData {
    /// The seed's tenants, without mailbox content.
    pub tenants: Vec<TenantSeed>,
    /// Parsed app certificates by lower-case client ID.
    certs: HashMap<String, Vec<AppCert>>,
    /// Each tenant's directory objects as Graph sees them (same order as `tenants`).
    pub objects: Vec<TenantObjects>,
}

/// A mailbox of the directory: a user's or a shared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The primary SMTP address (a user's UPN).
    pub address: String,
    pub display_name: String,
    /// The user's (or the shared mailbox's user's) object ID.
    pub object_id: String,
    /// A shared mailbox: nobody signs in as it.
    pub shared: bool,
    pub exchange: ExchangeSettings,
}

impl Directory {
    /// The directory of `seed` (checked first; its mailbox content is dropped: the mail store
    /// holds content).
    pub fn new(mut seed: Seed) -> Result<Directory, SeedError> {
        for tenant in &mut seed.tenants {
            tenant.mailboxes = Vec::new();
        }
        seed.validate()?;
        for tenant in &mut seed.tenants {
            for app in bootstrap_apps() {
                if !tenant
                    .apps
                    .iter()
                    .any(|a| a.client_id.eq_ignore_ascii_case(&app.client_id))
                {
                    tenant.apps.push(app);
                }
            }
        }
        let objects = seed.tenants.iter().map(TenantObjects::from_seed).collect();
        let mut certs: HashMap<String, Vec<AppCert>> = HashMap::new();
        for tenant in &seed.tenants {
            for app in &tenant.apps {
                for (i, pem) in app.certificates.iter().enumerate() {
                    let cert = AppCert::from_pem(pem).map_err(|e| SeedError::App {
                        tenant: tenant.id.clone(),
                        client_id: app.client_id.clone(),
                        problem: format!("certificate #{i} is unusable: {e}"),
                    })?;
                    certs
                        .entry(app.client_id.to_ascii_lowercase())
                        .or_default()
                        .push(cert);
                }
            }
        }
        Ok(Directory {
            data: Arc::new(Mutex::new(Arc::new(DirectoryData {
                tenants: seed.tenants,
                certs,
                objects,
            }))),
        })
    }

    /// The directory as it is now; later changes do not affect the snapshot.
    pub(crate) fn read(&self) -> Arc<DirectoryData> {
        Arc::clone(&self.data.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes the directory for every later reader.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut DirectoryData) -> T) -> T {
        let mut current = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        change(Arc::make_mut(&mut current))
    }

    /// Every mailbox of every tenant: users first, then shared mailboxes.
    pub fn mailboxes(&self) -> Vec<Recipient> {
        self.read()
            .tenants
            .iter()
            .flat_map(TenantSeed::recipients)
            .collect()
    }

    /// The Exchange settings of a mailbox (any tenant), `None` when there is no such mailbox.
    pub fn exchange_settings(&self, mailbox: &str) -> Option<ExchangeSettings> {
        self.read().recipient(mailbox).map(|r| r.exchange)
    }

    /// Replaces the Exchange settings of a mailbox (what `Set-CASMailbox` does); `false` when
    /// there is no such mailbox.
    pub fn set_exchange_settings(&self, mailbox: &str, settings: ExchangeSettings) -> bool {
        let mailbox = mailbox.trim();
        self.update(|d| {
            let mut found = false;
            for tenant in &mut d.tenants {
                for user in &mut tenant.users {
                    if user.upn.eq_ignore_ascii_case(mailbox) {
                        user.exchange = settings;
                        found = true;
                    }
                }
                for shared in &mut tenant.shared_mailboxes {
                    if shared.address.eq_ignore_ascii_case(mailbox) {
                        shared.exchange = settings;
                        found = true;
                    }
                }
            }
            found
        })
    }

    /// "Allow public client flows" of an app; `false` when there is no such app.
    pub fn set_public_client_flows(&self, client_id: &str, enabled: bool) -> bool {
        self.update(|d| {
            d.apps_mut(client_id)
                .map(|app| app.public_client_flows = enabled)
                .count()
                > 0
        })
    }

    /// Replaces an app's application access policy (`None`: every mailbox); `false` when there
    /// is no such app.
    pub fn set_mailbox_scope(&self, client_id: &str, mailboxes: Option<Vec<String>>) -> bool {
        self.update(|d| {
            d.apps_mut(client_id)
                .map(|app| app.mailbox_scope = mailboxes.clone())
                .count()
                > 0
        })
    }
}

impl DirectoryData {
    pub(crate) fn tenant(&self, t: usize) -> Option<&TenantSeed> {
        self.tenants.get(t)
    }

    /// The tenant with this ID (exactly as issued in tokens and grants).
    pub(crate) fn tenant_index_by_id(&self, tenant_id: &str) -> Option<usize> {
        self.tenants.iter().position(|t| t.id == tenant_id)
    }

    /// The tenant with this ID, ignoring case (a `tid` claim).
    pub(crate) fn tenant_index_by_tid(&self, tid: &str) -> Option<usize> {
        self.tenants
            .iter()
            .position(|t| t.id.eq_ignore_ascii_case(tid.trim()))
    }

    pub(crate) fn app(&self, t: usize, client_id: &str) -> Option<&AppSeed> {
        self.tenant(t)?
            .apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    fn apps_mut(&mut self, client_id: &str) -> impl Iterator<Item = &mut AppSeed> {
        self.tenants
            .iter_mut()
            .flat_map(|t| t.apps.iter_mut())
            .filter(move |a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub(crate) fn user(&self, t: usize, upn: &str) -> Option<&UserSeed> {
        self.tenant(t)?
            .users
            .iter()
            .find(|u| u.upn.eq_ignore_ascii_case(upn.trim()))
    }

    pub(crate) fn user_by_oid(&self, t: usize, oid: &str) -> Option<&UserSeed> {
        self.tenant(t)?.users.iter().find(|u| u.object_id == oid)
    }

    /// The certificates registered on an app.
    pub(crate) fn certs(&self, client_id: &str) -> &[AppCert] {
        self.certs
            .get(&client_id.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// A mailbox of any tenant by address.
    pub(crate) fn recipient(&self, address: &str) -> Option<Recipient> {
        self.tenants.iter().find_map(|t| {
            t.entry(address)
                .filter(|r| r.address.eq_ignore_ascii_case(address.trim()))
        })
    }
}

impl TenantSeed {
    /// The tenant's mailboxes: users first, then shared mailboxes.
    pub(crate) fn recipients(&self) -> impl Iterator<Item = Recipient> + '_ {
        self.users
            .iter()
            .map(|u| Recipient {
                address: u.upn.clone(),
                display_name: u.display_name.clone(),
                object_id: u.object_id.clone(),
                shared: false,
                exchange: u.exchange,
            })
            .chain(self.shared_mailboxes.iter().map(|s| Recipient {
                address: s.address.clone(),
                display_name: s.display_name.clone(),
                object_id: s.object_id.clone(),
                shared: true,
                exchange: s.exchange,
            }))
    }

    /// A user or shared mailbox by address/UPN or object ID.
    pub(crate) fn entry(&self, key: &str) -> Option<Recipient> {
        let key = key.trim();
        self.recipients()
            .find(|r| r.address.eq_ignore_ascii_case(key) || r.object_id.eq_ignore_ascii_case(key))
    }

    /// Whether `user` holds `right` on `mailbox` (`Add-MailboxPermission`,
    /// `Add-RecipientPermission`).
    pub(crate) fn has_right(&self, mailbox: &str, user: &str, right: MailboxRight) -> bool {
        self.mailbox_permissions.iter().any(|p| {
            p.mailbox.eq_ignore_ascii_case(mailbox)
                && p.user.eq_ignore_ascii_case(user)
                && p.rights.contains(&right)
        })
    }

    /// The application access policy of an app of this tenant: the mailboxes its app-only
    /// requests may reach (`None`: every mailbox).
    pub(crate) fn mailbox_scope(&self, client_id: &str) -> Option<&[String]> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
            .and_then(|a| a.mailbox_scope.as_deref())
    }
}

/// The first-party public clients every tenant has: Microsoft Graph Command Line Tools and
/// Exchange Online PowerShell, with tenant-wide consent for the scopes an admin uses them for.
fn bootstrap_apps() -> Vec<AppSeed> {
    use seed::{
        EXO_POWERSHELL_APP, EXO_POWERSHELL_APP_NAME, EXO_POWERSHELL_SCOPES, GRAPH, GRAPH_CLI_APP,
        GRAPH_CLI_APP_NAME, GRAPH_CLI_SCOPES, OUTLOOK,
    };
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let app =
        |client_id: &str, name: &str, redirect: &str, resource: &str, scopes: &[&str]| AppSeed {
            client_id: client_id.into(),
            name: name.into(),
            public_client: true,
            public_client_flows: true,
            redirect_uris: vec!["http://localhost".into(), redirect.into()],
            secrets: Vec::new(),
            certificates: Vec::new(),
            delegated_permissions: std::collections::BTreeMap::from([(
                resource.to_string(),
                strings(scopes),
            )]),
            application_permissions: std::collections::BTreeMap::new(),
            service_principal_id: None,
            mailbox_scope: None,
        };
    vec![
        app(
            GRAPH_CLI_APP,
            GRAPH_CLI_APP_NAME,
            "https://login.microsoftonline.com/common/oauth2/nativeclient",
            GRAPH,
            GRAPH_CLI_SCOPES,
        ),
        app(
            EXO_POWERSHELL_APP,
            EXO_POWERSHELL_APP_NAME,
            "https://login.microsoftonline.com/organizations/oauth2/nativeclient",
            OUTLOOK,
            EXO_POWERSHELL_SCOPES,
        ),
    ]
}

/// The service principal's object ID: from the seed, or derived from the client ID.
pub(crate) fn service_principal_id(app: &AppSeed) -> String {
    if let Some(id) = &app.service_principal_id {
        return id.clone();
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("service-principal:{}", app.client_id).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::seed::{ADELE, DAEMON_APP, MEGAN, PUBLIC_APP, SALES};
    use super::*;

    #[test]
    fn mailboxes_rights_and_settings_come_from_the_seed_and_change_by_switch() {
        let directory = Directory::new(Seed::contoso()).unwrap();
        let mailboxes = directory.mailboxes();
        let addresses: Vec<&str> = mailboxes.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(addresses, [ADELE, MEGAN, super::seed::ADMIN, SALES]);
        assert!(mailboxes[3].shared && !mailboxes[0].shared);
        let snapshot = directory.read();
        let tenant = snapshot.tenant(0).unwrap();
        assert!(tenant.has_right(SALES, ADELE, MailboxRight::SendAs));
        assert!(!tenant.has_right(SALES, MEGAN, MailboxRight::FullAccess));
        assert_eq!(
            tenant.entry(&mailboxes[1].object_id).map(|r| r.address),
            Some(MEGAN.to_string())
        );
        assert_eq!(snapshot.certs(DAEMON_APP).len(), 1);

        // Every protocol is enabled unless switched off.
        assert_eq!(
            directory.exchange_settings(ADELE),
            Some(ExchangeSettings::default())
        );
        let imap_off = ExchangeSettings {
            imap_enabled: false,
            ..ExchangeSettings::default()
        };
        assert!(directory.set_exchange_settings("SALES@contoso.onmicrosoft.com", imap_off));
        assert_eq!(directory.exchange_settings(SALES), Some(imap_off));
        assert!(!directory.set_exchange_settings("nobody@contoso.onmicrosoft.com", imap_off));
        assert_eq!(
            directory.exchange_settings("nobody@contoso.onmicrosoft.com"),
            None
        );

        // A snapshot taken before a change keeps what it saw.
        assert!(directory.set_public_client_flows(PUBLIC_APP, false));
        assert!(snapshot.app(0, PUBLIC_APP).unwrap().public_client_flows);
        assert!(
            !directory
                .read()
                .app(0, PUBLIC_APP)
                .unwrap()
                .public_client_flows
        );
        assert!(directory.set_mailbox_scope(DAEMON_APP, Some(vec![SALES.into()])));
        assert_eq!(
            directory
                .read()
                .tenant(0)
                .unwrap()
                .mailbox_scope(DAEMON_APP),
            Some([SALES.to_string()].as_slice())
        );
    }

    #[test]
    fn exchange_settings_default_to_enabled_in_seed_json() {
        let json = r#"{"tenants":[{"id":"3c1d9e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f","domain":"fabrikam.example",
            "users":[{"upn":"alex@fabrikam.example","password":"p","object_id":"9a8b7c6d-0000-4000-8000-000000000001",
                      "display_name":"Alex","exchange":{"pop_enabled":false}}],
            "shared_mailboxes":[{"address":"info@fabrikam.example","display_name":"Info",
                                 "object_id":"9a8b7c6d-0000-4000-8000-000000000101"}]}]}"#;
        let directory = Directory::new(Seed::from_json(json).unwrap()).unwrap();
        let alex = directory
            .exchange_settings("alex@fabrikam.example")
            .unwrap();
        assert!(!alex.pop_enabled);
        assert!(alex.ews_enabled && alex.imap_enabled && alex.smtp_client_auth_enabled);
        assert!(
            directory
                .exchange_settings("info@fabrikam.example")
                .unwrap()
                .is_default()
        );
        let bad = json.replace("\"pop_enabled\":false", "\"pop\":false");
        assert!(
            Seed::from_json(&bad).is_err(),
            "unknown settings are refused"
        );
        // Default settings are left out when a seed is written back.
        let written = serde_json::to_string(&Seed::contoso()).unwrap();
        assert!(!written.contains("\"exchange\""), "{written}");
    }
}
