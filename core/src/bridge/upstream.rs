//! The bridge's side towards Exchange: connect, upgrade to TLS where the URL says STARTTLS, and
//! authenticate with SASL XOAUTH2. What Exchange answers to a refusal is returned as it is (it
//! holds no secret) for [`crate::mail::explain`] to explain.

use crate::mail::{MailConnector, MailProtocol, MailStream, MailUrl, Security, xoauth2};
use crate::secret::Secret;

use super::io::{Lines, ReadError};

/// How long Exchange may take over one step of connecting and signing in.
const STEP: std::time::Duration = crate::net::REQUEST_TIMEOUT;

/// Why no authenticated upstream session came about.
#[derive(Debug)]
pub(super) enum UpstreamError {
    /// Exchange refused the token: its answer.
    Refused(String),
    /// Connecting, TLS, or the conversation failed.
    Failed(String),
}

impl From<ReadError> for UpstreamError {
    fn from(e: ReadError) -> Self {
        Self::Failed(format!("reading from Exchange: {e}"))
    }
}

impl From<std::io::Error> for UpstreamError {
    fn from(e: std::io::Error) -> Self {
        Self::Failed(format!("writing to Exchange: {e}"))
    }
}

/// An authenticated upstream session: the stream, and bytes Exchange sent after its answer.
pub(super) type Session = (MailStream, Vec<u8>);

/// Connects to `url` and signs in as `user` with `token`.
pub(super) async fn open(
    connector: &MailConnector,
    url: &MailUrl,
    user: &str,
    token: &Secret,
) -> Result<Session, UpstreamError> {
    let stream = connector
        .connect(url)
        .await
        .map_err(|e| UpstreamError::Failed(e.to_string()))?;
    let sasl = xoauth2::encoded_initial_response(user, token);
    match url.protocol() {
        MailProtocol::Imap => imap(connector, url, stream, &sasl).await,
        MailProtocol::Pop => pop(connector, url, stream, &sasl).await,
        MailProtocol::Smtp => smtp(connector, url, stream, &sasl).await,
    }
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

async fn upgrade(
    connector: &MailConnector,
    url: &MailUrl,
    lines: Lines<MailStream>,
) -> Result<Lines<MailStream>, UpstreamError> {
    let stream = connector
        .start_tls(lines.into_stream(), url)
        .await
        .map_err(|e| UpstreamError::Failed(e.to_string()))?;
    Ok(Lines::new(stream, STEP))
}

/// IMAP: greeting, STARTTLS if asked, `AUTHENTICATE XOAUTH2` with the initial response (SASL-IR,
/// which Exchange Online offers).
async fn imap(
    connector: &MailConnector,
    url: &MailUrl,
    stream: MailStream,
    sasl: &Secret,
) -> Result<Session, UpstreamError> {
    let mut lines = Lines::new(stream, STEP);
    let greeting = lines.line().await?;
    if !greeting.starts_with(b"* OK") {
        return Err(UpstreamError::Failed(format!(
            "Exchange greeted with `{}`",
            text(&greeting)
        )));
    }
    if url.security() == Security::StartTls {
        lines.send(b"x0 STARTTLS\r\n").await?;
        let answer = tagged(&mut lines, b"x0 ").await?;
        if !answer.starts_with(b"x0 OK") {
            return Err(UpstreamError::Failed(format!(
                "Exchange refused STARTTLS: `{}`",
                text(&answer)
            )));
        }
        lines = upgrade(connector, url, lines).await?;
    }
    lines
        .send(format!("x1 AUTHENTICATE XOAUTH2 {}\r\n", sasl.expose()).as_bytes())
        .await?;
    let answer = tagged(&mut lines, b"x1 ").await?;
    if answer.starts_with(b"x1 OK") {
        Ok(lines.into_parts())
    } else {
        Err(UpstreamError::Refused(text(&answer[3..])))
    }
}

/// Reads up to the tagged answer; a `+` challenge (an error's details, as XOAUTH2 servers send
/// them) is answered with an empty line, which ends the exchange.
async fn tagged(lines: &mut Lines<MailStream>, tag: &[u8]) -> Result<Vec<u8>, UpstreamError> {
    loop {
        let line = lines.line().await?;
        if line.starts_with(tag) {
            return Ok(line);
        }
        if line.starts_with(b"+") {
            lines.send(b"\r\n").await?;
        }
    }
}

/// POP3: greeting, STLS if asked, `AUTH XOAUTH2` with the initial response (RFC 5034).
async fn pop(
    connector: &MailConnector,
    url: &MailUrl,
    stream: MailStream,
    sasl: &Secret,
) -> Result<Session, UpstreamError> {
    let mut lines = Lines::new(stream, STEP);
    let greeting = lines.line().await?;
    if !greeting.starts_with(b"+OK") {
        return Err(UpstreamError::Failed(format!(
            "Exchange greeted with `{}`",
            text(&greeting)
        )));
    }
    if url.security() == Security::StartTls {
        lines.send(b"STLS\r\n").await?;
        let answer = lines.line().await?;
        if !answer.starts_with(b"+OK") {
            return Err(UpstreamError::Failed(format!(
                "Exchange refused STLS: `{}`",
                text(&answer)
            )));
        }
        lines = upgrade(connector, url, lines).await?;
    }
    lines
        .send(format!("AUTH XOAUTH2 {}\r\n", sasl.expose()).as_bytes())
        .await?;
    loop {
        let answer = lines.line().await?;
        if answer.starts_with(b"+OK") {
            return Ok(lines.into_parts());
        }
        if answer.starts_with(b"-ERR") {
            return Err(UpstreamError::Refused(text(&answer)));
        }
        if answer.starts_with(b"+") {
            lines.send(b"\r\n").await?;
        } else {
            return Err(UpstreamError::Failed(format!(
                "Exchange answered AUTH with `{}`",
                text(&answer)
            )));
        }
    }
}

/// One SMTP reply: its code and its lines' text joined.
async fn reply(lines: &mut Lines<MailStream>) -> Result<(u16, String), UpstreamError> {
    let mut said = Vec::new();
    loop {
        let line = lines.line().await?;
        let code = line
            .get(..3)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| UpstreamError::Failed(format!("Exchange answered `{}`", text(&line))))?;
        said.push(text(line.get(4..).unwrap_or_default()));
        if line.get(3) != Some(&b'-') {
            return Ok((code, said.join(" ")));
        }
    }
}

