//! Entra's switches as data: what the `exgate-mock` flags and `GET/POST /_mock/entra` read and
//! change in a running mock (the Rust methods of [`crate::MockMicrosoft`] change the same
//! state).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::EntraState;

/// The switches as they are now (`GET /_mock/entra`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraSwitches {
    /// `expires_in` of issued tokens, seconds.
    pub token_lifetime: u64,
    /// `refresh_in` added to token answers (`None`: not added).
    pub refresh_in: Option<u64>,
    /// A refresh spends the refresh token it used.
    pub strict_rotation: bool,
    /// Client IDs (lower case) whose consent is revoked.
    pub consent_revoked: Vec<String>,
    /// UPNs (lower case) that must use MFA.
    pub mfa_required: Vec<String>,
    /// "Allow public client flows", by client ID, for every app of the directory.
    pub public_client_flows: BTreeMap<String, bool>,
    /// Seconds Entra's clock is off: the `Date` of its answers and the `iat`/`nbf`/`exp` of the
    /// tokens it issues (0: on time).
    #[serde(default)]
    pub clock_skew_secs: i64,
}

/// A change of the switches (`POST /_mock/entra`): every member is optional, an absent one
/// stays as it is; lists replace the whole list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraSwitchChange {
    /// Seconds, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime: Option<u64>,
    /// Seconds; 0 stops adding `refresh_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_rotation: Option<bool>,
    /// The client IDs whose consent is revoked (the others get their seeded consent back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_revoked: Option<Vec<String>>,
    /// The UPNs that must use MFA (the others need not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_required: Option<Vec<String>>,
    /// "Allow public client flows" of these apps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub public_client_flows: BTreeMap<String, bool>,
    /// Seconds Entra's clock is off (negative: behind); 0 puts it right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_secs: Option<i64>,
}

impl EntraSwitchChange {
    /// Reads a change from JSON (`POST /_mock/entra`'s body).
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a switch change: {e}"))
    }
}

impl EntraState {
    /// The switches as they are now.
    pub fn switches(&self) -> EntraSwitches {
        let inner = self.lock();
        let mut consent_revoked: Vec<String> = inner.consent_revoked.iter().cloned().collect();
        consent_revoked.sort();
        let mut mfa_required: Vec<String> = inner.mfa_users.iter().cloned().collect();
        mfa_required.sort();
        let public_client_flows = inner
            .dir
            .tenants
            .iter()
            .flat_map(|t| &t.apps)
            .map(|a| (a.client_id.to_ascii_lowercase(), a.public_client_flows))
            .collect();
        EntraSwitches {
            token_lifetime: inner.token_lifetime,
            refresh_in: inner.refresh_in,
            strict_rotation: inner.strict_rotation,
            consent_revoked,
            mfa_required,
            public_client_flows,
            clock_skew_secs: inner.clock_skew,
        }
    }

    /// Applies `change` entirely, or nothing of it when a value is unusable (a lifetime of
    /// 0, an unknown client ID or UPN); answers the switches as they are then.
    pub fn change_switches(&self, change: &EntraSwitchChange) -> Result<EntraSwitches, String> {
        {
            let inner = self.lock();
            let apps: Vec<String> = inner
                .dir
                .tenants
                .iter()
                .flat_map(|t| &t.apps)
                .map(|a| a.client_id.to_ascii_lowercase())
                .collect();
            let users: Vec<String> = inner
                .dir
                .tenants
                .iter()
                .flat_map(|t| &t.users)
                .map(|u| u.upn.to_ascii_lowercase())
                .collect();
            if change
                .clock_skew_secs
                .is_some_and(|s| s.unsigned_abs() > 10 * 365 * 86_400)
            {
                return Err("clock_skew_secs must be within ten years".into());
            }
            if change.token_lifetime == Some(0) {
                return Err("token_lifetime must be at least 1 second".into());
            }
            let client_ids = change
                .consent_revoked
                .iter()
                .flatten()
                .chain(change.public_client_flows.keys());
            for id in client_ids {
                if !apps.contains(&id.to_ascii_lowercase()) {
                    return Err(format!("no app has the client ID `{id}`"));
                }
            }
            for upn in change.mfa_required.iter().flatten() {
                if !users.contains(&upn.to_ascii_lowercase()) {
                    return Err(format!("no user has the UPN `{upn}`"));
                }
            }
        }
        {
            let mut inner = self.lock();
            if let Some(secs) = change.token_lifetime {
                inner.token_lifetime = secs;
            }
            if let Some(secs) = change.refresh_in {
                inner.refresh_in = (secs > 0).then_some(secs);
            }
            if let Some(strict) = change.strict_rotation {
                inner.strict_rotation = strict;
            }
            if let Some(ids) = &change.consent_revoked {
                inner.consent_revoked = ids.iter().map(|i| i.to_ascii_lowercase()).collect();
            }
            if let Some(skew) = change.clock_skew_secs {
                inner.clock_skew = skew;
            }
            if let Some(upns) = &change.mfa_required {
                inner.mfa_users = upns.iter().map(|u| u.to_ascii_lowercase()).collect();
            }
        }
        for (id, enabled) in &change.public_client_flows {
            self.directory().set_public_client_flows(id, *enabled);
        }
        Ok(self.switches())
    }
}
