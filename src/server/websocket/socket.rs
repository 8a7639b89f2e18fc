//! tungstenite's WebSocket driven from the owning task's own polls: the built-in echo, and a
//! bridge's sockets once relaying stops and the closing handshake begins.
//!
//! tokio-tungstenite registers the polling task's waker in two `AtomicWaker`s on every poll,
//! four locked compare-exchanges a message. A socket here belongs to one task, so it keeps the
//! waker it was last polled with and replaces it only when another task polls it. The protocol
//! (framing, masking, validation, the closing handshake) stays tungstenite's, the engine under
//! tokio-tungstenite.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::client::client_with_config;
use tokio_tungstenite::tungstenite::handshake::client::{ClientHandshake, Request, Response};
use tokio_tungstenite::tungstenite::handshake::{HandshakeError, MidHandshake};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

/// std `Read` and `Write` over a tokio stream: `WouldBlock` where the stream is pending, with
/// the waker of the latest poll registered for its readiness.
struct PollIo<S> {
    stream: S,
    waker: Waker,
}

impl<S: Unpin> PollIo<S> {
    fn new(stream: S) -> Self {
        PollIo {
            stream,
            waker: Waker::noop().clone(),
        }
    }

    fn register(&mut self, cx: &Context<'_>) {
        if !self.waker.will_wake(cx.waker()) {
            self.waker.clone_from(cx.waker());
        }
    }

