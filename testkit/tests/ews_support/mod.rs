//! Helpers of the EWS test binaries: raw SOAP over reqwest, every answer kept and validated
//! against the EWS schema in one xmllint call at the end of each test.
#![allow(dead_code, unreachable_pub)]

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::seed::*;
use reqwest::StatusCode;
use serde_json::Value;

pub const T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub const M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A token of the mock Entra for Exchange Online: delegated (password grant) for `user`, or
/// app-only (`None`) for the daemon app.
pub async fn outlook_token(m: &MockMicrosoft, user: Option<(&str, &str)>) -> String {
    let form: Vec<(&str, &str)> = match user {
        Some((upn, password)) => vec![
            ("grant_type", "password"),
            ("client_id", PUBLIC_APP),
            ("username", upn),
            ("password", password),
            (
                "scope",
                "https://outlook.office365.com/EWS.AccessAsUser.All",
            ),
        ],
        None => vec![
            ("grant_type", "client_credentials"),
            ("client_id", DAEMON_APP),
            ("client_secret", DAEMON_APP_SECRET),
            ("scope", "https://outlook.office365.com/.default"),
        ],
    };
    let body: Value = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(&form)
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

/// A SOAP 1.1 request with `RequestServerVersion` Exchange2016 and `extra` header elements.
pub fn envelope(extra_header: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="{T}" xmlns:m="{M}"><soap:Header><t:RequestServerVersion Version="Exchange2016"/>{extra_header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
}

pub fn impersonate(address: &str) -> String {
    format!(
        "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{address}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
    )
}

/// An answer: status, headers, text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// Every `ResponseCode` in order.
    pub fn codes(&self) -> Vec<String> {
        all_between(&self.text, "<m:ResponseCode>", "</m:ResponseCode>")
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert!(self.codes().iter().all(|c| c == "NoError"), "{}", self.text);
        self
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// The values of attribute `attr` of every element `<t:{tag} …>`.
    pub fn attrs(&self, tag: &str, attr: &str) -> Vec<String> {
        attrs(&self.text, tag, attr)
    }

    /// The texts of every `<t:{tag}>…</t:{tag}>` (or `m:`).
    pub fn texts(&self, tag: &str) -> Vec<String> {
        let mut out = all_between(&self.text, &format!("<t:{tag}>"), &format!("</t:{tag}>"));
        out.extend(all_between(
            &self.text,
            &format!("<m:{tag}>"),
            &format!("</m:{tag}>"),
        ));
        out
    }

    pub fn count(&self, needle: &str) -> usize {
        self.text.matches(needle).count()
    }
}

pub fn all_between(text: &str, start: &str, end: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(start) {
        rest = &rest[i + start.len()..];
        if let Some(j) = rest.find(end) {
            out.push(rest[..j].to_string());
            rest = &rest[j..];
        }
    }
    out
}

pub fn attrs(text: &str, tag: &str, attr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in text.split(&format!("<t:{tag} ")).skip(1) {
        let head = element.split('>').next().unwrap_or_default();
        if let Some(v) = all_between(head, &format!("{attr}=\""), "\"").first() {
            out.push(v.clone());
        }
    }
    out
}

/// Credentials a request carries.
#[derive(Debug, Clone)]
pub enum Cred {
    Basic(String, String),
    Bearer(String),
    None,
}

/// A client of the mock EWS that keeps every SOAP answer for the schema check.
pub struct Ews {
    pub url: String,
    pub client: reqwest::Client,
    pub cred: Cred,
    pub anchor: Option<String>,
    pub bodies: Mutex<Vec<String>>,
}

impl Ews {
    pub fn new(m: &MockMicrosoft, cred: Cred) -> Self {
        Self {
            url: m.ews_url(),
            client: http(),
            cred,
            anchor: None,
            bodies: Mutex::new(Vec::new()),
        }
    }

    pub fn basic(m: &MockMicrosoft, user: &str, password: &str) -> Self {
        Self::new(m, Cred::Basic(user.into(), password.into()))
    }

    pub fn with(&self, cred: Cred) -> Self {
        Self {
            url: self.url.clone(),
            client: self.client.clone(),
            cred,
            anchor: None,
            bodies: Mutex::new(Vec::new()),
        }
    }

    /// Sends a raw request body.
    pub async fn raw(&self, xml: String) -> Reply {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(xml);
        req = match &self.cred {
            Cred::Basic(u, p) => req.header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))),
            ),
            Cred::Bearer(t) => req.bearer_auth(t),
            Cred::None => req,
        };
        if let Some(a) = &self.anchor {
            req = req.header("X-AnchorMailbox", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        if text.contains("schemas.xmlsoap.org/soap/envelope") {
            self.bodies.lock().unwrap().push(text.clone());
        }
        Reply {
            status,
            headers,
            text,
        }
    }

    /// Sends `body` in an envelope with `header` elements.
    pub async fn call_with(&self, header: &str, body: &str) -> Reply {
        self.raw(envelope(header, body)).await
    }

    pub async fn call(&self, body: &str) -> Reply {
        self.call_with("", body).await
    }

    /// Every SOAP answer received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Validates every SOAP answer of the clients in one xmllint call.
pub fn validate_all(clients: &[&Ews]) {
    let bodies: Vec<String> = clients.iter().flat_map(|c| c.bodies()).collect();
    assert!(!bodies.is_empty(), "no SOAP answer to validate");
    exgate_testkit::xsd::validate_soap(&bodies).unwrap_or_else(|e| panic!("{e}"));
}

pub fn find_items(folder: &str, shape: &str, view: &str, extra: &str) -> String {
    format!(
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>{shape}</t:BaseShape></m:ItemShape>{view}{extra}<m:ParentFolderIds>{folder}</m:ParentFolderIds></m:FindItem>"#
    )
}

pub fn dfid(name: &str) -> String {
    format!(r#"<t:DistinguishedFolderId Id="{name}"/>"#)
}

pub fn dfid_of(name: &str, mailbox: &str) -> String {
    format!(
        r#"<t:DistinguishedFolderId Id="{name}"><t:Mailbox><t:EmailAddress>{mailbox}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"#
    )
}

pub fn get_item(id: &str, shape: &str) -> String {
    format!(
        r#"<m:GetItem><m:ItemShape>{shape}</m:ItemShape><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"#
    )
}

/// CreateItem of a message.
pub fn create_message(disposition: &str, subject: &str, to: &[&str], body: &str) -> String {
    let to: String = to
        .iter()
        .map(|a| format!("<t:Mailbox><t:EmailAddress>{a}</t:EmailAddress></t:Mailbox>"))
        .collect();
    let to = if to.is_empty() {
        String::new()
    } else {
        format!("<t:ToRecipients>{to}</t:ToRecipients>")
    };
    format!(
        r#"<m:CreateItem MessageDisposition="{disposition}"><m:Items><t:Message><t:Subject>{subject}</t:Subject><t:Body BodyType="Text">{body}</t:Body>{to}</t:Message></m:Items></m:CreateItem>"#
    )
}
