//! Cookie plumbing: read the request's cookies, write (chunked) `Set-Cookie` values.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue, header::COOKIE};

/// Browsers cap one cookie at ~4096 bytes including name and attributes; stay well below.
pub(super) const CHUNK_LEN: usize = 3800;

/// The most chunks read back; a cookie larger than this is treated as no session.
pub(super) const MAX_CHUNKS: usize = 16;

/// Attributes shared by every cookie the gateway writes.
pub(super) struct CookieAttrs {
    pub(super) secure: bool,
    pub(super) max_age: Option<u64>,
}

/// The request's cookies, read in place as bytes: nothing is copied or validated until a
/// cookie is asked for, and then only that cookie's value (a sealed session is a few hundred
/// bytes, and the request's other cookies are none of the gateway's business).
pub(super) struct Jar<'a> {
    headers: &'a HeaderMap,
}

impl<'a> Jar<'a> {
    pub(super) fn from_headers(headers: &'a HeaderMap) -> Jar<'a> {
        Jar { headers }
    }

    fn pairs(&self) -> impl Iterator<Item = CookiePair<'a>> + use<'a> {
        self.headers
            .get_all(COOKIE)
            .into_iter()
            .flat_map(|value| pairs(value.as_bytes()))
    }

    /// The value of the first cookie called `name`.
    pub(super) fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.pairs()
            .find(|pair| pair.name == name.as_bytes())
            .map(|pair| pair.value)
    }

    /// The whole value: `NAME` itself (borrowed), or `NAME_0`, `NAME_1`, ... concatenated, read
    /// in one pass over the cookies. Chunks must run from 0 without a gap; more than
    /// [`MAX_CHUNKS`] is no value at all.
    pub(super) fn assemble(&self, name: &str) -> Option<Cow<'a, [u8]>> {
        let mut chunks: [Option<&'a [u8]>; MAX_CHUNKS + 1] = [None; MAX_CHUNKS + 1];
        for pair in self.pairs() {
            if pair.name == name.as_bytes() {
                return Some(Cow::Borrowed(pair.value));
            }
            if let Some(index) = chunk_index(pair.name, name)
                && let Some(slot) = chunks.get_mut(index)
            {
                slot.get_or_insert(pair.value);
            }
        }
        chunks[0]?;
        if chunks[MAX_CHUNKS].is_some() {
            return None;
        }
        let present = chunks.iter().map_while(|chunk| *chunk);
        Some(Cow::Owned(present.flatten().copied().collect()))
    }

    /// Indexes of the `NAME_i` chunk cookies present in the request.
    fn chunk_indexes(&self, name: &str) -> Vec<usize> {
        let mut indexes: Vec<usize> = self
            .pairs()
            .filter_map(|pair| chunk_index(pair.name, name))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes
    }
}

/// One `name=value` of a `Cookie` header, both trimmed; `whole` is the trimmed pair as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CookiePair<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
    pub(crate) whole: &'a [u8],
}

/// The pairs of one `Cookie` header value, split on `;`. A pair without `=` is all name; empty
/// pairs are skipped.
pub(crate) fn pairs(header: &[u8]) -> impl Iterator<Item = CookiePair<'_>> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        loop {
            let text = rest?;
            let (pair, after) = match memchr::memchr(b';', text) {
                Some(end) => (&text[..end], Some(&text[end + 1..])),
                None => (text, None),
            };
            rest = after;
            let whole = pair.trim_ascii();
            if whole.is_empty() {
                continue;
            }
            let (name, value) = match whole.iter().position(|&b| b == b'=') {
                Some(eq) => (&whole[..eq], &whole[eq + 1..]),
                None => (whole, &[][..]),
            };
            return Some(CookiePair {
                name: name.trim_ascii(),
                value: value.trim_ascii(),
                whole,
            });
        }
    })
}

/// `i` when `cookie` is `NAME_i` (decimal, no sign), without building the name.
fn chunk_index(cookie: &[u8], name: &str) -> Option<usize> {
    let digits = cookie.strip_prefix(name.as_bytes())?.strip_prefix(b"_")?;
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}_{index}")
}

/// A cookie name is an RFC 6265 token; we allow the common safe subset.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

