//! NTLM over HTTP: NTLM authenticates a TCP connection, not a request, so the three legs
//! (NEGOTIATE → 401 with the CHALLENGE → AUTHENTICATE) must travel on one connection, and later
//! requests on that connection need no handshake. Each session here is an HTTP/1.1 client that
//! keeps at most one connection; a request takes a session for itself, and an authenticated
//! session goes back to the pool for the next request. When the server asks again (its
//! connection closed and reqwest opened a new one), the session shakes hands again.

use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use crate::auth::ntlm::{NtlmError, NtlmHandshake};
use crate::config::NetworkSettings;
use crate::model::PasswordAuth;

/// Authenticated sessions kept for reuse, at most.
const IDLE: usize = 16;
/// The most of a 401 answer read before its connection is reused.
const DRAIN: usize = 64 * 1024;

/// Why an NTLM request failed before it had an answer.
#[derive(Debug)]
pub(crate) enum NtlmFailure {
    Transport(reqwest::Error),
    Handshake(NtlmError),
}

impl From<reqwest::Error> for NtlmFailure {
    fn from(e: reqwest::Error) -> Self {
        Self::Transport(e)
    }
}

/// A pool of single-connection HTTP clients for one NTLM account.
pub struct NtlmSessions {
    network: NetworkSettings,
    idle: Mutex<Vec<reqwest::Client>>,
}

impl std::fmt::Debug for NtlmSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmSessions")
            .field("idle", &self.idle.lock().map_or(0, |i| i.len()))
            .finish_non_exhaustive()
    }
}

impl NtlmSessions {
    pub fn new(network: NetworkSettings) -> Self {
        Self {
            network,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn session(&self) -> Result<(reqwest::Client, bool), NtlmFailure> {
        if let Some(client) = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Ok((client, true));
        }
        let builder = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(1)
            .read_timeout(crate::net::REQUEST_TIMEOUT);
        let client = crate::net::build(&self.network, builder)
            .map_err(|e| NtlmFailure::Handshake(NtlmError::other(e.to_string())))?;
        Ok((client, false))
    }

    fn keep(&self, client: reqwest::Client) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE {
            idle.push(client);
        }
    }

    /// Sends the request `make` builds, authenticating its connection as `auth` if the server
    /// asks. `reuse`: put the session back for the next request once the answer has arrived
    /// (not for a streamed body, which keeps the connection busy).
    pub(crate) async fn send(
        &self,
        host: &str,
        auth: &PasswordAuth,
        reuse: bool,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, NtlmFailure> {
        let (client, authenticated) = self.session()?;
        if authenticated {
            let resp = make(&client).send().await?;
            if resp.status() != StatusCode::UNAUTHORIZED || !offers_ntlm(&resp) {
                if reuse {
                    self.keep(client);
                }
                return Ok(resp);
            }
            drain(resp).await;
        }
        let mut handshake = NtlmHandshake::new(auth, host).map_err(NtlmFailure::Handshake)?;
        let negotiate = handshake.negotiate().map_err(NtlmFailure::Handshake)?;
        let resp = make(&client)
            .header(
                AUTHORIZATION,
                format!("NTLM {}", STANDARD.encode(negotiate)),
            )
            .send()
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            // Anonymous access, or an answer that is not about authentication.
            return Ok(resp);
        }
        let Some(challenge) = challenge(&resp) else {
            // NTLM is not offered (or was refused outright): the caller explains the 401.
            return Ok(resp);
        };
        drain(resp).await;
        let authenticate = handshake
            .authenticate(&challenge)
            .map_err(NtlmFailure::Handshake)?;
        let resp = make(&client)
            .header(
                AUTHORIZATION,
                format!("NTLM {}", STANDARD.encode(authenticate)),
            )
            .send()
            .await?;
        if reuse && resp.status() != StatusCode::UNAUTHORIZED {
            self.keep(client);
        }
        Ok(resp)
    }
}

/// Whether a 401 invites NTLM (`WWW-Authenticate: NTLM`, or `Negotiate`, which falls back to it).
fn offers_ntlm(resp: &reqwest::Response) -> bool {
    resp.headers().get_all(WWW_AUTHENTICATE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            let scheme = v.split_whitespace().next().unwrap_or_default();
            scheme.eq_ignore_ascii_case("NTLM")
        })
    })
}

/// The CHALLENGE message in `WWW-Authenticate: NTLM <base64>`.
fn challenge(resp: &reqwest::Response) -> Option<Vec<u8>> {
    resp.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("NTLM"))
        .find_map(|(_, token)| STANDARD.decode(token.trim()).ok())
        .filter(|c| c.starts_with(b"NTLMSSP\0"))
}

/// Reads a 401's body so its connection can carry the next leg; a large one is dropped (and
/// its connection with it).
async fn drain(mut resp: reqwest::Response) {
    let mut read = 0;
    while let Ok(Some(chunk)) = resp.chunk().await {
        read += chunk.len();
        if read > DRAIN {
            return;
        }
    }
}
