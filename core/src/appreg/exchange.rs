//! Exchange Online's admin API, the one Exchange Online PowerShell (v3) speaks: a cmdlet and its
//! parameters posted as JSON to `{root}/{tenant ID}/InvokeCommand` with a delegated token for
//! Office 365 Exchange Online (`Exchange.ManageV2`).

use serde_json::{Map, Value, json};

use super::RegistrationError;
use crate::model::Cloud;
use crate::secret::Secret;
use crate::setup::Cmdlet;

/// Exchange Online PowerShell's public client ("Microsoft Exchange REST API Based Powershell").
pub const EXCHANGE_BOOTSTRAP_CLIENT: &str = "fb78d390-0c51-40cd-8e17-fdbfab77341b";

/// The admin API's root in each cloud.
pub fn default_admin_url(cloud: Cloud) -> String {
    format!(
        "{}/adminapi/beta",
        crate::model::Resource::Ews.identifier(cloud)
    )
}

/// Runs cmdlets in one tenant.
#[derive(Debug)]
pub struct ExchangeAdmin {
    http: reqwest::Client,
    url: String,
    token: Secret,
}

impl RegistrationError {
    /// Whether a cmdlet failed because what it makes exists already (a rerun).
    pub fn already_exists(&self) -> bool {
        matches!(self, Self::Exchange { message, .. } if message.contains("already exists"))
    }
}

impl ExchangeAdmin {
    pub fn new(http: reqwest::Client, root: &str, tenant_id: &str, token: Secret) -> Self {
        Self {
            http,
            url: format!("{}/{tenant_id}/InvokeCommand", root.trim_end_matches('/')),
            token,
        }
    }

    /// The request body for `cmdlet`.
    pub fn body(cmdlet: &Cmdlet) -> Value {
        let parameters: Map<String, Value> = cmdlet
            .parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        json!({"CmdletInput": {"CmdletName": cmdlet.name, "Parameters": parameters}})
    }

    /// Runs `cmdlet`; answers its output (`value`).
    pub async fn invoke(&self, cmdlet: &Cmdlet) -> Result<Value, RegistrationError> {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&Self::body(cmdlet))
            .send()
            .await
            .map_err(|e| RegistrationError::Transport {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let body =
            crate::net::read_body(resp)
                .await
                .map_err(|message| RegistrationError::Exchange {
                    cmdlet: cmdlet.name.into(),
                    message,
                })?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let message = v
                .pointer("/error/innererror/message")
                .or_else(|| v.pointer("/error/message"))
                .and_then(Value::as_str)
                .map(ToOwned::to_owned)
                .unwrap_or_else(|| format!("HTTP {status}"));
            let fix = if status == 401 || status == 403 {
                "; the signed-in account needs the Exchange Administrator role (or Organization \
                 Management in Exchange)"
            } else {
                ""
            };
            return Err(RegistrationError::Exchange {
                cmdlet: cmdlet.name.into(),
                message: format!("{message}{fix}"),
            });
        }
        Ok(v.get("value").cloned().unwrap_or(v))
    }
}
