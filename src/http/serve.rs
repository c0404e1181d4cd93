//! The accept loop (docs/reference.md, HTTP): the connection cap, hyper's header
//! timeout, a write timeout on every connection, and a graceful shutdown that ends
//! within a bounded time whatever the clients do.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tower::ServiceExt as _;

use super::HttpOptions;

/// Serves `router` on `listener` with the connection cap and timeouts of `options`
/// until `shutdown` completes; then stops accepting, lets in-flight requests finish
/// for at most `options.shutdown_grace`, and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    options: &HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let write_timeout = options.write_timeout;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A free slot first, then a connection: beyond the cap, connections wait in
        // the listen backlog instead of being accepted.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(Body::new))
            });
        let io = hyper_util::rt::TokioIo::new(WriteTimeout::new(stream, write_timeout));
        let connection = graceful.watch(http.serve_connection(io, service));
        let open = options.metered.then(crate::metrics::Open::connection);
        tokio::spawn(async move {
            let _open = open;
            if let Err(e) = connection.await {
                tracing::debug!(event = "http_connection_closed", remote_addr = %peer, "{e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            event = "server_stopping",
            "requests still in flight after {} s: stopping without them",
            options.shutdown_grace.as_secs()
        );
    }
    Ok(())
}

/// After a failed `accept`: a connection that went away before it was accepted is
/// nothing; anything else (out of file descriptors) is logged and waited out.
async fn accept_failed(error: &io::Error) {
    use io::ErrorKind as K;
    if matches!(
        error.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(
        event = "http_accept_failed",
        "cannot accept a connection: {error}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A stream whose writes fail with `TimedOut` once the peer has taken nothing for
/// `timeout`: a client that stops reading its responses cannot hold the connection
/// (and the memory of its unsent responses) longer than that.
pub(crate) struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write waits for the peer; disarmed by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        WriteTimeout {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// What a write that made no progress returns: `Pending`, or the timeout's
    /// error once the peer has taken nothing for `timeout`.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {} s: connection closed",
                    timeout.as_secs()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progressed(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.progressed(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progressed(result, cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_peer_that_stops_reading_times_the_write_out() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut timed = WriteTimeout::new(near, Duration::from_millis(300));
        // Writes proceed while the peer reads.
        timed.write_all(&[1u8; 1024]).await.unwrap();
        let mut buf = vec![0u8; 1024];
        far.read_exact(&mut buf).await.unwrap();
        timed.write_all(&[2u8; 1024]).await.unwrap();
        // The buffer is full; the peer reads nothing: after the timeout, TimedOut.
        let started = tokio::time::Instant::now();
        let error = timed.write_all(&[3u8; 10]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_not_timed_out() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut timed = WriteTimeout::new(near, Duration::from_millis(300));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 64 * 10 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                total += far.read(&mut buf).await.unwrap();
            }
        });
        for _ in 0..10 {
            timed.write_all(&[0u8; 64]).await.unwrap();
        }
        reader.await.unwrap();
    }
}
