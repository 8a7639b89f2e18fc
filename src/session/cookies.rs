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

/// The request's cookies by name (the first occurrence wins). A request carries a handful, so
/// they are kept in order and searched rather than hashed.
pub(super) struct Jar<'a> {
    cookies: Vec<(&'a str, &'a str)>,
}

impl<'a> Jar<'a> {
    pub(super) fn from_headers(headers: &'a HeaderMap) -> Jar<'a> {
        let mut cookies = Vec::new();
        for value in headers.get_all(COOKIE) {
            // UTF-8, not `to_str`'s byte-by-byte visible-ASCII check: the value is a sealed
            // session of a few hundred bytes, and its base64 decoding refuses anything odd.
            let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
                continue;
            };
            for pair in text.split(';') {
                if let Some((name, value)) = pair.trim().split_once('=') {
                    cookies.push((name.trim(), value.trim()));
                }
            }
        }
        Jar { cookies }
    }

    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.cookies
            .iter()
            .find(|(cookie, _)| *cookie == name)
            .map(|(_, value)| *value)
    }

    /// The whole value: `NAME` itself (borrowed), or `NAME_0`, `NAME_1`, ... concatenated.
    pub(super) fn assemble(&self, name: &str) -> Option<Cow<'a, str>> {
        if let Some(value) = self.get(name) {
            return Some(Cow::Borrowed(value));
        }
        let mut whole = String::new();
        for index in 0..=MAX_CHUNKS {
            match self.get(&chunk_name(name, index)) {
                Some(part) if index < MAX_CHUNKS => whole.push_str(part),
                Some(_) => return None,
                None if index == 0 => return None,
                None => break,
            }
        }
        Some(Cow::Owned(whole))
    }

    /// Indexes of the `NAME_i` chunk cookies present in the request.
    fn chunk_indexes(&self, name: &str) -> Vec<usize> {
        let prefix = format!("{name}_");
        let mut indexes: Vec<usize> = self
            .cookies
            .iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix)?.parse().ok())
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes
    }
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
