//! Autodiscover: from an email address to the mailbox's EWS URL.
//!
//! The order follows Microsoft's "Autodiscover for Exchange": for the address's domain,
//! `https://<domain>/autodiscover/autodiscover.xml` (POX) and `…/autodiscover.svc` (SOAP
//! `GetUserSettings`), then the same at `https://autodiscover.<domain>/`, then the HTTP redirect
//! method (an unauthenticated `GET http://autodiscover.<domain>/autodiscover/autodiscover.xml`
//! whose `302` names an https URL), and for Exchange Online the JSON endpoint
//! (`/autodiscover/autodiscover.json/v1.0/<address>?Protocol=EWS`, which needs no credential).
//! Answers may redirect to another address (`redirectAddr`) or URL (`redirectUrl`), at most
//! [`MAX_HOPS`] times in all.
//!
//! The well-known autodiscover leak is a client that sends the user's credentials wherever a
//! redirect points. Here credentials go only over https, and only to hosts of the address's
//! own domain (the domain or a name below it) or to hosts the caller listed as trusted; a
//! redirect elsewhere stops the discovery with the host named, so a person can confirm it. The
//! EWS URL found is held to the same rule: every later EWS request carries the credentials.
//! SCP lookups (Active Directory) and DNS SRV records are not tried.
//!
//! An endpoint the operator configured (`endpoints.autodiscover_url`: a proxy, or exgate-mock in
//! tests) replaces the candidates, the HTTP redirect method and Exchange Online's root; its
//! origin (scheme, host and port) is trusted as the address's domain is.
//!
//! [`http`] is the transport that sends for real.

pub mod http;

use std::fmt::Write as _;

use async_trait::async_trait;
use quick_xml::events::Event;
use quick_xml::reader::NsReader;
use url::Url;

/// Redirects (addresses and URLs) followed at most.
pub const MAX_HOPS: usize = 10;

const POX_REQUEST_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
const POX_RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
const SOAP_NS: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";

/// What a transport answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The `Location` of a redirect.
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// How autodiscover reaches servers; the EWS client's pipeline in production, a fake in tests.
/// It must not follow redirects itself.
#[async_trait]
pub trait Transport: Send + Sync {
    /// POSTs `body`; with the connection's credentials when `authenticate`.
    async fn post(
        &self,
        url: &Url,
        content_type: &str,
        body: String,
        authenticate: bool,
    ) -> Result<Reply, String>;
    /// GETs `url` without credentials (the HTTP redirect method, the JSON endpoint).
    async fn get(&self, url: &Url) -> Result<Reply, String>;
}

/// Where discovery may go.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Hosts outside the address's domain that a person confirmed (`--trust-host`): a host
    /// name (any port) or `host:port`.
    pub trusted_hosts: Vec<String>,
    /// Exchange Online's JSON endpoint root (`https://outlook.office365.com`), tried last.
    pub online_root: Option<Url>,
    /// A configured POX endpoint (`endpoints.autodiscover_url`) asked instead of the candidates.
    pub endpoint: Option<Url>,
}

/// One request made while discovering, for the connection test and the CLI to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub method: &'static str,
    pub url: String,
    pub outcome: String,
}

/// The EWS URL found, and how.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub ews_url: Url,
    /// The address the answer was for (after `redirectAddr`).
    pub address: String,
    pub attempts: Vec<Attempt>,
}

/// Why discovery ended without an EWS URL.
#[derive(Debug, thiserror::Error)]
pub enum AutodiscoverError {
    #[error("`{0}` is not an email address")]
    BadAddress(String),
    #[error(
        "autodiscover points to `{host}`, outside {domain}; exgate sends credentials only over https and only to \
         hosts of the address's domain or hosts you trust: if `{host}` is yours, add `--trust-host {host}` \
         (API: `\"trust_hosts\": [\"{host}\"]`), or give the EWS URL yourself with `--ews-url`"
    )]
    UntrustedHost {
        host: String,
        domain: String,
        attempts: Vec<Attempt>,
    },
    #[error("autodiscover redirected more than {MAX_HOPS} times")]
    TooManyHops { attempts: Vec<Attempt> },
    #[error("no autodiscover endpoint for {domain} named an EWS URL ({})", summary(.attempts))]
    NotFound {
        domain: String,
        attempts: Vec<Attempt>,
    },
}

