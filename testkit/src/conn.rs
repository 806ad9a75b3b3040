//! The accept loop of every mock server (plain HTTP and TLS), one task per connection, and the
//! handle a handler uses to reset its connection ([`ConnectionControl`]).
//!
//! A reset closes the TCP connection with an RST and without writing any answer: the handler
//! calls [`ConnectionControl::reset`] and never returns; the connection task sees the signal,
//! drops the connection (and with it the handler), and the socket is closed with `SO_LINGER` 0.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// In every request's extensions: resets the connection the request came on.
#[derive(Debug, Default)]
pub struct ConnectionControl {
    reset: AtomicBool,
    notify: Notify,
    /// Unique per accepted connection (NTLM authenticates a connection, not a request).
    id: u64,
}

static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ConnectionControl {
    /// Closes the connection with a TCP reset, without writing an answer. The caller should
    /// then never answer (await [`std::future::pending`]): its future is dropped.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// This connection's number, unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::SeqCst)
    }
}

/// The request's connection handle, when it came through [`serve`].
pub(crate) fn control(extensions: &axum::http::Extensions) -> Option<Arc<ConnectionControl>> {
    extensions.get::<Arc<ConnectionControl>>().cloned()
}

/// A TCP stream that closes with an RST (`SO_LINGER` 0) when its connection was reset.
struct ResettableStream {
    inner: TcpStream,
    control: Arc<ConnectionControl>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.control.is_reset() {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// How long in-flight requests may take to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Accepts connections (over TLS when `acceptor` is given) until `stop` fires; then lets
/// in-flight requests finish (at most [`DRAIN`]) and closes every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    mut stop: oneshot::Receiver<()>,
) {
    let (draining, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, acceptor.clone(), app.clone(), drain_rx.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = draining.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        connections.shutdown().await;
    }
}

async fn connection(
    stream: TcpStream,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    drain: watch::Receiver<bool>,
) {
    let control = Arc::new(ConnectionControl {
        id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
        ..ConnectionControl::default()
    });
    let io = ResettableStream {
        inner: stream,
        control: Arc::clone(&control),
    };
    let service = TowerToHyperService::new(app.layer(axum::Extension(Arc::clone(&control))));
    match acceptor {
        None => drive(TokioIo::new(io), service, &control, drain).await,
        Some(acceptor) => {
            // A client that fails the handshake (e.g. does not trust the CA) is dropped.
            let Ok(tls) = acceptor.accept(io).await else {
                return;
            };
            drive(TokioIo::new(tls), service, &control, drain).await;
        }
    }
}

/// Runs one connection until it ends, is reset (dropped at once) or drained (graceful).
async fn drive<I>(
    io: I,
    service: TowerToHyperService<Router>,
    control: &ConnectionControl,
    mut drain: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut draining = *drain.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            biased;
            () = control.notify.notified() => {
                if control.is_reset() {
                    // Dropping the connection drops its IO: the socket closes with an RST.
                    return;
                }
            }
            // A connection that ends badly (client gone mid-request) concerns nobody.
            _ = conn.as_mut() => return,
            changed = drain.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
