//! The request id: taken from a sane incoming `X-Request-Id` or made fresh, then put on every log
//! line (through [`request_span`](super::request_span)), passed upstream and shown on error pages.

/// Header that carries the request id in and out.
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest incoming request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request's id, kept as the header value it goes out as (to the upstream and back to the
/// client), so it is checked and copied once however often it is sent. Always 1–128 visible
/// ASCII characters, which is also what makes it readable as a `str`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(http::HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        // Visible ASCII by construction: `to_str` cannot fail.
        self.0.to_str().unwrap_or_default()
    }

    /// The `X-Request-Id` value: a reference-counted copy.
    pub fn header_value(&self) -> http::HeaderValue {
        self.0.clone()
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The incoming `X-Request-Id` if it is 1–128 visible ASCII characters (no spaces or controls,
/// so it is safe in logs and headers), otherwise a fresh random id (32 hex digits).
pub fn request_id(headers: &http::HeaderMap) -> RequestId {
    let mut incoming = headers.get_all(REQUEST_ID_HEADER).iter();
    if let (Some(value), None) = (incoming.next(), incoming.next()) {
        let bytes = value.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_LEN
            && bytes.iter().all(|b| b.is_ascii_graphic())
        {
            return RequestId(value.clone());
        }
    }
    new_request_id()
}

/// A fresh request id, 32 lower-case hex digits: a random 64-bit prefix drawn once per thread,
/// then a counter. Unique without a random draw per request; nothing relies on ids being
/// unguessable (they are echoed to clients and written to logs).
pub fn new_request_id() -> RequestId {
    thread_local! {
        /// The prefix's hex digits (formatted once) and the next count.
        static NEXT: std::cell::Cell<([u8; 16], u64)> =
            std::cell::Cell::new((hex(rand::random()), 0));
    }
    let (prefix, count) = NEXT.with(|next| {
        let (prefix, count) = next.get();
        next.set((prefix, count.wrapping_add(1)));
        (prefix, count)
    });
    let mut digits = [0u8; 32];
    digits[..16].copy_from_slice(&prefix);
    digits[16..].copy_from_slice(&hex(count));
    // Owned by the bytes themselves: one allocation holds the digits and the count of the two
    // copies that go out (upstream and back to the client). A value copied from a slice takes
    // a second allocation at its first clone, to share it.
    let shared = bytes::Bytes::from_owner(digits);
    RequestId(http::HeaderValue::from_maybe_shared(shared).expect("hex digits are a header value"))
}

fn hex(value: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[(value >> (60 - 4 * i)) as usize & 0xf];
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(REQUEST_ID_HEADER, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    #[test]
    fn sane_incoming_id_is_kept() {
        assert_eq!(request_id(&with(&[b"abc-123_X.y"])).as_str(), "abc-123_X.y");
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert_eq!(request_id(&with(&[longest.as_bytes()])).as_str(), longest);
    }

    #[test]
    fn unusable_incoming_id_is_replaced() {
        let too_long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        let cases: &[(&str, HeaderMap)] = &[
            ("missing", HeaderMap::new()),
            ("empty", with(&[b""])),
            ("space", with(&[b"a b"])),
            ("tab", with(&[b"a\tb"])),
            ("non-ascii", with(&[b"caf\xc3\xa9"])),
            ("too long", with(&[too_long.as_bytes()])),
            ("two values", with(&[b"one", b"two"])),
        ];
        for (name, headers) in cases {
            let id = request_id(headers);
            assert_eq!(id.len(), 32, "{name}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        }
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn fresh_ids_are_the_thread_prefix_then_the_counter_in_hex() {
        let (first, second) = (new_request_id(), new_request_id());
        assert_eq!(first[..16], second[..16]);
        let count = |id: &str| u64::from_str_radix(&id[16..], 16).unwrap();
        assert_eq!(count(&second), count(&first) + 1);
    }

    #[test]
    fn fresh_ids_are_unique_across_threads() {
        let batches: Vec<Vec<String>> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..1000).map(|_| new_request_id().to_string()).collect())
            })
            .map(|thread| thread.join().unwrap())
            .collect();
        let all: std::collections::HashSet<&String> = batches.iter().flatten().collect();
        assert_eq!(all.len(), 4000);
        assert!(all.iter().all(|id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }));
    }
}
