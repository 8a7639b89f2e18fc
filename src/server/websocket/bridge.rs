//! Relays frames between the client and the upstream until either side closes, the registry
//! orders the bridge closed or the session it was opened with expires.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

use super::registry::CloseOrder;
use super::socket::Socket;

/// How long a closing handshake may take before the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The largest message (and frame) a client may send through the gateway: Bokeh's own default
/// (`websocket_max_message_size`, 20 MiB), above uvicorn's (16 MiB). A message is held whole
/// while it passes, so tungstenite's default of 64 MiB let any client, a guest on a public
/// route too, make the gateway hold 64 MiB per socket.
pub const CLIENT_MAX_MESSAGE: usize = 20 << 20;

/// Framing for the upstream side of a bridge. tungstenite reserves a 128 KiB read buffer per
/// socket by default, 256 KiB a bridge; a gateway holds thousands of mostly idle sockets, so it
/// reads in 4 KiB steps (a bigger message still arrives whole, the buffer grows while it does).
/// A frame may be as big as a message (64 MiB): Tornado, under Bokeh and Panel, sends every
/// message as one frame, and tungstenite's 16 MiB frame default ended any bridge whose app
/// sent a bigger document.
pub fn framing() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_frame_size(Some(UPSTREAM_MAX_MESSAGE))
}

/// tungstenite's default message limit, kept for what the upstream sends.
const UPSTREAM_MAX_MESSAGE: usize = 64 << 20;

/// Framing for the client side: [`framing`], with messages up to [`CLIENT_MAX_MESSAGE`].
pub fn client_framing() -> WebSocketConfig {
    framing()
        .max_message_size(Some(CLIENT_MAX_MESSAGE))
        .max_frame_size(Some(CLIENT_MAX_MESSAGE))
}

/// What stopped one direction of the bridge.
enum Stop {
    /// The sender closed: this frame is its close.
    Closed(Option<CloseFrame>),
    /// The sender's connection failed or ended without a close.
    ReadFailed,
    /// The sender sent a message over its side's size limit.
    TooBig,
    /// The receiver's connection failed.
    WriteFailed,
}

impl Stop {
    /// The bridge's end, given what each way of stopping means for this direction.
    fn ended(
        self,
        closed: fn(Option<CloseFrame>) -> End,
        sender_lost: End,
        sender_too_big: End,
        receiver_lost: End,
    ) -> End {
        match self {
            Stop::Closed(frame) => closed(frame),
            Stop::ReadFailed => sender_lost,
            Stop::TooBig => sender_too_big,
            Stop::WriteFailed => receiver_lost,
        }
    }
}

/// One direction of the bridge: moves every message `from` has ready into `to` and flushes
/// once when `from` runs dry, so a burst costs one write.
fn poll_pump<A, B>(from: &mut Socket<A>, to: &mut Socket<B>, cx: &mut Context<'_>) -> Poll<Stop>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        // Backpressure: read only what the receiver can take.
        match to.poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Poll::Ready(Stop::WriteFailed),
            Poll::Pending => return Poll::Pending,
        }
        match from.poll_next(cx) {
            Poll::Ready(Some(Ok(Message::Close(frame)))) => {
                return match to.poll_flush(cx) {
                    Poll::Ready(Err(_)) => Poll::Ready(Stop::WriteFailed),
                    // The close reply flushes what is left.
                    _ => Poll::Ready(Stop::Closed(frame)),
                };
            }
            Poll::Ready(Some(Ok(message))) => {
                if to.start_send(message).is_err() {
                    return Poll::Ready(Stop::WriteFailed);
                }
            }
            Poll::Ready(Some(Err(Error::Capacity(_)))) => return Poll::Ready(Stop::TooBig),
            Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(Stop::ReadFailed),
            Poll::Pending => {
                return match to.poll_flush(cx) {
                    Poll::Ready(Err(_)) => Poll::Ready(Stop::WriteFailed),
                    _ => Poll::Pending,
                };
            }
        }
    }
}

/// Why relaying stopped; each way has its own closing handshake.
enum End {
    /// The client sent this close frame.
    ClientClosed(Option<CloseFrame>),
    /// The upstream sent this close frame.
    UpstreamClosed(Option<CloseFrame>),
    /// The client's connection failed or ended without a close.
    ClientLost,
    /// The client sent a message over [`CLIENT_MAX_MESSAGE`].
    ClientTooBig,
    /// The upstream's connection failed or ended without a close.
    UpstreamLost,
    /// The registry ordered the bridge closed (or its session expired).
    Ordered(CloseOrder),
}

impl End {
    /// The `reason` label of `portcullis_websockets_closed_total`.
    fn label(&self) -> &'static str {
        match self {
            End::ClientClosed(_) => "client",
            End::UpstreamClosed(_) => "upstream",
            End::ClientLost | End::ClientTooBig | End::UpstreamLost => "error",
            End::Ordered(order) => order.label,
        }
    }
}

/// When the session a bridge was opened with expires; boxed only for bridges that have one,
/// so a guest's bridge does not carry a timer.
pub struct SessionEnd(Option<Pin<Box<Sleep>>>);

impl SessionEnd {
    pub fn at(deadline: Option<Instant>) -> SessionEnd {
        SessionEnd(deadline.map(|at| Box::pin(tokio::time::sleep_until(at))))
    }

