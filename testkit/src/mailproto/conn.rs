//! The connection plumbing of the mail servers: a stream that is plain or TLS and can be
//! upgraded in place (STARTTLS, STLS), bounded line reads with an idle timeout, and the accept
//! loop (one task per connection; every connection stops with the server).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader, ReadBuf,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A connection's byte stream: plain TCP or TLS over it.
#[derive(Debug)]
pub(crate) enum MailStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a connection ends or a read failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("the client closed the connection")]
    Closed,
    #[error("the client was silent for too long")]
    Idle,
    #[error("the line is longer than the limit")]
    TooLong,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// One client connection.
pub(crate) struct Conn {
    io: Option<BufReader<MailStream>>,
    acceptor: TlsAcceptor,
    idle: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Whether the connection is encrypted (implicit TLS or after STARTTLS).
    pub(crate) fn is_tls(&self) -> bool {
        matches!(
            self.io.as_ref().map(BufReader::get_ref),
            Some(MailStream::Tls(_))
        )
    }

    fn io(&mut self) -> Result<&mut BufReader<MailStream>, ConnError> {
        self.io.as_mut().ok_or(ConnError::Closed)
    }

    pub(crate) fn set_idle_timeout(&mut self, idle: Duration) {
        self.idle = idle;
    }

    /// Writes and flushes `bytes`.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let idle = self.idle;
        let io = self.io()?.get_mut();
        tokio::time::timeout(idle, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .map_err(|_| ConnError::Idle)??;
        Ok(())
    }

    /// Reads one line (with its CRLF) of at most `max` bytes; a longer line is read to its end
    /// and dropped ([`ConnError::TooLong`]), so the connection can go on.
    pub(crate) async fn read_line(&mut self, max: usize) -> Result<Vec<u8>, ConnError> {
        let idle = self.idle;
        let io = self.io()?;
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let buf = tokio::time::timeout(idle, io.fill_buf())
                .await
                .map_err(|_| ConnError::Idle)??;
            if buf.is_empty() {
                return Err(ConnError::Closed);
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if !too_long {
                if line.len() + take > max {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(&buf[..take]);
                }
            }
            io.consume(take);
            if done {
                return if too_long {
                    Err(ConnError::TooLong)
                } else {
                    Ok(line)
                };
            }
        }
    }

    /// Reads what is there (at least one byte), at most `max` bytes.
    pub(crate) async fn read_some(&mut self, max: usize) -> Result<Vec<u8>, ConnError> {
        let idle = self.idle;
        let io = self.io()?;
        let buf = tokio::time::timeout(idle, io.fill_buf())
            .await
            .map_err(|_| ConnError::Idle)??;
        if buf.is_empty() {
            return Err(ConnError::Closed);
        }
        let take = buf.len().min(max);
        let bytes = buf[..take].to_vec();
        io.consume(take);
        Ok(bytes)
    }

    /// Reads exactly `n` bytes (SMTP BDAT), keeping at most `keep` of them.
    pub(crate) async fn read_exact(&mut self, n: usize, keep: usize) -> Result<Vec<u8>, ConnError> {
        let mut kept = Vec::new();
        let mut left = n;
        while left > 0 {
            let chunk = self.read_some(left.min(64 * 1024)).await?;
            left -= chunk.len();
            let room = keep.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(kept)
    }

    /// Ends the connection cleanly (TLS close_notify, then FIN).
    pub(crate) async fn close(&mut self) {
        if let Some(io) = self.io.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(5), io.get_mut().shutdown()).await;
        }
        self.io = None;
    }

    /// Upgrades a plain connection to TLS (STARTTLS, STLS). Bytes the client pipelined after
    /// the command are dropped, as RFC 3207 requires.
    pub(crate) async fn start_tls(&mut self) -> Result<(), ConnError> {
        let io = self.io.take().ok_or(ConnError::Closed)?;
        let MailStream::Plain(tcp) = io.into_inner() else {
            return Err(ConnError::Closed);
        };
        let tls = tokio::time::timeout(self.idle, self.acceptor.accept(tcp))
            .await
            .map_err(|_| ConnError::Idle)??;
        self.io = Some(BufReader::new(MailStream::Tls(Box::new(tls))));
        Ok(())
    }
}

/// How a listener takes its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// TLS from the first byte (993, 995, 465).
    Implicit,
    /// Plain first; the protocol's STARTTLS upgrades it (143, 110, 587).
    StartTls,
}

/// Accepts connections on `listener` until the returned task is aborted; each runs
/// `handler` in its own task, and aborting the loop aborts them all.
pub(crate) fn serve<H, F>(
    listener: TcpListener,
    security: Security,
    acceptor: TlsAcceptor,
    idle: Duration,
    handler: H,
) -> JoinHandle<()>
where
    H: Fn(Conn) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, _peer)) = accepted else {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let handler = Arc::clone(&handler);
                    let acceptor = acceptor.clone();
                    connections.spawn(async move {
                        let stream = match security {
                            Security::StartTls => MailStream::Plain(tcp),
                            Security::Implicit => {
                                // A client that fails the handshake (e.g. does not trust the
                                // CA) is dropped.
                                match tokio::time::timeout(idle, acceptor.accept(tcp)).await {
                                    Ok(Ok(tls)) => MailStream::Tls(Box::new(tls)),
                                    _ => return,
                                }
                            }
                        };
                        handler(Conn { io: Some(BufReader::new(stream)), acceptor, idle }).await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

/// Running listeners; dropping it stops them and every connection they accepted.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    tasks: Vec<JoinHandle<()>>,
}

impl Listeners {
    pub(crate) fn push(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Stops every listener and connection.
    pub(crate) fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop();
    }
}
