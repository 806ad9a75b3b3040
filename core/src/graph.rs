//! The Microsoft Graph backend: the mailbox over Graph v1.0 REST.
//!
//! Every request goes through the [`Governor`] (4 in flight and a request budget per mailbox),
//! carries a fresh token, and is retried within the server's `Retry-After` when throttled
//! (429/503/504). A 401 drops the cached token and retries once. A 403 is explained by the
//! permission the operation needs and what the token carries. A send first saves a draft and then
//! sends it by ID, so a retry after a timeout can never deliver the message twice.

pub(crate) mod permissions;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Error;
use crate::governor::Governor;
use crate::mailbox::{
    Attachment, BodyKind, Contact, ContactDraft, Event, EventDraft, Folder, FolderChanges,
    FolderRef, FreeBusy, MailboxBackend, MailboxError, MailboxRef, Message, MessageQuery,
    MessageSummary, NewMessage, Operation, Page, Recipient, TimeZone,
};
use crate::model::AccessToken;
use crate::net;
use wire::{Collection, ErrorEnvelope, WireAttachment, WireContact, WireEvent, WireMessage};

/// Graph's v1.0 root in each cloud.
pub fn default_base_url(cloud: crate::model::Cloud) -> &'static str {
    match cloud {
        crate::model::Cloud::Global => "https://graph.microsoft.com/v1.0",
        crate::model::Cloud::UsGov => "https://graph.microsoft.us/v1.0",
        crate::model::Cloud::China => "https://microsoftgraph.chinacloudapi.cn/v1.0",
    }
}

/// Where the Graph backend gets its access tokens.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    async fn token(&self) -> Result<Arc<AccessToken>, Error>;
    /// The server rejected the last token: forget it.
    async fn forget(&self);
}

/// How often a request is tried when the server is busy or unreachable.
const ATTEMPTS: u32 = 5;
/// The largest total attachment size sent inline (Graph's limit for a single request is 4 MB
/// after base64; larger files need an upload session).
const MAX_INLINE_ATTACHMENTS: usize = 3 * 1024 * 1024;
/// The largest request `$batch` takes.
const BATCH_SIZE: usize = 20;
/// Page size for listings the backend walks itself.
const WALK_PAGE: u32 = 100;

/// When a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads, and writes whose repetition changes nothing (GET, PATCH, DELETE).
    Always,
    /// Only when the server certainly did not process it (429, 503): never after a timeout.
    IfNotProcessed,
}

struct Call<'a> {
    method: Method,
    /// Relative to the base (`me/messages`), or an absolute link the server gave (`@odata.nextLink`).
    target: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    prefer: Vec<String>,
    op: Operation,
    mailbox: &'a MailboxRef,
    retry: Retry,
    /// How many requests it counts as (a `$batch` counts each inner request).
    cost: u32,
}

impl<'a> Call<'a> {
    fn new(method: Method, target: String, op: Operation, mailbox: &'a MailboxRef) -> Self {
        let retry = if method == Method::POST {
            Retry::IfNotProcessed
        } else {
            Retry::Always
        };
        Self {
            method,
            target,
            query: Vec::new(),
            body: None,
            prefer: Vec::new(),
            op,
            mailbox,
            retry,
            cost: 1,
        }
    }
    fn query(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }
    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn prefer(mut self, p: impl Into<String>) -> Self {
        self.prefer.push(p.into());
        self
    }
    fn retry(mut self, r: Retry) -> Self {
        self.retry = r;
        self
    }
}

struct Reply {
    body: Vec<u8>,
}

/// A mailbox over Microsoft Graph.
pub struct GraphMailbox {
    http: reqwest::Client,
    base: String,
    tokens: Arc<dyn TokenProvider>,
    governor: Arc<Governor>,
    /// The governor key of `MailboxRef::Me`; `None` for app-only connections (which have no own mailbox).
    me: Option<String>,
}

