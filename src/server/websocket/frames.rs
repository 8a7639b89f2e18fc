//! One direction of a bridge, relayed frame by frame: what one side sends is checked a frame
//! header at a time and passed on as it arrives, never gathered into messages.
//!
//! tungstenite turns each frame into a `Message` and back (an allocation, a copy, a fresh
//! frame and mask a message), three quarters of the bridge's CPU under
//! `benches/websockets.rs`; a proxy needs none of it. The upstream's frames reach the client
//! byte for byte (a server's frames are not masked). A client's frames reach the upstream with
//! the client's mask swapped for one of the gateway's own, rewritten in place: the gateway is
//! the upstream's client, and a mask the sender chose would let a non-browser client put bytes
//! of its choosing on the upstream's wire. Close frames are not relayed here: the pump stops in
//! front of one and tungstenite runs the closing handshake (see `bridge`).

use std::io::Cursor;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_util::io::poll_read_buf;

/// Bytes read a step. A gateway holds thousands of mostly idle sockets: the buffer is only
/// held while bytes are in it, and a frame bigger than a step passes through in steps.
const READ_STEP: usize = 4 * 1024;

/// Which side's frames a pipe reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// Frames are masked (RFC 6455 §5.1) and get the gateway's mask on the way out.
    Client,
    /// Frames are not masked and pass unchanged.
    Upstream,
}

/// What stopped a pipe.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The sender's next frame is a close: it is left unread, for the closing handshake.
    CloseAhead,
    /// The sender's connection failed, ended without a close, or broke the protocol.
    ReadFailed,
    /// The sender's message is over the pipe's limit.
    TooBig,
    /// The receiver's connection failed.
    WriteFailed,
}

/// The frame whose payload is passing.
#[derive(Default)]
struct Payload {
    /// Bytes of it still to come.
    remaining: u64,
    /// The client's mask combined with the gateway's: one pass unmasks and masks again.
    rekey: Option<[u8; 4]>,
    /// Where in the mask the next payload byte falls.
    phase: usize,
}

/// One direction: reads the sender's frames, checks each header and writes them on.
pub struct Pipe {
    sender: Sender,
    /// The largest data message the sender may send, fragments counted together.
    max_message: Option<u64>,
    /// Bytes read and not yet written; the first `ready` of them are checked and rewritten.
    buffer: BytesMut,
    ready: usize,
    payload: Payload,
    /// Length so far of a fragmented data message in progress.
    message: Option<u64>,
    /// Written to the receiver since its last flush.
    unflushed: bool,
}

impl Pipe {
    /// A pipe for `sender`'s frames, starting with bytes already read past the handshake.
    pub fn new(sender: Sender, max_message: Option<usize>, read_ahead: Vec<u8>) -> Self {
        Pipe {
            sender,
            max_message: max_message.map(|max| max as u64),
            buffer: BytesMut::from(&read_ahead[..]),
            ready: 0,
            payload: Payload::default(),
            message: None,
            unflushed: false,
        }
    }

