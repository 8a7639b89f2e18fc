//! Request path normalization: one canonical path for route matching and for the upstream.
//!
//! A gateway that matches one spelling of a path while the upstream resolves another can be
//! walked around (`/public/..%2fadmin`, `/admin;x`, `//admin`). So the path is normalized once,
//! here, and the upstream receives exactly the string the policy matched:
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other escapes
//!   are kept with upper-case hex;
//! - `.` and `..` segments are resolved (never above the root), duplicate slashes collapse;
//! - a trailing slash is kept (`/a/` and `/a` can be different resources);
//! - rejected outright: encoded `/` or `\`, a raw `\`, NUL or other control characters,
//!   malformed escapes, escapes that do not decode to UTF-8, and `;` (path parameters that some
//!   upstreams strip before routing).

use std::fmt;

/// Why a path was refused (400 Bad Request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EncodedSeparator,
    Backslash,
    ControlCharacter,
    MalformedEscape,
    InvalidUtf8,
    PathParameter,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path must start with /",
            PathError::EncodedSeparator => "the path contains an encoded / or \\",
            PathError::Backslash => "the path contains a backslash",
            PathError::ControlCharacter => "the path contains a control character",
            PathError::MalformedEscape => "the path contains a malformed %-escape",
            PathError::InvalidUtf8 => "the path contains %-escapes that are not UTF-8",
            PathError::PathParameter => "the path contains ';' path parameters",
        })
    }
}

impl std::error::Error for PathError {}

/// Normalizes the path part of a request target (no query) as described in the module docs.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    // Most paths are canonical already: one scan and a copy instead of a rebuild by segment.
    if is_canonical(raw) {
        return Ok(raw.to_owned());
    }
    rebuild(raw)
}

/// True when [`rebuild`] would return `raw` unchanged and refuse nothing: plain ASCII without
/// escapes, backslashes or `;`, no empty segment but a trailing one, no `.` or `..` segment.
fn is_canonical(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        if (segment.is_empty() && !is_last) || segment == "." || segment == ".." {
            return false;
        }
        if !segment.bytes().all(is_plain_path_byte) {
            return false;
        }
    }
    true
}

fn is_plain_path_byte(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte) && !matches!(byte, b'%' | b'\\' | b';')
}

fn rebuild(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return if raw == "*" {
            Ok("*".into())
        } else {
            Err(PathError::NotAbsolute)
        };
    }
    let mut segments: Vec<String> = Vec::new();
    let trailing_slash = raw.len() > 1 && raw.ends_with('/');
    let mut ends_in_dot_segment = false;
    for raw_segment in raw.split('/').filter(|s| !s.is_empty()) {
        let segment = decode_segment(raw_segment)?;
        ends_in_dot_segment = matches!(segment.as_str(), "." | "..");
        match segment.as_str() {
            "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut path = String::with_capacity(raw.len());
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || ((trailing_slash || ends_in_dot_segment) && !segments.is_empty()) {
        path.push('/');
    }
    Ok(path)
}

/// Decodes unreserved escapes, re-encodes the rest canonically and checks the segment is safe.
fn decode_segment(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut decoded = Vec::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::MalformedEscape)?;
                let value = hex_pair(hex).ok_or(PathError::MalformedEscape)?;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    _ if is_unreserved(value) => out.push(value as char),
                    _ => {
                        out.push('%');
                        out.push(HEX[(value >> 4) as usize] as char);
                        out.push(HEX[(value & 0xf) as usize] as char);
                    }
                }
                decoded.push(value);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::PathParameter),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                out.push(byte as char);
                decoded.push(byte);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("root", "/", "/"),
            ("plain", "/panel/app", "/panel/app"),
            ("dot dot", "/a/../b", "/b"),
            ("dot dot above root", "/../../etc/passwd", "/etc/passwd"),
            ("single dot", "/a/./b", "/a/b"),
            ("double slash", "//admin", "/admin"),
            ("many slashes", "/a///b//", "/a/b/"),
            ("encoded dot dot", "/public/%2e%2e/admin", "/admin"),
            ("mixed-case encoded dots", "/public/%2E./admin", "/admin"),
            ("encoded unreserved letters", "/%61dmin", "/admin"),
            ("trailing slash kept", "/panel/", "/panel/"),
            ("trailing dot segment", "/admin/.", "/admin/"),
            ("trailing dot dot segment", "/admin/x/..", "/admin/"),
            ("reserved escape kept upper-cased", "/a%3fb", "/a%3Fb"),
            ("space escape kept", "/a%20b", "/a%20b"),
            ("utf-8 escape kept", "/caf%c3%a9", "/caf%C3%A9"),
            ("literal trailing dot is a name", "/admin.", "/admin."),
            ("asterisk form", "*", "*"),
        ];
        for (name, raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{name}: {raw}");
        }
    }

    #[test]
    fn unsafe_paths_are_rejected() {
        let cases = [
            (
                "encoded slash",
                "/public/..%2fadmin",
                PathError::EncodedSeparator,
            ),
            ("encoded slash upper", "/a%2Fb", PathError::EncodedSeparator),
            ("encoded backslash", "/a%5cb", PathError::EncodedSeparator),
            ("raw backslash", "/a\\b", PathError::Backslash),
            ("encoded nul", "/a%00b", PathError::ControlCharacter),
            ("encoded newline", "/a%0ab", PathError::ControlCharacter),
            ("short escape", "/a%4", PathError::MalformedEscape),
            ("bad hex", "/a%zzb", PathError::MalformedEscape),
            ("invalid utf-8", "/a%ffb", PathError::InvalidUtf8),
            (
                "path parameter",
                "/admin;jsessionid=1",
                PathError::PathParameter,
            ),
            ("relative", "admin", PathError::NotAbsolute),
        ];
        for (name, raw, want) in cases {
            assert_eq!(normalize(raw), Err(want), "{name}: {raw}");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_rebuild() {
        let paths = [
            "/",
            "/a",
            "/a/",
            "/panel/app",
            "/a b",
            "/a.b/c~d_e-f",
            "/admin.",
            "/.well-known/x",
            "//",
            "/a//b",
            "/a/./b",
            "/a/../b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/a%20b",
            "/a%2e",
            "/a;b",
            "/a\\b",
            "/a\tb",
            "/caf\u{e9}",
            "*",
            "a",
            "",
        ];
        for raw in paths {
            if is_canonical(raw) {
                assert_eq!(rebuild(raw).as_deref(), Ok(raw), "{raw:?}");
            }
        }
        for canonical in ["/", "/a/", "/panel/app", "/admin.", "/.well-known/x"] {
            assert!(is_canonical(canonical), "{canonical}");
        }
        for other in ["//", "/a/./b", "/a/..", "/a%20b", "/a;b", "/caf\u{e9}", "*"] {
            assert!(!is_canonical(other), "{other}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for raw in ["/a/../b/", "/%2e/x%20y", "//p//q", "/caf%c3%a9/./"] {
            let once = normalize(raw).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{raw}");
        }
    }
}
