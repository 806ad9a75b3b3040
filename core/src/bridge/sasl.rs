//! The SASL mechanisms a password client uses with the bridge: PLAIN (RFC 4616), LOGIN (the
//! de-facto mechanism of SMTP clients), and XOAUTH2 — from a client that already speaks it, whose
//! "token" is then its local bridge password: the bridge replaces it with a real one upstream.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::io::{Io, Lines, ReadError};
use crate::secret::Secret;

/// One SASL step: `prefix challenge` (`+ ` for IMAP and POP, `334 ` for SMTP), then the
/// client's line; `*` cancels.
pub(super) async fn respond(
    lines: &mut Lines<Box<dyn Io>>,
    prefix: &str,
    challenge: &str,
) -> Result<Option<Vec<u8>>, ReadError> {
    lines
        .send(format!("{prefix}{challenge}\r\n").as_bytes())
        .await?;
    let line = lines.line().await?;
    Ok((line.trim_ascii() != b"*").then_some(line))
}

/// The rest of an exchange begun with `mechanism` and, if the client sent one, its base64
/// initial response; `None` if the client cancelled or sent something undecodable.
pub(super) async fn exchange(
    lines: &mut Lines<Box<dyn Io>>,
    prefix: &str,
    mechanism: Mechanism,
    initial: Option<Vec<u8>>,
) -> Result<Option<Presented>, ReadError> {
    Ok(match mechanism {
        Mechanism::Login => {
            let user = match initial {
                Some(ir) => Some(ir),
                None => respond(lines, prefix, "VXNlcm5hbWU6").await?,
            };
            match user {
                Some(user) => respond(lines, prefix, "UGFzc3dvcmQ6")
                    .await?
                    .and_then(|pass| login(&user, &pass)),
                None => None,
            }
        }
        m => {
            let response = match initial {
                Some(ir) => Some(ir),
                None => respond(lines, prefix, "").await?,
            };
            response
                .and_then(|r| decode_b64(&r))
                .and_then(|raw| decode(m, &raw))
        }
    })
}

/// A user name and password presented by a client.
pub(super) struct Presented {
    pub(super) username: String,
    pub(super) password: Secret,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A mechanism the bridge accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mechanism {
    Plain,
    Login,
    XOAuth2,
}

impl Mechanism {
    pub(super) fn parse(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Self::Plain),
            "LOGIN" => Some(Self::Login),
            "XOAUTH2" => Some(Self::XOAuth2),
            _ => None,
        }
    }
}

/// Base64 from a client line (`=` alone is an empty response, RFC 4954).
pub(super) fn decode_b64(line: &[u8]) -> Option<Vec<u8>> {
    let line = line.trim_ascii();
    if line == b"=" {
        return Some(Vec::new());
    }
    STANDARD.decode(line).ok()
}

/// The decoded response of PLAIN or XOAUTH2 (LOGIN takes two steps, [`login`]).
pub(super) fn decode(mechanism: Mechanism, raw: &[u8]) -> Option<Presented> {
    match mechanism {
        Mechanism::Plain => plain(raw),
        Mechanism::XOAuth2 => xoauth2(raw),
        Mechanism::Login => None,
    }
}

/// `authzid NUL authcid NUL passwd`; an authorization identity other than the user is refused.
fn plain(raw: &[u8]) -> Option<Presented> {
    let mut parts = raw.splitn(3, |&b| b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    let authz = std::str::from_utf8(authz).ok()?;
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(user) {
        return None;
    }
    Some(Presented {
        username: user.to_owned(),
        password: Secret::new(pass),
    })
}

/// `user=NAME ^A auth=Bearer TOKEN ^A ^A`.
fn xoauth2(raw: &[u8]) -> Option<Presented> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut user = None;
    let mut token = None;
    for part in text.split('\u{1}') {
        if let Some(u) = part.strip_prefix("user=") {
            user = Some(u);
        } else if let Some(a) = part.strip_prefix("auth=") {
            let (scheme, value) = a.split_once(' ')?;
            if scheme.eq_ignore_ascii_case("bearer") {
                token = Some(value);
            }
        }
    }
    Some(Presented {
        username: user?.to_owned(),
        password: Secret::new(token?),
    })
}

/// The two answers of LOGIN, each base64.
pub(super) fn login(user_line: &[u8], pass_line: &[u8]) -> Option<Presented> {
    let user = String::from_utf8(decode_b64(user_line)?).ok()?;
    let pass = String::from_utf8(decode_b64(pass_line)?).ok()?;
    Some(Presented {
        username: user,
        password: Secret::new(pass),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_decode_what_clients_send() {
        let p = decode(Mechanism::Plain, b"\0adele@contoso.com\0pw").unwrap();
        assert_eq!(
            (p.username.as_str(), p.password.expose()),
            ("adele@contoso.com", "pw")
        );
        let p = decode(
            Mechanism::Plain,
            b"adele@contoso.com\0adele@contoso.com\0pw",
        )
        .unwrap();
        assert_eq!(p.username, "adele@contoso.com");
        // Acting as someone else through PLAIN's authorization identity is refused.
        assert!(
            decode(
                Mechanism::Plain,
                b"megan@contoso.com\0adele@contoso.com\0pw"
            )
            .is_none()
        );
        let p = decode(
            Mechanism::XOAuth2,
            b"user=a@b.c\x01auth=Bearer local-pw\x01\x01",
        )
        .unwrap();
        assert_eq!(
            (p.username.as_str(), p.password.expose()),
            ("a@b.c", "local-pw")
        );
        assert!(decode(Mechanism::XOAuth2, b"user=a@b.c\x01\x01").is_none());
        let p = login(b"YUBiLmM=", b"cHc=").unwrap();
        assert_eq!((p.username.as_str(), p.password.expose()), ("a@b.c", "pw"));
        assert!(login(b"not base64!", b"cHc=").is_none());
        assert_eq!(decode_b64(b"=").unwrap(), Vec::<u8>::new());
    }
}