impl fmt::Debug for GraphMailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphMailbox")
            .field("base", &self.base)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn time_param(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Whether a permission in the token satisfies `needed` (ReadWrite covers Read).
fn grants(granted: &str, needed: &str) -> bool {
    granted.eq_ignore_ascii_case(needed)
        || granted.eq_ignore_ascii_case(&needed.replacen(".Read", ".ReadWrite", 1))
}

/// The permissions a JWT carries (`scp` or `roles`), read without verification.
fn token_permissions(jwt: &str) -> Vec<String> {
    let claims: Option<Value> = jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(claims) = claims else {
        return Vec::new();
    };
    let mut out: Vec<String> = claims["scp"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if let Some(roles) = claims["roles"].as_array() {
        out.extend(roles.iter().filter_map(|r| r.as_str().map(str::to_owned)));
    }
    out
}

impl GraphMailbox {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        tokens: Arc<dyn TokenProvider>,
        governor: Arc<Governor>,
        me: Option<String>,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            tokens,
            governor,
            me,
        }
    }

    /// `me` or `users/{address}`.
    fn root(&self, mailbox: &MailboxRef) -> Result<String, Error> {
        match mailbox {
            MailboxRef::Me if self.me.is_none() => Err(MailboxError::Invalid(
                "an app-only connection has no mailbox of its own; name the mailbox to use (--mailbox user@contoso.com)".into(),
            )
            .into()),
            MailboxRef::Me => Ok("me".into()),
            MailboxRef::User(u) => Ok(format!("users/{}", encode_segment(u))),
        }
    }

    fn key(&self, mailbox: &MailboxRef) -> String {
        match mailbox {
            MailboxRef::Me => self.me.clone().unwrap_or_default(),
            MailboxRef::User(u) => u.to_ascii_lowercase(),
        }
    }

    fn url(&self, target: &str) -> Result<String, Error> {
        if target.starts_with("http://") || target.starts_with("https://") {
            // A link from the server (or a page token from a caller): only ever back to Graph,
            // never to another host with our bearer token.
            if target.starts_with(&format!("{}/", self.base)) {
                return Ok(target.to_owned());
            }
            return Err(MailboxError::Invalid(
                "that page or state token does not belong to this mailbox's server".into(),
            )
            .into());
        }
        Ok(format!("{}/{}", self.base, target))
    }

    async fn call(&self, call: Call<'_>) -> Result<Reply, Error> {
        let key = self.key(call.mailbox);
        let url = self.url(&call.target)?;
        let mut token_refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = self.governor.acquire(&key, call.cost).await;
            let token = self.tokens.token().await?;
            let mut req = self
                .http
                .request(call.method.clone(), &url)
                .bearer_auth(token.secret.expose())
                .header("client-request-id", uuid::Uuid::new_v4().to_string());
            if !call.query.is_empty() {
                req = req.query(&call.query);
            }
            for p in &call.prefer {
                req = req.header("Prefer", p);
            }
            if let Some(body) = &call.body {
                req = req.json(body);
            }
            let sent = req.send().await;
            drop(permit);
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    let message = if e.is_timeout() {
                        "the request timed out".to_owned()
                    } else {
                        e.to_string()
                    };
                    if call.retry == Retry::Always && attempt < ATTEMPTS {
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    return Err(MailboxError::Transport(message).into());
                }
            };
            let status = resp.status();
            let retry_after = net::retry_after(resp.headers());
            let request_id = resp
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = net::read_body(resp).await.map_err(MailboxError::Protocol)?;
            if status.is_success() {
                return Ok(Reply { body });
            }
            match status.as_u16() {
                401 if !token_refreshed => {
                    token_refreshed = true;
                    self.tokens.forget().await;
                    continue;
                }
                429 | 503 | 504 => {
                    let wait = retry_after.unwrap_or_else(|| backoff(attempt));
                    self.governor.back_off(&key, wait);
                    let may_retry = call.retry == Retry::Always || status.as_u16() != 504;
                    if may_retry && attempt < ATTEMPTS {
                        continue;
                    }
                    if status.as_u16() == 429 {
                        return Err(MailboxError::Throttled { retry_after: wait }.into());
                    }
                }
                _ => {}
            }
            return Err(self
                .explain(status, &body, request_id, &call, &token)
                .into());
        }
    }

    fn explain(
        &self,
        status: StatusCode,
        body: &[u8],
        header_id: String,
        call: &Call<'_>,
        token: &AccessToken,
    ) -> MailboxError {
        let envelope: ErrorEnvelope = serde_json::from_slice(body).unwrap_or_default();
        let detail = envelope.error;
        let request_id = detail
            .inner_error
            .and_then(|i| i.request_id)
            .unwrap_or(header_id);
        let code = if detail.code.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            detail.code
        };
        let message = if detail.message.is_empty() {
            format!("HTTP {status}")
        } else {
            detail.message
        };
        match status.as_u16() {
            401 => MailboxError::Unauthorized { message },
            403 => {
                let access = match (call.mailbox, self.me.is_some()) {
                    (_, false) => permissions::Access::Application,
                    (MailboxRef::Me, true) => permissions::Access::Delegated,
                    (MailboxRef::User(_), true) => permissions::Access::Shared,
                };
                let needed = permissions::permission(call.op, access);
                let granted = token_permissions(token.secret.expose());
                if !granted.iter().any(|g| grants(g, needed)) {
                    return MailboxError::MissingPermission {
                        operation: call.op.name(),
                        permission: needed,
                        request_id,
                    };
                }
                let hint = match call.mailbox {
                    _ if message.contains("RAOP") || message.contains("AccessPolicy") => {
                        "the app is limited to some mailboxes by an application access policy (RBAC for Applications); add this mailbox to the app's scope in Exchange Online".to_owned()
                    }
                    MailboxRef::User(u) if self.me.is_some() => format!(
                        "the signed-in user has no access to {u}; an Exchange admin grants it with Add-MailboxPermission -Identity {u} -User <user> -AccessRights FullAccess (and Add-RecipientPermission … -AccessRights SendAs to send as it)"
                    ),
                    _ => "check the mailbox's permissions in Exchange".to_owned(),
                };
                MailboxError::Forbidden {
                    operation: call.op.name(),
                    message,
                    hint,
                    request_id,
                }
            }
            404 if code == "ErrorInvalidUser"
                || code == "ResourceNotFound"
                    && matches!(call.mailbox, MailboxRef::User(_))
                    && message.contains("user") =>
            {
                MailboxError::UnknownMailbox {
                    mailbox: self.key(call.mailbox),
                }
            }
            // Graph answers 400 ErrorInvalidIdMalformed for a string that cannot be an item ID:
            // for the caller, there is no such item.
            404 => MailboxError::NotFound {
                what: "item",
                id: item_id(&call.target),
                request_id,
            },
            400 if code == "ErrorInvalidIdMalformed" => MailboxError::NotFound {
                what: "item",
                id: item_id(&call.target),
                request_id,
            },
            s if s >= 500 => MailboxError::Server {
                status: s,
                code,
                message,
                request_id,
            },
            s => MailboxError::Rejected {
                status: s,
                code,
                message,
                request_id,
            },
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        let reply = self.call(call).await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| MailboxError::Protocol(format!("unexpected JSON from Graph: {e}")).into())
    }

    async fn no_content(&self, call: Call<'_>) -> Result<(), Error> {
        self.call(call).await.map(drop)
    }

    /// Walks every page of a collection.
    async fn all<T: DeserializeOwned>(&self, first: Call<'_>) -> Result<Vec<T>, Error> {
        let (op, mailbox, prefer) = (first.op, first.mailbox, first.prefer.clone());
        let mut page: Collection<T> = self.get_json(first).await?;
        let mut out = std::mem::take(&mut page.value);
        while let Some(next) = page.next_link.take() {
            let mut call = Call::new(Method::GET, next, op, mailbox);
            call.prefer = prefer.clone();
            page = self.get_json(call).await?;
            out.append(&mut page.value);
        }
        Ok(out)
    }
}