    /// Resolves when the session expires; never for a bridge without one.
    async fn expired(&mut self) -> CloseOrder {
        match &mut self.0 {
            Some(sleep) => {
                sleep.await;
                CloseOrder::session_ended("session expired")
            }
            None => std::future::pending().await,
        }
    }
}

/// Relays text, binary, ping, pong and close in both directions until either side closes, the
/// registry orders it closed or the session ends; returns why it ended, as the `reason` label
/// of `portcullis_websockets_closed_total`.
pub async fn relay<C, U>(
    mut client: Socket<C>,
    mut upstream: Socket<U>,
    mut close_orders: watch::Receiver<Option<CloseOrder>>,
    mut session: SessionEnd,
) -> &'static str
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let pumping = poll_fn(|cx| {
        if let Poll::Ready(stop) = poll_pump(&mut client, &mut upstream, cx) {
            return Poll::Ready(stop.ended(
                End::ClientClosed,
                End::ClientLost,
                End::ClientTooBig,
                End::UpstreamLost,
            ));
        }
        if let Poll::Ready(stop) = poll_pump(&mut upstream, &mut client, cx) {
            // An upstream's message over tungstenite's 64 MiB default ends it like a failure.
            return Poll::Ready(stop.ended(
                End::UpstreamClosed,
                End::UpstreamLost,
                End::UpstreamLost,
                End::ClientLost,
            ));
        }
        Poll::Pending
    });
    let end = tokio::select! {
        end = pumping => end,
        order = wait_for_order(&mut close_orders) => End::Ordered(order),
        order = session.expired() => End::Ordered(order),
    };
    let label = end.label();
    // Boxed: the closing handshakes hold timers and close frames, which a live bridge's future
    // would otherwise carry for its whole life.
    Box::pin(close(end, &mut client, &mut upstream)).await;
    label
}

/// Resolves when the registry orders the bridge closed; never if the registry goes away.
async fn wait_for_order(close_orders: &mut watch::Receiver<Option<CloseOrder>>) -> CloseOrder {
    loop {
        if close_orders.changed().await.is_err() {
            return std::future::pending().await;
        }
        if let Some(order) = close_orders.borrow_and_update().clone() {
            return order;
        }
    }
}

async fn close<C, U>(end: End, client: &mut Socket<C>, upstream: &mut Socket<U>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    match end {
        End::ClientClosed(frame) => {
            let _ = upstream.send(Message::Close(frame)).await;
            finish(client, upstream).await;
        }
        End::UpstreamClosed(frame) => {
            let _ = client.send(Message::Close(frame)).await;
            finish(upstream, client).await;
        }
        End::ClientLost => {
            let _ = upstream.close(None).await;
        }
        End::ClientTooBig => {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = upstream.close(None).await;
                let _ = client.close(Some(too_big())).await;
                client.discard_input().await;
            })
            .await;
        }
        End::UpstreamLost => {
            let _ = client
                .close(Some(going_away("upstream connection lost")))
                .await;
        }
        End::Ordered(order) => {
            let frame = close_frame(&order);
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = client.close(Some(frame.clone())).await;
                let _ = upstream.close(Some(frame)).await;
            })
            .await;
            drain_both(client, upstream).await;
        }
    }
}

/// Answers every message with itself: the WebSocket side of the built-in demo upstream. Returns
/// why it ended, like [`relay`].
pub async fn echo<C>(
    mut client: Socket<C>,
    mut close_orders: watch::Receiver<Option<CloseOrder>>,
    mut session: SessionEnd,
) -> &'static str
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            message = client.next() => match message {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if client.send(message).await.is_err() {
                        return "error";
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, client.close(None)).await;
                    return "client";
                }
                Some(Err(Error::Capacity(_))) => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        let _ = client.close(Some(too_big())).await;
                        client.discard_input().await;
                    })
                    .await;
                    return "error";
                }
                Some(Err(_)) | None => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, client.close(None)).await;
                    return "error";
                }
                Some(Ok(_)) => {}
            },
            Ok(()) = close_orders.changed() => {
                let Some(order) = close_orders.borrow_and_update().clone() else { continue };
                let _ = tokio::time::timeout(CLOSE_GRACE, client.close(Some(close_frame(&order)))).await;
                return order.label;
            }
            order = session.expired() => {
                let _ = tokio::time::timeout(CLOSE_GRACE, client.close(Some(close_frame(&order)))).await;
                return order.label;
            }
        }
    }
}

/// After one side closed: flush its close reply and let the other side finish its handshake.
async fn finish<A, B>(closed: &mut Socket<A>, other: &mut Socket<B>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = closed.close(None).await;
        while let Some(Ok(message)) = other.next().await {
            if message.is_close() {
                break;
            }
        }
        let _ = other.close(None).await;
    })
    .await;
}

async fn drain_both<A, B>(client: &mut Socket<A>, upstream: &mut Socket<B>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        tokio::join!(
            async { while let Some(Ok(_)) = client.next().await {} },
            async { while let Some(Ok(_)) = upstream.next().await {} },
        )
    })
    .await;
}

fn close_frame(order: &CloseOrder) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(order.code),
        reason: order.reason.clone().into(),
    }
}

/// 1009: the client's message was over [`CLIENT_MAX_MESSAGE`].
fn too_big() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Size,
        reason: "message too big".into(),
    }
}

fn going_away(reason: &'static str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::Away,
        reason: reason.into(),
    }
}
