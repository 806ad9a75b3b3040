//! The bridge's SMTP side before authentication (RFC 5321 submission, RFC 3207 STARTTLS,
//! RFC 4954 AUTH): EHLO/HELO, AUTH PLAIN, LOGIN or XOAUTH2, RSET, NOOP, QUIT. Once signed in,
//! the session is relayed to Exchange, where the bridge has already said EHLO.

use super::io::{Io, Lines, ReadError, relay};
use super::sasl::{self, Mechanism};
use super::{Ctx, MAX_FAILURES, SignInFailure, one_line, tls_required};
use crate::mail::MailProtocol;

fn ehlo(ctx: &Ctx, tls: bool) -> String {
    let mut out = String::from(
        "250-exgate bridge\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n",
    );
    if ctx.tls.is_some() && !tls {
        out.push_str("250-STARTTLS\r\n");
    }
    if !tls_required(ctx, tls) {
        out.push_str("250-AUTH PLAIN LOGIN XOAUTH2\r\n");
    }
    out.push_str("250 SIZE 36700160\r\n");
    out
}

pub(super) async fn serve(ctx: &Ctx, stream: Box<dyn Io>, mut tls: bool) -> std::io::Result<()> {
    let mut lines = Lines::new(stream, ctx.idle);
    lines.send(b"220 exgate bridge ESMTP ready\r\n").await?;
    let mut failures = 0;
    let mut greeted = false;
    loop {
        let line = match lines.line().await {
            Ok(l) => l,
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::TooLong) => {
                lines.send(b"500 5.5.6 Line too long\r\n").await?;
                return Ok(());
            }
            Err(ReadError::Idle) => {
                lines.send(b"421 4.4.2 Idle for too long\r\n").await?;
                return Ok(());
            }
            Err(ReadError::Closed) => return Ok(()),
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (text.trim().to_ascii_uppercase(), String::new()),
        };
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => {
                greeted = true;
                lines.send(ehlo(ctx, tls).as_bytes()).await?;
                continue;
            }
            "HELO" => {
                greeted = true;
                b"250 exgate bridge\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "RSET" => b"250 2.0.0 Reset\r\n",
            "QUIT" => {
                lines.send(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            "STARTTLS" if ctx.tls.is_some() && !tls => {
                lines.send(b"220 2.0.0 Ready to start TLS\r\n").await?;
                let stream = ctx.start_tls(lines.into_stream()).await?;
                lines = Lines::new(stream, ctx.idle);
                tls = true;
                greeted = false;
                continue;
            }
            "AUTH" if tls_required(ctx, tls) => {
                b"530 5.7.0 Must issue a STARTTLS command first\r\n"
            }
            "AUTH" if !greeted => b"503 5.5.1 EHLO first\r\n",
            "AUTH" => {
                let (mechanism, initial) = match arg.split_once(' ') {
                    Some((m, ir)) => (m.to_owned(), Some(ir.to_owned())),
                    None => (arg.clone(), None),
                };
                let Some(mechanism) = Mechanism::parse(&mechanism) else {
                    lines
                        .send(b"504 5.5.4 Unrecognized authentication type\r\n")
                        .await?;
                    continue;
                };
                let presented = sasl::exchange(
                    &mut lines,
                    "334 ",
                    mechanism,
                    initial.map(String::into_bytes),
                )
                .await?;
                let Some(presented) = presented else {
                    lines.send(b"501 5.5.2 Cannot decode response\r\n").await?;
                    continue;
                };
                match ctx.sign_in(presented, MailProtocol::Smtp).await {
                    Ok((upstream, from_upstream)) => {
                        lines
                            .send(b"235 2.7.0 Authentication successful\r\n")
                            .await?;
                        let (client, pipelined) = lines.into_parts();
                        return relay(client, upstream, pipelined, from_upstream, ctx.idle).await;
                    }
                    Err(SignInFailure::BadPassword) => {
                        failures += 1;
                        lines
                            .send(b"535 5.7.8 Authentication credentials invalid\r\n")
                            .await?;
                    }
                    Err(SignInFailure::Upstream(failure)) => {
                        failures += 1;
                        lines
                            .send(format!("454 4.7.0 {}\r\n", one_line(&failure)).as_bytes())
                            .await?;
                    }
                }
                if failures >= MAX_FAILURES {
                    lines
                        .send(b"421 4.7.0 Too many failed sign-ins\r\n")
                        .await?;
                    return Ok(());
                }
                continue;
            }
            "MAIL" | "RCPT" | "DATA" | "BDAT" => b"530 5.7.0 Authentication required\r\n",
            _ => b"502 5.5.2 Command not recognized before authentication\r\n",
        };
        lines.send(answer).await?;
    }
}
