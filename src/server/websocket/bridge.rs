//! Relays frames between the client and the upstream until either side closes, the registry
//! orders the bridge closed or the session it was opened with expires; then tungstenite runs
//! the closing handshake on both sides.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

use super::frames::{Pipe, Sender, Stop};
use super::registry::CloseOrder;
use super::socket::Socket;

/// How long a closing handshake may take before the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The largest message a client may send through the gateway: Bokeh's own default
/// (`websocket_max_message_size`, 20 MiB), above uvicorn's (16 MiB). The bridge relays frame by
/// frame and holds no message, so this guards the upstream, and a guest on a public route
/// cannot make an app behind the gateway take more.
pub const CLIENT_MAX_MESSAGE: usize = 20 << 20;

/// tungstenite's framing for the upstream side's closing handshake. tungstenite reserves a
/// 128 KiB read buffer per socket by default; this reads in 4 KiB steps like the relay. A frame
/// may be as big as a message (64 MiB): Tornado, under Bokeh and Panel, sends every message as
/// one frame, and tungstenite's 16 MiB frame default would fail on a bigger one.
pub fn framing() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_frame_size(Some(UPSTREAM_MAX_MESSAGE))
}

/// tungstenite's default message limit, kept for what the upstream sends while closing.
const UPSTREAM_MAX_MESSAGE: usize = 64 << 20;

/// Framing for the client side: [`framing`], with messages up to [`CLIENT_MAX_MESSAGE`].
pub fn client_framing() -> WebSocketConfig {
    framing()
        .max_message_size(Some(CLIENT_MAX_MESSAGE))
        .max_frame_size(Some(CLIENT_MAX_MESSAGE))
}

/// The bridge's end, given what each way of stopping a direction means for it.
fn ended(
    stop: Stop,
    closed: End,
    sender_lost: End,
    sender_too_big: End,
    receiver_lost: End,
) -> End {
    match stop {
        Stop::CloseAhead => closed,
        Stop::ReadFailed => sender_lost,
        Stop::TooBig => sender_too_big,
        Stop::WriteFailed => receiver_lost,
    }
}

/// Why relaying stopped; each way has its own closing handshake.
enum End {
    /// The client's next frame is a close.
    ClientClosed,
    /// The upstream's next frame is a close.
    UpstreamClosed,
    /// The client's connection failed, ended without a close or broke the protocol.
    ClientLost,
    /// The client sent a message over [`CLIENT_MAX_MESSAGE`].
    ClientTooBig,
    /// The upstream's connection failed, ended without a close or broke the protocol.
    UpstreamLost,
    /// The registry ordered the bridge closed (or its session expired).
    Ordered(CloseOrder),
}

impl End {
    /// The `reason` label of `portcullis_websockets_closed_total`.
    fn label(&self) -> &'static str {
        match self {
            End::ClientClosed => "client",
            End::UpstreamClosed => "upstream",
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
/// of `portcullis_websockets_closed_total`. `upstream_read_ahead` is what the upstream sent
/// behind its handshake response.
pub async fn relay<C, U>(
    mut client: C,
    mut upstream: U,
    upstream_read_ahead: Vec<u8>,
    mut close_orders: watch::Receiver<Option<CloseOrder>>,
    mut session: SessionEnd,
) -> &'static str
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut to_upstream = Pipe::new(Sender::Client, Some(CLIENT_MAX_MESSAGE), Vec::new());
    let mut to_client = Pipe::new(Sender::Upstream, None, upstream_read_ahead);
    let pumping = poll_fn(|cx| {
        if let Poll::Ready(stop) = to_upstream.poll_pump(&mut client, &mut upstream, cx) {
            return Poll::Ready(ended(
                stop,
                End::ClientClosed,
                End::ClientLost,
                End::ClientTooBig,
                End::UpstreamLost,
            ));
        }
        if let Poll::Ready(stop) = to_client.poll_pump(&mut upstream, &mut client, cx) {
            // The upstream's messages have no limit here: nothing is held.
            return Poll::Ready(ended(
                stop,
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
    // Boxed: the closing handshakes hold tungstenite sockets, timers and close frames, which a
    // live bridge's future would otherwise carry for its whole life.
    Box::pin(async move {
        let (mut client, mut upstream) = hand_over(client, upstream, to_upstream, to_client).await;
        close(end, &mut client, &mut upstream).await;
    })
    .await;
    label
}

/// The two sides as tungstenite sockets for the closing handshake, after each frame in flight
/// has been relayed to its end (if the sender sends it and the receiver takes it within the
/// grace): a close frame can then follow it. A side left inside a frame gets no close frame.
async fn hand_over<C, U>(
    mut client: C,
    mut upstream: U,
    mut to_upstream: Pipe,
    mut to_client: Pipe,
) -> (Socket<C>, Socket<U>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    // A failed side is done too (its frame cannot be finished); a done side is not polled again.
    let (mut upstream_done, mut client_done) = (false, false);
    let _ = tokio::time::timeout(
        CLOSE_GRACE,
        poll_fn(|cx| {
            upstream_done = upstream_done
                || to_upstream
                    .poll_finish_frame(&mut client, &mut upstream, cx)
                    .is_ready();
            client_done = client_done
                || to_client
                    .poll_finish_frame(&mut upstream, &mut client, cx)
                    .is_ready();
            if upstream_done && client_done {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }),
    )
    .await;
    let upstream_writable = to_upstream.receiver_at_frame_boundary();
    let client_writable = to_client.receiver_at_frame_boundary();
    let client = Socket::handed_over(
        client,
        to_upstream.into_read_ahead(),
        client_writable,
        Role::Server,
        client_framing(),
    );
    let upstream = Socket::handed_over(
        upstream,
        to_client.into_read_ahead(),
        upstream_writable,
        Role::Client,
        framing(),
    );
    (client, upstream)
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
        End::ClientClosed => {
            let frame = close_frame_of(client).await;
            let _ = upstream.send(Message::Close(frame)).await;
            finish(client, upstream).await;
        }
        End::UpstreamClosed => {
            let frame = close_frame_of(upstream).await;
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

/// The close frame a side's relay stopped in front of, read by tungstenite (which queues the
/// reply that [`finish`] sends).
async fn close_frame_of<S>(closing: &mut Socket<S>) -> Option<CloseFrame>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(CLOSE_GRACE, closing.next()).await {
        Ok(Some(Ok(Message::Close(frame)))) => frame,
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open WebSocket is one of these futures: 10,000 sockets held open pay its size
    /// 10,000 times, so a buffer kept across an await shows up as megabytes.
    #[test]
    fn a_held_socket_task_stays_small() {
        const MOST: usize = 4 * 1024;
        let (client, _) = tokio::io::duplex(64);
        let (upstream, _) = tokio::io::duplex(64);
        let (_orders, close_orders) = watch::channel(None);
        let relayed = relay(
            client,
            upstream,
            Vec::new(),
            close_orders.clone(),
            SessionEnd::at(None),
        );
        assert!(
            size_of_val(&relayed) <= MOST,
            "relay: {}",
            size_of_val(&relayed)
        );
        let (client, _) = tokio::io::duplex(64);
        let client = Socket::new(client, Role::Server, client_framing());
        let echoed = echo(client, close_orders, SessionEnd::at(None));
        assert!(
            size_of_val(&echoed) <= MOST,
            "echo: {}",
            size_of_val(&echoed)
        );
    }
}
