//! The per-request pipeline. Every HTTP request and every WebSocket upgrade goes through the
//! same phases, in this order:
//!
//! ```text
//! 1 strip     remove client-sent identity headers (before anything reads a header)
//! 2 normalize one canonical path for matching and for the upstream, or 400
//! 3 built-in  /healthz, /readyz, /metrics, /oauth2/*, keys: the gateway's own endpoints
//! 4 session   open (and refresh) the session cookie → Identity, or anonymous; an
//!             `Authorization: Basic` header is tried only when a login would be needed and
//!             the route accepts it (`basic_header:`, else `basic_auth.allow_header`)
//! 5 decide    PolicySet::decide on one policy snapshot
//! 6 respond   Allow → proxy or WebSocket bridge, with identity headers and capability token
//!             Login → 302 to login (browser) or 401 JSON (API, XHR, WebSocket)
//!             Deny  → 403 page
//! ```
//!
//! One [`RequestContext`] carries what the phases learn.
//!
//! Logging: a proxied request logs only through events that name `request_id` themselves. The
//! branches that log on their own (login endpoints, token refresh, `Authorization: Basic`,
//! WebSocket upgrades) run inside [`telemetry::request_span`], so their lines carry it too.
//! Opening that span for every request would cost each request about a tenth of the gateway's
//! instructions, spent formatting a field that is almost never printed.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use tracing::Instrument;

use super::body::Body;
use super::caller::Caller;
use super::carried::Carried;
use super::endpoints;
use super::error::GatewayError;
use super::headers::{
    ForwardedFacts, ForwardedPeer, client_address, client_scheme, remove_hop_by_hop,
    retain_cookies, set_forwarded,
};
use super::login;
use super::outgoing::Outgoing;
use super::path::normalize;
use super::proxy::{UpstreamClient, origin_form, prepare_request};
use super::respond;
use super::state::Shared;
use super::websocket::{self, is_upgrade};
use super::whoami;
use crate::identity::Identity;
use crate::pages::wants_html;
use crate::policy::{Decision, Outcome, PolicySet, RequestInfo, Scheme, Upstream};
use crate::telemetry::{self, DecisionOutcome, DecisionRecord, REQUEST_ID_HEADER, RequestId};

/// Headers the gateway may add to a request going upstream.
const ADDED_UPSTREAM_HEADERS: usize = 10;

/// What the pipeline knows about one request so far.
pub struct RequestContext {
    pub request_id: RequestId,
    pub peer: SocketAddr,
    /// The client's address for policies and rate limits: the peer, or behind trusted proxies
    /// the nearest untrusted hop of `X-Forwarded-For` ([`client_address`]).
    pub client_ip: IpAddr,
    /// The client's scheme: the connection's, or behind a trusted proxy its
    /// `X-Forwarded-Proto` ([`client_scheme`]).
    pub scheme: Scheme,
    pub started: Instant,
    pub wants_html: bool,
    /// Which of the headers the pipeline asks about the request carries.
    pub carried: Carried,
    pub method: http::Method,
    /// The normalized path once phase 2 succeeded.
    pub path: Option<String>,
    /// What phase 5 decided, for the metric and the decision log.
    pub decided: Option<Decided>,
    /// The policy generation that decided (capability tokens are cached per generation).
    pub generation: u64,
    /// Session cookies to set on whatever response goes out (renewed or cleared session).
    pub set_cookies: Vec<HeaderValue>,
}

/// The parts of a [`Decision`] that outlive the response.
pub struct Decided {
    pub outcome: Outcome,
    pub route: Option<Arc<str>>,
    pub rule: Option<Arc<str>>,
    pub reason: Cow<'static, str>,
    pub subject: Option<String>,
}

/// What every request on one client connection shares, worked out once when it is accepted.
pub struct ConnectionContext {
    pub shared: Arc<Shared>,
    /// The serving worker's pool.
    pub upstream: UpstreamClient,
    pub peer: ForwardedPeer,
    pub peer_addr: SocketAddr,
    pub scheme: Scheme,
}

