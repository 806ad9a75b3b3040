//! The Graph requests of a registration and where they go: [`LiveGraph`] sends them with the
//! administrator's token, [`DryRun`] records them and answers as an empty tenant would.

use std::fmt;

use serde_json::{Value, json};

use super::{RegistrationError, explain_denied};
use crate::secret::Secret;

/// One Graph request: method, path below the v1.0 root (with its query), JSON body. Bodies
/// never hold a secret: `addPassword`'s secret is in its answer, a certificate's upload is its
/// public part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphCall {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Value>,
}

impl GraphCall {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            body: None,
        }
    }
    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            body: Some(body),
        }
    }
    pub fn patch(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: "PATCH",
            path: path.into(),
            body: Some(body),
        }
    }
}

impl fmt::Display for GraphCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Where a registration's requests go.
#[async_trait::async_trait]
pub trait Transport: Send {
    async fn send(&mut self, call: &GraphCall) -> Result<Value, RegistrationError>;
    /// Whether nothing is really sent (answers are stand-ins).
    fn is_dry_run(&self) -> bool {
        false
    }
}

/// Sends to Graph with a bearer token.
#[derive(Debug)]
pub struct LiveGraph {
    http: reqwest::Client,
    /// The v1.0 root, without a trailing slash.
    base: String,
    token: Secret,
}

impl LiveGraph {
    pub fn new(http: reqwest::Client, base: &str, token: Secret) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }
}

/// Graph's `{"error": {"code", "message"}}`.
fn graph_error(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    (
        v.pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        v.pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned(),
    )
}

#[async_trait::async_trait]
impl Transport for LiveGraph {
    async fn send(&mut self, call: &GraphCall) -> Result<Value, RegistrationError> {
        let url = format!("{}{}", self.base, call.path);
        let method =
            reqwest::Method::from_bytes(call.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| RegistrationError::Transport {
            url: format!(
                "{}{}",
                self.base,
                call.path.split('?').next().unwrap_or_default()
            ),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body =
            crate::net::read_body(resp)
                .await
                .map_err(|message| RegistrationError::Protocol {
                    request: call.to_string(),
                    message,
                })?;
        if !(200..300).contains(&status) {
            let (code, message) = graph_error(&body);
            let fix = (status == 403).then(|| explain_denied(call.method, &call.path));
            return Err(RegistrationError::Graph {
                request: call.to_string(),
                status,
                code,
                message,
                fix,
            });
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| RegistrationError::Protocol {
            request: call.to_string(),
            message: e.to_string(),
        })
    }
}

/// Records every request and answers as an empty tenant would, with stand-in IDs.
#[derive(Debug, Default)]
pub struct DryRun {
    pub calls: Vec<GraphCall>,
}

#[async_trait::async_trait]
impl Transport for DryRun {
    async fn send(&mut self, call: &GraphCall) -> Result<Value, RegistrationError> {
        self.calls.push(call.clone());
        let path = call.path.split('?').next().unwrap_or_default();
        Ok(match (call.method, path) {
            ("GET", "/organization") => json!({"value": [{"id": "{tenant ID}"}]}),
            ("GET", _) => json!({"value": []}),
            ("POST", "/applications") => {
                json!({"id": "{application object ID}", "appId": "{client ID}"})
            }
            ("POST", "/servicePrincipals") => json!({"id": "{service principal ID}"}),
            ("POST", p) if p.ends_with("/addPassword") => {
                json!({"keyId": "{key ID}", "secretText": ""})
            }
            _ => json!({}),
        })
    }

    fn is_dry_run(&self) -> bool {
        true
    }
}