    /// Relays until the sender has nothing more to read or the receiver takes nothing more;
    /// ready when the pipe stops.
    pub fn poll_pump<A, B>(&mut self, from: &mut A, to: &mut B, cx: &mut Context<'_>) -> Poll<Stop>
    where
        A: AsyncRead + Unpin,
        B: AsyncWrite + Unpin,
    {
        loop {
            // Backpressure: nothing more is read while the receiver is full.
            match self.poll_write_ready(to, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(stop)) => return Poll::Ready(stop),
                Poll::Pending => return Poll::Pending,
            }
            match self.check_buffered() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(Stop::CloseAhead) => {
                    return match self.poll_flush(to, cx) {
                        Poll::Ready(Err(stop)) => Poll::Ready(stop),
                        // The close handshake flushes what is left.
                        _ => Poll::Ready(Stop::CloseAhead),
                    };
                }
                Err(stop) => return Poll::Ready(stop),
            }
            match self.poll_read_more(from, to, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(stop)) => return Poll::Ready(stop),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Relays the rest of the frame in flight, if any, and nothing past it: ready with `Ok` once
    /// the receiver's stream ends on a frame boundary, so that a close frame may follow.
    pub fn poll_finish_frame<A, B>(
        &mut self,
        from: &mut A,
        to: &mut B,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Stop>>
    where
        A: AsyncRead + Unpin,
        B: AsyncWrite + Unpin,
    {
        loop {
            match self.poll_write_ready(to, cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if self.payload.remaining == 0 {
                return self.poll_flush(to, cx);
            }
            if self.check_payload() {
                continue;
            }
            match self.poll_read_more(from, to, cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
    }

    /// Reads what the sender has sent; while it has sent nothing, flushes the receiver and
    /// frees an empty buffer (an idle socket holds none).
    fn poll_read_more<A, B>(
        &mut self,
        from: &mut A,
        to: &mut B,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Stop>>
    where
        A: AsyncRead + Unpin,
        B: AsyncWrite + Unpin,
    {
        self.buffer.reserve(READ_STEP);
        match poll_read_buf(Pin::new(&mut *from), cx, &mut self.buffer) {
            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(Err(Stop::ReadFailed)),
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Pending => {
                if self.buffer.is_empty() {
                    self.buffer = BytesMut::new();
                }
                match self.poll_flush(to, cx) {
                    Poll::Ready(Err(stop)) => Poll::Ready(Err(stop)),
                    _ => Poll::Pending,
                }
            }
        }
    }

    /// Writes out every checked byte; ready with `Ok` once none is left.
    pub fn poll_write_ready<B>(
        &mut self,
        to: &mut B,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Stop>>
    where
        B: AsyncWrite + Unpin,
    {
        while self.ready > 0 {
            match Pin::new(&mut *to).poll_write(cx, &self.buffer[..self.ready]) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Err(Stop::WriteFailed)),
                Poll::Ready(Ok(written)) => {
                    self.buffer.advance(written);
                    self.ready -= written;
                    self.unflushed = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_flush<B>(&mut self, to: &mut B, cx: &mut Context<'_>) -> Poll<Result<(), Stop>>
    where
        B: AsyncWrite + Unpin,
    {
        if !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(to).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(Stop::WriteFailed)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Checks and rewrites what was read past `ready`; true if any of it became ready.
    fn check_buffered(&mut self) -> Result<bool, Stop> {
        let before = self.ready;
        loop {
            if self.payload.remaining > 0 {
                if self.check_payload() {
                    continue;
                }
                break;
            }
            let mut cursor = Cursor::new(&self.buffer[self.ready..]);
            let parsed = FrameHeader::parse(&mut cursor).map_err(|_| Stop::ReadFailed);
            let header_length = cursor.position() as usize;
            let (header, length) = match parsed.and_then(|frame| self.check(frame)) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                // The frames before it go out first; the stop is found again after them (a
                // refused header changes nothing).
                Err(_) if self.ready > before => break,
                Err(stop) => return Err(stop),
            };
            if let Some(theirs) = header.mask {
                let ours: [u8; 4] = rand::random();
                let mask_at = self.ready + header_length - 4;
                self.buffer[mask_at..mask_at + 4].copy_from_slice(&ours);
                self.payload.rekey = Some(std::array::from_fn(|i| theirs[i] ^ ours[i]));
            }
            self.ready += header_length;
            self.payload.remaining = length;
            self.payload.phase = 0;
        }
        Ok(self.ready > before)
    }

    /// Makes ready (re-masked for the upstream) what was read of the current frame's payload;
    /// true if any of it was.
    fn check_payload(&mut self) -> bool {
        let unchecked = (self.buffer.len() - self.ready) as u64;
        let take = self.payload.remaining.min(unchecked) as usize;
        if take == 0 {
            return false;
        }
        let bytes = &mut self.buffer[self.ready..self.ready + take];
        if let Some(key) = self.payload.rekey {
            apply_mask(bytes, key, self.payload.phase);
            self.payload.phase = (self.payload.phase + take) % 4;
        }
        self.ready += take;
        self.payload.remaining -= take as u64;
        true
    }

    /// The rules a proxy must enforce on a frame it passes without reading the message.
    fn check(
        &mut self,
        frame: Option<(FrameHeader, u64)>,
    ) -> Result<Option<(FrameHeader, u64)>, Stop> {
        let Some((header, length)) = frame else {
            return Ok(None);
        };
        // No extension is negotiated (the handshake drops `Sec-WebSocket-Extensions`).
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(Stop::ReadFailed);
        }
        if header.mask.is_some() != (self.sender == Sender::Client) {
            return Err(Stop::ReadFailed);
        }
        match header.opcode {
            OpCode::Control(control) => {
                if !header.is_final || length > 125 {
                    return Err(Stop::ReadFailed);
                }
                if control == Control::Close {
                    return Err(Stop::CloseAhead);
                }
            }
            OpCode::Data(data) => {
                let so_far = match (data, self.message) {
                    (Data::Continue, Some(so_far)) => so_far,
                    (Data::Text | Data::Binary, None) => 0,
                    // A continuation of nothing, or a new message inside a fragmented one.
                    _ => return Err(Stop::ReadFailed),
                };
                let total = so_far.saturating_add(length);
                if self.max_message.is_some_and(|max| total > max) {
                    return Err(Stop::TooBig);
                }
                self.message = (!header.is_final).then_some(total);
            }
        }
        Ok(Some((header, length)))
    }

    /// The receiver's stream ends on a whole frame: everything checked was written, and no
    /// frame is part way through. Only then may another frame, such as a close, follow.
    pub fn receiver_at_frame_boundary(&self) -> bool {
        self.ready == 0 && self.payload.remaining == 0
    }

    /// What was read and not relayed, if it starts on a frame boundary (so the closing
    /// handshake can read it as frames); `None` inside a frame.
    pub fn into_read_ahead(self) -> Option<Vec<u8>> {
        (self.payload.remaining == 0).then(|| self.buffer[self.ready..].to_vec())
    }
}

/// XORs `bytes` with `key`, the first byte taking the key's byte at `phase`.
fn apply_mask(bytes: &mut [u8], key: [u8; 4], phase: usize) {
    let key: [u8; 4] = std::array::from_fn(|i| key[(phase + i) % 4]);
    let word = u64::from_ne_bytes(std::array::from_fn(|i| key[i % 4]));
    let mut words = bytes.chunks_exact_mut(8);
    for chunk in &mut words {
        let masked = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    fn frame(opcode: OpCode, payload: &[u8], is_final: bool, mask: Option<[u8; 4]>) -> Vec<u8> {
        let header = FrameHeader {
            is_final,
            opcode,
            mask,
            ..FrameHeader::default()
        };
        let mut bytes = Vec::new();
        // `Frame::format` masks the payload with the header's mask.
        Frame::from_payload(header, payload.to_vec().into())
            .format(&mut bytes)
            .unwrap();
        bytes
    }

    /// Frames parsed back from `bytes`, payloads unmasked.
    fn parse_all(mut bytes: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let mut cursor = Cursor::new(bytes);
            let (header, length) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            let start = cursor.position() as usize;
            let mut payload = bytes[start..start + length as usize].to_vec();
            if let Some(mask) = header.mask {
                apply_mask(&mut payload, mask, 0);
            }
            frames.push((header, payload));
            bytes = &bytes[start + length as usize..];
        }
        frames
    }

    /// Feeds `input` to a pipe in `step`-byte writes and returns what it wrote and why it
    /// stopped.
    async fn pump(pipe: &mut Pipe, input: Vec<u8>, step: usize) -> (Vec<u8>, Stop) {
        let (mut feed, mut from) = tokio::io::duplex(64 * 1024);
        let (mut to, mut out) = tokio::io::duplex(64 << 20);
        let writer = tokio::spawn(async move {
            for chunk in input.chunks(step) {
                feed.write_all(chunk).await.unwrap();
            }
        });
        let stop = std::future::poll_fn(|cx| pipe.poll_pump(&mut from, &mut to, cx)).await;
        writer.await.unwrap();
        drop(to);
        let mut written = Vec::new();
        out.read_to_end(&mut written).await.unwrap();
        (written, stop)
    }

    #[test]
    fn masking_from_any_phase_matches_masking_from_the_start() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let original: Vec<u8> = (0..101u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for split in [1, 3, 8, 13, 64] {
            let mut parts = original.clone();
            let (head, tail) = parts.split_at_mut(split);
            apply_mask(head, key, 0);
            apply_mask(tail, key, split % 4);
            assert_eq!(parts, whole, "split at {split}");
        }
    }

    #[tokio::test]
    async fn client_frames_reach_the_upstream_intact_under_the_gateways_own_masks() {
        let client_mask = [1, 2, 3, 4];
        let mut input = Vec::new();
        let big: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        input.extend(frame(
            OpCode::Data(Data::Text),
            b"hello",
            true,
            Some(client_mask),
        ));
        input.extend(frame(
            OpCode::Data(Data::Binary),
            &big,
            false,
            Some(client_mask),
        ));
        input.extend(frame(
            OpCode::Control(Control::Ping),
            b"p",
            true,
            Some(client_mask),
        ));
        input.extend(frame(
            OpCode::Data(Data::Continue),
            b"end",
            true,
            Some(client_mask),
        ));
        let close = frame(
            OpCode::Control(Control::Close),
            &[3, 232],
            true,
            Some(client_mask),
        );
        input.extend(&close);
        for step in [1, 7, 4096, 1 << 20] {
            let mut pipe = Pipe::new(Sender::Client, Some(1 << 20), Vec::new());
            let (written, stop) = pump(&mut pipe, input.clone(), step).await;
            assert_eq!(stop, Stop::CloseAhead, "step {step}");
            let frames = parse_all(&written);
            let payloads: Vec<&[u8]> = frames.iter().map(|(_, p)| &p[..]).collect();
            assert_eq!(
                payloads,
                [&b"hello"[..], &big[..], b"p", b"end"],
                "step {step}"
            );
            for (header, _) in &frames {
                let mask = header.mask.expect("frames to the upstream are masked");
                assert_ne!(mask, client_mask, "the client's mask is replaced");
            }
            assert!(pipe.receiver_at_frame_boundary());
            let rest = pipe.into_read_ahead().expect("stopped on a frame boundary");
            assert_eq!(rest, close[..rest.len()], "the close frame is left unread");
        }
    }

    #[tokio::test]
    async fn upstream_frames_pass_byte_for_byte() {
        let mut input = Vec::new();
        for i in 0..300u32 {
            let len = if i % 100 == 99 {
                70_000
            } else {
                (i % 130) as usize
            };
            let payload: Vec<u8> = (0..len).map(|b| (b as u32 + i) as u8).collect();
            input.extend(frame(OpCode::Data(Data::Binary), &payload, true, None));
        }
        for step in [5, 4096, 1 << 20] {
            let mut pipe = Pipe::new(Sender::Upstream, None, Vec::new());
            let (written, stop) = pump(&mut pipe, input.clone(), step).await;
            assert_eq!(stop, Stop::ReadFailed, "the feed ends without a close");
            assert!(written == input, "step {step}: relayed unchanged");
        }
    }

    #[tokio::test]
    async fn bytes_read_past_the_handshake_are_relayed_first() {
        let first = frame(OpCode::Data(Data::Text), b"early", true, None);
        let second = frame(OpCode::Data(Data::Text), b"later", true, None);
        let mut pipe = Pipe::new(Sender::Upstream, None, first.clone());
        let (written, _) = pump(&mut pipe, second.clone(), 4096).await;
        assert_eq!(written, [first, second].concat());
    }

    #[tokio::test]
    async fn a_fragmented_message_over_the_limit_stops_before_its_last_fragment() {
        let mask = Some([9, 9, 9, 9]);
        let fragment = vec![0u8; 600];
        let mut input = frame(OpCode::Data(Data::Binary), &fragment, false, mask);
        input.extend(frame(OpCode::Data(Data::Continue), &fragment, false, mask));
        input.extend(frame(OpCode::Data(Data::Continue), &fragment, true, mask));
        let mut pipe = Pipe::new(Sender::Client, Some(1500), Vec::new());
        let (written, stop) = pump(&mut pipe, input, 4096).await;
        assert_eq!(stop, Stop::TooBig);
        assert_eq!(
            parse_all(&written).len(),
            2,
            "the fragments under the limit passed"
        );
        assert!(pipe.receiver_at_frame_boundary());
    }

    #[tokio::test]
    async fn protocol_violations_stop_the_pipe() {
        let mask = Some([5, 6, 7, 8]);
        let cases = [
            (
                "unmasked client frame",
                Sender::Client,
                frame(OpCode::Data(Data::Text), b"x", true, None),
            ),
            (
                "masked upstream frame",
                Sender::Upstream,
                frame(OpCode::Data(Data::Text), b"x", true, mask),
            ),
            (
                "continuation of nothing",
                Sender::Client,
                frame(OpCode::Data(Data::Continue), b"x", true, mask),
            ),
            (
                "fragmented ping",
                Sender::Client,
                frame(OpCode::Control(Control::Ping), b"x", false, mask),
            ),
            (
                "long ping",
                Sender::Upstream,
                frame(OpCode::Control(Control::Ping), &[0; 126], true, None),
            ),
            ("reserved opcode", Sender::Upstream, vec![0x83, 0x00]),
            ("compressed frame", Sender::Upstream, vec![0xC2, 0x00]),
        ];
        for (name, sender, input) in cases {
            let mut pipe = Pipe::new(sender, None, Vec::new());
            let (written, stop) = pump(&mut pipe, input, 4096).await;
            assert_eq!(stop, Stop::ReadFailed, "{name}");
            assert!(written.is_empty(), "{name}: nothing relayed");
        }
        let mut interleaved = frame(OpCode::Data(Data::Text), b"a", false, mask);
        interleaved.extend(frame(OpCode::Data(Data::Text), b"b", true, mask));
        let mut pipe = Pipe::new(Sender::Client, None, Vec::new());
        let (written, stop) = pump(&mut pipe, interleaved, 4096).await;
        assert_eq!(
            stop,
            Stop::ReadFailed,
            "a new message inside a fragmented one"
        );
        assert_eq!(parse_all(&written).len(), 1);
    }

    #[tokio::test]
    async fn a_frame_in_flight_is_finished_and_nothing_past_it_is_relayed() {
        let client_mask = [9, 8, 7, 6];
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let in_flight = frame(OpCode::Data(Data::Binary), &big, true, Some(client_mask));
        let next = frame(OpCode::Data(Data::Text), b"next", true, Some(client_mask));
        let (mut feed, mut from) = tokio::io::duplex(64 * 1024);
        let (mut to, mut out) = tokio::io::duplex(1 << 20);
        let mut pipe = Pipe::new(Sender::Client, Some(1 << 20), Vec::new());
        // The relay stops (a close order, say) 3,000 bytes into the frame.
        feed.write_all(&in_flight[..3_000]).await.unwrap();
        let pending = std::future::poll_fn(|cx| {
            Poll::Ready(pipe.poll_pump(&mut from, &mut to, cx).is_pending())
        })
        .await;
        assert!(pending);
        assert!(!pipe.receiver_at_frame_boundary());
        // The sender goes on with the rest of the frame and the start of another.
        feed.write_all(&in_flight[3_000..]).await.unwrap();
        feed.write_all(&next).await.unwrap();
        let finished =
            std::future::poll_fn(|cx| pipe.poll_finish_frame(&mut from, &mut to, cx)).await;
        assert_eq!(finished, Ok(()));
        assert!(pipe.receiver_at_frame_boundary());
        drop(to);
        let mut written = Vec::new();
        out.read_to_end(&mut written).await.unwrap();
        let frames = parse_all(&written);
        assert_eq!(frames.len(), 1, "only the frame in flight is relayed");
        assert_eq!(frames[0].1, big);
        // What follows it stays for the closing handshake to read.
        assert_eq!(pipe.into_read_ahead(), Some(next));
    }

    #[tokio::test]
    async fn a_sender_that_stops_inside_its_frame_cannot_finish_it() {
        let input = frame(OpCode::Data(Data::Binary), &[1; 10_000], true, None);
        let (mut feed, mut from) = tokio::io::duplex(64 * 1024);
        let (mut to, _out) = tokio::io::duplex(1 << 20);
        let mut pipe = Pipe::new(Sender::Upstream, None, Vec::new());
        feed.write_all(&input[..6_000]).await.unwrap();
        let pending = std::future::poll_fn(|cx| {
            Poll::Ready(pipe.poll_pump(&mut from, &mut to, cx).is_pending())
        })
        .await;
        assert!(pending);
        drop(feed);
        let finished =
            std::future::poll_fn(|cx| pipe.poll_finish_frame(&mut from, &mut to, cx)).await;
        assert_eq!(finished, Err(Stop::ReadFailed));
        assert!(!pipe.receiver_at_frame_boundary());
        assert_eq!(pipe.into_read_ahead(), None);
    }

    #[tokio::test]
    async fn a_frame_cut_off_part_way_leaves_the_receiver_inside_it() {
        let input = frame(OpCode::Data(Data::Binary), &[1; 10_000], true, None);
        let mut pipe = Pipe::new(Sender::Upstream, None, Vec::new());
        let (written, stop) = pump(&mut pipe, input[..6_000].to_vec(), 4096).await;
        assert_eq!(stop, Stop::ReadFailed);
        assert_eq!(written, input[..6_000]);
        assert!(!pipe.receiver_at_frame_boundary());
        assert_eq!(pipe.into_read_ahead(), None);
    }
}