impl ConnectionContext {
    pub fn new(
        shared: &Arc<Shared>,
        upstream: UpstreamClient,
        peer_addr: SocketAddr,
        scheme: Scheme,
    ) -> Self {
        let trusted = shared.is_trusted_proxy(peer_addr.ip());
        ConnectionContext {
            shared: shared.clone(),
            upstream,
            peer: ForwardedPeer::new(peer_addr.ip(), trusted),
            peer_addr,
            scheme,
        }
    }
}

/// Handles one request end to end; never fails at the hyper level.
pub async fn handle(
    connection: Arc<ConnectionContext>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let shared = &connection.shared;
    let carried = Carried::scan(request.headers());
    let mut ctx = RequestContext {
        request_id: if carried.request_id {
            telemetry::request_id(request.headers())
        } else {
            telemetry::new_request_id()
        },
        peer: connection.peer_addr,
        client_ip: client_address(&connection.peer, request.headers(), |ip| {
            shared.is_trusted_proxy(ip)
        }),
        scheme: client_scheme(&connection.peer, request.headers(), connection.scheme),
        started: Instant::now(),
        // No `Accept` asks for no HTML.
        wants_html: carried.accept && wants_html(request.headers()),
        carried,
        method: request.method().clone(),
        path: None,
        decided: None,
        set_cookies: Vec::new(),
        generation: 0,
    };
    let mut outgoing = Outgoing::new(request);
    let result = pipeline(&connection, &mut ctx, &mut outgoing).await;
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            log_error(&ctx, &error);
            respond::error_response(&shared.pages, &error, &ctx.request_id, ctx.wants_html)
        }
    };
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER, ctx.request_id.header_value());
    login::append_cookies(response.headers_mut(), std::mem::take(&mut ctx.set_cookies));
    record(shared, &ctx, response.status().as_u16()).await;
    Ok(response)
}

/// The request metric and the decision log line, once the status is known. A non-allow line
/// may wait for the decision log writer (see `DecisionLog::record`).
///
/// A request refused without a decision on record (a path that does not normalize, no host, a
/// failed `Authorization: Basic` header, a login endpoint's 401 or 429) is counted without a
/// route and logs no decision line; the gateway's own endpoints answering normally are not
/// counted.
async fn record(shared: &Shared, ctx: &RequestContext, status: u16) {
    let Some(decided) = &ctx.decided else {
        if let Some(outcome) = refusal_outcome(status) {
            shared
                .meters
                .request(None, telemetry::method_class(&ctx.method), outcome, status);
        }
        return;
    };
    let outcome = if status >= 500 {
        DecisionOutcome::Error
    } else {
        DecisionOutcome::from(decided.outcome)
    };
    let outcome_label = match outcome {
        DecisionOutcome::Allow => "allow",
        DecisionOutcome::Login => "login",
        DecisionOutcome::Deny => "deny",
        DecisionOutcome::Error => "error",
    };
    shared.meters.request(
        decided.route.as_ref(),
        telemetry::method_class(&ctx.method),
        outcome_label,
        status,
    );
    if shared.decision_log.is_enabled() {
        shared
            .decision_log
            .record(&DecisionRecord {
                time: SystemTime::now(),
                request_id: &ctx.request_id,
                route: decided.route.as_deref(),
                rule: decided.rule.as_deref(),
                outcome,
                reason: &decided.reason,
                subject: decided.subject.as_deref(),
                method: ctx.method.as_str(),
                path: ctx.path.as_deref().unwrap_or("-"),
                status,
            })
            .await;
    }
}

/// The `outcome` label of a request answered without a decision: `deny` for a refusal (4xx),
/// `error` for a failure (5xx), `None` (not counted) for anything else.
fn refusal_outcome(status: u16) -> Option<&'static str> {
    match status {
        400..=499 => Some("deny"),
        500.. => Some("error"),
        _ => None,
    }
}

