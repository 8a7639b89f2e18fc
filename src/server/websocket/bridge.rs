//! Relays frames between the client and the upstream until either side closes or the registry
//! orders the bridge closed.

use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::registry::CloseOrder;

/// How long a closing handshake may take before the connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Framing for both sides of a bridge. tungstenite reserves a 128 KiB read buffer per socket by
/// default, 256 KiB a bridge; a gateway holds thousands of mostly idle sockets, so it reads in
/// 4 KiB steps (a bigger message still arrives whole, the buffer grows while it does).
pub fn framing() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// What a burst of relayed messages ended with.
enum Burst {
    /// Everything ready was written; keep relaying.
    Relayed,
    /// The sender closed: this frame is its close.
    Closed(Option<CloseFrame>),
}

/// Writes `first` and every message already waiting behind it, then flushes once: one write
/// for a burst instead of one per message.
async fn relay_burst<A, B>(
    first: Message,
    from: &mut WebSocketStream<A>,
    to: &mut WebSocketStream<B>,
) -> Result<Burst, WsError>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    to.feed(first).await?;
    while let Some(Some(Ok(next))) = from.next().now_or_never() {
        if let Message::Close(frame) = next {
            to.flush().await?;
            return Ok(Burst::Closed(frame));
        }
        to.feed(next).await?;
    }
    to.flush().await?;
    Ok(Burst::Relayed)
}

/// Why relaying stopped; each way has its own closing handshake.
enum End {
    /// The client sent this close frame.
    ClientClosed(Option<CloseFrame>),
    /// The upstream sent this close frame.
    UpstreamClosed(Option<CloseFrame>),
    /// The client's connection failed or ended without a close.
    ClientLost,
    /// The upstream's connection failed or ended without a close.
    UpstreamLost,
    /// The registry ordered the bridge closed with this frame.
    Ordered(CloseFrame),
}

/// Relays text, binary, ping, pong and close in both directions.
pub async fn relay<C, U>(
    mut client: WebSocketStream<C>,
    mut upstream: WebSocketStream<U>,
    mut close_orders: watch::Receiver<Option<CloseOrder>>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let end = loop {
        tokio::select! {
            message = client.next() => match message {
                Some(Ok(Message::Close(frame))) => break End::ClientClosed(frame),
                Some(Ok(message)) => match relay_burst(message, &mut client, &mut upstream).await {
                    Ok(Burst::Relayed) => {}
                    Ok(Burst::Closed(frame)) => break End::ClientClosed(frame),
                    Err(_) => break End::UpstreamLost,
                },
                Some(Err(_)) | None => break End::ClientLost,
            },
            message = upstream.next() => match message {
                Some(Ok(Message::Close(frame))) => break End::UpstreamClosed(frame),
                Some(Ok(message)) => match relay_burst(message, &mut upstream, &mut client).await {
                    Ok(Burst::Relayed) => {}
                    Ok(Burst::Closed(frame)) => break End::UpstreamClosed(frame),
                    Err(_) => break End::ClientLost,
                },
                Some(Err(_)) | None => break End::UpstreamLost,
            },
            Ok(()) = close_orders.changed() => {
                let Some(order) = close_orders.borrow_and_update().clone() else { continue };
                break End::Ordered(close_frame(&order));
            }
        }
    };
    // Boxed: the closing handshakes hold timers and close frames, which a live bridge's future
    // would otherwise carry for its whole life.
    Box::pin(close(end, &mut client, &mut upstream)).await;
}

async fn close<C, U>(end: End, client: &mut WebSocketStream<C>, upstream: &mut WebSocketStream<U>)
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
        End::UpstreamLost => {
            let _ = client
                .close(Some(going_away("upstream connection lost")))
                .await;
        }
        End::Ordered(frame) => {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = client.close(Some(frame.clone())).await;
                let _ = upstream.close(Some(frame)).await;
            })
            .await;
            drain_both(client, upstream).await;
        }
    }
}

/// Answers every message with itself: the WebSocket side of the built-in demo upstream.
pub async fn echo<C>(
    mut client: WebSocketStream<C>,
    mut close_orders: watch::Receiver<Option<CloseOrder>>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            message = client.next() => match message {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if client.send(message).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, client.close(None)).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            Ok(()) = close_orders.changed() => {
                let Some(order) = close_orders.borrow_and_update().clone() else { continue };
                let _ = tokio::time::timeout(CLOSE_GRACE, client.close(Some(close_frame(&order)))).await;
                return;
            }
        }
    }
}

/// After one side closed: flush its close reply and let the other side finish its handshake.
async fn finish<A, B>(closed: &mut WebSocketStream<A>, other: &mut WebSocketStream<B>)
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

async fn drain_both<A, B>(client: &mut WebSocketStream<A>, upstream: &mut WebSocketStream<B>)
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

fn going_away(reason: &'static str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::Away,
        reason: reason.into(),
    }
}
