//! Minting: an identity and the matched rule's grants become a signed Biscuit in a header.
//!
//! The authority block (see `docs/capabilities.md`):
//!
//! ```text
//! user("…"); provider("…"); route("…"); issued_at(…); expires(…);
//! email("…"); domain("…"); group("…") …; right("route", "grant") …;
//! check if time($time), $time < <expires>;
//! ```

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use biscuit_auth::macros::{biscuit, fact};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use super::CapabilityConfig;
use super::cache::{CacheKey, TokenCache};
use super::keyring::KeyRing;
use super::store::KeyStore;
use crate::identity::Identity;

/// A token could not be minted; the request must not be forwarded without it.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("capability.header {0:?} is not a valid HTTP header name")]
    InvalidHeader(String),
    #[error("capability.ttl must be at least 1 second")]
    InvalidTtl,
    #[error("building the capability token failed: {0}")]
    Biscuit(#[from] biscuit_auth::error::Token),
}

impl MintError {
    /// Every mint failure is the gateway's own: fail closed with 500.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Mints capability tokens for allowed requests, with a per-session cache.
///
/// ```no_run
/// # fn demo(identity: &portcullis::identity::Identity) -> anyhow::Result<()> {
/// use portcullis::capability::{CapabilityConfig, KeyStore, Minter};
///
/// let config = CapabilityConfig::default(); // ephemeral key, X-Auth-Capability, 5 min
/// let store = KeyStore::from_config(&config)?; // watches keys_dir when set
/// let minter = Minter::new(&config, store.clone())?;
/// let generation = 1; // the policy set's generation
/// let value = minter.token(b"session-id", identity, "panel", &["read".into()], generation)?;
/// let mut headers = http::HeaderMap::new();
/// headers.insert(minter.header_name().clone(), value);
/// // GET /.well-known/portcullis/keys.json
/// let body: bytes::Bytes = store.public_keys_json();
/// # let _ = body;
/// # Ok(())
/// # }
/// ```
pub struct Minter {
    store: Arc<KeyStore>,
    header: HeaderName,
    ttl: Duration,
    refresh_after: Duration,
    cache: TokenCache,
    /// Looked up on first use (after the gateway installed its recorder), not per token.
    meters: OnceLock<MintMeters>,
}

struct MintMeters {
    cache_hits: metrics::Counter,
    minted: metrics::Counter,
}

impl MintMeters {
    fn get(cell: &OnceLock<MintMeters>) -> &MintMeters {
        cell.get_or_init(|| MintMeters {
            cache_hits: metrics::counter!("portcullis_capability_cache_hits_total"),
            minted: metrics::counter!("portcullis_capability_minted_total"),
        })
    }
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("header", &self.header)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// Validates the header name and TTL of `config`.
    pub fn new(config: &CapabilityConfig, store: Arc<KeyStore>) -> Result<Minter, MintError> {
        let header = HeaderName::from_bytes(config.header.as_bytes())
            .map_err(|_| MintError::InvalidHeader(config.header.clone()))?;
        if config.ttl < Duration::from_secs(1) {
            return Err(MintError::InvalidTtl);
        }
        Ok(Minter {
            store,
            header,
            ttl: config.ttl,
            refresh_after: config.ttl.mul_f64(0.8),
            cache: TokenCache::new(config.cache_capacity),
            meters: OnceLock::new(),
        })
    }

    /// The request header the token goes in (client-sent copies must be stripped).
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }

    /// The header value for this request: the cached token for (session, route, policy
    /// generation) while it is younger than 80% of the TTL and matches the identity and
    /// grants, else a newly minted one.
    pub fn token(
        &self,
        session_id: &[u8],
        identity: &Identity,
        route: &str,
        grants: &[String],
        generation: u64,
    ) -> Result<HeaderValue, MintError> {
        self.token_at(
            session_id,
            identity,
            route,
            grants,
            generation,
            SystemTime::now(),
        )
    }

    pub(crate) fn token_at(
        &self,
        session_id: &[u8],
        identity: &Identity,
        route: &str,
        grants: &[String],
        generation: u64,
        now: SystemTime,
    ) -> Result<HeaderValue, MintError> {
        let ring = self.store.current();
        let key = CacheKey {
            session: session_id,
            identity,
            route,
            grants,
            generation,
            kid: ring.signing_kid(),
        };
        if let Some(value) = self.cache.get(&key, now) {
            MintMeters::get(&self.meters).cache_hits.increment(1);
            return Ok(value);
        }
        let token = build(&ring, identity, route, grants, now, self.ttl)?;
        MintMeters::get(&self.meters).minted.increment(1);
        let mut value = HeaderValue::from_maybe_shared(Bytes::from(token))
            .expect("URL-safe base64 is a valid header value");
        value.set_sensitive(true);
        self.cache
            .put(&key, value.clone(), now, now + self.refresh_after);
        Ok(value)
    }

    /// A new token, bypassing the cache (tooling, tests).
    pub fn mint(
        &self,
        identity: &Identity,
        route: &str,
        grants: &[String],
    ) -> Result<String, MintError> {
        self.mint_at(identity, route, grants, SystemTime::now())
    }

    /// [`Minter::mint`] as if the clock read `now` (issued at `now`, expiring `now + ttl`).
    pub fn mint_at(
        &self,
        identity: &Identity,
        route: &str,
        grants: &[String],
        now: SystemTime,
    ) -> Result<String, MintError> {
        let token = build(
            &self.store.current(),
            identity,
            route,
            grants,
            now,
            self.ttl,
        )?;
        metrics::counter!("portcullis_capability_minted_total").increment(1);
        Ok(token)
    }
}

fn build(
    ring: &KeyRing,
    identity: &Identity,
    route: &str,
    grants: &[String],
    now: SystemTime,
    ttl: Duration,
) -> Result<String, MintError> {
    let expires = now + ttl;
    let mut builder = biscuit!(
        r#"
        user({sub});
        provider({provider});
        route({route});
        issued_at({now});
        expires({expires});
        check if time($time), $time < {expires};
        "#,
        sub = identity.subject.as_str(),
        provider = identity.provider.as_str(),
        route = route,
        now = now,
        expires = expires,
    );
    if let Some(email) = identity.email.as_deref() {
        builder = builder.fact(fact!("email({email})", email = email))?;
    }
    // Domain rules only ever match a verified email; the token says the same.
    if identity.email_verified
        && let Some(domain) = identity.domain()
    {
        builder = builder.fact(fact!("domain({domain})", domain = domain.as_str()))?;
    }
    for group in &identity.groups {
        builder = builder.fact(fact!("group({group})", group = group.as_str()))?;
    }
    for grant in grants {
        builder = builder.fact(fact!(
            "right({route}, {grant})",
            route = route,
            grant = grant.as_str()
        ))?;
    }
    let (kid, keypair) = ring.signer();
    Ok(builder.root_key_id(kid).build(keypair)?.to_base64()?)
}

#[cfg(test)]
mod tests;
