//! The byte streams a relay moves bytes between: TCP, unix sockets and TLS over TCP, on
//! either side. A relay runs both directions in one task, so it needs each stream split into
//! a read half and a write half, and a way to wait until the read half has bytes without
//! handing it a buffer first (so an idle relay holds none).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{tcp, unix, TcpStream, UnixStream};

/// A connection a relay can split into two halves that run concurrently in one task.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Reader<'a>: Readable + AsyncRead + Unpin + Send
    where
        Self: 'a;
    type Writer<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;

    fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);
}

/// A read half that can say when a read would not wait.
pub trait Readable {
    /// Resolves once a read returns bytes, the end, or an error without waiting (it may
    /// wake spuriously: the read then waits, as it would have anyway).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_;
}

impl Stream for TcpStream {
    type Reader<'a> = tcp::ReadHalf<'a>;
    type Writer<'a> = tcp::WriteHalf<'a>;

    fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        TcpStream::split(self)
    }
}

impl Readable for tcp::ReadHalf<'_> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        tcp::ReadHalf::readable(self)
    }
}

impl Stream for UnixStream {
    type Reader<'a> = unix::ReadHalf<'a>;
    type Writer<'a> = unix::WriteHalf<'a>;

    fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        UnixStream::split(self)
    }
}

impl Readable for unix::ReadHalf<'_> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        unix::ReadHalf::readable(self)
    }
}

/// A half of a TLS stream. rustls keeps one state for both directions, so the halves share
/// the stream behind a lock that is held only inside a poll, never across an await.
pub struct TlsHalf<'a, S> {
    stream: Arc<Mutex<&'a mut S>>,
}

impl<'a, S> TlsHalf<'a, S> {
    fn lock(&self) -> MutexGuard<'_, &'a mut S> {
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }
}

macro_rules! tls_stream {
    ($stream:ty) => {
        impl Stream for $stream {
            type Reader<'a> = TlsHalf<'a, $stream>;
            type Writer<'a> = TlsHalf<'a, $stream>;

            fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
                let stream = Arc::new(Mutex::new(self));
                (
                    TlsHalf {
                        stream: stream.clone(),
                    },
                    TlsHalf { stream },
                )
            }
        }
    };
}

tls_stream!(tokio_rustls::server::TlsStream<TcpStream>);
tls_stream!(tokio_rustls::client::TlsStream<TcpStream>);

impl<S: AsyncBufRead + Unpin + Send> Readable for TlsHalf<'_, S> {
    /// Plaintext is ready when rustls holds some: `poll_fill_buf` decrypts what the socket
    /// has into rustls's own buffer and consumes nothing.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        std::future::poll_fn(move |cx| {
            let mut stream = self.lock();
            Pin::new(&mut **stream).poll_fill_buf(cx).map_ok(|_| ())
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TlsHalf<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.lock()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TlsHalf<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self.lock()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self.lock()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.lock().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.lock()).poll_shutdown(cx)
    }
}
