//! Lingering close. An answer given before the request body was read (a 413
//! for a declared length over the limit, a 401 before the body was looked
//! at) is followed by closing the connection; closing a socket with unread
//! input makes the kernel send a reset, and a client still writing its body
//! may then lose the answer it has not read yet. So such a connection is
//! closed the way nginx's `lingering_close` does: send FIN, then read and
//! discard what the client still sends until it closes too or
//! `http.lingering_close_ms` passes. It lingers when the answer asked for it
//! ([`LingerClose`]) or when input is waiting unread at close; otherwise the
//! close is a plain one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A response extension: close this connection lingering, after this answer.
#[derive(Clone, Copy, Debug)]
pub struct LingerClose;

/// The per-connection switch the service sets when a response carries
/// [`LingerClose`].
#[derive(Clone, Default)]
pub struct LingerFlag(Arc<AtomicBool>);

impl LingerFlag {
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A stream whose shutdown lingers when its flag is set; otherwise a plain
/// pass-through.
pub struct Lingering<S> {
    inner: S,
    flag: LingerFlag,
    wait: Duration,
    state: State,
}

enum State {
    Open,
    /// FIN sent; discarding input until EOF or the deadline.
    Draining(Pin<Box<Sleep>>),
    Done,
}

impl<S> Lingering<S> {
    pub fn new(inner: S, flag: LingerFlag, wait: Duration) -> Self {
        Self { inner, flag, wait, state: State::Open }
    }
}

impl<S: AsyncRead + Unpin> Lingering<S> {
    /// Whether the client has sent input nobody read (so it may still be
    /// writing). Reading it here is harmless: the connection is closing.
    fn unread_input(&mut self, cx: &mut Context<'_>) -> bool {
        let mut scratch = [0u8; 1024];
        let mut buf = ReadBuf::new(&mut scratch);
        matches!(Pin::new(&mut self.inner).poll_read(cx, &mut buf), Poll::Ready(Ok(()))) && !buf.filled().is_empty()
    }

    /// Reads and drops input until EOF, an error or the deadline.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 8192];
        loop {
            let State::Draining(deadline) = &mut self.state else { return Poll::Ready(()) };
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(()),
                Ok(()) => continue,
                Err(_) => return Poll::Ready(()),
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let open = matches!(this.state, State::Open);
            if open && !this.flag.is_set() && !this.unread_input(cx) {
                return Pin::new(&mut this.inner).poll_shutdown(cx);
            }
            match this.state {
                State::Open => {
                    // FIN first: the client sees the answer end, then we drain.
                    let _ = ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
                    this.state = State::Draining(Box::pin(tokio::time::sleep(this.wait)));
                }
                State::Draining(_) => {
                    ready!(this.poll_drain(cx));
                    this.state = State::Done;
                }
                State::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}
