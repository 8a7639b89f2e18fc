//! Header hygiene: what a client may not send, what must not cross a proxy hop, and the
//! `X-Forwarded-*` set the upstream can trust.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::policy::Scheme;
use crate::session::cookie_pairs;

/// Header names matched in one pass: most request headers are told apart by their length alone.
#[derive(Debug, Clone, Default)]
struct NameSet {
    names: Vec<HeaderName>,
    /// Bit `n` set when some name is `n` bytes long (`n` ≥ 63 share bit 63).
    lengths: u64,
}

impl NameSet {
    fn insert(&mut self, name: HeaderName) {
        if !self.names.contains(&name) {
            self.lengths |= length_bit(name.as_str());
            self.names.push(name);
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.lengths & length_bit(name) != 0
            && self.names.iter().any(|known| known.as_str() == name)
    }
}

fn length_bit(name: &str) -> u64 {
    1 << name.len().min(63)
}

/// Removes every client-sent header that could carry identity, so only the gateway sets them,
/// and what only a trusted proxy may say about the client.
#[derive(Debug, Clone)]
pub struct IdentityHeaderStripper {
    /// Removed whoever sent them: identity, and paths that would override the matched one.
    always: NameSet,
    /// Removed unless the peer is a trusted proxy.
    from_proxies_only: NameSet,
}

/// Any header starting with this is the gateway's to set (`X-Auth-Request-User`,
/// `X-Auth-Capability`, ...).
const RESERVED_PREFIX: &str = "x-auth-";

const BUILT_IN: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "remote-user",
    "x-remote-user",
    "x-remote-email",
    "x-remote-groups",
];

/// Headers that make some upstreams serve another path than the request's (IIS URL Rewrite,
/// older Symfony and Zend: CVE-2018-14773). The policy decided on the path the gateway sees,
/// so nobody may send them, trusted proxies included.
const PATH_OVERRIDES: &[&str] = &["x-original-url", "x-rewrite-url"];

/// Headers that make some upstreams run another method than the request's (Rack's
/// `MethodOverride` in Rails, Symfony and Laravel, Express's `method-override`, ASP.NET): a
/// POST a policy allowed would be served as the DELETE it denies. Removed from everyone.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// What a proxy in front says about the client beyond `X-Forwarded-For/-Proto/-Host`. Apps
/// behind proxies believe them: Tornado (Panel's `--use-xheaders`) takes `X-Scheme` over
/// `X-Forwarded-Proto`, Werkzeug's `ProxyFix` and Django read `X-Forwarded-Port/-Prefix`,
/// Envoy-fronted apps take a client certificate's identity from `X-Forwarded-Client-Cert`.
/// Kept from a trusted proxy, removed from anyone else (Traefik's set, plus the last two).
const PROXY_FACTS: &[&str] = &[
    "forwarded",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-scheme",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    "x-forwarded-client-cert",
];

/// Set by the gateway itself ([`set_forwarded`]). A trusted proxy's are kept (the gateway
/// appends to them); anyone else's are removed before the policy reads `request.headers`, so
/// a rule reading them cannot be fooled, and the gateway sets its own.
const SET_BY_THE_GATEWAY: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

/// `name` is `canonical` once every `_` in it is read as `-`. CGI-style servers (WSGI for
/// Django and Flask, PHP) turn both `X-Forwarded-User` and `X_Forwarded_User` into
/// `HTTP_X_FORWARDED_USER`, so a client's underscore spelling would pass for the gateway's
/// header (oauth2-proxy's CVE-2025-64484).
fn same_dashed(name: &[u8], canonical: &[u8]) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical)
            .all(|(&a, &b)| a == b || (a == b'_' && b == b'-'))
}

/// How many header lines [`IdentityHeaderStripper::strip`] removed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stripped {
    /// Identity, path overrides, underscore spellings: a spoofing attempt, worth a log line.
    pub spoofed: usize,
    /// A proxy's claims from a peer that is not a trusted proxy: routine behind a balancer
    /// that `headers.trusted_proxies` does not list, so not worth one per request.
    pub proxy_claims: usize,
}

