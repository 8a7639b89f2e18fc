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
//! provider that is down makes login answer 503 while existing sessions keep working.
mod discovery;
mod error;
mod exchange;
mod flight;
mod handlers;
mod relying_party;
mod verify;

pub use error::{IdTokenProblem, LoginError, RefreshError};
pub use relying_party::{CALLBACK_PATH, Providers};
