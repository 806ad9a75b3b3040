//! The Microsoft Graph backend: the mailbox over Graph v1.0 REST.
//!
//! Requests go through the [`Pipeline`] (governor slot, credential, `Retry-After` within the
//! cap, one refresh after a 401); [`explain`] classifies Graph's answers and turns refusals into
//! errors that name the fix. The capabilities live apart: [`mail`] (paging, `$batch` MIME,
//! sends that never deliver twice, upload sessions), [`calendar`] (and free/busy), [`contacts`],
//! change notifications ([`subscriptions`]: `crate::notify::Push`; [`notifications`]: what Graph
//! POSTs back).
//! Every ID is one path segment; every page or sync token is sealed to its mailbox and query.

mod calendar;
mod contacts;
mod explain;
mod mail;
pub mod notifications;
pub(crate) mod permissions;
pub mod subscriptions;
pub(crate) mod wire;

use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

use crate::Error;
use crate::mailbox::{MailboxError, MailboxRef, Operation};
use crate::pipeline::{self, Answer, Failure, PageTokens, Pipeline, Request, Retry, TokenScope};
use wire::Collection;

pub use explain::GraphAnswers;

/// Graph's v1.0 root in each cloud.
pub fn default_base_url(cloud: crate::model::Cloud) -> &'static str {
    match cloud {
        crate::model::Cloud::Global => "https://graph.microsoft.com/v1.0",
        crate::model::Cloud::UsGov => "https://graph.microsoft.us/v1.0",
        crate::model::Cloud::China => "https://microsoftgraph.chinacloudapi.cn/v1.0",
    }
}

/// The most pages one listing walks before it is taken for a loop.
const MAX_PAGES: usize = 100_000;

/// Where a call goes.
enum Target {
    /// Below the Graph root, already encoded (`me/messages/AAMk%3D`).
    Path(String),
    /// A link Graph gave (`@odata.nextLink`), checked to point back at the Graph root.
    Link(String),
}

/// One Graph call, before the pipeline sends it.
struct Call<'a> {
    method: Method,
    target: Target,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    prefer: Vec<String>,
    op: Operation,
    mailbox: &'a MailboxRef,
    retry: Retry,
    /// How many requests it counts as (a `$batch` counts each inner request).
    cost: u32,
    /// What the path names, for "not found" errors.
    item: Option<String>,
    /// A whole-answer limit below the item limit.
    answer_limit: Option<u64>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: String, op: Operation, mailbox: &'a MailboxRef) -> Self {
        Self::to(method, Target::Path(path), op, mailbox)
    }

    fn link(link: String, op: Operation, mailbox: &'a MailboxRef) -> Self {
        Self::to(Method::GET, Target::Link(link), op, mailbox)
    }

    fn to(method: Method, target: Target, op: Operation, mailbox: &'a MailboxRef) -> Self {
        let retry = Retry::for_method(&method);
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
            item: None,
            answer_limit: None,
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
    fn item(mut self, id: &str) -> Self {
        self.item = Some(id.to_owned());
        self
    }
}

/// A mailbox over Microsoft Graph.
pub struct GraphMailbox {
    pipe: Pipeline,
    /// The v1.0 root, ending in `/`.
    base: Url,
    pages: PageTokens,
    /// The governor key of `MailboxRef::Me`; `None` for app-only connections (which have no own mailbox).
    me: Option<String>,
}

impl fmt::Debug for GraphMailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphMailbox")
            .field("base", &self.base.as_str())
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

