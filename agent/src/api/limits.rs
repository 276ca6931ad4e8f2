//! Bounds for the agent's TCP servers (Peers, and Wires when served over TCP), so that a flood
//! of connections or a client that connects and says nothing cannot starve the agent: at most
//! so many connections at once (the next are closed at once), a connection that sends nothing
//! within [`FIRST_BYTES_WITHIN`] is closed, HTTP/2 keepalive drops peers that stopped
//! answering, and each connection has a bounded number of streams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::warn;

/// How long a new connection has to send its first bytes (the HTTP/2 preface).
pub const FIRST_BYTES_WITHIN: Duration = Duration::from_secs(10);
/// How often an idle connection is pinged, and how long the answer may take.
const KEEPALIVE: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(10));
/// Concurrent streams (calls) on one connection.
const STREAMS_PER_CONNECTION: u32 = 64;

/// A server builder with the keepalive and stream limits.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(KEEPALIVE.0))
        .http2_keepalive_timeout(Some(KEEPALIVE.1))
        .max_concurrent_streams(Some(STREAMS_PER_CONNECTION))
        .concurrency_limit_per_connection(STREAMS_PER_CONNECTION as usize)
}

/// The connections of `listener`, at most `max` open at once; `what` names the server in the
/// log when one is refused.
pub fn incoming(
    listener: TcpListener,
    max: usize,
    what: &'static str,
) -> impl Stream<Item = io::Result<Limited>> {
    let slots = Arc::new(Semaphore::new(max));
    TcpListenerStream::new(listener).filter_map(move |accepted| {
        let next = match accepted {
            Ok(stream) => match slots.clone().try_acquire_owned() {
                Ok(permit) => Some(Ok(Limited::new(stream, permit))),
                Err(_) => {
                    let from = stream
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    warn!(
                        server = what,
                        from, max, "too many connections; closed a new one"
                    );
                    None
                }
            },
            Err(e) => Some(Err(e)),
        };
        std::future::ready(next)
    })
}

/// An accepted connection holding its slot until it closes, closed if it sends nothing in time.
#[derive(Debug)]
pub struct Limited {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Anything else the connection holds until it closes (its count against its source).
    _held: Option<Box<dyn std::fmt::Debug + Send + Sync>>,
    /// Until the first bytes arrive.
    silent: Option<Pin<Box<Sleep>>>,
}

impl Limited {
    pub(crate) fn new(stream: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            stream,
            _slot: slot,
            _held: None,
            silent: Some(Box::pin(tokio::time::sleep(FIRST_BYTES_WITHIN))),
        }
    }

    /// The same connection, also holding `held` until it closes.
    pub(crate) fn holding(mut self, held: impl std::fmt::Debug + Send + Sync + 'static) -> Self {
        self._held = Some(Box::new(held));
        self
    }
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.silent = None;
        } else if read.is_pending()
            && let Some(silent) = self.silent.as_mut()
            && silent.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client sent nothing after connecting",
            )));
        }
        read
    }
}

/// Implements `AsyncWrite` for a connection type by handing every call to its stream field.
macro_rules! delegate_write {
    ($ty:ty, $field:ident) => {
        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.$field).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.$field).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.$field).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }
        }
    };
}
pub(crate) use delegate_write;

delegate_write!(Limited, stream);