async fn pipeline(
    connection: &ConnectionContext,
    ctx: &mut RequestContext,
    outgoing: &mut Outgoing,
) -> Result<Response<Body>, GatewayError> {
    let shared = &*connection.shared;
    let request = outgoing.get_mut()?;
    // 1 strip
    let stripped = shared
        .strip
        .strip(request.headers_mut(), connection.peer.is_trusted_proxy);
    if stripped.spoofed > 0 {
        tracing::info!(request_id = %ctx.request_id, peer = %ctx.peer, count = stripped.spoofed, "removed client-sent identity headers");
    }
    if stripped.proxy_claims > 0 {
        tracing::debug!(request_id = %ctx.request_id, peer = %ctx.peer, count = stripped.proxy_claims, "removed proxy headers from a peer that is not a trusted proxy");
    }

    // 2 normalize
    let path = normalize(request.uri().path()).map_err(GatewayError::BadPath)?;
    let host = request_host(request)?;
    // The host the route was matched on is the host the upstream sees: HTTP/2's `:authority`
    // and an absolute-form target both replace any `Host` the client also sent (RFC 9112 3.2.2),
    // so a request cannot be routed by one host and served by the upstream as another.
    if let Some(authority) = request.uri().authority()
        && let Ok(value) = HeaderValue::try_from(authority.as_str())
    {
        request.headers_mut().insert(header::HOST, value);
    }

    // 3 built-in endpoints
    if let Some(response) = endpoints::serve(shared, ctx, &path, request) {
        return Ok(response);
    }
    if login::is_login_path(&path) {
        // Rare branches are boxed, so every request's future stays a few KiB smaller.
        let span = telemetry::request_span(&ctx.request_id);
        return Ok(Box::pin(login::serve(shared, ctx, &path, outgoing.take()?))
            .instrument(span)
            .await);
    }

    // 4 session
    let mut caller = if ctx.carried.cookie {
        Caller::from_session(
            shared,
            request.headers(),
            &ctx.request_id,
            &mut ctx.set_cookies,
        )
        .await
    } else {
        Caller::default()
    };

    // 5 decide
    let websocket = ctx.carried.upgrade && is_upgrade(request);
    let mut info = RequestInfo {
        method: request.method().clone(),
        scheme: ctx.scheme,
        host,
        path,
        query: request.uri().query().map(str::to_string),
        headers: std::mem::take(request.headers_mut()),
        websocket,
        ip: ctx.client_ip,
    };
    let snapshot = shared.policies.snapshot();
    ctx.generation = snapshot.generation;
    let (mut decision, mut decided_at) = decide(shared, &snapshot.set, caller.identity(), &info);
    if decision.outcome == Outcome::Login
        && caller.identity().is_none()
        && let Some(route) = &decision.route
        && Box::pin(caller.try_basic_header(shared, ctx, &info.headers, route.basic_header))
            .instrument(telemetry::request_span(&ctx.request_id))
            .await?
    {
        (decision, decided_at) = decide(shared, &snapshot.set, caller.identity(), &info);
    }
    log_decision(ctx, &info, &decision);
    // Path and subject only feed the decision log: copy them only when it is on.
    let logging = shared.decision_log.is_enabled();
    if logging {
        ctx.path = Some(info.path.clone());
    }
    ctx.decided = Some(Decided {
        outcome: decision.outcome,
        route: decision.route.as_ref().map(|route| route.name.clone()),
        rule: decision.rule.clone(),
        reason: decision.reason.clone(),
        subject: logging
            .then(|| caller.identity().map(|user| user.subject.clone()))
            .flatten(),
    });

    // 6 respond
    match decision.outcome {
        Outcome::Allow => {
            allow(
                connection, ctx, outgoing, &mut info, &caller, &decision, decided_at,
            )
            .await
        }
        Outcome::Login => Ok(login_required(ctx, &info)),
        Outcome::Deny => Err(GatewayError::Denied {
            reason: decision.reason.into_owned(),
        }),
    }
}

/// The decision, timed, and the clock reading that ended it: the upstream wait is timed from
/// that reading rather than from one of its own (a clock read costs a request about 40 ns here,
/// and the gateway's few microseconds of header work in between are noise to an upstream).
fn decide(
    shared: &Shared,
    set: &PolicySet,
    identity: Option<&Identity>,
    info: &RequestInfo,
) -> (Decision, Instant) {
    let started = Instant::now();
    let decision = set.decide(identity, info);
    let ended = Instant::now();
    shared
        .meters
        .decision()
        .record((ended - started).as_secs_f64());
    (decision, ended)
}