impl IdentityHeaderStripper {
    /// `extra` adds configured names (identity header names, the capability header, `headers.strip`).
    pub fn new<'a>(
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, http::header::InvalidHeaderName> {
        let mut always = NameSet::default();
        for name in BUILT_IN
            .iter()
            .chain(PATH_OVERRIDES)
            .chain(METHOD_OVERRIDES)
        {
            always.insert(HeaderName::from_static(name));
        }
        for name in extra {
            let name = HeaderName::try_from(name.to_ascii_lowercase())?;
            if !name.as_str().starts_with(RESERVED_PREFIX) {
                always.insert(name);
            }
        }
        let mut from_proxies_only = NameSet::default();
        for name in PROXY_FACTS.iter().chain(SET_BY_THE_GATEWAY) {
            from_proxies_only.insert(HeaderName::from_static(name));
        }
        Ok(IdentityHeaderStripper {
            always,
            from_proxies_only,
        })
    }

    /// Removes the headers and says how many of each kind went.
    pub fn strip(&self, headers: &mut HeaderMap, from_trusted_proxy: bool) -> Stripped {
        // One pass over the names the request has; most have none of ours.
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| {
                let name = name.as_str();
                name.starts_with(RESERVED_PREFIX)
                    || self.always.contains(name)
                    || (!from_trusted_proxy && self.from_proxies_only.contains(name))
                    || (name.contains('_') && self.is_underscore_spelling(name.as_bytes()))
            })
            .cloned()
            .collect();
        let mut stripped = Stripped::default();
        for name in doomed {
            let claim = self.from_proxies_only.contains(name.as_str());
            if let header::Entry::Occupied(entry) = headers.entry(name) {
                let lines = entry.remove_entry_mult().1.count();
                if claim {
                    stripped.proxy_claims += lines;
                } else {
                    stripped.spoofed += lines;
                }
            }
        }
        stripped
    }

    /// `name` (with an `_`) is one of ours spelled with underscores for dashes. Removed from
    /// trusted proxies too: they pass on what their own clients sent in that spelling.
    fn is_underscore_spelling(&self, name: &[u8]) -> bool {
        let prefix = RESERVED_PREFIX.as_bytes();
        (name.len() >= prefix.len() && same_dashed(&name[..prefix.len()], prefix))
            || self
                .always
                .names
                .iter()
                .chain(&self.from_proxies_only.names)
                .any(|known| same_dashed(name, known.as_str().as_bytes()))
    }
}

/// Hop-by-hop headers: those of RFC 9110 §7.6.1 and the legacy ones proxies still meet.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    // Matched as strings: a standard name's `as_str` is a table lookup, and a string match
    // switches on the length first, so most names are told apart in a few instructions (one
    // `HeaderName` comparison after another cost ~70 per header).
    matches!(
        name.as_str(),
        "connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "keep-alive"
            | "proxy-connection"
    )
}

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names. Most messages carry no hop-by-hop header, or only
    // `Connection: keep-alive` (most upstream responses): both cases allocate nothing.
    let mut connection = false;
    let mut others = false;
    for name in headers.keys() {
        if is_hop_by_hop(name) {
            if *name == header::CONNECTION {
                connection = true;
            } else {
                others = true;
            }
        }
    }
    if connection {
        // One lookup takes every `Connection` value out; the names they list are collected
        // first (nothing is allocated for `keep-alive` or `close`, which name no header).
        let mut listed: Vec<HeaderName> = Vec::new();
        if let header::Entry::Occupied(entry) = headers.entry(header::CONNECTION) {
            for value in entry.remove_entry_mult().1 {
                listed.extend(connection_listed_names(&value));
            }
        }
        for name in listed {
            headers.remove(name);
        }
    }
    if others {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| is_hop_by_hop(name))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(name);
        }
    }
}

/// The header names a `Connection` value lists: `close` names no header, and `keep-alive` is
/// hop-by-hop already. `Host` is never taken: it is part of the request target (RFC 9112
/// §3.2), and without it the upstream would get a request HTTP/1.1 forbids and routes and
/// `X-Forwarded-Host` would lose the name the client asked for.
fn connection_listed_names(value: &HeaderValue) -> impl Iterator<Item = HeaderName> + '_ {
    value
        .as_bytes()
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| {
            !token.is_empty()
                && !token.eq_ignore_ascii_case(b"close")
                && !token.eq_ignore_ascii_case(b"keep-alive")
                && !token.eq_ignore_ascii_case(b"host")
        })
        .filter_map(|token| HeaderName::from_bytes(token).ok())
}

