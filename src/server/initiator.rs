//! Who started a request: a page of the gateway's own origin (or the person, from the address
//! bar), another site, or a client that does not say. Read from the browser's fetch metadata
//! (`Sec-Fetch-Site`), else from `Origin` against `Host` — the order of Go's
//! `CrossOriginProtection`. A state-changing endpoint that only browsers call with cookies
//! (logout) uses it to tell a person's request from one another site made their browser send.

use http::header::{self, HeaderMap, HeaderName};

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// A page of the request's own scheme, host and port, or the person (`Sec-Fetch-Site: none`:
    /// typed, bookmarked).
    Here,
    /// Another origin: another site, another subdomain of this site (`same-site`) or another port.
    Elsewhere,
    /// Neither fetch metadata nor `Origin`: not a browser, or a browser too old to say.
    Unknown,
}

/// Who started the request whose headers these are.
pub fn initiator(headers: &HeaderMap) -> Initiator {
    if let Some(site) = headers.get(SEC_FETCH_SITE) {
        // Any value but these two, unknown ones included, is treated as another site's.
        return match site.as_bytes() {
            b"same-origin" | b"none" => Initiator::Here,
            _ => Initiator::Elsewhere,
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Initiator::Unknown;
    };
    let here = match (origin.to_str(), host(headers)) {
        (Ok(origin), Some(host)) => names_the_host(origin.trim_end_matches('/'), host),
        _ => false,
    };
    if here {
        Initiator::Here
    } else {
        Initiator::Elsewhere
    }
}

/// Whether the browser is loading a top-level page (a link followed, a form sent, an address
/// typed), not an image, script, frame or `fetch()`: what a person's click produces.
pub fn is_page_navigation(headers: &HeaderMap) -> bool {
    headers.get(SEC_FETCH_MODE).map(|v| v.as_bytes()) == Some(b"navigate")
        && headers.get(SEC_FETCH_DEST).map(|v| v.as_bytes()) == Some(b"document")
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST)?.to_str().ok()
}

/// Whether `origin` (`scheme://host[:port]`, case-insensitive) names the host and port of `host`
/// (a `Host` value; without a port, the default port of the origin's scheme: the gateway may sit
/// behind a proxy that terminates TLS).
pub(crate) fn names_the_host(origin: &str, host: &str) -> bool {
    let Ok(origin) = url::Url::parse(origin) else {
        return false;
    };
    let Ok(host) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let default_port = match origin.scheme() {
        "https" => 443,
        "http" => 80,
        _ => return false,
    };
    let Some(origin_host) = origin.host_str() else {
        return false;
    };
    origin_host.eq_ignore_ascii_case(host.host())
        && origin.port().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, "gw.example:8443".parse().unwrap());
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        for site in ["same-origin", "none"] {
            assert_eq!(
                initiator(&headers(&[("sec-fetch-site", site)])),
                Initiator::Here
            );
        }
        for site in ["same-site", "cross-site", "", "future-value"] {
            assert_eq!(
                initiator(&headers(&[("sec-fetch-site", site)])),
                Initiator::Elsewhere,
                "{site:?}"
            );
        }
        // Fetch metadata wins over an `Origin` that a script could not have chosen anyway.
        let both = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://gw.example:8443"),
        ]);
        assert_eq!(initiator(&both), Initiator::Elsewhere);
    }

    #[test]
    fn without_fetch_metadata_the_origin_must_name_the_host_and_port() {
        let of = |origin: &'static str| initiator(&headers(&[("origin", origin)]));
        assert_eq!(of("https://gw.example:8443"), Initiator::Here);
        assert_eq!(of("https://GW.example:8443/"), Initiator::Here);
        assert_eq!(of("https://gw.example"), Initiator::Elsewhere);
        assert_eq!(of("https://gw.example:9443"), Initiator::Elsewhere);
        assert_eq!(of("https://evil.example:8443"), Initiator::Elsewhere);
        assert_eq!(of("null"), Initiator::Elsewhere);
        assert_eq!(initiator(&headers(&[])), Initiator::Unknown);
    }

    #[test]
    fn a_default_port_matches_a_host_without_one() {
        assert!(names_the_host("https://gw.example", "gw.example"));
        assert!(names_the_host("https://gw.example:443", "gw.example"));
        assert!(names_the_host("http://gw.example", "gw.example:80"));
        assert!(!names_the_host("http://gw.example", "gw.example:443"));
        assert!(!names_the_host("ftp://gw.example", "gw.example"));
    }

    #[test]
    fn only_a_top_level_document_load_is_a_page_navigation() {
        let nav = |mode: &'static str, dest: &'static str| {
            is_page_navigation(&headers(&[
                ("sec-fetch-mode", mode),
                ("sec-fetch-dest", dest),
            ]))
        };
        assert!(nav("navigate", "document"));
        assert!(!nav("navigate", "iframe"));
        assert!(!nav("no-cors", "image"));
        assert!(!nav("cors", "empty"));
        assert!(!is_page_navigation(&headers(&[])));
    }
}
