//! The request pipeline below every mailbox backend.
//!
//! A backend builds a protocol request from neutral types (its wire module) and hands it here.
//! For each attempt the pipeline takes a governor slot for the mailbox, puts the credential on
//! the request, sends it with the caller's request ID as `client-request-id`, and asks the
//! backend's [`Classify`] what the answer means: done, busy (with the server's back-off hint),
//! credential refused, or failed. Busy answers are retried within the hint, capped at
//! [`Limits::max_wait`] — a longer hint ends the call at once with a throttled error that says
//! how long — and paused for every caller of the mailbox; a refused credential is refreshed once.
//! Bodies are bounded by [`Limits::max_item_bytes`], or streamed ([`ByteStream`]).
//!
//! The helpers that keep a request bound to its mailbox live here too: [`segment`] encodes an
//! ID as exactly one path segment, and [`PageTokens`] seals page and sync tokens to the
//! connection, account, mailbox and query they were issued for.

mod body;
pub(crate) mod ntlm;
mod segment;
mod tokens;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use tracing::Instrument as _;
use url::Url;

use crate::Error;
use crate::auth::{Credential, Credentials};
use crate::governor::Governor;
use crate::mailbox::MailboxError;

pub use body::ByteStream;
pub use ntlm::NtlmSessions;
pub use segment::segment;
pub use tokens::{PageTokens, TokenScope};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `f` with `id` as the request ID that every mailbox request it makes carries
/// (`client-request-id`), so a gateway's correlation ID can be found in the server's logs.
pub async fn with_request_id<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The caller's request ID, when it set one with [`with_request_id`].
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Limits and waits, from the `[limits]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest a server's back-off hint is waited for; beyond it the caller gets a throttled
    /// error that says how long the server asked for.
    pub max_wait: Duration,
    /// How often one request is tried in all.
    pub attempts: u32,
    /// The largest item (message, MIME, attachment) read or sent; Exchange Online's own limit
    /// is 150 MB per message.
    pub max_item_bytes: u64,
    /// How long a whole structured answer (JSON, XML) may take; streamed bodies are bounded by
    /// progress instead (every read within [`crate::net::REQUEST_TIMEOUT`]).
    pub answer_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_secs(60),
            attempts: 8,
            max_item_bytes: 150 * 1024 * 1024,
            answer_timeout: Duration::from_secs(120),
        }
    }
}

/// When a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads, and writes whose repetition changes nothing (GET, PUT, PATCH, DELETE).
    Always,
    /// Only when the server certainly did not process it (429, 503): never after a reset or a
    /// timeout, when it may have.
    IfNotProcessed,
}

impl Retry {
    /// POST creates or acts (a draft, a send): only retried when certainly not processed.
    /// GET, PUT, PATCH and DELETE change nothing more when repeated.
    pub fn for_method(method: &Method) -> Self {
        if method == Method::POST {
            Self::IfNotProcessed
        } else {
            Self::Always
        }
    }
}

/// What an answer means, as the protocol sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// The server is busy; `unprocessed` when it certainly did not act on the request.
    Busy {
        hint: Option<Duration>,
        unprocessed: bool,
    },
    /// The credential was refused: refresh it once.
    Unauthorized,
    /// A failure the backend explains.
    Failed,
}

/// A protocol's reading of its server's answers (Graph: HTTP status and `Retry-After`; EWS:
/// `ResponseCode` and `BackOffMilliseconds`).
pub trait Classify: Send + Sync + fmt::Debug {
    fn classify(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict;
}

/// One request, as a backend builds it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// The governor key: the mailbox's address, lowercased.
    pub mailbox: String,
    /// How many requests it counts as (a batch counts each inner request).
    pub cost: u32,
    pub retry: Retry,
    /// Whether to put the credential on it (a pre-authenticated upload URL takes none).
    pub authenticate: bool,
    /// A smaller limit than [`Limits::max_item_bytes`] for this whole answer (a batch whose
    /// items are better fetched alone, streamed, when together they are large).
    pub answer_limit: Option<u64>,
}

impl Request {
    pub fn new(method: Method, url: Url, mailbox: impl Into<String>) -> Self {
        let retry = Retry::for_method(&method);
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            mailbox: mailbox.into(),
            cost: 1,
            retry,
            authenticate: true,
            answer_limit: None,
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.append(name, v);
        }
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self.header(reqwest::header::CONTENT_TYPE, content_type)
    }

    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost.max(1);
        self
    }

    pub fn without_credential(mut self) -> Self {
        self.authenticate = false;
        self
    }

    pub fn answer_limit(mut self, limit: u64) -> Self {
        self.answer_limit = Some(limit);
        self
    }
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The server's ID of the request (`request-id`), for support cases.
    pub request_id: String,
    pub body: Bytes,
    /// The credential the request carried (to explain a refusal by its claims).
    pub credential: Option<Credential>,
}

/// An answer whose body is read as it arrives.
#[derive(Debug)]
pub struct Streamed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ByteStream,
}

/// Why a request did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with a failure; the backend explains it.
    Refused(Answer),
    /// Nothing to explain: throttled beyond the cap, unreachable, too large, unreadable.
    Error(Error),
}

impl From<MailboxError> for Failure {
    fn from(e: MailboxError) -> Self {
        Self::Error(e.into())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Error(e)
    }
}

enum Mode {
    Whole,
    Stream,
}

enum Outcome {
    Whole(Answer),
    Stream(Streamed),
}

/// The pipeline of one backend instance: its client, governor, credentials and classifier.
pub struct Pipeline {
    http: reqwest::Client,
    governor: Arc<Governor>,
    credentials: Arc<dyn Credentials>,
    classify: Arc<dyn Classify>,
    limits: Limits,
    /// For tracing spans.
    connection: String,
    /// Connections authenticated by NTLM, for an NTLM credential.
    ntlm: Option<Arc<NtlmSessions>>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("connection", &self.connection)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    pub fn new(
        http: reqwest::Client,
        governor: Arc<Governor>,
        credentials: Arc<dyn Credentials>,
        classify: Arc<dyn Classify>,
        limits: Limits,
        connection: impl Into<String>,
    ) -> Self {
        Self {
            http,
            governor,
            credentials,
            classify,
            limits,
            connection: connection.into(),
            ntlm: None,
        }
    }

    /// Speaks NTLM over these sessions when the credential is NTLM.
    pub fn with_ntlm(mut self, sessions: Arc<NtlmSessions>) -> Self {
        self.ntlm = Some(sessions);
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn governor(&self) -> &Arc<Governor> {
        &self.governor
    }

    /// Sends `req` and reads the whole answer (at most [`Limits::max_item_bytes`]).
    pub async fn send(&self, req: &Request) -> Result<Answer, Failure> {
        match self.run(req, Mode::Whole).await? {
            Outcome::Whole(a) => Ok(a),
            Outcome::Stream(_) => unreachable!("a whole answer was asked for"),
        }
    }

    /// Sends `req` and hands back the body as it arrives. The request's governor slot is held
    /// until the stream is dropped, so a long download counts as one of the mailbox's
    /// concurrent requests for as long as it runs.
    pub async fn stream(&self, req: &Request) -> Result<Streamed, Failure> {
        match self.run(req, Mode::Stream).await? {
            Outcome::Stream(s) => Ok(s),
            Outcome::Whole(_) => unreachable!("a stream was asked for"),
        }
    }

    async fn run(&self, req: &Request, mode: Mode) -> Result<Outcome, Failure> {
        // The caller's request ID when it is a UUID, else a new one; written out on the stack.
        let uuid = REQUEST_ID
            .try_with(|id| uuid::Uuid::parse_str(id).ok())
            .ok()
            .flatten()
            .unwrap_or_else(uuid::Uuid::new_v4);
        let mut buf = uuid::Uuid::encode_buffer();
        let client_request_id: &str = uuid.hyphenated().encode_lower(&mut buf);
        let span = tracing::debug_span!(
            "mailbox_request",
            connection = %self.connection,
            mailbox = %req.mailbox,
            method = %req.method,
            path = %req.url.path(),
            client_request_id = %client_request_id,
        );
        self.attempts(req, mode, client_request_id)
            .instrument(span)
            .await
    }

    async fn attempts(
        &self,
        req: &Request,
        mode: Mode,
        client_request_id: &str,
    ) -> Result<Outcome, Failure> {
        let limits = self.limits;
        let attempts = limits.attempts.max(1);
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let permit = self
                .governor
                .acquire_within(&req.mailbox, req.cost, limits.max_wait)
                .await
                .map_err(|left| MailboxError::Throttled { retry_after: left })?;
            let credential = if req.authenticate {
                Some(self.credentials.credential().await?)
            } else {
                None
            };
            let make = |client: &reqwest::Client| {
                let mut builder = client
                    .request(req.method.clone(), req.url.clone())
                    .headers(req.headers.clone())
                    .header("client-request-id", client_request_id)
                    .header("return-client-request-id", "true");
                if let Some(body) = &req.body {
                    builder = builder.body(body.clone());
                }
                if matches!(mode, Mode::Whole) {
                    builder = builder.timeout(limits.answer_timeout);
                }
                builder
            };
            let sent = match &credential {
                Some(Credential::Bearer(t)) => {
                    make(&self.http).bearer_auth(t.secret.expose()).send().await
                }
                Some(Credential::Basic(p)) => {
                    make(&self.http)
                        .basic_auth(&p.username, Some(p.password.expose()))
                        .send()
                        .await
                }
                Some(Credential::Ntlm(p)) => {
                    let Some(sessions) = &self.ntlm else {
                        return Err(MailboxError::Unsupported(
                            "this backend does not speak NTLM".into(),
                        )
                        .into());
                    };
                    let host = req.url.host_str().unwrap_or_default();
                    match sessions
                        .send(host, p, matches!(mode, Mode::Whole), make)
                        .await
                    {
                        Ok(resp) => Ok(resp),
                        Err(ntlm::NtlmFailure::Transport(e)) => Err(e),
                        Err(ntlm::NtlmFailure::Handshake(e)) => {
                            return Err(MailboxError::Unauthorized {
                                message: e.to_string(),
                            }
                            .into());
                        }
                    }
                }
                None => make(&self.http).send().await,
            };
            let mut resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    drop(permit);
                    // Where it went, without the query (which may hold a pre-authenticated token).
                    let message = format!(
                        "{} {}{}: {}",
                        req.method,
                        req.url.origin().ascii_serialization(),
                        req.url.path(),
                        transport_message(e)
                    );
                    if req.retry == Retry::Always && attempt < attempts {
                        tracing::debug!(attempt, error = %message, "request failed in transit; trying again");
                        tokio::time::sleep(backoff(attempt).min(limits.max_wait)).await;
                        continue;
                    }
                    return Err(MailboxError::Transport(message).into());
                }
            };
            let status = resp.status();
            // Taken, not copied: the body is read by its own length, not by these headers.
            let headers = std::mem::take(resp.headers_mut());
            let server_request_id = headers
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if status.is_success() && matches!(mode, Mode::Stream) {
                return Ok(Outcome::Stream(Streamed {
                    status,
                    body: ByteStream::http(resp, limits.max_item_bytes, Some(permit)),
                    headers,
                }));
            }
            // Failure bodies are explanations: a bounded read, a truncated one still explains.
            let limit = if status.is_success() {
                req.answer_limit
                    .map_or(limits.max_item_bytes, |l| l.min(limits.max_item_bytes))
            } else {
                crate::net::MAX_BODY as u64
            };
            let body = match body::read_whole(resp, limit, status.is_success()).await {
                Ok(b) => b,
                Err(e) if e.is_transport() && req.retry == Retry::Always && attempt < attempts => {
                    drop(permit);
                    tracing::debug!(attempt, error = %e, "reading the answer failed; trying again");
                    tokio::time::sleep(backoff(attempt).min(limits.max_wait)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            drop(permit);
            let answer = Answer {
                status,
                headers,
                request_id: server_request_id,
                body,
                credential,
            };
            match self
                .classify
                .classify(status, &answer.headers, &answer.body)
            {
                Verdict::Done => return Ok(Outcome::Whole(answer)),
                Verdict::Unauthorized if req.authenticate && !refreshed => {
                    refreshed = true;
                    self.credentials.rejected().await;
                }
                Verdict::Unauthorized | Verdict::Failed => return Err(Failure::Refused(answer)),
                Verdict::Busy { hint, unprocessed } => {
                    let wait = hint.unwrap_or_else(|| backoff(attempt));
                    self.governor.back_off(&req.mailbox, wait);
                    if wait > limits.max_wait {
                        tracing::warn!(
                            wait_secs = wait.as_secs(),
                            max_wait_secs = limits.max_wait.as_secs(),
                            "the server asked to wait longer than exgate waits"
                        );
                        return Err(MailboxError::Throttled { retry_after: wait }.into());
                    }
                    let may_retry = req.retry == Retry::Always || unprocessed;
                    if may_retry && attempt < attempts {
                        tracing::debug!(
                            attempt,
                            status = status.as_u16(),
                            wait_ms = wait.as_millis() as u64,
                            "server busy; trying again"
                        );
                        continue;
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        return Err(MailboxError::Throttled { retry_after: wait }.into());
                    }
                    return Err(Failure::Refused(answer));
                }
            }
        }
    }
}

/// What went wrong in transit, without the URL: a pre-authenticated upload URL carries its
/// token in the query, and no error message may hold a credential.
pub(crate) fn transport_message(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "the request timed out".to_owned()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        message
    }
}

/// The wait before trying again when the server gave no hint: 0.5 s, 1 s, 2 s, … up to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.min(7)).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transport_errors_never_carry_the_query() {
        // A port nobody listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = reqwest::Client::new()
            .put(format!(
                "http://127.0.0.1:{port}/upload?authtoken=SECRET-TOKEN"
            ))
            .send()
            .await
            .unwrap_err();
        let message = transport_message(err);
        assert!(!message.contains("SECRET-TOKEN"), "{message}");
        assert!(message.starts_with("cannot connect"), "{message}");
    }
}
