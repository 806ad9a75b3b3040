//! The loopback redirect of a native app (RFC 8252 §7.3): a one-shot listener on 127.0.0.1 that
//! receives the browser's return from the authorization endpoint. Also parses a redirect URL that
//! a user pastes (`exgate login --manual`).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

use super::AuthError;

/// What the authorization endpoint sent back (RFC 6749 §4.1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedirectParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl RedirectParams {
    fn from_url(url: &Url) -> Self {
        let mut p = Self::default();
        for (k, v) in url.query_pairs() {
            let slot = match k.as_ref() {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "error" => &mut p.error,
                "error_description" => &mut p.error_description,
                _ => continue,
            };
            *slot = Some(v.into_owned());
        }
        p
    }

    /// Parses the URL the browser ended on, as a user pastes it.
    pub fn parse(pasted: &str) -> Result<Self, AuthError> {
        let url = Url::parse(pasted.trim()).map_err(|e| {
            AuthError::Flow(format!("that is not the URL the browser ended on ({e}); copy the whole address, starting with http"))
        })?;
        let params = Self::from_url(&url);
        if params.code.is_none() && params.error.is_none() {
            return Err(AuthError::Flow(
                "that URL carries neither a `code` nor an `error`; copy the address of the page the sign-in ended on".into(),
            ));
        }
        Ok(params)
    }
}

/// The largest request the listener reads.
const MAX_REQUEST: usize = 16 * 1024;

/// A listener on `127.0.0.1` with a free port.
#[derive(Debug)]
pub struct LoopbackReceiver {
    listener: TcpListener,
}

impl LoopbackReceiver {
    pub async fn bind() -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(("127.0.0.1", 0)).await?,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The redirect URI to send: `http://localhost:<port>` plus the path of the registered URI.
    pub fn redirect_uri(&self, registered_path: &str) -> String {
        let path = if registered_path == "/" {
            ""
        } else {
            registered_path
        };
        format!("http://localhost:{}{path}", self.port())
    }

    /// Waits for the browser's return: the first request that carries a `code` or an `error`.
    /// Other requests (a favicon) get a 404. The browser is shown `success_page` or `failure_page`.
    pub async fn receive(
        &self,
        success_page: &str,
        failure_page: &str,
    ) -> Result<RedirectParams, AuthError> {
        loop {
            let (mut stream, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| AuthError::Flow(format!("the loopback listener failed: {e}")))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 2048];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf);
            let target = head
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("/");
            let params = Url::parse(&format!("http://localhost{target}"))
                .map(|u| RedirectParams::from_url(&u))
                .unwrap_or_default();
            let (status, page) = if params.code.is_some() {
                ("200 OK", success_page)
            } else if params.error.is_some() {
                ("200 OK", failure_page)
            } else {
                ("404 Not Found", "not found")
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
            if params.code.is_some() || params.error.is_some() {
                return Ok(params);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_urls() {
        let p =
            RedirectParams::parse("http://localhost/?code=abc&state=xyz&session_state=1").unwrap();
        assert_eq!(p.code.as_deref(), Some("abc"));
        assert_eq!(p.state.as_deref(), Some("xyz"));
        let p = RedirectParams::parse(
            "http://localhost:1234/?error=access_denied&error_description=AADSTS65004%3A+declined",
        )
        .unwrap();
        assert_eq!(
            p.error_description.as_deref(),
            Some("AADSTS65004: declined")
        );
        assert!(RedirectParams::parse("not a url").is_err());
        assert!(RedirectParams::parse("http://localhost/?foo=bar").is_err());
    }

    #[tokio::test]
    async fn receives_the_redirect_and_ignores_other_requests() {
        let rx = LoopbackReceiver::bind().await.unwrap();
        let uri = rx.redirect_uri("/");
        assert_eq!(uri, format!("http://localhost:{}", rx.port()));
        let port = rx.port();
        let client = tokio::spawn(async move {
            let get = |path: &'static str| async move {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            };
            let favicon = get("/favicon.ico").await;
            let redirect = get("/?code=c0de&state=s1").await;
            (favicon, redirect)
        });
        let params = rx.receive("signed in", "failed").await.unwrap();
        assert_eq!(params.code.as_deref(), Some("c0de"));
        assert_eq!(params.state.as_deref(), Some("s1"));
        let (favicon, redirect) = client.await.unwrap();
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        assert!(redirect.ends_with("signed in"), "{redirect}");
    }
}