impl AutodiscoverError {
    /// The requests made before it ended.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            Self::BadAddress(_) => &[],
            Self::UntrustedHost { attempts, .. }
            | Self::TooManyHops { attempts }
            | Self::NotFound { attempts, .. } => attempts,
        }
    }
}

fn summary(attempts: &[Attempt]) -> String {
    let mut s = String::new();
    for (i, a) in attempts.iter().enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        let _ = write!(s, "{} {}: {}", a.method, a.url, a.outcome);
    }
    if s.is_empty() {
        s.push_str("nothing was tried");
    }
    s
}

/// What one endpoint's answer meant.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    EwsUrl(String),
    RedirectAddress(String),
    RedirectUrl(String),
    Failed(String),
}

struct Run<'a> {
    transport: &'a dyn Transport,
    options: &'a Options,
    /// The original address's domain: the namespace credentials may go to.
    domain: String,
    attempts: Vec<Attempt>,
    hops: usize,
}

/// Finds the EWS URL for `address`.
pub async fn discover(
    transport: &dyn Transport,
    address: &str,
    options: &Options,
) -> Result<Discovery, AutodiscoverError> {
    let address = address.trim();
    let domain = domain_of(address)?;
    let mut run = Run {
        transport,
        options,
        domain: domain.clone(),
        attempts: Vec::new(),
        hops: 0,
    };
    let mut current = address.to_owned();
    'address: loop {
        let domain = domain_of(&current)?;
        let mut urls: Vec<Url> = match &options.endpoint {
            Some(endpoint) => configured(endpoint),
            None => candidates(&domain),
        };
        let mut index = 0;
        while index < urls.len() {
            let url = urls[index].clone();
            index += 1;
            match run.endpoint(&url, &current).await? {
                Some(Answer::EwsUrl(ews)) => return run.finish(&ews, &current),
                Some(Answer::RedirectAddress(next)) => {
                    run.hop()?;
                    current = next;
                    continue 'address;
                }
                Some(Answer::RedirectUrl(next)) => {
                    run.hop()?;
                    let next = run.trusted_https(&next)?;
                    urls.insert(index, next);
                }
                Some(Answer::Failed(_)) | None => {}
            }
        }
        // The HTTP redirect method: no credentials on the way, and its target is held to the
        // same rule as any other host.
        let redirected = match options.endpoint {
            Some(_) => None,
            None => run.http_redirect(&domain).await?,
        };
        if let Some(next) = redirected {
            match run.endpoint(&next, &current).await? {
                Some(Answer::EwsUrl(ews)) => return run.finish(&ews, &current),
                Some(Answer::RedirectAddress(next)) => {
                    run.hop()?;
                    current = next;
                    continue 'address;
                }
                _ => {}
            }
        }
        let online_root = match &options.endpoint {
            Some(endpoint) => Some(origin(endpoint)),
            None => options.online_root.clone(),
        };
        if let Some(root) = &online_root
            && let Some(ews) = run.json(root, &current).await
        {
            return run.finish(&ews, &current);
        }
        return Err(AutodiscoverError::NotFound {
            domain: run.domain,
            attempts: run.attempts,
        });
    }
}

fn domain_of(address: &str) -> Result<String, AutodiscoverError> {
    match address.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && !domain.starts_with('.')
                && !domain.contains("..") =>
        {
            Ok(domain.to_ascii_lowercase())
        }
        _ => Err(AutodiscoverError::BadAddress(address.to_owned())),
    }
}

/// A configured endpoint, and the SOAP endpoint beside it.
fn configured(endpoint: &Url) -> Vec<Url> {
    let mut urls = vec![endpoint.clone()];
    if let Ok(soap) = endpoint.join("autodiscover.svc")
        && soap != *endpoint
    {
        urls.push(soap);
    }
    urls
}

/// `url` without its path: scheme, host and port.
fn origin(url: &Url) -> Url {
    let mut root = url.clone();
    root.set_path("/");
    root.set_query(None);
    root.set_fragment(None);
    root
}

/// The host of `url`, with its port when it has one.
fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The POX and SOAP endpoints at the domain and at `autodiscover.<domain>`, in order.
fn candidates(domain: &str) -> Vec<Url> {
    let mut urls = Vec::new();
    for host in [domain.to_owned(), format!("autodiscover.{domain}")] {
        for file in ["autodiscover.xml", "autodiscover.svc"] {
            if let Ok(url) = Url::parse(&format!("https://{host}/autodiscover/{file}")) {
                urls.push(url);
            }
        }
    }
    urls
}

