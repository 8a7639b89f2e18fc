//! Where a login may send the browser afterwards: the `rd` parameter, checked against open
//! redirects.
//!
//! ```
//! use portcullis::identity::redirect::safe_redirect;
//!
//! assert_eq!(safe_redirect("/panel/?x=1", "gw.example.com", &[]).as_deref(), Some("/panel/?x=1"));
//! assert_eq!(safe_redirect("//evil.example", "gw.example.com", &[]), None);
//! ```

use percent_encoding::percent_decode_str;
use url::Url;

/// The redirect target if `rd` is a relative path on this host, or an absolute http(s) URL whose
/// host is `public_host` or on `allowed_hosts` (`host`, `host:port`, or `.example.com` for any
/// subdomain). Everything else — `//host`, `/\host`, `https:host`, other schemes, credentials,
/// control characters, percent-encoded variants of these — is `None`.
pub fn safe_redirect(rd: &str, public_host: &str, allowed_hosts: &[String]) -> Option<String> {
    if rd.is_empty() || rd.len() > 4096 || !rd.is_ascii() || !plain(rd) {
        return None;
    }
    // Judge the decoded form too, repeatedly, so `%2F%2Fevil` and `%252F%252F` cannot slip past.
    let mut decoded = rd.to_owned();
    for _ in 0..3 {
        let next = percent_decode_str(&decoded)
            .decode_utf8()
            .ok()?
            .into_owned();
        if next.chars().any(|c| c.is_control() || c == '\\') {
            return None;
        }
        if next == decoded {
            break;
        }
        decoded = next;
    }
    if rd.starts_with('/') {
        return relative_path(rd, &decoded).then(|| rd.to_owned());
    }
    absolute_on_allowed_host(rd, public_host, allowed_hosts)
}

/// One `allowed_redirect_hosts` entry from gateway.yaml in the form [`safe_redirect`] matches:
/// `host` (any port), `host:port`, `[v6]:port`, or `*.example.com` (also written
/// `.example.com`: any subdomain, not `example.com` itself) → `.example.com`. Lowercase, IDNs as
/// punycode. The error says what is wrong with the entry.
///
/// ```
/// use portcullis::identity::redirect::allowed_host_entry;
///
/// assert_eq!(allowed_host_entry("*.Example.com").as_deref(), Ok(".example.com"));
/// assert!(allowed_host_entry("https://app.example.com").is_err());
/// ```
pub fn allowed_host_entry(entry: &str) -> Result<String, String> {
    let text = entry.trim();
    if text.is_empty() {
        return Err("an empty host".into());
    }
    if text
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "/\\@?#%".contains(c))
    {
        return Err(format!(
            "`{text}` is not a host name: give the host alone, without scheme, path or user"
        ));
    }
    if let Some(suffix) = text.strip_prefix("*.").or_else(|| text.strip_prefix('.')) {
        return match url::Host::parse(suffix) {
            Ok(url::Host::Domain(domain)) if !domain.contains('*') => Ok(format!(".{domain}")),
            _ => Err(format!(
                "`{text}`: a wildcard covers the subdomains of a domain name, without a port"
            )),
        };
    }
    if text.contains('*') {
        return Err(format!(
            "`{text}`: only a leading `*.` is a wildcard (`*.example.com`)"
        ));
    }
    let (host, port) = match text.strip_prefix('[') {
        Some(v6) => {
            let end = v6
                .find(']')
                .ok_or_else(|| format!("`{text}`: unclosed `[`"))?;
            let port = match &v6[end + 1..] {
                "" => None,
                rest => Some(
                    rest.strip_prefix(':')
                        .ok_or_else(|| format!("`{text}`: expected `:port` after `]`"))?,
                ),
            };
            (&text[..end + 2], port)
        }
        None => match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let host = url::Host::parse(host).map_err(|e| format!("`{text}`: {e}"))?;
    match port {
        None => Ok(host.to_string()),
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(format!("{host}:{port}")),
            _ => Err(format!("`{text}`: `{port}` is not a port number")),
        },
    }
}

/// No control characters, whitespace or backslashes anywhere.
fn plain(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
}

/// `/path...` that a browser cannot read as a network path (`//host`) in either form.
fn relative_path(raw: &str, decoded: &str) -> bool {
    [raw, decoded]
        .iter()
        .all(|text| text.starts_with('/') && !text.starts_with("//"))
}

