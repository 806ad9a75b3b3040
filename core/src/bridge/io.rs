//! The byte plumbing of a bridge session: a line reader with a bound and an idle timeout that
//! gives back what it has buffered (so nothing a client pipelined is lost when the session
//! turns into a relay), and the relay itself.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Any stream a session runs over: plain TCP, TLS, or (upstream) a [`crate::mail::MailStream`].
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The longest command line accepted before authentication (RFC 3501 and 5321 clients stay far
/// below it; a LOGIN with literals is assembled from several lines, each bounded).
pub(super) const MAX_LINE: usize = 8 * 1024;

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    #[error("the peer was idle for too long")]
    Idle,
    #[error("the peer closed the connection")]
    Closed,
    #[error("a line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// A stream with a read buffer.
pub(super) struct Lines<S> {
    stream: S,
    buf: Vec<u8>,
    idle: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Lines<S> {
    pub(super) fn new(stream: S, idle: Duration) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            idle,
        }
    }

    async fn fill(&mut self) -> Result<(), ReadError> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(self.idle, self.stream.read(&mut chunk))
            .await
            .map_err(|_| ReadError::Idle)??;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next line, without its line end (CRLF, or a bare LF as lenient servers take it).
    pub(super) async fn line(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut searched = 0;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..]) {
                let end = searched + i;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            searched = self.buf.len();
            if searched > MAX_LINE {
                return Err(ReadError::TooLong);
            }
            self.fill().await?;
        }
    }

    /// Exactly `n` bytes (an IMAP literal).
    pub(super) async fn bytes(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The stream and whatever was read but not yet consumed.
    pub(super) fn into_parts(self) -> (S, Vec<u8>) {
        (self.stream, self.buf)
    }

    /// The stream alone, dropping anything buffered: after STARTTLS nothing sent in the clear
    /// may count (RFC 3207, RFC 3501 §6.2.1, RFC 2595).
    pub(super) fn into_stream(self) -> S {
        self.stream
    }
}

/// Relays bytes both ways until either side closes or nothing moves for `idle`; `to_upstream`
/// and `to_client` are bytes already read from one side and owed to the other.
pub(super) async fn relay<C: Io, U: Io>(
    mut client: C,
    mut upstream: U,
    to_upstream: Vec<u8>,
    to_client: Vec<u8>,
    idle: Duration,
) -> io::Result<()> {
    if !to_upstream.is_empty() {
        upstream.write_all(&to_upstream).await?;
    }
    if !to_client.is_empty() {
        client.write_all(&to_client).await?;
    }
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let n = read?;
                if n == 0 {
                    let _ = upstream.shutdown().await;
                    return Ok(());
                }
                upstream.write_all(&up[..n]).await?;
            }
            read = upstream.read(&mut down) => {
                let n = read?;
                if n == 0 {
                    let _ = client.shutdown().await;
                    return Ok(());
                }
                client.write_all(&down[..n]).await?;
            }
            () = tokio::time::sleep(idle) => return Ok(()),
        }
    }
}
