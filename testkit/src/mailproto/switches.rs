//! The mail servers' switches as data: what the `exgate-mock` flags, `GET/POST /_mock/mail` and
//! the Rust methods of [`crate::MockMicrosoft`] read and change. Most of them are Exchange
//! settings kept in the directory (`Set-CASMailbox`, `Set-TransportConfig`, security defaults,
//! `New-ServicePrincipal` / `Add-MailboxPermission`), so every mock sees the same values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::MailState;
use crate::directory::{ExchangeServicePrincipalSeed, OrganizationSettings, service_principal_id};

/// A mailbox's mail protocol settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxProtocols {
    pub imap_enabled: bool,
    pub pop_enabled: bool,
    pub smtp_client_auth: bool,
}

/// An app's service principal as Exchange Online knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePrincipalSwitch {
    /// Registered (`New-ServicePrincipal`); absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
    /// The mailboxes it has FullAccess on (replaces the list); absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_access: Option<Vec<String>>,
}

/// The switches as they are now (what `GET /_mock/mail` answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailSwitches {
    /// By mailbox address.
    pub mailboxes: BTreeMap<String, MailboxProtocols>,
    /// By tenant ID.
    pub organization: BTreeMap<String, OrganizationSettings>,
    /// By app (client) ID: registration and FullAccess mailboxes.
    pub service_principals: BTreeMap<String, ServicePrincipalSwitch>,
    pub imap_connection_limit: usize,
    pub idle_timeout_secs: u64,
    pub max_message_size: usize,
}

/// A change to the switches (what `POST /_mock/mail` takes): every field optional; applied
/// whole, or refused whole with why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSwitchChange {
    /// `Set-CASMailbox -ImapEnabled`, by mailbox address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub imap_enabled: BTreeMap<String, bool>,
    /// `Set-CASMailbox -PopEnabled`, by mailbox address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pop_enabled: BTreeMap<String, bool>,
    /// `Set-CASMailbox -SmtpClientAuthenticationDisabled` (inverted: `true` allows SMTP AUTH),
    /// by mailbox address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub smtp_client_auth: BTreeMap<String, bool>,
    /// `Set-TransportConfig -SmtpClientAuthenticationDisabled` (inverted), every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_client_auth_tenant: Option<bool>,
    /// Entra ID security defaults, every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_defaults: Option<bool>,
    /// By app (client) ID.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_principals: BTreeMap<String, ServicePrincipalSwitch>,
    /// Folders whose UIDVALIDITY changes now (as after a folder was recreated), as
    /// `mailbox/Folder/Path` with IMAP folder names (`INBOX`, `Sent Items`, `Inbox/Projects`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bump_uid_validity: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap_connection_limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
}

impl MailSwitchChange {
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a mail switch change: {e}"))
    }
}

impl MailState {
    /// The switches as they are now.
    pub fn switches(&self) -> MailSwitches {
        let dir = self.directory.read();
        let mut mailboxes = BTreeMap::new();
        let mut organization = BTreeMap::new();
        let mut service_principals = BTreeMap::new();
        for tenant in &dir.tenants {
            for r in tenant.recipients() {
                mailboxes.insert(
                    r.address.clone(),
                    MailboxProtocols {
                        imap_enabled: r.exchange.imap_enabled,
                        pop_enabled: r.exchange.pop_enabled,
                        smtp_client_auth: r.exchange.smtp_client_auth_enabled,
                    },
                );
            }
            organization.insert(tenant.id.clone(), tenant.organization);
            for sp in &tenant.exchange_service_principals {
                service_principals.insert(
                    sp.app_id.clone(),
                    ServicePrincipalSwitch {
                        registered: Some(sp.registered),
                        full_access: Some(sp.full_access.clone()),
                    },
                );
            }
        }
        let own = self.own();
        MailSwitches {
            mailboxes,
            organization,
            service_principals,
            imap_connection_limit: own.imap_connection_limit,
            idle_timeout_secs: own.idle_timeout.as_secs(),
            max_message_size: own.max_message_size,
        }
    }