/// The request, the facts and the decision are borrowed: moved, each would be copied into
/// this function's future and again into its locals (see [`Outgoing`]).
async fn allow(
    connection: &ConnectionContext,
    ctx: &RequestContext,
    outgoing: &mut Outgoing,
    info: &mut RequestInfo,
    caller: &Caller,
    decision: &Decision,
    decided_at: Instant,
) -> Result<Response<Body>, GatewayError> {
    let shared = &*connection.shared;
    let route = decision
        .route
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("an allow decision without a route".into()))?;

    // A bridge keeps its request facts for re-checks; a plain request hands its headers on.
    let mut upstream_headers = if info.websocket {
        info.headers.clone()
    } else {
        std::mem::take(&mut info.headers)
    };
    // Room for what the gateway adds (X-Forwarded-*, request id, identity, token) up front:
    // one grow instead of one per insert that crosses a power of two.
    upstream_headers.reserve(ADDED_UPSTREAM_HEADERS);
    remove_hop_by_hop(&mut upstream_headers);
    retain_cookies(&mut upstream_headers, |name| {
        !shared.is_gateway_cookie(name)
    });
    if caller.basic.is_some() {
        upstream_headers.remove(header::AUTHORIZATION);
    }
    let forwarded = ForwardedFacts {
        peer: &connection.peer,
        client: ctx.client_ip,
        scheme: ctx.scheme.as_str(),
        host: upstream_headers.get(header::HOST).cloned(),
    };
    set_forwarded(&mut upstream_headers, forwarded);
    upstream_headers.insert(REQUEST_ID_HEADER, ctx.request_id.header_value());
    if let Some(identity) = caller.identity() {
        for (name, value) in caller.identity_headers(&shared.identity_headers).iter() {
            upstream_headers.insert(name.clone(), value.clone());
        }
        // Fail closed: an allowed user without a token would look anonymous downstream.
        let token = shared
            .minter
            .token(
                caller.cache_key(),
                identity,
                &route.name,
                &decision.grants,
                ctx.generation,
            )
            .map_err(|err| GatewayError::Internal(format!("capability token: {err}")))?;
        upstream_headers.insert(shared.minter.header_name().clone(), token);
    }

    if info.websocket {
        if !route.websocket {
            return Err(GatewayError::WebSocketNotAllowed);
        }
        websocket::check_origin(&info.headers, route)?;
        let mut request = outgoing.take()?;
        *request.headers_mut() = info.headers.clone();
        let upgrade = websocket::UpgradeContext {
            registry: &shared.websockets,
            tasks: &shared.tasks,
            upstream: &shared.config.upstream,
            policies: &shared.policies,
            decided_on: ctx.generation,
        };
        let identity = caller.identity().cloned();
        let bridge = websocket::handle(
            upgrade,
            request,
            upstream_headers,
            route.clone(),
            info.clone(),
            identity,
            caller.session.as_deref(),
        );
        // The upgrade, not the bridge task it spawns: a span entered on every relayed message
        // would cost the relay more than its lines are worth.
        return Box::pin(bridge)
            .instrument(telemetry::request_span(&ctx.request_id))
            .await;
    }

    let request = outgoing.get_mut()?;
    *request.headers_mut() = upstream_headers;
    // Every upstream, the built-in one too, sees exactly the path that was matched.
    let target = origin_form(request.uri(), &info.path)?;
    prepare_request(request, target);
    match &route.upstream {
        Upstream::Whoami => {
            let access_token = &shared.identity_headers.access_token.0;
            Ok(Box::pin(whoami::respond(outgoing.take()?, access_token)).await)
        }
        Upstream::Http(base) => {
            let result = connection
                .upstream
                .forward(base, outgoing, decided_at)
                .await;
            shared
                .meters
                .record_upstream(&route.name, decided_at.elapsed().as_secs_f64());
            result
        }
    }
}

