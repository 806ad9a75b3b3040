//! The bridge's IMAP side (RFC 3501/9051 before authentication): CAPABILITY, NOOP, ID, LOGOUT,
//! STARTTLS, LOGIN and AUTHENTICATE (PLAIN, LOGIN, XOAUTH2; with or without SASL-IR). Commands
//! are assembled from lines and literals here and parsed by imap-codec. Once signed in, the
//! session is relayed to Exchange.

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder as _;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::CommandBody;

use super::io::{Io, Lines, MAX_LINE, ReadError, relay};
use super::sasl::{self, Mechanism, Presented};
use super::{Ctx, MAX_FAILURES, SignInFailure, one_line, tls_required};
use crate::mail::MailProtocol;

/// The longest command, literals included, taken before authentication.
const MAX_COMMAND: usize = 4 * MAX_LINE;

fn capabilities(ctx: &Ctx, tls: bool) -> String {
    let mut caps = String::from("IMAP4rev1 SASL-IR ID");
    if tls_required(ctx, tls) {
        caps.push_str(" STARTTLS LOGINDISABLED");
    } else {
        caps.push_str(" AUTH=PLAIN AUTH=LOGIN AUTH=XOAUTH2");
        if ctx.tls.is_some() && !tls {
            caps.push_str(" STARTTLS");
        }
    }
    caps
}

/// A whole command: its first line and any literals with the lines that follow them, each
/// line ending in CRLF. A synchronizing literal is invited with `+`.
async fn command(lines: &mut Lines<Box<dyn Io>>) -> Result<Vec<u8>, ReadError> {
    let mut message = Vec::new();
    loop {
        let line = lines.line().await?;
        message.extend_from_slice(&line);
        message.extend_from_slice(b"\r\n");
        let Some((length, sync)) = literal(&line) else {
            return Ok(message);
        };
        if message.len() + length > MAX_COMMAND {
            return Err(ReadError::TooLong);
        }
        if sync {
            lines.send(b"+ Ready for literal data\r\n").await?;
        }
        message.extend_from_slice(&lines.bytes(length).await?);
    }
}

/// The literal a line announces at its end: `{N}` (synchronizing) or `{N+}`.
fn literal(line: &[u8]) -> Option<(usize, bool)> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let inner = &body[open + 1..];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || digits.len() > 7 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .map(|n| (n, sync))
}

/// The tag of a command imap-codec could not parse, if it has a sane one.
fn tag_of(message: &[u8]) -> Option<String> {
    let end = message.iter().position(|&b| b == b' ' || b == b'\r')?;
    let tag = std::str::from_utf8(&message[..end]).ok()?;
    (!tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'+' && b != b'*'))
    .then(|| tag.to_owned())
}