pub(super) fn set_cookie(name: &str, value: &str, attrs: &CookieAttrs) -> Option<HeaderValue> {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(max_age) = attrs.max_age {
        text.push_str(&format!("; Max-Age={max_age}"));
    }
    if attrs.secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).ok()
}

pub(super) fn expire(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("_=; Max-Age=0"))
}

/// Writes `value` as `NAME` or as `NAME_0..NAME_n`, expiring whatever the request carried that
/// the new layout does not overwrite.
pub(super) fn write_chunked(
    name: &str,
    value: &str,
    attrs: &CookieAttrs,
    jar: &Jar<'_>,
) -> Vec<HeaderValue> {
    let mut out = Vec::new();
    if value.len() <= CHUNK_LEN {
        out.extend(set_cookie(name, value, attrs));
        for index in jar.chunk_indexes(name) {
            out.push(expire(&chunk_name(name, index)));
        }
        return out;
    }
    // The sealed value is base64url (ASCII), so byte chunks are char boundaries.
    let chunks: Vec<&str> = value
        .as_bytes()
        .chunks(CHUNK_LEN)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    for (index, chunk) in chunks.iter().enumerate() {
        out.extend(set_cookie(&chunk_name(name, index), chunk, attrs));
    }
    if jar.get(name).is_some() {
        out.push(expire(name));
    }
    for index in jar.chunk_indexes(name) {
        if index >= chunks.len() {
            out.push(expire(&chunk_name(name, index)));
        }
    }
    out
}

/// Expires `NAME` and every `NAME_i` in the request (at least `NAME` itself).
pub(super) fn clear_all(name: &str, jar: &Jar<'_>) -> Vec<HeaderValue> {
    let mut out = vec![expire(name)];
    let mut indexes = jar.chunk_indexes(name);
    indexes.sort_unstable();
    out.extend(indexes.into_iter().map(|i| expire(&chunk_name(name, i))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jar_of(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn pairs_are_trimmed_and_empty_ones_skipped() {
        let got: Vec<(&[u8], &[u8], &[u8])> = pairs(b" a = 1 ;;b=x=y; flag ;")
            .map(|p| (p.name, p.value, p.whole))
            .collect();
        let want: [(&[u8], &[u8], &[u8]); 3] = [
            (b"a", b"1", b"a = 1"),
            (b"b", b"x=y", b"b=x=y"),
            (b"flag", b"", b"flag"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn the_first_cookie_of_a_name_wins_across_headers() {
        let headers = jar_of(&["theme=dark; s=first", "s=second"]);
        assert_eq!(Jar::from_headers(&headers).get("s"), Some(&b"first"[..]));
        assert_eq!(Jar::from_headers(&headers).get("missing"), None);
    }

    #[test]
    fn chunks_assemble_in_order_only_without_gaps() {
        let headers = jar_of(&["s_1=B; other=x", "s_0=A; s_2=C"]);
        let jar = Jar::from_headers(&headers);
        assert_eq!(jar.assemble("s").as_deref(), Some(&b"ABC"[..]));
        assert_eq!(jar.chunk_indexes("s"), [0, 1, 2]);

        let gap = jar_of(&["s_0=A; s_2=C"]);
        assert_eq!(
            Jar::from_headers(&gap).assemble("s").as_deref(),
            Some(&b"A"[..])
        );
        let no_first = jar_of(&["s_1=B"]);
        assert_eq!(Jar::from_headers(&no_first).assemble("s"), None);
        let whole_wins = jar_of(&["s_0=A; s=W"]);
        assert_eq!(
            Jar::from_headers(&whole_wins).assemble("s").as_deref(),
            Some(&b"W"[..])
        );

        let too_many: Vec<String> = (0..=MAX_CHUNKS).map(|i| format!("s_{i}=x")).collect();
        let too_many = jar_of(&[too_many.join("; ").as_str()]);
        assert_eq!(Jar::from_headers(&too_many).assemble("s"), None);
        for name in ["s_", "s_x", "s_+1", "s_0001", "ss_0"] {
            assert_eq!(chunk_index(name.as_bytes(), "s"), None, "{name}");
        }
    }
}