fn login_required(ctx: &RequestContext, info: &RequestInfo) -> Response<Body> {
    let target = match &info.query {
        Some(query) => format!("{}?{query}", info.path),
        None => info.path.clone(),
    };
    let login_url = format!(
        "/oauth2/start?rd={}",
        percent_encoding::utf8_percent_encode(&target, QUERY_VALUE)
    );
    if ctx.wants_html && !info.websocket {
        respond::redirect(&login_url)
    } else {
        respond::login_required_json(&login_url, &ctx.request_id)
    }
}

const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Host the client asked for, lower-cased without the port: `:authority` (HTTP/2) or `Host`.
/// Several `Host` lines are refused (RFC 9112 3.2), whatever the target: the route would be
/// matched on one and the upstream might serve another.
fn request_host<B>(request: &Request<B>) -> Result<String, GatewayError> {
    let mut lines = request.headers().get_all(header::HOST).iter();
    let first = lines.next();
    if lines.next().is_some() {
        return Err(GatewayError::SeveralHosts);
    }
    if let Some(authority) = request.uri().authority() {
        return route_host(authority.host()).ok_or(GatewayError::MissingHost);
    }
    let value = first
        .ok_or(GatewayError::MissingHost)?
        .to_str()
        .map_err(|_| GatewayError::MissingHost)?;
    if let Some(host) = plain_host(value) {
        return Ok(host.to_owned());
    }
    let authority: http::uri::Authority = value.parse().map_err(|_| GatewayError::MissingHost)?;
    route_host(authority.host()).ok_or(GatewayError::MissingHost)
}

/// An authority's host as routes match it: lower case, without an IPv6 literal's brackets and
/// without the trailing dot of a fully qualified name. `admin.example.` is `admin.example` to
/// DNS and to upstreams like nginx, so it must match the same route, or it would walk past a
/// host-based route into a catch-all one. `None` for an empty name or an empty label.
fn route_host(host: &str) -> Option<String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    // One pass (a substring search for ".." costs more than the rest): a dot right after the
    // start or another dot, or at the end, is an empty label; so is an empty host.
    let mut previous = b'.';
    for &byte in host.as_bytes() {
        if byte == b'.' && previous == b'.' {
            return None;
        }
        previous = byte;
    }
    (previous != b'.').then(|| host.to_ascii_lowercase())
}

/// The host of the usual `Host` value, a lower-case name with an optional numeric port, read
/// in one pass without the full authority parser, as [`route_host`] would return it (no
/// trailing dot). `None` for anything else, empty labels included: the slow path decides.
fn plain_host(value: &str) -> Option<&str> {
    // One pass up to the port: `split_once` and a second loop over the host cost twice this.
    let mut end = value.len();
    // Starting as if after a dot refuses a leading dot and an empty label.
    let mut previous = b'.';
    for (at, &byte) in value.as_bytes().iter().enumerate() {
        if byte == b':' {
            end = at;
            break;
        }
        let plain = byte.is_ascii_lowercase()
            || byte.is_ascii_digit()
            || byte == b'-'
            || (byte == b'.' && previous != b'.');
        if !plain {
            return None;
        }
        previous = byte;
    }
    let port = value.get(end + 1..).unwrap_or("1");
    let port_ok = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
    let host = &value[..end];
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty() && port_ok).then_some(host)
}

fn log_decision(ctx: &RequestContext, info: &RequestInfo, decision: &Decision) {
    let route = decision.route.as_ref().map_or("-", |route| &route.name);
    let rule = decision.rule.as_deref().unwrap_or("-");
    tracing::debug!(
        request_id = %ctx.request_id,
        route,
        rule,
        outcome = ?decision.outcome,
        reason = %decision.reason,
        method = %info.method,
        path = %info.path,
        websocket = info.websocket,
        "decision"
    );
}