async fn ehlo(lines: &mut Lines<MailStream>) -> Result<(), UpstreamError> {
    lines.send(b"EHLO exgate-bridge\r\n").await?;
    match reply(lines).await? {
        (250, _) => Ok(()),
        (code, said) => Err(UpstreamError::Failed(format!(
            "Exchange answered EHLO with {code} {said}"
        ))),
    }
}

/// SMTP submission: greeting, EHLO, STARTTLS and EHLO again if asked, `AUTH XOAUTH2` with the
/// initial response.
async fn smtp(
    connector: &MailConnector,
    url: &MailUrl,
    stream: MailStream,
    sasl: &Secret,
) -> Result<Session, UpstreamError> {
    let mut lines = Lines::new(stream, STEP);
    let (code, said) = reply(&mut lines).await?;
    if code != 220 {
        return Err(UpstreamError::Failed(format!(
            "Exchange greeted with {code} {said}"
        )));
    }
    ehlo(&mut lines).await?;
    if url.security() == Security::StartTls {
        lines.send(b"STARTTLS\r\n").await?;
        match reply(&mut lines).await? {
            (220, _) => {}
            (code, said) => {
                return Err(UpstreamError::Failed(format!(
                    "Exchange refused STARTTLS: {code} {said}"
                )));
            }
        }
        lines = upgrade(connector, url, lines).await?;
        ehlo(&mut lines).await?;
    }
    lines
        .send(format!("AUTH XOAUTH2 {}\r\n", sasl.expose()).as_bytes())
        .await?;
    loop {
        match reply(&mut lines).await? {
            (235, _) => return Ok(lines.into_parts()),
            (334, _) => lines.send(b"\r\n").await?,
            (code, said) => return Err(UpstreamError::Refused(format!("{code} {said}"))),
        }
    }
}