fn item_id(target: &str) -> String {
    target
        .split('?')
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .find(|s| !s.starts_with('$') && !s.is_empty())
        .unwrap_or_default()
        .to_owned()
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.min(6)).min(Duration::from_secs(30))
}

fn folder_segment(f: &FolderRef) -> String {
    match f {
        FolderRef::WellKnown(w) => wire::folder_name(*w).to_owned(),
        FolderRef::Id(id) => encode_segment(id),
    }
}

fn message_filter(q: &MessageQuery) -> Option<String> {
    let mut parts = Vec::new();
    if q.unread_only {
        parts.push("isRead eq false".to_owned());
    }
    if let Some(from) = &q.from {
        parts.push(format!(
            "from/emailAddress/address eq '{}'",
            from.replace('\'', "''")
        ));
    }
    if let Some(since) = q.since {
        parts.push(format!("receivedDateTime ge {}", time_param(since)));
    }
    if q.with_attachments {
        parts.push("hasAttachments eq true".to_owned());
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

#[async_trait]
impl MailboxBackend for GraphMailbox {
    async fn folders(&self, mailbox: &MailboxRef) -> Result<Vec<Folder>, Error> {
        let call = Call::new(
            Method::GET,
            format!("{}/mailFolders", self.root(mailbox)?),
            Operation::READ_MAIL,
            mailbox,
        )
        .query("$top", "100");
        Ok(self
            .all::<wire::MailFolder>(call)
            .await?
            .into_iter()
            .map(Folder::from)
            .collect())
    }

    async fn messages(
        &self,
        mailbox: &MailboxRef,
        query: &MessageQuery,
        page: Option<&str>,
    ) -> Result<Page<MessageSummary>, Error> {
        let call = match page {
            Some(next) => Call::new(Method::GET, next.to_owned(), Operation::READ_MAIL, mailbox),
            None => {
                let root = self.root(mailbox)?;
                let target = match &query.folder {
                    Some(f) => format!("{root}/mailFolders/{}/messages", folder_segment(f)),
                    None => format!("{root}/messages"),
                };
                let mut call = Call::new(Method::GET, target, Operation::READ_MAIL, mailbox)
                    .query("$select", wire::SUMMARY_FIELDS)
                    .query("$top", query.page_size.clamp(1, 1000).to_string())
                    .query("$orderby", "receivedDateTime desc");
                if let Some(filter) = message_filter(query) {
                    call = call.query("$filter", filter);
                }
                call
            }
        };
        let page: Collection<WireMessage> = self.get_json(call).await?;
        Ok(Page {
            items: page
                .value
                .into_iter()
                .map(WireMessage::into_summary)
                .collect(),
            next: page.next_link,
        })
    }

    async fn message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        body: Option<BodyKind>,
    ) -> Result<Message, Error> {
        let root = self.root(mailbox)?;
        let mut call = Call::new(
            Method::GET,
            format!("{root}/messages/{}", encode_segment(id)),
            Operation::READ_MAIL,
            mailbox,
        )
        .query("$select", wire::MESSAGE_FIELDS);
        if let Some(kind) = body {
            call = call.prefer(format!(
                "outlook.body-content-type=\"{}\"",
                match kind {
                    BodyKind::Text => "text",
                    BodyKind::Html => "html",
                }
            ));
        }
        let message: WireMessage = self.get_json(call).await?;
        let attachments = if message.has_attachments.unwrap_or(false) {
            let call = Call::new(
                Method::GET,
                format!("{root}/messages/{}/attachments", encode_segment(id)),
                Operation::READ_MAIL,
                mailbox,
            )
            .query("$select", "id,name,contentType,size,isInline");
            self.all::<WireAttachment>(call)
                .await?
                .iter()
                .map(WireAttachment::info)
                .collect()
        } else {
            Vec::new()
        };
        Ok(message.into_message(attachments))
    }

    async fn attachment(
        &self,
        mailbox: &MailboxRef,
        message: &str,
        attachment: &str,
    ) -> Result<Attachment, Error> {
        let target = format!(
            "{}/messages/{}/attachments/{}",
            self.root(mailbox)?,
            encode_segment(message),
            encode_segment(attachment)
        );
        let a: WireAttachment = self
            .get_json(Call::new(
                Method::GET,
                target,
                Operation::READ_MAIL,
                mailbox,
            ))
            .await?;
        let content = match &a.content_bytes {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| {
                    MailboxError::Protocol(format!("attachment content is not base64: {e}"))
                })?,
            None => {
                return Err(MailboxError::Unsupported(format!(
                    "attachment `{}` is not a file (an item or reference attachment); open it in Outlook",
                    a.name.as_deref().unwrap_or_default()
                ))
                .into());
            }
        };
        Ok(Attachment {
            info: a.info(),
            content,
        })
    }

    async fn mime(&self, mailbox: &MailboxRef, id: &str) -> Result<Vec<u8>, Error> {
        let target = format!(
            "{}/messages/{}/$value",
            self.root(mailbox)?,
            encode_segment(id)
        );
        Ok(self
            .call(Call::new(
                Method::GET,
                target,
                Operation::READ_MAIL,
                mailbox,
            ))
            .await?
            .body)
    }

    /// Fetches MIME in `$batch`es of 20; throttled inner requests are retried after their hint.
    async fn mime_many(
        &self,
        mailbox: &MailboxRef,
        ids: &[String],
    ) -> Result<Vec<Result<Vec<u8>, Error>>, Error> {
        let root = self.root(mailbox)?;
        let key = self.key(mailbox);
        let mut results: Vec<Option<Result<Vec<u8>, Error>>> =
            (0..ids.len()).map(|_| None).collect();
        for chunk_start in (0..ids.len()).step_by(BATCH_SIZE) {
            let mut pending: Vec<usize> =
                (chunk_start..(chunk_start + BATCH_SIZE).min(ids.len())).collect();
            let mut rounds = 0;
            while !pending.is_empty() {
                rounds += 1;
                let requests: Vec<Value> = pending
                    .iter()
                    .map(|&i| json!({ "id": i.to_string(), "method": "GET", "url": format!("/{root}/messages/{}/$value", encode_segment(&ids[i])) }))
                    .collect();
                let mut call =
                    Call::new(Method::POST, "$batch".into(), Operation::READ_MAIL, mailbox)
                        .json(json!({ "requests": requests }))
                        .retry(Retry::Always);
                call.cost = u32::try_from(pending.len()).unwrap_or(u32::MAX);
                let replies: wire::BatchResponses = self.get_json(call).await?;
                let mut retry_later = Vec::new();
                let mut wait: Option<Duration> = None;
                for r in replies.responses {
                    let Some(i) = r.id.parse::<usize>().ok().filter(|i| pending.contains(i)) else {
                        continue;
                    };
                    if (r.status == 429 || r.status == 503) && rounds < ATTEMPTS {
                        let hint = r
                            .headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        wait = wait.max(Some(hint.unwrap_or_else(|| backoff(rounds))));
                        retry_later.push(i);
                        continue;
                    }
                    results[i] = Some(batch_body(r, &ids[i]));
                }
                for &i in &pending {
                    if results[i].is_none() && !retry_later.contains(&i) {
                        results[i] = Some(Err(MailboxError::Protocol(format!(
                            "the batch answered nothing for message `{}`",
                            ids[i]
                        ))
                        .into()));
                    }
                }
                if let Some(w) = wait {
                    self.governor.back_off(&key, w);
                }
                pending = retry_later;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(MailboxError::Protocol("no batch answer".into()).into()))
            })
            .collect())
    }

    async fn send(&self, mailbox: &MailboxRef, message: &NewMessage) -> Result<(), Error> {
        let size: usize = message.attachments.iter().map(|a| a.content.len()).sum();
        if size > MAX_INLINE_ATTACHMENTS {
            return Err(MailboxError::Invalid(format!(
                "the attachments total {size} bytes; exgate sends at most {MAX_INLINE_ATTACHMENTS} bytes of attachments per message"
            ))
            .into());
        }
        let root = self.root(mailbox)?;
        if !message.save_to_sent {
            let body =
                json!({ "message": wire::new_message_json(message), "saveToSentItems": false });
            return self
                .no_content(
                    Call::new(
                        Method::POST,
                        format!("{root}/sendMail"),
                        Operation::SEND_MAIL,
                        mailbox,
                    )
                    .json(body),
                )
                .await;
        }
        // Save a draft, then send it by ID: sending a draft that was already sent finds nothing,
        // so retrying after a timeout cannot deliver twice.
        let draft: Value = self
            .get_json(
                Call::new(
                    Method::POST,
                    format!("{root}/messages"),
                    Operation::WRITE_MAIL,
                    mailbox,
                )
                .json(wire::new_message_json(message)),
            )
            .await?;
        let id = draft["id"]
            .as_str()
            .ok_or_else(|| MailboxError::Protocol("the draft came back without an id".into()))?
            .to_owned();
        let target = format!("{root}/messages/{}/send", encode_segment(&id));
        for attempt in 1..=ATTEMPTS {
            match self
                .no_content(Call::new(
                    Method::POST,
                    target.clone(),
                    Operation::SEND_MAIL,
                    mailbox,
                ))
                .await
            {
                Ok(()) => return Ok(()),
                Err(Error::Mailbox(MailboxError::NotFound { .. })) if attempt > 1 => return Ok(()),
                Err(Error::Mailbox(MailboxError::Transport(_) | MailboxError::Server { .. }))
                    if attempt < ATTEMPTS =>
                {
                    tracing::warn!(
                        attempt,
                        "sending the draft failed in transit; sending it again by ID"
                    );
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(MailboxError::Transport("the message could not be sent".into()).into())
    }

    async fn reply(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        comment: &str,
        all: bool,
    ) -> Result<(), Error> {
        let action = if all { "replyAll" } else { "reply" };
        let target = format!(
            "{}/messages/{}/{action}",
            self.root(mailbox)?,
            encode_segment(id)
        );
        self.no_content(
            Call::new(Method::POST, target, Operation::SEND_MAIL, mailbox)
                .json(json!({ "comment": comment })),
        )
        .await
    }

    async fn forward(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &[Recipient],
        comment: &str,
    ) -> Result<(), Error> {
        let target = format!(
            "{}/messages/{}/forward",
            self.root(mailbox)?,
            encode_segment(id)
        );
        let body = json!({ "comment": comment, "toRecipients": to.iter().map(wire::recipient_json).collect::<Vec<_>>() });
        self.no_content(Call::new(Method::POST, target, Operation::SEND_MAIL, mailbox).json(body))
            .await
    }

    async fn move_message(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        to: &FolderRef,
    ) -> Result<String, Error> {
        let target = format!(
            "{}/messages/{}/move",
            self.root(mailbox)?,
            encode_segment(id)
        );
        let destination = match to {
            FolderRef::WellKnown(w) => wire::folder_name(*w).to_owned(),
            FolderRef::Id(f) => f.clone(),
        };
        let moved: Value = self
            .get_json(
                Call::new(Method::POST, target, Operation::WRITE_MAIL, mailbox)
                    .json(json!({ "destinationId": destination })),
            )
            .await?;
        Ok(moved["id"].as_str().unwrap_or(id).to_owned())
    }

    async fn delete_message(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        let target = format!("{}/messages/{}", self.root(mailbox)?, encode_segment(id));
        self.no_content(Call::new(
            Method::DELETE,
            target,
            Operation::WRITE_MAIL,
            mailbox,
        ))
        .await
    }

    async fn set_read(&self, mailbox: &MailboxRef, id: &str, read: bool) -> Result<(), Error> {
        let target = format!("{}/messages/{}", self.root(mailbox)?, encode_segment(id));
        self.no_content(
            Call::new(Method::PATCH, target, Operation::WRITE_MAIL, mailbox)
                .json(json!({ "isRead": read })),
        )
        .await
    }

    async fn changes(
        &self,
        mailbox: &MailboxRef,
        folder: &FolderRef,
        state: Option<&str>,
    ) -> Result<FolderChanges, Error> {
        let mut call = match state {
            Some(link) => Call::new(Method::GET, link.to_owned(), Operation::READ_MAIL, mailbox),
            None => Call::new(
                Method::GET,
                format!(
                    "{}/mailFolders/{}/messages/delta",
                    self.root(mailbox)?,
                    folder_segment(folder)
                ),
                Operation::READ_MAIL,
                mailbox,
            )
            .query("$select", wire::SUMMARY_FIELDS),
        };
        let (mut changed, mut removed) = (Vec::new(), Vec::new());
        loop {
            let page: Collection<WireMessage> = self.get_json(call).await?;
            for m in page.value {
                if m.removed.is_some() {
                    removed.push(m.id);
                } else {
                    changed.push(m.into_summary());
                }
            }
            match (page.next_link, page.delta_link) {
                (Some(next), _) => {
                    call = Call::new(Method::GET, next, Operation::READ_MAIL, mailbox)
                }
                (None, Some(delta)) => {
                    return Ok(FolderChanges {
                        changed,
                        removed,
                        state: delta,
                    });
                }
                (None, None) => {
                    return Err(MailboxError::Protocol(
                        "the delta answer ended without a deltaLink".into(),
                    )
                    .into());
                }
            }
        }
    }

    async fn events(
        &self,
        mailbox: &MailboxRef,
        start: OffsetDateTime,
        end: OffsetDateTime,
        time_zone: Option<&TimeZone>,
    ) -> Result<Vec<Event>, Error> {
        let mut call = Call::new(
            Method::GET,
            format!("{}/calendarView", self.root(mailbox)?),
            Operation::READ_CALENDAR,
            mailbox,
        )
        .query("startDateTime", time_param(start))
        .query("endDateTime", time_param(end))
        .query("$select", wire::EVENT_FIELDS)
        .query("$orderby", "start/dateTime")
        .query("$top", WALK_PAGE.to_string());
        if let Some(tz) = time_zone {
            call = call.prefer(format!("outlook.timezone=\"{}\"", wire::zone_name(tz)));
        }
        Ok(self
            .all::<WireEvent>(call)
            .await?
            .into_iter()
            .map(|e| e.into_event(time_zone))
            .collect::<Result<_, _>>()?)
    }

    async fn create_event(&self, mailbox: &MailboxRef, event: &EventDraft) -> Result<Event, Error> {
        if event.subject.is_none() || event.start.is_none() || event.end.is_none() {
            return Err(MailboxError::Invalid(
                "a new event needs a subject, a start and an end".into(),
            )
            .into());
        }
        let call = Call::new(
            Method::POST,
            format!("{}/events", self.root(mailbox)?),
            Operation::WRITE_CALENDAR,
            mailbox,
        )
        .json(wire::event_json(event));
        let asked = event.start.as_ref().map(|t| &t.time_zone);
        Ok(self.get_json::<WireEvent>(call).await?.into_event(asked)?)
    }

    async fn update_event(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        change: &EventDraft,
    ) -> Result<Event, Error> {
        let target = format!("{}/events/{}", self.root(mailbox)?, encode_segment(id));
        Ok(self
            .get_json::<WireEvent>(
                Call::new(Method::PATCH, target, Operation::WRITE_CALENDAR, mailbox)
                    .json(wire::event_json(change)),
            )
            .await?
            .into_event(change.start.as_ref().map(|t| &t.time_zone))?)
    }

    async fn delete_event(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        let target = format!("{}/events/{}", self.root(mailbox)?, encode_segment(id));
        self.no_content(Call::new(
            Method::DELETE,
            target,
            Operation::WRITE_CALENDAR,
            mailbox,
        ))
        .await
    }

    async fn free_busy(
        &self,
        mailbox: &MailboxRef,
        who: &[String],
        start: OffsetDateTime,
        end: OffsetDateTime,
        interval_minutes: u32,
    ) -> Result<Vec<FreeBusy>, Error> {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        let utc = |t: OffsetDateTime| {
            t.to_offset(time::UtcOffset::UTC)
                .format(&fmt)
                .unwrap_or_default()
        };
        let body = json!({
            "schedules": who,
            "startTime": { "dateTime": utc(start), "timeZone": "UTC" },
            "endTime": { "dateTime": utc(end), "timeZone": "UTC" },
            "availabilityViewInterval": interval_minutes,
        });
        let call = Call::new(
            Method::POST,
            format!("{}/calendar/getSchedule", self.root(mailbox)?),
            Operation::READ_CALENDAR,
            mailbox,
        )
        .json(body)
        .retry(Retry::Always);
        let answer: Collection<wire::ScheduleInformation> = self.get_json(call).await?;
        Ok(answer
            .value
            .into_iter()
            .map(|s| s.into_free_busy(interval_minutes))
            .collect::<Result<_, _>>()?)
    }

    async fn contacts(
        &self,
        mailbox: &MailboxRef,
        page: Option<&str>,
    ) -> Result<Page<Contact>, Error> {
        let call = match page {
            Some(next) => Call::new(
                Method::GET,
                next.to_owned(),
                Operation::READ_CONTACTS,
                mailbox,
            ),
            None => Call::new(
                Method::GET,
                format!("{}/contacts", self.root(mailbox)?),
                Operation::READ_CONTACTS,
                mailbox,
            )
            .query("$select", wire::CONTACT_FIELDS)
            .query("$top", WALK_PAGE.to_string()),
        };
        let page: Collection<WireContact> = self.get_json(call).await?;
        Ok(Page {
            items: page.value.into_iter().map(Contact::from).collect(),
            next: page.next_link,
        })
    }

    async fn contact(&self, mailbox: &MailboxRef, id: &str) -> Result<Contact, Error> {
        let target = format!("{}/contacts/{}", self.root(mailbox)?, encode_segment(id));
        Ok(self
            .get_json::<WireContact>(
                Call::new(Method::GET, target, Operation::READ_CONTACTS, mailbox)
                    .query("$select", wire::CONTACT_FIELDS),
            )
            .await?
            .into())
    }

    async fn create_contact(
        &self,
        mailbox: &MailboxRef,
        contact: &ContactDraft,
    ) -> Result<Contact, Error> {
        if contact.display_name.is_none()
            && contact.given_name.is_none()
            && contact.emails.is_none()
        {
            return Err(MailboxError::Invalid(
                "a new contact needs at least a name or an email address".into(),
            )
            .into());
        }
        let call = Call::new(
            Method::POST,
            format!("{}/contacts", self.root(mailbox)?),
            Operation::WRITE_CONTACTS,
            mailbox,
        )
        .json(wire::contact_json(contact));
        Ok(self.get_json::<WireContact>(call).await?.into())
    }

    async fn update_contact(
        &self,
        mailbox: &MailboxRef,
        id: &str,
        change: &ContactDraft,
    ) -> Result<Contact, Error> {
        let target = format!("{}/contacts/{}", self.root(mailbox)?, encode_segment(id));
        Ok(self
            .get_json::<WireContact>(
                Call::new(Method::PATCH, target, Operation::WRITE_CONTACTS, mailbox)
                    .json(wire::contact_json(change)),
            )
            .await?
            .into())
    }

    async fn delete_contact(&self, mailbox: &MailboxRef, id: &str) -> Result<(), Error> {
        let target = format!("{}/contacts/{}", self.root(mailbox)?, encode_segment(id));
        self.no_content(Call::new(
            Method::DELETE,
            target,
            Operation::WRITE_CONTACTS,
            mailbox,
        ))
        .await
    }
}

/// One `$batch` answer's body: non-JSON bodies (MIME) come base64-encoded in a JSON string.
fn batch_body(r: wire::BatchResponse, id: &str) -> Result<Vec<u8>, Error> {
    if !(200..300).contains(&r.status) {
        let message = r.body["error"]["message"]
            .as_str()
            .unwrap_or("failed")
            .to_owned();
        let code = r.body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        return Err(match r.status {
            404 => MailboxError::NotFound {
                what: "message",
                id: id.to_owned(),
                request_id: String::new(),
            },
            429 => MailboxError::Throttled {
                retry_after: Duration::from_secs(1),
            },
            s => MailboxError::Rejected {
                status: s,
                code,
                message,
                request_id: String::new(),
            },
        }
        .into());
    }
    match r.body {
        Value::String(s) => Ok(base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .unwrap_or_else(|_| s.into_bytes())),
        other => Ok(other.to_string().into_bytes()),
    }
}