pub(super) async fn serve(ctx: &Ctx, stream: Box<dyn Io>, mut tls: bool) -> std::io::Result<()> {
    let mut lines = Lines::new(stream, ctx.idle);
    lines
        .send(
            format!(
                "* OK [CAPABILITY {}] exgate bridge ready.\r\n",
                capabilities(ctx, tls)
            )
            .as_bytes(),
        )
        .await?;
    let mut failures = 0;
    loop {
        let message = match command(&mut lines).await {
            Ok(m) => m,
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::TooLong) => {
                lines.send(b"* BYE Command too long.\r\n").await?;
                return Ok(());
            }
            Err(ReadError::Idle) => {
                lines
                    .send(b"* BYE Autologout; idle for too long.\r\n")
                    .await?;
                return Ok(());
            }
            Err(ReadError::Closed) => return Ok(()),
        };
        let command = match CommandCodec::default().decode(&message) {
            Ok((_, command)) => command,
            Err(_) => {
                let answer = match tag_of(&message) {
                    Some(tag) => format!("{tag} BAD Command Error.\r\n"),
                    None => "* BAD Command Error.\r\n".to_owned(),
                };
                lines.send(answer.as_bytes()).await?;
                continue;
            }
        };
        let tag = command.tag.as_ref().to_owned();
        let presented = match command.body {
            CommandBody::Capability => {
                lines
                    .send(
                        format!(
                            "* CAPABILITY {}\r\n{tag} OK CAPABILITY completed.\r\n",
                            capabilities(ctx, tls)
                        )
                        .as_bytes(),
                    )
                    .await?;
                continue;
            }
            CommandBody::Noop => {
                lines
                    .send(format!("{tag} OK NOOP completed.\r\n").as_bytes())
                    .await?;
                continue;
            }
            CommandBody::Id { .. } => {
                lines
                    .send(
                        format!("* ID (\"name\" \"exgate bridge\")\r\n{tag} OK ID completed.\r\n")
                            .as_bytes(),
                    )
                    .await?;
                continue;
            }
            CommandBody::Logout => {
                lines
                    .send(
                        format!(
                            "* BYE exgate bridge signing off.\r\n{tag} OK LOGOUT completed.\r\n"
                        )
                        .as_bytes(),
                    )
                    .await?;
                return Ok(());
            }
            CommandBody::StartTLS if ctx.tls.is_some() && !tls => {
                lines
                    .send(format!("{tag} OK Begin TLS negotiation now.\r\n").as_bytes())
                    .await?;
                let stream = ctx.start_tls(lines.into_stream()).await?;
                lines = Lines::new(stream, ctx.idle);
                tls = true;
                continue;
            }
            CommandBody::Login { .. } | CommandBody::Authenticate { .. }
                if tls_required(ctx, tls) =>
            {
                lines
                    .send(format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS first.\r\n").as_bytes())
                    .await?;
                continue;
            }
            CommandBody::Login { username, password } => Some(Presented {
                username: String::from_utf8_lossy(username.as_ref()).into_owned(),
                password: crate::secret::Secret::new(String::from_utf8_lossy(
                    password.declassify().as_ref(),
                )),
            }),
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                let mechanism = match mechanism {
                    AuthMechanism::Plain => Some(Mechanism::Plain),
                    AuthMechanism::Login => Some(Mechanism::Login),
                    AuthMechanism::XOAuth2 => Some(Mechanism::XOAuth2),
                    _ => None,
                };
                let Some(mechanism) = mechanism else {
                    lines
                        .send(
                            format!("{tag} NO Unsupported authentication mechanism.\r\n")
                                .as_bytes(),
                        )
                        .await?;
                    continue;
                };
                // imap-codec decoded the initial response; the exchange takes it as sent.
                let initial = initial_response.map(|ir| base64_line(ir.declassify()));
                let presented = sasl::exchange(&mut lines, "+ ", mechanism, initial).await?;
                if presented.is_none() {
                    lines
                        .send(
                            format!("{tag} BAD AUTHENTICATE cancelled or malformed.\r\n")
                                .as_bytes(),
                        )
                        .await?;
                    continue;
                }
                presented
            }
            _ => {
                lines
                    .send(
                        format!("{tag} BAD Command received in Invalid state; sign in first.\r\n")
                            .as_bytes(),
                    )
                    .await?;
                continue;
            }
        };
        let Some(presented) = presented else { continue };
        match ctx.sign_in(presented, MailProtocol::Imap).await {
            Ok((upstream, from_upstream)) => {
                lines
                    .send(format!("{tag} OK LOGIN completed.\r\n").as_bytes())
                    .await?;
                let (client, pipelined) = lines.into_parts();
                return relay(client, upstream, pipelined, from_upstream, ctx.idle).await;
            }
            Err(SignInFailure::BadPassword) => {
                failures += 1;
                lines
                    .send(
                        format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials.\r\n")
                            .as_bytes(),
                    )
                    .await?;
            }
            Err(SignInFailure::Upstream(failure)) => {
                failures += 1;
                lines
                    .send(format!("{tag} NO [UNAVAILABLE] {}\r\n", one_line(&failure)).as_bytes())
                    .await?;
            }
        }
        if failures >= MAX_FAILURES {
            lines.send(b"* BYE Too many failed sign-ins.\r\n").await?;
            return Ok(());
        }
    }
}

/// An initial response as base64 text again, for [`sasl::login`] which decodes lines.
fn base64_line(raw: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(raw)
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_found_at_the_end_of_a_line() {
        assert_eq!(literal(b"a LOGIN {5}"), Some((5, true)));
        assert_eq!(literal(b"a LOGIN user {12+}"), Some((12, false)));
        assert_eq!(literal(b"a LOGIN user pass"), None);
        assert_eq!(literal(b"a LOGIN {}"), None);
        assert_eq!(literal(b"a LOGIN {99999999}"), None);
        assert_eq!(literal(b"a LOGIN {-1}"), None);
        assert_eq!(tag_of(b"a1 FOO\r\n").as_deref(), Some("a1"));
        assert_eq!(tag_of(b"* FOO\r\n"), None);
    }
}