    fn poll<T>(
        &mut self,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let mut cx = Context::from_waker(&self.waker);
        match op(Pin::new(&mut self.stream), &mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<S: AsyncRead + Unpin> Read for PollIo<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.poll(|stream, cx| {
            let mut buf = ReadBuf::new(buf);
            stream
                .poll_read(cx, &mut buf)
                .map_ok(|()| buf.filled().len())
        })
    }
}

impl<S: AsyncWrite + Unpin> Write for PollIo<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.poll(|stream, cx| stream.poll_write(cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.poll(|stream, cx| stream.poll_flush(cx))
    }
}

fn would_block(err: &Error) -> bool {
    matches!(err, Error::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

/// One side of a bridge (for its closing handshake) or of the built-in echo.
pub struct Socket<S> {
    ws: WebSocket<PollIo<S>>,
    /// Messages were queued since the last flush.
    unflushed: bool,
    /// A write found the stream full: queued frames go out before another message is taken.
    blocked: bool,
    /// Reading ended (closed or failed); later reads return `None`.
    ended: bool,
    /// Nothing may be written: the peer's stream stopped inside a frame, and a frame written
    /// now would be read as the rest of it.
    mute: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    /// A socket over a stream whose opening handshake is done.
    pub fn new(stream: S, role: Role, config: WebSocketConfig) -> Self {
        Self::from_websocket(WebSocket::from_raw_socket(
            PollIo::new(stream),
            role,
            Some(config),
        ))
    }

    /// A bridge's side after relaying, for the closing handshake: `read_ahead` is what was
    /// read and not relayed (`None` if it stopped inside a frame: nothing more is read), and
    /// `writable` says whether what was written to it ends on a frame boundary.
    pub fn handed_over(
        stream: S,
        read_ahead: Option<Vec<u8>>,
        writable: bool,
        role: Role,
        config: WebSocketConfig,
    ) -> Self {
        let ended = read_ahead.is_none();
        let mut socket = Self::from_websocket(WebSocket::from_partially_read(
            PollIo::new(stream),
            read_ahead.unwrap_or_default(),
            role,
            Some(config),
        ));
        socket.ended = ended;
        socket.mute = !writable;
        socket
    }

    fn from_websocket(ws: WebSocket<PollIo<S>>) -> Self {
        Socket {
            ws,
            unflushed: false,
            blocked: false,
            ended: false,
            mute: false,
        }
    }

    fn register(&mut self, cx: &Context<'_>) {
        self.ws.get_mut().register(cx);
    }

    /// The next message (pings and pongs included); `None` once the connection is closed.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        self.register(cx);
        match self.ws.read() {
            Ok(message) => Poll::Ready(Some(Ok(message))),
            Err(err) if would_block(&err) => Poll::Pending,
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Err(err) => {
                self.ended = true;
                Poll::Ready(Some(Err(err)))
            }
        }
    }

    /// Ready when the socket takes another message.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.blocked {
            self.poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    /// Queues `message`; a flush writes it at the latest.
    pub fn start_send(&mut self, message: Message) -> Result<(), Error> {
        if self.mute {
            return Ok(());
        }
        self.unflushed = true;
        match self.ws.write(message) {
            Ok(()) => Ok(()),
            // Queued, but the stream is full: take no more until a flush gets through.
            Err(err) if would_block(&err) => {
                self.blocked = true;
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Writes out what was queued; ready at once when nothing was.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        self.register(cx);
        match self.ws.flush() {
            Ok(()) | Err(Error::ConnectionClosed) => {
                self.unflushed = false;
                self.blocked = false;
                Poll::Ready(Ok(()))
            }
            Err(err) if would_block(&err) => Poll::Pending,
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    /// Reads and drops raw bytes until the peer ends the connection. After a message too big
    /// to take, its sender may still be writing the rest: closing on unread bytes would reset
    /// the connection, and the close frame just sent would be lost with it.
    pub async fn discard_input(&mut self) {
        let stream = &mut self.ws.get_mut().stream;
        poll_fn(|cx| {
            // On the poll's stack, not in the future: held across the await, it made every
            // echo task 8 KiB larger.
            let mut scrap = [0u8; 8 * 1024];
            loop {
                let mut buf = ReadBuf::new(&mut scrap);
                match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
    }

    pub async fn next(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send(message)?;
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Queues a close frame (or, after the peer's close, the reply) and flushes it.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.mute {
            return Ok(());
        }
        let mut frame = Some(frame);
        poll_fn(|cx| {
            self.register(cx);
            let attempt = match frame.take() {
                Some(frame) => self.ws.close(frame),
                None => self.ws.flush(),
            };
            match attempt {
                Ok(()) | Err(Error::ConnectionClosed | Error::AlreadyClosed) => Poll::Ready(Ok(())),
                Err(err) if would_block(&err) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            }
        })
        .await
    }
}

/// The stream under the client handshake: tungstenite is given the upstream's response head
/// and nothing past it, so frames the upstream sends right behind its 101 stay for the bridge.
struct HeadOnly<'a, S> {
    io: PollIo<S>,
    /// Read from the stream and not given to tungstenite.
    held: &'a mut Vec<u8>,
    /// How much of the head's closing `\r\n\r\n` the bytes given so far end with.
    marker: u8,
}

impl<S: AsyncRead + Unpin> Read for HeadOnly<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.marker == 4 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.held.is_empty() {
            let mut chunk = [0u8; 4 * 1024];
            let read = self.io.read(&mut chunk)?;
            self.held.extend_from_slice(&chunk[..read]);
        }
        let mut given = 0;
        while given < self.held.len().min(buf.len()) && self.marker < 4 {
            self.marker = match (self.marker, self.held[given]) {
                (2, b'\r') => 3,
                (_, b'\r') => 1,
                (1, b'\n') => 2,
                (3, b'\n') => 4,
                _ => 0,
            };
            given += 1;
        }
        buf[..given].copy_from_slice(&self.held[..given]);
        self.held.drain(..given);
        Ok(given)
    }
}

impl<S: AsyncWrite + Unpin> Write for HeadOnly<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.io.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.io.flush()
    }
}

/// The client side of the opening handshake: the stream, with what the upstream sent past its
/// response head. An answer other than 101 is `Error::Http` with the upstream's response.
pub async fn connect<S>(
    request: Request,
    stream: S,
    config: WebSocketConfig,
) -> Result<(S, Vec<u8>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut held = Vec::new();
    let head_only = HeadOnly {
        io: PollIo::new(stream),
        held: &mut held,
        marker: 0,
    };
    let mut start = Some((request, head_only));
    let mut interrupted: Option<MidHandshake<ClientHandshake<HeadOnly<'_, S>>>> = None;
    let outcome = poll_fn(|cx| {
        let attempt = match start.take() {
            Some((request, mut stream)) => {
                stream.io.register(cx);
                client_with_config(request, stream, Some(config))
            }
            None => {
                let mut handshake = interrupted
                    .take()
                    .expect("the handshake is not polled after it finished");
                handshake.get_mut().get_mut().io.register(cx);
                handshake.handshake()
            }
        };
        match attempt {
            Ok(done) => Poll::Ready(Ok(done)),
            Err(HandshakeError::Interrupted(handshake)) => {
                interrupted = Some(handshake);
                Poll::Pending
            }
            Err(HandshakeError::Failure(err)) => Poll::Ready(Err(err)),
        }
    })
    .await;
    // Ends their borrow of `held`.
    drop((start, interrupted));
    match outcome {
        Ok((ws, response)) => {
            let stream = ws.into_inner().io.stream;
            Ok((stream, held, response))
        }
        Err(Error::Http(mut refusal)) => {
            // The body's first bytes came with the head.
            refusal
                .body_mut()
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&held);
            Err(Error::Http(refusal))
        }
        Err(err) => Err(err),
    }
}
