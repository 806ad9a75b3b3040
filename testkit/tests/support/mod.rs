//! Helpers shared by the test binaries that talk to the mock over HTTP.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An app-only Graph token of the daemon app.
pub async fn app_token(m: &MockMicrosoft) -> String {
    let body: Value = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {body}"))
        .to_string()
}

/// A delegated Graph token of the CLI app for Adele (password grant).
pub async fn adele_token(m: &MockMicrosoft) -> String {
    let body: Value = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(&[
            ("grant_type", "password"),
            ("client_id", PUBLIC_APP),
            ("username", ADELE),
            ("password", ADELE_PASSWORD),
            ("scope", "User.Read"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(self.status.is_success(), "{} {}", self.status, self.text());
        &self.body
    }

    /// Asserts a Graph error with this status and code; answers its message.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> &str {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(self.body["error"]["code"], code, "{}", self.text());
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    /// The items of a collection answer.
    pub fn values(&self) -> Vec<Value> {
        self.body["value"].as_array().cloned().unwrap_or_default()
    }
}

/// A Graph client for one token; `send` gives the transport error too.
pub struct Graph {
    pub url: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Graph {
    pub async fn app(m: &MockMicrosoft) -> Graph {
        Graph {
            url: m.graph_url(),
            token: app_token(m).await,
            client: http(),
        }
    }

    pub async fn adele(m: &MockMicrosoft) -> Graph {
        Graph {
            url: m.graph_url(),
            token: adele_token(m).await,
            client: http(),
        }
    }

    pub fn absolute(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, reqwest::Error> {
        self.send_with(method, path, body, &[]).await
    }

    /// [`Graph::send`] with extra request headers (`Prefer`, …).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .client
            .request(method, self.absolute(path))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?.to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            bytes,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await.unwrap()
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send_with(Method::GET, path, None, headers)
            .await
            .unwrap()
    }

    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        self.send_with(Method::POST, path, Some(body), headers)
            .await
            .unwrap()
    }
}
