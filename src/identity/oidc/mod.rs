//! The OAuth2/OIDC relying party: `/oauth2/start`, `/oauth2/callback`, refresh and logout as
//! framework-free functions the server calls.
//!
//! ```text
//! start    ?provider=NAME&rd=/path → 302 to the provider, state+nonce+PKCE sealed in a cookie
//! callback ?state&code             → check state, exchange code, verify ID token, userinfo,
//!                                    groups → Session + Set-Cookie, then the server redirects to rd
//! refresh  (access token near expiry) → one refresh per session, groups re-read
//! logout   → the provider's end_session URL (RP-initiated logout), if it has one
//! ```
//!
//! Nothing touches the network at construction: discovery is lazy, cached and retried, so a
//! provider that is down makes login answer 503 while existing sessions keep working. A cached
//! discovery document does not hide an outage: `start` probes a provider that has not answered
//! within [`PROVIDER_CHECK_INTERVAL`] (one probe per burst, 2 s at most) before redirecting; for
//! GitHub and Bitbucket, whose login needs no discovery, the probe is a request to the token
//! endpoint.
//!
//! How the server wires it:
//!
//! ```no_run
//! use portcullis::identity::oidc::Providers;
//! use portcullis::identity::providers::ProviderConfig;
//! use portcullis::session::{SessionCodec, SessionConfig};
//!
//! # async fn serve(parts: http::request::Parts, configs: Vec<ProviderConfig>) -> Result<(), Box<dyn std::error::Error>> {
//! let providers = Providers::new(&configs, &"https://gw.example.com".parse()?)?;
//! let codec = SessionCodec::new(&SessionConfig::default())?;
//! match parts.uri.path() {
//!     "/oauth2/start" => match providers.start(&parts, &codec).await {
//!         Ok(_redirect_to_provider) => {}
//!         Err(e) => { let (_status, _page_text) = (e.status(), e.user_message()); }
//!     },
//!     "/oauth2/callback" => {
//!         let (_session, _rd, _set_cookies) = providers.callback(&parts, &codec).await?;
//!     }
//!     _ => {
//!         // The guard, per request:
//!         if let Some(session) = codec.open(&parts.headers)
//!             && codec.needs_refresh(&session)
//!         {
//!             match providers.refresh(&session).await {
//!                 Ok(renewed) => { let _set_cookies = codec.seal(&renewed, true, &parts.headers)?; }
//!                 Err(e) if e.ends_session() => { let _set_cookies = codec.clear(&parts.headers); }
//!                 Err(_) => {} // provider unreachable: keep the session, retry next request
//!             }
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
mod discovery;
mod error;
mod exchange;
mod flight;
mod handlers;
mod reachability;
mod relying_party;
mod verify;

pub use error::{IdTokenProblem, LoginError, RefreshError};
pub use reachability::PROVIDER_CHECK_INTERVAL;
pub use relying_party::{CALLBACK_PATH, Providers};
