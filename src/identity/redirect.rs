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
    let host_port = match url.port() {
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
    use super::safe_redirect;

    const HOST: &str = "gw.example.com";

    fn allowed() -> Vec<String> {
        vec![
            "app.example.com".into(),
            ".apps.example.org".into(),
            "ports.example.com:8443".into(),
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
            ("bare domain of wildcard", "https://apps.example.org/"),
            ("invalid utf8 encoding", "/%ff%fe"),
            ("unicode slash lookalike", "/\u{2215}\u{2215}evil.com"),
        ];
        for (name, rd) in cases {
            assert_eq!(safe_redirect(rd, HOST, &allowed()), None, "{name}: {rd:?}");
        }
    }
}