impl Run<'_> {
    fn hop(&mut self) -> Result<(), AutodiscoverError> {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            return Err(AutodiscoverError::TooManyHops {
                attempts: std::mem::take(&mut self.attempts),
            });
        }
        Ok(())
    }

    fn note(&mut self, method: &'static str, url: &Url, outcome: impl Into<String>) {
        self.attempts.push(Attempt {
            method,
            url: url.to_string(),
            outcome: outcome.into(),
        });
    }

    /// Whether credentials may go to `host`: the address's domain, a name below it, or a host
    /// a person confirmed.
    fn trusted(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host == self.domain
            || host.ends_with(&format!(".{}", self.domain))
            || self
                .options
                .trusted_hosts
                .iter()
                .any(|t| t.trim_end_matches('.').eq_ignore_ascii_case(&host))
    }

    /// Whether credentials may go to `url`: https to a trusted host, or the configured
    /// endpoint's origin.
    fn may_authenticate(&self, url: &Url) -> bool {
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        if let Some(endpoint) = &self.options.endpoint
            && origin(endpoint) == origin(url)
        {
            return true;
        }
        let with_port = host_port(url);
        url.scheme() == "https"
            && (self.trusted(url.host_str().unwrap_or_default())
                || self
                    .options
                    .trusted_hosts
                    .iter()
                    .any(|t| t.trim().eq_ignore_ascii_case(&with_port)))
    }

    fn untrusted(&mut self, host: String) -> AutodiscoverError {
        AutodiscoverError::UntrustedHost {
            host,
            domain: self.domain.clone(),
            attempts: std::mem::take(&mut self.attempts),
        }
    }

    /// `url` if credentials may go there.
    fn trusted_https(&mut self, url: &str) -> Result<Url, AutodiscoverError> {
        let Ok(parsed) = Url::parse(url.trim()) else {
            return Err(self.untrusted(url.trim().to_owned()));
        };
        if !self.may_authenticate(&parsed) {
            let host = match parsed.scheme() {
                "https" => host_port(&parsed),
                _ => format!("{}://{}", parsed.scheme(), host_port(&parsed)),
            };
            return Err(self.untrusted(host));
        }
        Ok(parsed)
    }

    fn finish(&mut self, ews: &str, address: &str) -> Result<Discovery, AutodiscoverError> {
        let ews_url = self.trusted_https(ews)?;
        Ok(Discovery {
            ews_url,
            address: address.to_owned(),
            attempts: std::mem::take(&mut self.attempts),
        })
    }

    /// Asks one POX or SOAP endpoint (with credentials: it is https on a trusted host).
    async fn endpoint(
        &mut self,
        url: &Url,
        address: &str,
    ) -> Result<Option<Answer>, AutodiscoverError> {
        if !self.may_authenticate(url) {
            return Err(self.untrusted(host_port(url)));
        }
        let soap = url.path().ends_with(".svc");
        let (body, content_type, method) = if soap {
            (
                soap_request(url, address),
                "text/xml; charset=utf-8",
                "SOAP",
            )
        } else {
            (pox_request(address), "text/xml; charset=utf-8", "POX")
        };
        let reply = match self.transport.post(url, content_type, body, true).await {
            Ok(r) => r,
            Err(e) => {
                self.note(method, url, format!("unreachable: {e}"));
                return Ok(None);
            }
        };
        if reply.status != 200 {
            let outcome = match reply.status {
                401 => "401: the credentials were refused".to_owned(),
                s if (300..400).contains(&s) => format!(
                    "{s}: a redirect, not followed with credentials (to {})",
                    reply.location.as_deref().unwrap_or("nowhere")
                ),
                s => format!("answered {s}"),
            };
            self.note(method, url, outcome);
            return Ok(None);
        }
        let answer = if soap {
            parse_soap(&reply.body)
        } else {
            parse_pox(&reply.body)
        };
        let outcome = match &answer {
            Answer::EwsUrl(u) => format!("EWS URL {u}"),
            Answer::RedirectAddress(a) => format!("redirected to the address {a}"),
            Answer::RedirectUrl(u) => format!("redirected to {u}"),
            Answer::Failed(why) => why.clone(),
        };
        self.note(method, url, outcome);
        Ok(Some(answer))
    }

    /// The HTTP redirect method: where `http://autodiscover.<domain>/…` sends us, if anywhere.
    async fn http_redirect(&mut self, domain: &str) -> Result<Option<Url>, AutodiscoverError> {
        let Ok(url) = Url::parse(&format!(
            "http://autodiscover.{domain}/autodiscover/autodiscover.xml"
        )) else {
            return Ok(None);
        };
        let reply = match self.transport.get(&url).await {
            Ok(r) => r,
            Err(e) => {
                self.note("GET", &url, format!("unreachable: {e}"));
                return Ok(None);
            }
        };
        let Some(location) = reply
            .location
            .filter(|_| matches!(reply.status, 301 | 302 | 307 | 308))
        else {
            self.note(
                "GET",
                &url,
                format!("answered {} without a redirect", reply.status),
            );
            return Ok(None);
        };
        self.note("GET", &url, format!("redirected to {location}"));
        self.hop()?;
        self.trusted_https(&location).map(Some)
    }

    /// Exchange Online's JSON endpoint (no credentials).
    async fn json(&mut self, root: &Url, address: &str) -> Option<String> {
        let mut url = root.clone();
        url.set_path(&format!("/autodiscover/autodiscover.json/v1.0/{address}"));
        url.set_query(Some("Protocol=EWS"));
        let reply = match self.transport.get(&url).await {
            Ok(r) => r,
            Err(e) => {
                self.note("JSON", &url, format!("unreachable: {e}"));
                return None;
            }
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Json {
            protocol: String,
            url: String,
        }
        match serde_json::from_slice::<Json>(&reply.body) {
            Ok(j) if reply.status == 200 && j.protocol.eq_ignore_ascii_case("EWS") => {
                self.note("JSON", &url, format!("EWS URL {}", j.url));
                Some(j.url)
            }
            _ => {
                self.note(
                    "JSON",
                    &url,
                    format!("answered {} without an EWS URL", reply.status),
                );
                None
            }
        }
    }
}

fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn pox_request(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <Autodiscover xmlns=\"{POX_REQUEST_NS}\"><Request>\
         <EMailAddress>{}</EMailAddress>\
         <AcceptableResponseSchema>{POX_RESPONSE_SCHEMA}</AcceptableResponseSchema>\
         </Request></Autodiscover>",
        escape(address)
    )
}

fn soap_request(url: &Url, address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:a=\"{SOAP_NS}\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">\
         <soap:Header>\
         <a:RequestedServerVersion>Exchange2010</a:RequestedServerVersion>\
         <wsa:Action>{SOAP_NS}/Autodiscover/GetUserSettings</wsa:Action>\
         <wsa:To>{}</wsa:To>\
         </soap:Header><soap:Body>\
         <a:GetUserSettingsRequestMessage><a:Request>\
         <a:Users><a:User><a:Mailbox>{}</a:Mailbox></a:User></a:Users>\
         <a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting>\
         <a:Setting>InternalEwsUrl</a:Setting></a:RequestedSettings>\
         </a:Request></a:GetUserSettingsRequestMessage>\
         </soap:Body></soap:Envelope>",
        escape(url.as_str()),
        escape(address)
    )
}

/// A small element tree of an answer: local names and text, nothing else.
#[derive(Debug, Default, Clone)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn path(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, name| node.child(name))
    }

    fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.path(path)
            .map(|n| n.text.trim())
            .filter(|t| !t.is_empty())
    }
}

/// Parses at most 64 levels and 10,000 elements; anything else is not an autodiscover answer.
fn tree(body: &[u8]) -> Option<Node> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = vec![Node::default()];
    let mut count = 0;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                count += 1;
                if stack.len() > 64 || count > 10_000 {
                    return None;
                }
                stack.push(Node {
                    name: e.local_name().as_ref().to_owned(),
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                count += 1;
                let node = Node {
                    name: e.local_name().as_ref().to_owned(),
                    ..Node::default()
                };
                stack.last_mut()?.children.push(node);
            }
            Event::Text(t) => {
                let top = stack.last_mut()?;
                top.text
                    .push_str(&quick_xml::escape::unescape(t.as_ref()).ok()?);
            }
            Event::GeneralRef(r) => {
                let top = stack.last_mut()?;
                let name = r.as_ref();
                let resolved = match name {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => return None,
                };
                top.text.push_str(resolved);
            }
            Event::End(_) => {
                let done = stack.pop()?;
                stack.last_mut()?.children.push(done);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return None;
    }
    stack.pop()?.children.into_iter().next()
}