    /// Applies `change` whole, or nothing when one value is unusable.
    pub fn change_switches(&self, change: &MailSwitchChange) -> Result<MailSwitches, String> {
        let dir = self.directory.read();
        for address in change
            .imap_enabled
            .keys()
            .chain(change.pop_enabled.keys())
            .chain(change.smtp_client_auth.keys())
            .chain(
                change
                    .service_principals
                    .values()
                    .flat_map(|sp| sp.full_access.iter().flatten()),
            )
        {
            if dir.recipient(address).is_none() {
                return Err(format!("`{address}` is not a mailbox of the directory"));
            }
        }
        for app in change.service_principals.keys() {
            if !dir
                .tenants
                .iter()
                .any(|t| t.apps.iter().any(|a| a.client_id.eq_ignore_ascii_case(app)))
            {
                return Err(format!("`{app}` is not an app of the directory"));
            }
        }
        let mut bumps = Vec::new();
        for path in &change.bump_uid_validity {
            let (mailbox, folder) = path
                .split_once('/')
                .ok_or_else(|| format!("`{path}` is not mailbox/Folder"))?;
            let store = self.store.lock();
            let mb = store
                .mailbox(mailbox)
                .ok_or_else(|| format!("`{mailbox}` is not a mailbox of the store"))?;
            let seq = super::folders::imap_folder(mb, folder)
                .ok_or_else(|| format!("`{mailbox}` has no folder `{folder}`"))?;
            bumps.push((mb.address.to_ascii_lowercase(), seq));
        }
        if change.imap_connection_limit == Some(0) {
            return Err("imap_connection_limit must be at least 1".into());
        }
        if change.idle_timeout_secs == Some(0) {
            return Err("idle_timeout_secs must be at least 1".into());
        }
        if change.max_message_size == Some(0) {
            return Err("max_message_size must be at least 1".into());
        }
        drop(dir);
        self.directory.update(|d| {
            for tenant in &mut d.tenants {
                let apps = tenant.apps.clone();
                for user in &mut tenant.users {
                    apply_protocols(change, &user.upn, &mut user.exchange);
                }
                for shared in &mut tenant.shared_mailboxes {
                    apply_protocols(change, &shared.address, &mut shared.exchange);
                }
                if let Some(v) = change.smtp_client_auth_tenant {
                    tenant.organization.smtp_client_auth_enabled = v;
                }
                if let Some(v) = change.security_defaults {
                    tenant.organization.security_defaults = v;
                }
                for (app_id, sp_change) in &change.service_principals {
                    let Some(app) = apps
                        .iter()
                        .find(|a| a.client_id.eq_ignore_ascii_case(app_id))
                    else {
                        continue;
                    };
                    let index = match tenant
                        .exchange_service_principals
                        .iter()
                        .position(|sp| sp.app_id.eq_ignore_ascii_case(app_id))
                    {
                        Some(i) => i,
                        None => {
                            tenant
                                .exchange_service_principals
                                .push(ExchangeServicePrincipalSeed {
                                    app_id: app.client_id.clone(),
                                    object_id: service_principal_id(app),
                                    registered: false,
                                    full_access: Vec::new(),
                                });
                            tenant.exchange_service_principals.len() - 1
                        }
                    };
                    let sp = &mut tenant.exchange_service_principals[index];
                    if let Some(registered) = sp_change.registered {
                        sp.registered = registered;
                    }
                    if let Some(full_access) = &sp_change.full_access {
                        sp.full_access = full_access.clone();
                    }
                }
            }
        });
        {
            let mut own = self.own();
            for (mailbox, folder) in bumps {
                let next = own
                    .uid_validity
                    .get(&(mailbox.clone(), folder))
                    .copied()
                    .unwrap_or_else(|| self.epoch.wrapping_add(u32::try_from(folder).unwrap_or(0)))
                    .wrapping_add(1_000_000)
                    .max(1);
                own.uid_validity.insert((mailbox, folder), next);
            }
            if let Some(limit) = change.imap_connection_limit {
                own.imap_connection_limit = limit;
            }
            if let Some(secs) = change.idle_timeout_secs {
                own.idle_timeout = Duration::from_secs(secs);
            }
            if let Some(size) = change.max_message_size {
                own.max_message_size = size;
            }
        }
        Ok(self.switches())
    }
}

fn apply_protocols(
    change: &MailSwitchChange,
    address: &str,
    settings: &mut crate::directory::ExchangeSettings,
) {
    let find = |map: &BTreeMap<String, bool>| {
        map.iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(address))
            .map(|(_, v)| *v)
    };
    if let Some(v) = find(&change.imap_enabled) {
        settings.imap_enabled = v;
    }
    if let Some(v) = find(&change.pop_enabled) {
        settings.pop_enabled = v;
    }
    if let Some(v) = find(&change.smtp_client_auth) {
        settings.smtp_client_auth_enabled = v;
    }
}
