//! Which of the headers the pipeline asks about a request carries, from one pass over its
//! names.
//!
//! Looking up a header a request does not carry still hashes the name and probes the map
//! (about 90 instructions); a pass over a request's few names costs less than two such
//! lookups, and most requests lack most of these headers (an API client sends no `Accept:
//! text/html`, no `X-Request-Id`, no `Upgrade`).

use http::HeaderMap;
use http::header;

use crate::telemetry::REQUEST_ID_HEADER;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    pub accept: bool,
    pub cookie: bool,
    pub upgrade: bool,
    pub request_id: bool,
}

impl Carried {
    pub fn scan(headers: &HeaderMap) -> Self {
        let mut carried = Carried::default();
        for name in headers.keys() {
            if *name == header::ACCEPT {
                carried.accept = true;
            } else if *name == header::COOKIE {
                carried.cookie = true;
            } else if *name == header::UPGRADE {
                carried.upgrade = true;
            } else if *name == REQUEST_ID_HEADER {
                carried.request_id = true;
            }
        }
        carried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_finds_exactly_the_headers_present() {
        let mut headers = HeaderMap::new();
        assert_eq!(Carried::scan(&headers), Carried::default());
        headers.insert(header::HOST, "example.com".parse().unwrap());
        headers.insert(header::USER_AGENT, "test".parse().unwrap());
        assert_eq!(Carried::scan(&headers), Carried::default());
        headers.append(header::COOKIE, "a=1".parse().unwrap());
        headers.append(header::COOKIE, "b=2".parse().unwrap());
        headers.insert("X-Request-ID", "abc".parse().unwrap());
        let carried = Carried::scan(&headers);
        assert_eq!(
            carried,
            Carried {
                cookie: true,
                request_id: true,
                ..Carried::default()
            }
        );
        headers.insert(header::ACCEPT, "text/html".parse().unwrap());
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert_eq!(
            Carried::scan(&headers),
            Carried {
                accept: true,
                cookie: true,
                upgrade: true,
                request_id: true,
            }
        );
    }
}
