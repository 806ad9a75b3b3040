//! The bridge's POP3 side before authentication (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS,
//! RFC 5034 AUTH): USER/PASS and AUTH PLAIN, LOGIN or XOAUTH2. Once signed in, the session is
//! relayed to Exchange.

use super::io::{Io, Lines, ReadError, relay};
use super::sasl::{self, Mechanism, Presented};
use super::{Ctx, MAX_FAILURES, SignInFailure, one_line, tls_required};
use crate::mail::MailProtocol;
use crate::secret::Secret;

fn capabilities(ctx: &Ctx, tls: bool) -> String {
    let mut caps = String::from(
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n",
    );
    if ctx.tls.is_some() && !tls {
        caps.push_str("STLS\r\n");
    }
    if !tls_required(ctx, tls) {
        caps.push_str("USER\r\nSASL PLAIN LOGIN XOAUTH2\r\n");
    }
    caps.push_str(".\r\n");
    caps
}

pub(super) async fn serve(ctx: &Ctx, stream: Box<dyn Io>, mut tls: bool) -> std::io::Result<()> {
    let mut lines = Lines::new(stream, ctx.idle);
    lines.send(b"+OK exgate bridge ready.\r\n").await?;
    let mut failures = 0;
    let mut user: Option<String> = None;
    loop {
        let line = match lines.line().await {
            Ok(l) => l,
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::TooLong) => {
                lines.send(b"-ERR Line too long.\r\n").await?;
                return Ok(());
            }
            Err(ReadError::Idle | ReadError::Closed) => return Ok(()),
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.to_owned()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        let presented = match verb.as_str() {
            "CAPA" => {
                lines.send(capabilities(ctx, tls).as_bytes()).await?;
                continue;
            }
            "QUIT" => {
                lines.send(b"+OK exgate bridge signing off.\r\n").await?;
                return Ok(());
            }
            "NOOP" => {
                lines.send(b"-ERR Sign in first.\r\n").await?;
                continue;
            }
            "STLS" if ctx.tls.is_some() && !tls => {
                lines.send(b"+OK Begin TLS negotiation.\r\n").await?;
                let stream = ctx.start_tls(lines.into_stream()).await?;
                lines = Lines::new(stream, ctx.idle);
                tls = true;
                user = None;
                continue;
            }
            "USER" | "PASS" | "AUTH" if tls_required(ctx, tls) => {
                lines.send(b"-ERR [SYS/PERM] Use STLS first.\r\n").await?;
                continue;
            }
            "USER" if !arg.is_empty() => {
                user = Some(arg);
                lines.send(b"+OK\r\n").await?;
                continue;
            }
            "PASS" => match user.take() {
                Some(username) => Some(Presented {
                    username,
                    password: Secret::new(arg),
                }),
                None => {
                    lines.send(b"-ERR USER first.\r\n").await?;
                    continue;
                }
            },
            "AUTH" => {
                let (mechanism, initial) = match arg.split_once(' ') {
                    Some((m, ir)) => (m.to_owned(), Some(ir.to_owned())),
                    None => (arg.clone(), None),
                };
                let Some(mechanism) = Mechanism::parse(&mechanism) else {
                    lines.send(b"-ERR Unsupported mechanism.\r\n").await?;
                    continue;
                };
                let presented =
                    sasl::exchange(&mut lines, "+ ", mechanism, initial.map(String::into_bytes))
                        .await?;
                match presented {
                    Some(p) => Some(p),
                    None => {
                        lines.send(b"-ERR AUTH cancelled or malformed.\r\n").await?;
                        continue;
                    }
                }
            }
            _ => {
                lines
                    .send(b"-ERR Unknown command, or sign in first.\r\n")
                    .await?;
                continue;
            }
        };
        let Some(presented) = presented else { continue };
        match ctx.sign_in(presented, MailProtocol::Pop).await {
            Ok((upstream, from_upstream)) => {
                lines.send(b"+OK Logged in.\r\n").await?;
                let (client, pipelined) = lines.into_parts();
                return relay(client, upstream, pipelined, from_upstream, ctx.idle).await;
            }
            Err(SignInFailure::BadPassword) => {
                failures += 1;
                lines.send(b"-ERR [AUTH] Invalid credentials.\r\n").await?;
            }
            Err(SignInFailure::Upstream(failure)) => {
                failures += 1;
                lines
                    .send(format!("-ERR [SYS/TEMP] {}\r\n", one_line(&failure)).as_bytes())
                    .await?;
            }
        }
        if failures >= MAX_FAILURES {
            return Ok(());
        }
    }
}