fn time_param(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl GraphMailbox {
    /// `pipe` must classify with [`GraphAnswers`].
    pub fn new(
        pipe: Pipeline,
        base: &str,
        pages: PageTokens,
        me: Option<String>,
    ) -> Result<Self, Error> {
        let base = Url::parse(&format!("{}/", base.trim_end_matches('/'))).map_err(|e| {
            MailboxError::Invalid(format!("the Graph URL `{base}` is not a URL: {e}"))
        })?;
        Ok(Self {
            pipe,
            base,
            pages,
            me,
        })
    }

    /// `me` or `users/{address}`.
    fn root(&self, mailbox: &MailboxRef) -> Result<String, Error> {
        match mailbox {
            MailboxRef::Me if self.me.is_none() => Err(MailboxError::Invalid(
                "an app-only connection has no mailbox of its own; name the mailbox to use (--mailbox user@contoso.com)".into(),
            )
            .into()),
            MailboxRef::Me => Ok("me".into()),
            MailboxRef::User(u) => Ok(format!("users/{}", pipeline::segment("mailbox", u)?)),
        }
    }

    /// The governor key of a mailbox: its address, lowercased.
    fn key(&self, mailbox: &MailboxRef) -> String {
        match mailbox {
            MailboxRef::Me => self.me.clone().unwrap_or_default(),
            MailboxRef::User(u) => u.to_ascii_lowercase(),
        }
    }

    fn scope<'k>(&self, kind: &'static str, key: &'k str, detail: String) -> TokenScope<'k> {
        TokenScope {
            kind,
            mailbox: key,
            detail,
        }
    }

    /// Seals Graph's link for the caller.
    fn seal(&self, mailbox: &MailboxRef, kind: &'static str, detail: &str, link: &str) -> String {
        let key = self.key(mailbox);
        self.pages
            .seal(&self.scope(kind, &key, detail.to_owned()), link)
    }

    /// Opens a caller's token into Graph's link.
    fn unseal(
        &self,
        mailbox: &MailboxRef,
        kind: &'static str,
        detail: &str,
        token: &str,
    ) -> Result<String, Error> {
        let key = self.key(mailbox);
        Ok(self
            .pages
            .open(&self.scope(kind, &key, detail.to_owned()), token)?)
    }

    fn url(&self, call: &Call<'_>) -> Result<Url, Error> {
        let mut url = match &call.target {
            Target::Path(p) => self.base.join(p).map_err(|e| {
                MailboxError::Invalid(format!("cannot build a Graph URL from `{p}`: {e}"))
            })?,
            Target::Link(link) => {
                // A link from the server: only ever back below the Graph root, never to
                // another host with our bearer token.
                let url = Url::parse(link).ok().filter(|u| {
                    u.origin() == self.base.origin() && u.path().starts_with(self.base.path())
                });
                url.ok_or_else(|| {
                    MailboxError::Protocol(
                        "Graph gave a paging link that does not point back at Graph".into(),
                    )
                })?
            }
        };
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }

    fn request(&self, call: &Call<'_>) -> Result<Request, Error> {
        let mut req = Request::new(call.method.clone(), self.url(call)?, self.key(call.mailbox))
            .retry(call.retry)
            .cost(call.cost);
        for p in &call.prefer {
            req = req.header(reqwest::header::HeaderName::from_static("prefer"), p);
        }
        if let Some(body) = &call.body {
            req = req.body("application/json", Bytes::from(body.to_string()));
        }
        if let Some(limit) = call.answer_limit {
            req = req.answer_limit(limit);
        }
        Ok(req)
    }

    async fn send(&self, call: &Call<'_>) -> Result<Answer, Error> {
        let req = self.request(call)?;
        self.pipe
            .send(&req)
            .await
            .map_err(|f| self.failure(f, call))
    }

    fn failure(&self, f: Failure, call: &Call<'_>) -> Error {
        match f {
            Failure::Error(e) => e,
            Failure::Refused(answer) => self.explain(&answer, call).into(),
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        let answer = self.send(&call).await?;
        decode(&answer.body)
    }

    async fn no_content(&self, call: Call<'_>) -> Result<(), Error> {
        self.send(&call).await.map(drop)
    }

    /// Walks every page of a collection; a link seen before is a loop, and ends the walk with an
    /// error rather than running for ever.
    async fn all<T: DeserializeOwned>(&self, first: Call<'_>) -> Result<Vec<T>, Error> {
        let (op, mailbox, prefer) = (first.op, first.mailbox, first.prefer.clone());
        let mut page: Collection<T> = self.get_json(first).await?;
        let mut out = std::mem::take(&mut page.value);
        let mut seen = HashSet::new();
        while let Some(next) = page.next_link.take() {
            if !seen.insert(next.clone()) || seen.len() > MAX_PAGES {
                return Err(repeated_link(seen.len()));
            }
            let mut call = Call::link(next, op, mailbox);
            call.prefer = prefer.clone();
            page = self.get_json(call).await?;
            out.append(&mut page.value);
        }
        Ok(out)
    }
}

fn repeated_link(pages: usize) -> Error {
    MailboxError::Protocol(format!(
        "Graph repeated a paging link after {pages} pages; stopped instead of looping (a server fault: try again later)"
    ))
    .into()
}

/// Decodes a Graph JSON answer, strictly: a body of the wrong shape is an error naming what
/// was wrong, never an empty result.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| {
        MailboxError::Protocol(format!(
            "Graph answered with JSON of an unexpected shape ({e})"
        ))
        .into()
    })
}