/// Keeps only the cookies for which `keep(name)` holds. `Cookie` is rewritten as one header
/// (HTTP/2 clients send several, an HTTP/1.1 upstream expects one) unless the request sent a
/// single one and every cookie in it is kept: then it goes on untouched.
///
/// Values are read as bytes, in place: a sealed session is a few hundred bytes, and checking
/// it for UTF-8 or visible ASCII cost more than the rest of this.
pub fn retain_cookies(headers: &mut HeaderMap, keep: impl Fn(&[u8]) -> bool) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let Some(first) = values.next() else {
        return;
    };
    let single = values.next().is_none();
    if single && cookie_pairs(first.as_bytes()).all(|pair| keep(pair.name)) {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in cookie_pairs(value.as_bytes()).filter(|pair| keep(pair.name)) {
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair.whole);
        }
    }
    let value = (!kept.is_empty())
        .then(|| HeaderValue::from_bytes(&kept).ok())
        .flatten();
    headers.remove(header::COOKIE);
    if let Some(value) = value {
        headers.insert(header::COOKIE, value);
    }
}

/// The client's address as `X-Forwarded-For` needs it, worked out once per connection.
#[derive(Debug, Clone)]
pub struct ForwardedPeer {
    pub ip: IpAddr,
    pub ip_value: HeaderValue,
    pub is_trusted_proxy: bool,
}

impl ForwardedPeer {
    pub fn new(ip: IpAddr, is_trusted_proxy: bool) -> Self {
        let ip_value = address_value(ip);
        ForwardedPeer {
            ip,
            ip_value,
            is_trusted_proxy,
        }
    }
}

fn address_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::try_from(ip.to_string()).expect("an IP address is a header value")
}

/// The client's address as policies (`request.ip`) and rate limits see it: the peer's, or when
/// the peer is a trusted proxy, the nearest address in `X-Forwarded-For` that is not one. Each
/// proxy appends the address it received from, so the chain is read from the right, skipping
/// trusted hops (nginx's `real_ip_recursive`). A hop that is not an address ends the walk:
/// nothing left of it is vouched for.
pub fn client_address(
    peer: &ForwardedPeer,
    headers: &HeaderMap,
    is_trusted_proxy: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    if !peer.is_trusted_proxy {
        return peer.ip;
    }
    let mut client = peer.ip;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(chain) = value.to_str() else {
            return client;
        };
        for hop in chain.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !is_trusted_proxy(ip) {
                return ip;
            }
        }
    }
    client
}

/// The scheme the client used, as policies see it (`request.scheme`): the connection's, or
/// behind a trusted proxy (which may have terminated TLS) the one its `X-Forwarded-Proto`
/// names. The last value is read, the one the nearest proxy set or appended; anything but
/// `http` or `https` leaves the connection's scheme.
pub fn client_scheme(peer: &ForwardedPeer, headers: &HeaderMap, connection: Scheme) -> Scheme {
    if !peer.is_trusted_proxy {
        return connection;
    }
    let Some(value) = headers.get_all("x-forwarded-proto").iter().next_back() else {
        return connection;
    };
    let nearest = value.as_bytes().rsplit(|&byte| byte == b',').next();
    match nearest.map(<[u8]>::trim_ascii) {
        Some(proto) if proto.eq_ignore_ascii_case(b"https") => Scheme::Https,
        Some(proto) if proto.eq_ignore_ascii_case(b"http") => Scheme::Http,
        _ => connection,
    }
}

