//! Accepting connections, at most `--max-connections` at once: past the
//! limit the accept loop waits (the kernel backlog holds new clients) until
//! a connection closes and gives its permit back.
//!
//! Every connection is a file descriptor. At start the soft descriptor limit
//! is raised to the hard one and the default connection cap is derived from
//! it, leaving room for Redis connections, listeners and files. Should
//! accepting still fail (the limit is shared with everything else), the loop
//! backs off instead of retrying at once (the pending client stays in the
//! backlog, so a retry without a pause spins), and says so in the log once
//! per interval.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The default `--max-connections` when the descriptor limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Descriptors kept back from connections: at least this many...
const MIN_HEADROOM: u64 = 32;
/// ...or this share of the limit, whichever is larger.
const HEADROOM_SHARE: u64 = 8;
/// Pauses after a failed accept: the first, doubling up to the last.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one log line per this interval about failing accepts.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The open-file limit of this process, after `raise_fd_limit`.
#[derive(Clone, Copy, Debug)]
pub struct FdLimit {
    /// The soft limit before raising, and now (`None`: unlimited).
    pub was: Option<u64>,
    pub now: Option<u64>,
}

/// Raises the soft open-file limit to the hard limit (a failure leaves it).
pub fn raise_fd_limit() -> FdLimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let was = limit.current;
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(soft = ?was, hard = ?limit.maximum, "cannot raise the open-file limit: {e}");
        }
    }
    FdLimit {
        was,
        now: getrlimit(Resource::Nofile).current,
    }
}

impl FdLimit {
    /// The connection cap that leaves headroom under this limit.
    pub fn default_max_connections(self) -> usize {
        match self.now {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n) => {
                let headroom = (n / HEADROOM_SHARE).max(MIN_HEADROOM);
                let room = n.saturating_sub(headroom).max(1);
                usize::try_from(room)
                    .unwrap_or(usize::MAX)
                    .min(DEFAULT_MAX_CONNECTIONS)
            }
        }
    }
}

/// A TCP connection holding one of the limited places.
pub struct LimitedConnection {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
}

/// Failing accepts: how long to pause next, and what to log when.
struct Trouble {
    backoff: Duration,
    failures: u64,
    logged_at: Option<Instant>,
}

impl Trouble {
    fn new() -> Self {
        Self {
            backoff: FIRST_BACKOFF,
            failures: 0,
            logged_at: None,
        }
    }

    /// Records a failed accept; returns the pause before the next try.
    fn failed(&mut self, e: &io::Error, max: usize) -> Duration {
        self.failures += 1;
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_INTERVAL);
        if due {
            tracing::error!(
                failures = self.failures,
                max_connections = max,
                "cannot accept connections: {e} (out of file descriptors? raise `ulimit -n` or lower --max-connections); backing off, new clients wait"
            );
            self.logged_at = Some(Instant::now());
            self.failures = 0;
        }
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        pause
    }

    fn succeeded(&mut self) {
        if self.logged_at.is_some() {
            tracing::info!("accepting connections again");
        }
        *self = Self::new();
    }
}

/// Errors of one connection (it went away before it was accepted), not of
/// the listener: try the next at once.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// The connections of `listener`, at most `max` open at a time. Never
/// yields an error: a failing accept is retried after a pause.
pub fn incoming(
    listener: TcpListener,
    max: usize,
) -> impl Stream<Item = io::Result<LimitedConnection>> {
    let places = Arc::new(Semaphore::new(max));
    let state = (listener, places, Trouble::new());
    futures::stream::unfold(state, move |(listener, places, mut trouble)| async move {
        let place = places.clone().acquire_owned().await.ok()?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    trouble.succeeded();
                    let _ = stream.set_nodelay(true);
                    let connection = LimitedConnection {
                        stream,
                        _place: place,
                    };
                    return Some((Ok(connection), (listener, places, trouble)));
                }
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => tokio::time::sleep(trouble.failed(&e, max)).await,
            }
        }
    })
}

impl Connected for LimitedConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for LimitedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