/// A POX answer (`Autodiscover/Response/Account`).
fn parse_pox(body: &[u8]) -> Answer {
    let Some(root) = tree(body).filter(|r| r.name == "Autodiscover") else {
        return Answer::Failed("the answer is not POX autodiscover XML".into());
    };
    let Some(response) = root.child("Response") else {
        return Answer::Failed("the answer has no Response".into());
    };
    if let Some(error) = response.child("Error") {
        return Answer::Failed(format!(
            "error {}: {}",
            error.text_at(&["ErrorCode"]).unwrap_or("?"),
            error.text_at(&["Message"]).unwrap_or("no message")
        ));
    }
    let Some(account) = response.child("Account") else {
        return Answer::Failed("the answer has no Account".into());
    };
    match account
        .text_at(&["Action"])
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("redirectaddr") => account.text_at(&["RedirectAddr"]).map_or_else(
            || Answer::Failed("redirectAddr without an address".into()),
            |a| Answer::RedirectAddress(a.to_owned()),
        ),
        Some("redirecturl") => account.text_at(&["RedirectUrl"]).map_or_else(
            || Answer::Failed("redirectUrl without a URL".into()),
            |u| Answer::RedirectUrl(u.to_owned()),
        ),
        Some("settings") => {
            // The external URL (EXPR) works from anywhere; the internal one (EXCH) inside.
            ["EXPR", "EXCH", "WEB"]
                .iter()
                .find_map(|kind| {
                    account
                        .children("Protocol")
                        .find(|p| p.text_at(&["Type"]) == Some(kind))
                        .and_then(|p| p.text_at(&["EwsUrl"]))
                })
                .map_or_else(
                    || Answer::Failed("the settings name no EWS URL".into()),
                    |u| Answer::EwsUrl(u.to_owned()),
                )
        }
        other => Answer::Failed(format!("unknown action {}", other.unwrap_or("(none)"))),
    }
}

/// A SOAP `GetUserSettings` answer.
fn parse_soap(body: &[u8]) -> Answer {
    let root = tree(body).filter(|r| r.name == "Envelope");
    let response = root
        .as_ref()
        .and_then(|env| env.path(&["Body", "GetUserSettingsResponseMessage", "Response"]));
    let Some(response) = response else {
        return Answer::Failed("the answer is not a GetUserSettings response".into());
    };
    let top = response.text_at(&["ErrorCode"]).unwrap_or("NoError");
    if top != "NoError" {
        return Answer::Failed(format!(
            "{top}: {}",
            response.text_at(&["ErrorMessage"]).unwrap_or("no message")
        ));
    }
    let Some(user) = response.path(&["UserResponses", "UserResponse"]) else {
        return Answer::Failed("no UserResponse".into());
    };
    match user.text_at(&["ErrorCode"]).unwrap_or("NoError") {
        "NoError" => {
            let setting = |name: &str| {
                user.path(&["UserSettings"]).and_then(|s| {
                    s.children("UserSetting")
                        .find(|u| u.text_at(&["Name"]) == Some(name))
                        .and_then(|u| u.text_at(&["Value"]))
                })
            };
            setting("ExternalEwsUrl")
                .or_else(|| setting("InternalEwsUrl"))
                .map_or_else(
                    || Answer::Failed("the user settings name no EWS URL".into()),
                    |u| Answer::EwsUrl(u.to_owned()),
                )
        }
        "RedirectAddress" => user.text_at(&["RedirectTarget"]).map_or_else(
            || Answer::Failed("RedirectAddress without a target".into()),
            |a| Answer::RedirectAddress(a.to_owned()),
        ),
        "RedirectUrl" => user.text_at(&["RedirectTarget"]).map_or_else(
            || Answer::Failed("RedirectUrl without a target".into()),
            |u| Answer::RedirectUrl(u.to_owned()),
        ),
        code => Answer::Failed(format!(
            "{code}: {}",
            user.text_at(&["ErrorMessage"]).unwrap_or("no message")
        )),
    }
}

#[cfg(test)]
mod tests;