/// Facts about the client connection used to set `X-Forwarded-*`.
#[derive(Debug, Clone)]
pub struct ForwardedFacts<'a> {
    pub peer: &'a ForwardedPeer,
    /// The client's address ([`client_address`]): the peer's unless it is a trusted proxy.
    pub client: IpAddr,
    pub scheme: &'a str,
    /// The `Host` the client asked for, port included (HTTP/2: its `:authority`), as apps that
    /// build absolute URLs from `X-Forwarded-Host` (Django, Werkzeug) need it.
    pub host: Option<HeaderValue>,
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `X-Real-IP`. From a trusted proxy the existing chain
/// is kept and the peer appended; from anyone else client-sent values are replaced (the
/// stripper has removed their `Forwarded`). `X-Real-IP` is always the client address the policy saw
/// (`request.ip`): Tornado, and so Panel behind `--use-xheaders`, believes it over
/// `X-Forwarded-For`.
pub fn set_forwarded(headers: &mut HeaderMap, facts: ForwardedFacts<'_>) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    let proto = HeaderValue::from_static(if facts.scheme == "https" {
        "https"
    } else {
        "http"
    });
    let host = facts.host;
    if facts.peer.is_trusted_proxy {
        let chain = match headers.get(&XFF).and_then(|v| v.to_str().ok()) {
            Some(existing) => HeaderValue::try_from(format!("{existing}, {}", facts.peer.ip)).ok(),
            None => Some(facts.peer.ip_value.clone()),
        };
        if let Some(value) = chain {
            headers.insert(XFF, value);
        }
        if !headers.contains_key(&XFP) {
            headers.insert(XFP, proto);
        }
        if let Some(host) = host.filter(|_| !headers.contains_key(&XFH)) {
            headers.insert(XFH, host);
        }
        let client = if facts.client == facts.peer.ip {
            facts.peer.ip_value.clone()
        } else {
            address_value(facts.client)
        };
        headers.insert(X_REAL_IP, client);
        return;
    }
    headers.insert(XFF, facts.peer.ip_value.clone());
    headers.insert(XFP, proto);
    match host {
        Some(host) => headers.insert(XFH, host),
        None => headers.remove(XFH),
    };
    headers.insert(X_REAL_IP, facts.peer.ip_value.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::try_from(*value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn spoofed_identity_headers_are_removed_in_every_spelling() {
        let stripper = IdentityHeaderStripper::new(["X-Custom-User", "X-Auth-Capability"]).unwrap();
        let mut map = headers(&[
            ("x-auth-request-user", "admin"),
            ("X-Auth-Request-Email", "a@b.c"),
            ("x-auth-capability", "forged"),
            ("x-forwarded-user", "admin"),
            ("x-forwarded-groups", "admins"),
            ("remote-user", "root"),
            ("x-custom-user", "mallory"),
            ("x-auth-anything-new", "1"),
            ("accept", "text/html"),
        ]);
        map.append("x-auth-request-user", HeaderValue::from_static("second"));
        let removed = stripper.strip(&mut map, false);
        assert_eq!(removed.spoofed, 9);
        assert_eq!(map.len(), 1);
        assert!(map.contains_key("accept"));
    }

    #[test]
    fn underscore_spellings_of_our_headers_are_removed_and_others_kept() {
        let stripper = IdentityHeaderStripper::new(["X-Custom-User"]).unwrap();
        let mut map = headers(&[
            ("x_forwarded_user", "admin"),
            ("X_Forwarded_Email", "a@b.c"),
            ("x-forwarded_groups", "admins"),
            ("remote_user", "root"),
            ("x_auth_request_user", "admin"),
            ("x-auth_capability", "forged"),
            ("x_custom_user", "mallory"),
            ("x_forwarded_for", "10.0.0.1"),
            ("x_forwarded_host", "evil.example"),
            ("x_forwarded_proto", "https"),
            // Not ours: kept, whatever their spelling.
            ("x_request_id", "abc"),
            ("access_token", "for-the-app"),
            ("x_authority", "1"),
            // A proxy's claim: removed too from a peer that is not one, but not a spoof.
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        let removed = stripper.strip(&mut map, false);
        assert_eq!(removed.spoofed, 10, "{map:?}");
        assert_eq!(removed.proxy_claims, 1, "{map:?}");
        let mut kept: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["access_token", "x_authority", "x_request_id"]);
    }

    #[test]
    fn path_and_method_overrides_are_removed_from_everyone_and_proxy_facts_from_untrusted_peers() {
        let stripper = IdentityHeaderStripper::new([]).unwrap();
        let sent = [
            ("x-original-url", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("x-http-method", "DELETE"),
            ("X-Method-Override", "DELETE"),
            ("x-real-ip", "10.0.0.1"),
            ("x-scheme", "https"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/evil"),
            ("x-forwarded-ssl", "on"),
            (
                "x-forwarded-client-cert",
                "By=spiffe://x;URI=spiffe://admin",
            ),
            ("forwarded", "for=10.0.0.1;proto=https"),
            ("x_forwarded_prefix", "/evil"),
            ("x_real_ip", "10.0.0.1"),
            ("x_original_url", "/admin"),
            ("x-forwarded-proto", "https"),
            ("accept", "*/*"),
        ];
        let mut from_anyone = headers(&sent);
        assert_eq!(
            stripper.strip(&mut from_anyone, false),
            Stripped {
                spoofed: 8,
                proxy_claims: 8
            },
            "path and method overrides and underscore spellings are spoofs; a proxy's claims are not"
        );
        let kept = |trusted: bool| {
            let mut map = headers(&sent);
            stripper.strip(&mut map, trusted);
            let mut names: Vec<String> = map.keys().map(|name| name.to_string()).collect();
            names.sort_unstable();
            names
        };
        // From anyone else: none of a proxy's claims, not even those the gateway sets itself
        // (`request.headers` would show them to the policy).
        assert_eq!(kept(false), ["accept"]);
        // A trusted proxy's facts are kept; overrides and underscore spellings still go.
        assert_eq!(
            kept(true),
            [
                "accept",
                "forwarded",
                "x-forwarded-client-cert",
                "x-forwarded-port",
                "x-forwarded-prefix",
                "x-forwarded-proto",
                "x-forwarded-ssl",
                "x-real-ip",
                "x-scheme"
            ]
        );
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut map);
        assert_eq!(
            map.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["accept"]
        );
    }

    #[test]
    fn a_connection_header_cannot_take_the_host_away() {
        let mut map = headers(&[
            ("host", "app.example.com"),
            ("connection", "Host, x-hop"),
            ("x-hop", "1"),
        ]);
        remove_hop_by_hop(&mut map);
        assert_eq!(
            map.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["host"]
        );
        assert_eq!(map["host"], "app.example.com");
    }

    #[test]
    fn each_kind_of_hop_by_hop_header_is_removed_on_its_own() {
        let cases: &[&[(&str, &str)]] = &[
            &[("connection", "keep-alive")],
            &[("connection", "close"), ("connection", "x-hop")],
            &[("transfer-encoding", "chunked")],
            &[("proxy-connection", "keep-alive")],
            &[],
        ];
        for case in cases {
            let mut map = headers(case);
            map.append("x-hop", HeaderValue::from_static("1"));
            map.append("content-type", HeaderValue::from_static("text/plain"));
            remove_hop_by_hop(&mut map);
            let named_hop = case.iter().any(|(_, value)| value.contains("x-hop"));
            let want = if named_hop {
                vec!["content-type"]
            } else {
                vec!["content-type", "x-hop"]
            };
            let mut left: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
            left.sort_unstable();
            assert_eq!(left, want, "{case:?}");
        }
    }

    #[test]
    fn gateway_cookies_are_removed_and_others_kept() {
        let mut map = headers(&[
            ("cookie", "_portcullis=sealed; theme=dark"),
            ("cookie", "_portcullis_1=x;app=1"),
        ]);
        retain_cookies(&mut map, |name| !name.starts_with(b"_portcullis"));
        assert_eq!(map["cookie"], "theme=dark; app=1");
        let mut map = headers(&[("cookie", "_portcullis=sealed")]);
        retain_cookies(&mut map, |name| name != b"_portcullis");
        assert!(!map.contains_key("cookie"));
    }

    #[test]
    fn cookies_all_kept_go_on_as_sent_unless_split_over_headers() {
        let app_only = "theme=dark;lang=caf\u{e9}";
        let mut map = HeaderMap::new();
        map.insert(
            "cookie",
            HeaderValue::from_bytes(app_only.as_bytes()).unwrap(),
        );
        retain_cookies(&mut map, |name| name != b"_portcullis");
        assert_eq!(map["cookie"].as_bytes(), app_only.as_bytes());

        let mut map = headers(&[("cookie", "a=1"), ("cookie", "b=2; ")]);
        retain_cookies(&mut map, |_| true);
        assert_eq!(map.get_all("cookie").iter().count(), 1);
        assert_eq!(map["cookie"], "a=1; b=2");
    }

    #[test]
    fn untrusted_client_cannot_forge_forwarded_chain() {
        let mut map = headers(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer = ForwardedPeer::new("127.0.0.9".parse().unwrap(), false);
        let facts = ForwardedFacts {
            peer: &peer,
            client: peer.ip,
            scheme: "http",
            host: Some(HeaderValue::from_static("apps.example.com:8443")),
        };
        set_forwarded(&mut map, facts);
        assert_eq!(map["x-forwarded-for"], "127.0.0.9");
        assert_eq!(map["x-forwarded-proto"], "http");
        assert_eq!(map["x-forwarded-host"], "apps.example.com:8443");
        assert_eq!(map["x-real-ip"], "127.0.0.9");
    }

    #[test]
    fn the_client_address_is_the_nearest_untrusted_hop_behind_trusted_proxies() {
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        let address = |peer: &str, chain: &[&str]| {
            let peer: IpAddr = peer.parse().unwrap();
            let peer = ForwardedPeer::new(peer, trusted(peer));
            let pairs: Vec<(&str, &str)> = chain.iter().map(|v| ("x-forwarded-for", *v)).collect();
            client_address(&peer, &headers(&pairs), trusted).to_string()
        };
        // A direct client: its own address, whatever it claims.
        assert_eq!(address("203.0.113.9", &["198.51.100.1"]), "203.0.113.9");
        // Behind one trusted proxy: the address that proxy received from.
        assert_eq!(address("10.0.0.2", &["203.0.113.7"]), "203.0.113.7");
        // A client-forged start of the chain is left of the first untrusted hop: ignored.
        assert_eq!(
            address("10.0.0.2", &["1.1.1.1, 203.0.113.7, 10.0.0.3"]),
            "203.0.113.7"
        );
        // Several header lines are one chain, in order.
        assert_eq!(
            address("10.0.0.2", &["1.1.1.1, 203.0.113.7", "10.0.0.3"]),
            "203.0.113.7"
        );
        // Garbage ends the walk at the last address vouched for.
        assert_eq!(
            address("10.0.0.2", &["203.0.113.7, nonsense, 10.0.0.3"]),
            "10.0.0.3"
        );
        // No header, or only trusted hops: the farthest trusted address known.
        assert_eq!(address("10.0.0.2", &[]), "10.0.0.2");
        assert_eq!(address("10.0.0.2", &["10.0.0.5, 10.0.0.3"]), "10.0.0.5");
    }

    #[test]
    fn the_client_scheme_is_the_trusted_proxy_s_forwarded_proto() {
        let scheme = |trusted: bool, values: &[&str]| {
            let peer = ForwardedPeer::new("10.0.0.2".parse().unwrap(), trusted);
            let pairs: Vec<(&str, &str)> =
                values.iter().map(|v| ("x-forwarded-proto", *v)).collect();
            client_scheme(&peer, &headers(&pairs), Scheme::Http).as_str()
        };
        assert_eq!(scheme(true, &["https"]), "https");
        assert_eq!(scheme(true, &["HTTPS"]), "https");
        assert_eq!(scheme(false, &["https"]), "http", "a direct client's claim");
        assert_eq!(scheme(true, &[]), "http");
        assert_eq!(scheme(true, &["wss"]), "http", "not a scheme it knows");
        // The value the nearest proxy set or appended.
        assert_eq!(scheme(true, &["https, http"]), "http");
        assert_eq!(scheme(true, &["http", " https "]), "https");
    }

    #[test]
    fn trusted_proxy_chain_is_appended_to() {
        let mut map = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        map.insert("x-real-ip", HeaderValue::from_static("198.51.100.66"));
        let peer = ForwardedPeer::new("127.0.0.2".parse().unwrap(), true);
        let facts = ForwardedFacts {
            peer: &peer,
            client: "203.0.113.7".parse().unwrap(),
            scheme: "http",
            host: Some(HeaderValue::from_static("h")),
        };
        set_forwarded(&mut map, facts);
        assert_eq!(map["x-forwarded-for"], "203.0.113.7, 127.0.0.2");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(
            map["x-real-ip"], "203.0.113.7",
            "the client request.ip names, not what the proxy claimed"
        );
    }
}