fn log_error(ctx: &RequestContext, error: &GatewayError) {
    tracing::warn!(
        request_id = %ctx.request_id,
        status = error.status().as_u16(),
        source = ?error.source(),
        error = %error,
        elapsed_ms = ctx.started.elapsed().as_millis() as u64,
        "request refused"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request in flight holds this future (boxed, see `Serving::serve`), and each await
    /// into it moves the next one into place: a buffer held across an await would cost every
    /// request its size in memory and in copies. It is 2,824 bytes in the test build (4,912
    /// when the request and its facts were moved down the phases instead of borrowed).
    #[test]
    fn the_request_future_stays_small() {
        fn returned<A, B, F: Fn(A, B) -> R, R>(_: F) -> usize {
            size_of::<R>()
        }
        const MOST: usize = 4 * 1024;
        let size = returned(handle);
        assert!(size <= MOST, "a request's future is {size} bytes");
    }

    fn host_of(value: &str) -> Option<String> {
        request_host(
            &Request::builder()
                .header(header::HOST, value)
                .body(())
                .unwrap(),
        )
        .ok()
    }

    #[test]
    fn several_host_lines_are_refused_whatever_the_target() {
        for target in ["/x", "http://app.example.com/x"] {
            let two = Request::builder()
                .uri(target)
                .header(header::HOST, "public.example.com")
                .header(header::HOST, "admin.example.com")
                .body(())
                .unwrap();
            assert!(
                matches!(request_host(&two), Err(GatewayError::SeveralHosts)),
                "{target}"
            );
        }
        let none = Request::builder().body(()).unwrap();
        assert!(matches!(
            request_host(&none),
            Err(GatewayError::MissingHost)
        ));
        let absolute = Request::builder()
            .uri("http://App.Example.com:8080/x")
            .header(header::HOST, "public.example.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&absolute).unwrap(), "app.example.com");
    }

    #[test]
    fn the_host_is_lower_case_without_the_port() {
        let cases = [
            ("app.example.com", Some("app.example.com")),
            ("app.example.com:8443", Some("app.example.com")),
            ("App.Example.COM:80", Some("app.example.com")),
            ("127.0.0.1:8080", Some("127.0.0.1")),
            ("[::1]:8080", Some("::1")),
            ("xn--caf-dma.example", Some("xn--caf-dma.example")),
            // The fully qualified spelling is the same host; empty labels are no host.
            ("admin.example.", Some("admin.example")),
            ("Admin.Example.:8443", Some("admin.example")),
            ("admin.example..", None),
            ("admin..example", None),
            (".admin.example", None),
            (".", None),
            ("", None),
            ("a b", None),
        ];
        for (value, want) in cases {
            assert_eq!(host_of(value).as_deref(), want, "{value:?}");
        }
    }

    #[test]
    fn refusals_without_a_decision_are_deny_or_error_and_answers_are_not_counted() {
        let cases = [
            (200, None),
            (302, None),
            (400, Some("deny")),
            (401, Some("deny")),
            (429, Some("deny")),
            (502, Some("error")),
            (503, Some("error")),
        ];
        for (status, want) in cases {
            assert_eq!(refusal_outcome(status), want, "{status}");
        }
    }

    #[test]
    fn the_plain_host_shortcut_agrees_with_the_authority_parser() {
        for value in [
            "a",
            "a.b-c.d:1",
            "localhost:65535",
            "x:123456",
            "a:b",
            ":80",
            "a@b",
            "A",
        ] {
            if let Some(host) = plain_host(value) {
                let authority: http::uri::Authority = value.parse().unwrap();
                assert_eq!(host, authority.host(), "{value}");
            }
        }
        assert_eq!(plain_host("localhost:8080"), Some("localhost"));
        assert_eq!(plain_host("app.example.:8080"), Some("app.example"));
        assert_eq!(plain_host("app..example"), None);
        assert_eq!(plain_host(".app"), None);
        assert_eq!(plain_host(""), None);
        assert_eq!(plain_host("x:123456"), None);
        assert_eq!(plain_host("Upper.example"), None);
        assert_eq!(plain_host("app.example."), Some("app.example"));
        assert_eq!(plain_host("."), None);
        assert_eq!(plain_host(":80"), None);
        assert_eq!(plain_host("a:"), None);
        assert_eq!(plain_host("a:1:2"), None);
        assert_eq!(plain_host("a.:1"), Some("a"));
    }
}