fn absolute_on_allowed_host(
    rd: &str,
    public_host: &str,
    allowed_hosts: &[String],
) -> Option<String> {
    let lower = rd.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let url = Url::parse(rd).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    // `https://h/` is port 443: an entry `h:443` must match it (the URL parser drops a default
    // port, so `https://h:443/` arrives here the same way)
    let host_port = match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let allowed = std::iter::once(public_host)
        .chain(allowed_hosts.iter().map(String::as_str))
        .any(|entry| {
            let entry = entry.trim().to_ascii_lowercase();
            if let Some(suffix) = entry.strip_prefix('.') {
                host.ends_with(&format!(".{suffix}"))
            } else {
                entry == host || entry == host_port
            }
        });
    allowed.then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::{allowed_host_entry, safe_redirect};

    const HOST: &str = "gw.example.com";

    fn allowed() -> Vec<String> {
        vec![
            "app.example.com".into(),
            ".apps.example.org".into(),
            "ports.example.com:8443".into(),
            "tls.example.com:443".into(),
            "plain.example.com:80".into(),
        ]
    }

    #[test]
    fn good_targets_are_kept() {
        let cases = [
            ("/", "/"),
            ("/panel/", "/panel/"),
            ("/panel/app?x=1&y=%20z#frag", "/panel/app?x=1&y=%20z#frag"),
            ("/a/b/../c", "/a/b/../c"),
            ("https://gw.example.com/x", "https://gw.example.com/x"),
            (
                "https://app.example.com/dash",
                "https://app.example.com/dash",
            ),
            (
                "HTTPS://APP.example.com/dash",
                "https://app.example.com/dash",
            ),
            ("https://x.apps.example.org/", "https://x.apps.example.org/"),
            (
                "https://ports.example.com:8443/p",
                "https://ports.example.com:8443/p",
            ),
            ("http://app.example.com/", "http://app.example.com/"),
            ("https://tls.example.com/p", "https://tls.example.com/p"),
            ("https://tls.example.com:443/p", "https://tls.example.com/p"),
            ("http://plain.example.com/", "http://plain.example.com/"),
        ];
        for (rd, want) in cases {
            assert_eq!(
                safe_redirect(rd, HOST, &allowed()).as_deref(),
                Some(want),
                "{rd}"
            );
        }
    }

    #[test]
    fn configured_entries_are_normalised_or_refused() {
        let good = [
            ("app.example.com", "app.example.com"),
            ("  APP.Example.COM ", "app.example.com"),
            ("app.example.com:8443", "app.example.com:8443"),
            ("*.example.com", ".example.com"),
            (".example.com", ".example.com"),
            ("10.0.0.5", "10.0.0.5"),
            ("[::1]:8443", "[::1]:8443"),
            ("[::1]", "[::1]"),
            ("bücher.example", "xn--bcher-kva.example"),
        ];
        for (entry, want) in good {
            assert_eq!(allowed_host_entry(entry).as_deref(), Ok(want), "{entry}");
        }
        let bad = [
            ("empty", ""),
            ("scheme", "https://app.example.com"),
            ("path", "app.example.com/x"),
            ("userinfo", "user@app.example.com"),
            ("inner wildcard", "app.*.example.com"),
            ("bare wildcard", "*"),
            ("wildcard with port", "*.example.com:8443"),
            ("wildcard of an address", "*.10.0.0.5"),
            ("port zero", "app.example.com:0"),
            ("port out of range", "app.example.com:70000"),
            ("empty port", "app.example.com:"),
            ("bare IPv6", "::1"),
            ("junk after IPv6", "[::1]x"),
            ("percent", "app%2eexample.com"),
            ("space inside", "app example.com"),
        ];
        for (name, entry) in bad {
            assert!(allowed_host_entry(entry).is_err(), "{name}: {entry:?}");
        }
    }

    #[test]
    fn normalised_entries_are_what_the_checker_matches() {
        let allowed: Vec<String> = ["*.example.org", "app.example.com:8443"]
            .iter()
            .map(|e| allowed_host_entry(e).unwrap())
            .collect();
        assert!(safe_redirect("https://x.example.org/", HOST, &allowed).is_some());
        assert!(safe_redirect("https://example.org/", HOST, &allowed).is_none());
        assert!(safe_redirect("https://app.example.com:8443/", HOST, &allowed).is_some());
        assert!(safe_redirect("https://app.example.com/", HOST, &allowed).is_none());
    }

    #[test]
    fn open_redirect_corpus_is_rejected() {
        let cases = [
            ("empty", ""),
            ("network path", "//evil.com"),
            ("network path with path", "//evil.com/panel"),
            ("triple slash", "///evil.com"),
            ("backslash after slash", "/\\evil.com"),
            ("backslashes", "\\\\evil.com"),
            ("mixed slashes", "/\\/evil.com"),
            ("scheme without slashes", "https:evil.com"),
            ("scheme one slash", "https:/evil.com"),
            ("javascript", "javascript:alert(1)"),
            ("javascript upper", "JaVaScRiPt:alert(1)"),
            ("data", "data:text/html,<script>alert(1)</script>"),
            ("bare host", "evil.com"),
            ("bare host with path", "evil.com/panel"),
            ("unlisted host", "https://evil.com/"),
            ("suffix trick", "https://app.example.com.evil.com/"),
            ("prefix trick", "https://evilapp.example.com/"),
            ("userinfo", "https://app.example.com@evil.com/"),
            ("userinfo on allowed", "https://user:pw@app.example.com/"),
            ("encoded slashes", "/%2F%2Fevil.com"),
            ("encoded network path", "%2F%2Fevil.com"),
            ("double encoded", "/%252F%252Fevil.com"),
            ("encoded backslash", "/%5Cevil.com"),
            ("encoded backslash lower", "/%5cevil.com"),
            ("tab", "/\t/evil.com"),
            ("newline", "/\n/evil.com"),
            ("carriage return", "/\r\nLocation: https://evil.com"),
            ("encoded newline", "/%0d%0aSet-Cookie:x=1"),
            ("encoded tab", "/%09/evil.com"),
            ("null byte", "/\0evil"),
            ("encoded null", "/%00evil"),
            ("leading space", " /panel"),
            ("leading space network path", " //evil.com"),
            ("ftp", "ftp://app.example.com/"),
            ("port not listed", "https://app.example.com:9999.evil.com/"),
            ("allowed host wrong port", "https://ports.example.com:9443/"),
            ("allowed host default port", "https://ports.example.com/"),
            ("443 entry, http's port", "http://tls.example.com/"),
            ("80 entry, https's port", "https://plain.example.com/"),
            ("bare domain of wildcard", "https://apps.example.org/"),
            ("invalid utf8 encoding", "/%ff%fe"),
            ("unicode slash lookalike", "/\u{2215}\u{2215}evil.com"),
        ];
        for (name, rd) in cases {
            assert_eq!(safe_redirect(rd, HOST, &allowed()), None, "{name}: {rd:?}");
        }
    }
}
