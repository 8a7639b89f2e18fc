//! Offline verification of portcullis capability tokens, for the services behind the gateway.
//!
//! A service depends on this crate with `default-features = false, features = ["verify"]`,
//! loads the gateway's public keys once (from `GET /.well-known/portcullis/keys.json` or a copy
//! of it) and checks every request's `X-Auth-Capability` header without calling back:
//!
//! ```no_run
//! use portcullis::verify::{Verifier, VerifyError};
//!
//! # fn handle(keys_json: &str, header: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::from_jwks_like_json(keys_json)?;
//! match verifier.verify(header, "panel", Some("read")) {
//!     Ok(claims) => println!("{} ({:?}) may read", claims.sub, claims.email),
//!     Err(VerifyError::Expired) => println!("stale token: the gateway mints a fresh one"),
//!     Err(other) => println!("refused: {other}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The token schema, the run limits and the key format are described in
//! `docs/capabilities.md`.

mod seen;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{Algorithm, Term};
use biscuit_auth::error::{FailedCheck, Format, Logic, Token};
use biscuit_auth::macros::{authorizer, rule};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey, RootKeyProvider};
use serde::{Deserialize, Serialize};

use seen::SeenTokens;

/// Datalog run limits the verifier sets on every authorization, unless
/// [`Verifier::with_limits`] replaces them.
///
/// The fact and iteration limits bound the work a token (or a hostile attenuation block) can
/// cause; the time limit is only a backstop. biscuit-auth's own default of 1 ms fails valid
/// tokens whenever a busy machine deschedules the thread mid-check (seen at 20 ms on a loaded
/// 2-core machine), so it is set far above a gateway token's ~0.1 ms: 100 ms. Facts count twice (each authority fact is
/// copied into a `claim` fact while reading the claims), so 1000 facts leave room for a user in
/// about 480 groups; raise it with [`Verifier::with_limits`] for larger directories.
pub const DEFAULT_LIMITS: AuthorizerLimits = AuthorizerLimits {
    max_facts: 1000,
    max_iterations: 100,
    max_time: Duration::from_millis(100),
};

/// One public key of the gateway's key ring: the `root_key_id` tokens carry, and the key.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKeyEntry {
    pub kid: u32,
    pub public_key: PublicKey,
}

impl PublicKeyEntry {
    /// An Ed25519 key given as 64 hex digits, as published in keys.json.
    pub fn ed25519_hex(kid: u32, hex_key: &str) -> Result<Self, KeySetError> {
        let public_key = PublicKey::from_bytes_hex(hex_key, Algorithm::Ed25519).map_err(|e| {
            KeySetError::BadKey {
                kid,
                reason: e.to_string(),
            }
        })?;
        Ok(Self { kid, public_key })
    }
}

/// keys.json as served at `/.well-known/portcullis/keys.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySetDocument {
    /// Newest (signing) key first.
    pub keys: Vec<KeyDocument>,
}

/// One entry of keys.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDocument {
    /// The `root_key_id` of tokens signed with this key.
    pub kid: u32,
    /// Always `ed25519` for now.
    pub algorithm: String,
    /// The 32-byte public key as lower-case hex.
    pub public_key: String,
}

/// keys.json could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error(
        "keys.json is not valid: {0} (expected {{\"keys\": [{{\"kid\", \"algorithm\", \"public_key\"}}]}})"
    )]
    Json(#[from] serde_json::Error),
    #[error("key {kid}: unsupported algorithm {algorithm:?}; only \"ed25519\" is supported")]
    UnsupportedAlgorithm { kid: u32, algorithm: String },
    #[error("key {kid}: not a valid Ed25519 public key: {reason}")]
    BadKey { kid: u32, reason: String },
    #[error("keys.json lists no keys; is the gateway's key directory empty?")]
    Empty,
}

/// What a verified token says about the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The user's stable id at the identity provider (`user` fact).
    pub sub: String,
    pub email: Option<String>,
    /// Domain of a provider-verified email; absent when the email is not verified.
    pub domain: Option<String>,
    /// Sorted.
    pub groups: Vec<String>,
    /// Configured provider name (`google`, `basic`, …).
    pub provider: String,
    /// The gateway route the token was minted for.
    pub route: String,
    /// Sorted rights on `route` that this token may still exercise: the gateway's grants less
    /// any that an attenuation block took away.
    pub rights: Vec<String>,
    pub issued_at: SystemTime,
    pub expires: SystemTime,
}

/// Why a token was refused. Every variant is a refusal: treat them all as "not authenticated".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a capability token: {0}")]
    Malformed(String),
    #[error("the token's signature does not verify (altered, or signed by another gateway)")]
    BadSignature,
    #[error("the token names key {kid:?}, which is not among the gateway's published keys")]
    UnknownKey { kid: Option<u32> },
    #[error("the token has expired")]
    Expired,
    #[error("the token was minted for another route, not {route:?}")]
    WrongRoute { route: String },
    #[error("the token does not grant {right:?}")]
    MissingRight { right: String },
    #[error("a check added by attenuation (block {block}) failed: {check}")]
    Attenuated { block: u32, check: String },
    #[error("verifying the token hit the Datalog run limits ({0})")]
    LimitExceeded(String),
}

/// Tokens whose signature a [`Verifier`] remembers unless
/// [`Verifier::with_seen_capacity`] says otherwise: a few MiB at most.
pub const DEFAULT_SEEN_CAPACITY: usize = 1024;

/// Checks capability tokens against a fixed set of gateway public keys. Cheap to share
/// (`Send + Sync`; clones share what they have seen); build a new one when keys.json changes.
#[derive(Clone, Debug)]
pub struct Verifier {
    keys: HashMap<u32, PublicKey>,
    limits: AuthorizerLimits,
    seen: Arc<SeenTokens>,
}

impl Verifier {
    /// A verifier trusting exactly these keys.
    pub fn from_keys(keys: impl IntoIterator<Item = PublicKeyEntry>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.kid, k.public_key)).collect(),
            limits: DEFAULT_LIMITS,
            seen: Arc::new(SeenTokens::new(DEFAULT_SEEN_CAPACITY)),
        }
    }

    /// A verifier trusting the keys of a keys.json document.
    pub fn from_jwks_like_json(json: &str) -> Result<Self, KeySetError> {
        let doc: KeySetDocument = serde_json::from_str(json)?;
        if doc.keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        let entries = doc
            .keys
            .iter()
            .map(|k| {
                if !k.algorithm.eq_ignore_ascii_case("ed25519") {
                    return Err(KeySetError::UnsupportedAlgorithm {
                        kid: k.kid,
                        algorithm: k.algorithm.clone(),
                    });
                }
                PublicKeyEntry::ed25519_hex(k.kid, &k.public_key)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_keys(entries))
    }

    /// Replaces [`DEFAULT_LIMITS`].
    pub fn with_limits(mut self, limits: AuthorizerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How many verified tokens to remember, so that a token seen again skips the signature
    /// checks (most of a verification); expiry, route, right and attenuation checks run on
    /// every call regardless. 0 turns remembering off. Replaces [`DEFAULT_SEEN_CAPACITY`].
    pub fn with_seen_capacity(mut self, capacity: usize) -> Self {
        self.seen = Arc::new(SeenTokens::new(capacity));
        self
    }

    /// The public key with this id, if trusted.
    pub fn public_key(&self, kid: u32) -> Option<PublicKey> {
        self.keys.get(&kid).copied()
    }

    /// The key ids this verifier trusts, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// Verifies the signature, the key id, the expiry, that the token was minted for `route`
    /// and, when given, that it grants `right` on that route.
    pub fn verify(
        &self,
        token: &str,
        route: &str,
        right: Option<&str>,
    ) -> Result<Claims, VerifyError> {
        self.verify_at(token, route, right, SystemTime::now())
    }

    /// [`Verifier::verify`] as if the clock read `now`.
    pub fn verify_at(
        &self,
        token: &str,
        route: &str,
        right: Option<&str>,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        self.check(token.trim(), Some(route), right, now)
    }

    /// Verifies signature, key id and expiry only, whatever the route. For tooling
    /// (`portcullis token verify` without `--route`), never for an access decision.
    pub fn verify_any_route(
        &self,
        token: &str,
        right: Option<&str>,
    ) -> Result<Claims, VerifyError> {
        self.check(token.trim(), None, right, SystemTime::now())
    }

    fn check(
        &self,
        token: &str,
        route: Option<&str>,
        right: Option<&str>,
        now: SystemTime,
    ) -> Result<Claims, VerifyError> {
        let biscuit = match self.seen.get(token) {
            Some(biscuit) => biscuit,
            None => {
                let biscuit = Arc::new(self.parse(token)?);
                self.seen.remember(token, Arc::clone(&biscuit));
                biscuit
            }
        };
        let mut authorizer = authorize(&biscuit, route, right, now, &self.limits)?;
        let claims = read_claims(&mut authorizer)?;
        let rights = if biscuit.block_count() > 1 {
            // Attenuation can forbid exercising a right without removing its fact: keep only
            // the rights that would pass.
            claims
                .rights
                .iter()
                .filter(|r| {
                    authorize(&biscuit, Some(&claims.route), Some(r), now, &self.limits).is_ok()
                })
                .cloned()
                .collect()
        } else {
            claims.rights.clone()
        };
        Ok(Claims { rights, ..claims })
    }

    fn parse(&self, token: &str) -> Result<Biscuit, VerifyError> {
        let provider = KeyLookup {
            keys: &self.keys,
            asked: Cell::new(None),
        };
        Biscuit::from_base64(token, &provider).map_err(|e| match e {
            Token::Format(Format::UnknownPublicKey) => VerifyError::UnknownKey {
                kid: provider.asked.get().flatten(),
            },
            Token::Format(Format::Signature(_) | Format::SealedSignature) => {
                VerifyError::BadSignature
            }
            other => VerifyError::Malformed(other.to_string()),
        })
    }
}

/// Picks the public key by the token's `root_key_id`; a token without one is refused.
struct KeyLookup<'a> {
    keys: &'a HashMap<u32, PublicKey>,
    asked: Cell<Option<Option<u32>>>,
}

impl RootKeyProvider for &KeyLookup<'_> {
    fn choose(&self, key_id: Option<u32>) -> Result<PublicKey, Format> {
        self.asked.set(Some(key_id));
        key_id
            .and_then(|kid| self.keys.get(&kid).copied())
            .ok_or(Format::UnknownPublicKey)
    }
}

/// Runs the authorizer: the token's own checks (expiry, attenuation), then the route and right.
/// Check order matters: `classify` maps authorizer check 0 to the route, 1 to the right.
fn authorize(
    biscuit: &Biscuit,
    route: Option<&str>,
    right: Option<&str>,
    now: SystemTime,
    limits: &AuthorizerLimits,
) -> Result<biscuit_auth::Authorizer, VerifyError> {
    let builder = authorizer!(r#"time({now}); allow if user($u);"#, now = now);
    let mut builder = match route {
        Some(route) => builder.merge(authorizer!(r#"check if route({route});"#, route = route)),
        None => builder.merge(authorizer!(r#"check if route($r);"#)),
    };
    if let Some(right) = right {
        builder = builder.merge(authorizer!(
            r#"operation({right}); check if route($r), right($r, {right});"#,
            right = right
        ));
    }
    let mut authorizer = builder
        .set_limits(limits.clone())
        .build(biscuit)
        .map_err(|e| classify(e, route, right))?;
    authorizer
        .authorize()
        .map_err(|e| classify(e, route, right))?;
    Ok(authorizer)
}

fn classify(error: Token, route: Option<&str>, right: Option<&str>) -> VerifyError {
    let checks = match error {
        Token::FailedLogic(Logic::Unauthorized { checks, .. })
        | Token::FailedLogic(Logic::NoMatchingPolicy { checks }) => checks,
        Token::RunLimit(limit) => return VerifyError::LimitExceeded(limit.to_string()),
        other => return VerifyError::Malformed(other.to_string()),
    };
    let rank = |c: &FailedCheck| match c {
        FailedCheck::Block(b) if b.block_id == 0 => (0, VerifyError::Expired),
        FailedCheck::Authorizer(a) if a.check_id == 0 => (
            1,
            VerifyError::WrongRoute {
                route: route.unwrap_or_default().to_owned(),
            },
        ),
        FailedCheck::Authorizer(_) => (
            2,
            VerifyError::MissingRight {
                right: right.unwrap_or_default().to_owned(),
            },
        ),
        FailedCheck::Block(b) => (
            3,
            VerifyError::Attenuated {
                block: b.block_id,
                check: b.rule.clone(),
            },
        ),
    };
    checks
        .iter()
        .map(rank)
        .min_by_key(|(r, _)| *r)
        .map(|(_, e)| e)
        .unwrap_or_else(|| VerifyError::Malformed("the token names no user".into()))
}

/// Reads the claims with one query a kind of fact. A query trusts only the authority block and
/// the authorizer, so attenuation blocks cannot inject claims. Queries, not rules copying the
/// facts into one predicate: such rules would run in every iteration of the authorizer's
/// fixpoint, and cost more than twice what the whole authorization does without them.
fn read_claims(authorizer: &mut biscuit_auth::Authorizer) -> Result<Claims, VerifyError> {
    let mut values = |query: biscuit_auth::builder::Rule| -> Result<Vec<Term>, VerifyError> {
        let facts: Vec<biscuit_auth::builder::Fact> =
            authorizer.query(query).map_err(query_error)?;
        Ok(facts
            .into_iter()
            .filter_map(|fact| fact.predicate.terms.into_iter().next())
            .collect())
    };
    let texts = |terms: Vec<Term>, kind: &str| -> Result<Vec<String>, VerifyError> {
        let mut texts = terms
            .into_iter()
            .map(|term| match term {
                Term::Str(text) => Ok(text),
                _ => Err(wrong_type(kind)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        texts.sort();
        Ok(texts)
    };
    let one = |values: Vec<String>, kind: &str| match <[String; 1]>::try_from(values) {
        Ok([only]) => Ok(only),
        Err(_) => Err(exactly_one(kind)),
    };
    let time = |terms: Vec<Term>, kind: &str| match <[Term; 1]>::try_from(terms) {
        Ok([Term::Date(secs)]) => Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
        Ok(_) => Err(wrong_type(kind)),
        Err(_) => Err(exactly_one(kind)),
    };
    Ok(Claims {
        sub: one(texts(values(rule!("v($v) <- user($v)"))?, "user")?, "user")?,
        email: texts(values(rule!("v($v) <- email($v)"))?, "email")?
            .into_iter()
            .next(),
        domain: texts(values(rule!("v($v) <- domain($v)"))?, "domain")?
            .into_iter()
            .next(),
        groups: texts(values(rule!("v($v) <- group($v)"))?, "group")?,
        provider: one(
            texts(values(rule!("v($v) <- provider($v)"))?, "provider")?,
            "provider",
        )?,
        route: one(
            texts(values(rule!("v($v) <- route($v)"))?, "route")?,
            "route",
        )?,
        rights: texts(values(rule!("v($g) <- route($r), right($r, $g)"))?, "right")?,
        issued_at: time(values(rule!("v($v) <- issued_at($v)"))?, "issued_at")?,
        expires: time(values(rule!("v($v) <- expires($v)"))?, "expires")?,
    })
}

fn wrong_type(kind: &str) -> VerifyError {
    VerifyError::Malformed(format!("the {kind} fact has the wrong type"))
}

fn exactly_one(kind: &str) -> VerifyError {
    VerifyError::Malformed(format!("the token needs exactly one {kind} fact"))
}

fn query_error(error: Token) -> VerifyError {
    match error {
        Token::RunLimit(limit) => VerifyError::LimitExceeded(limit.to_string()),
        other => VerifyError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    //! Tokens here are built with biscuit directly (the gateway's minter needs the `gateway`
    //! feature), following the schema in `docs/capabilities.md`.
    use super::*;
    use biscuit_auth::KeyPair;
    use biscuit_auth::builder::BlockBuilder;
    use biscuit_auth::macros::biscuit;

    const KID: u32 = 17;

    fn token(root: &KeyPair, kid: Option<u32>, expires: SystemTime) -> String {
        let now = SystemTime::now();
        let mut builder = biscuit!(
            r#"
            user("u-1"); provider("basic"); route("panel");
            email("bo@example.org"); domain("example.org"); group("ops");
            right("panel", "read");
            issued_at({now}); expires({expires});
            check if time($time), $time < {expires};
            "#,
            now = now,
            expires = expires,
        );
        if let Some(kid) = kid {
            builder = builder.root_key_id(kid);
        }
        builder.build(root).unwrap().to_base64().unwrap()
    }

    fn fresh(root: &KeyPair) -> String {
        token(root, Some(KID), SystemTime::now() + Duration::from_secs(60))
    }

    fn verifier(root: &KeyPair) -> Verifier {
        Verifier::from_keys([PublicKeyEntry {
            kid: KID,
            public_key: root.public(),
        }])
    }

    #[test]
    fn valid_token_yields_claims() {
        let root = KeyPair::new();
        let claims = verifier(&root)
            .verify(&fresh(&root), "panel", Some("read"))
            .unwrap();
        assert_eq!(claims.sub, "u-1");
        assert_eq!(claims.domain.as_deref(), Some("example.org"));
        assert_eq!(claims.groups, vec!["ops"]);
        assert_eq!(claims.rights, vec!["read"]);
    }

    #[test]
    fn expired_token_is_rejected() {
        let root = KeyPair::new();
        let past = token(&root, Some(KID), SystemTime::now() - Duration::from_secs(1));
        assert_eq!(
            verifier(&root).verify(&past, "panel", None),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn token_without_key_id_is_rejected() {
        let root = KeyPair::new();
        let bare = token(&root, None, SystemTime::now() + Duration::from_secs(60));
        assert_eq!(
            verifier(&root).verify(&bare, "panel", None),
            Err(VerifyError::UnknownKey { kid: None })
        );
    }

    #[test]
    fn wrong_route_and_missing_right_are_told_apart() {
        let root = KeyPair::new();
        let v = verifier(&root);
        let t = fresh(&root);
        refuses_other_routes_and_rights(&v, &t);
    }

    /// `t` is a valid token for route `panel` with right `read` only.
    fn refuses_other_routes_and_rights(v: &Verifier, t: &str) {
        assert_eq!(
            v.verify(t, "grafana", Some("read")),
            Err(VerifyError::WrongRoute {
                route: "grafana".into()
            })
        );
        assert_eq!(
            v.verify(t, "panel", Some("admin")),
            Err(VerifyError::MissingRight {
                right: "admin".into()
            })
        );
    }

    #[test]
    fn a_token_seen_before_is_still_checked_for_expiry_route_and_right() {
        let root = KeyPair::new();
        let v = verifier(&root);
        let t = fresh(&root);
        let first = v.verify(&t, "panel", Some("read")).unwrap();
        assert_eq!(v.seen.len(), 1);
        assert_eq!(v.verify(&t, "panel", Some("read")).unwrap(), first);
        refuses_other_routes_and_rights(&v, &t);
        let later = SystemTime::now() + Duration::from_secs(120);
        assert_eq!(
            v.verify_at(&t, "panel", None, later),
            Err(VerifyError::Expired)
        );
        assert_eq!(v.seen.len(), 1, "one token, remembered once");
    }

    #[test]
    fn only_tokens_that_verify_are_remembered() {
        let root = KeyPair::new();
        let v = verifier(&root);
        let t = fresh(&root);
        v.verify(&t, "panel", None).unwrap();
        // The same token with one character of its proof altered, and one from another gateway.
        let mut altered = t.clone().into_bytes();
        let at = altered.len() - 10;
        altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(
            v.verify(&altered, "panel", None),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            v.verify(&fresh(&KeyPair::new()), "panel", None),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(v.seen.len(), 1);
    }

    #[test]
    fn remembering_is_bounded_and_can_be_turned_off() {
        let root = KeyPair::new();
        let small = verifier(&root).with_seen_capacity(2);
        for _ in 0..5 {
            small.verify(&fresh(&root), "panel", None).unwrap();
            assert!(small.seen.len() <= 2);
        }
        let off = verifier(&root).with_seen_capacity(0);
        let t = fresh(&root);
        off.verify(&t, "panel", None).unwrap();
        off.verify(&t, "panel", None).unwrap();
        assert_eq!(off.seen.len(), 0);
    }

    #[test]
    fn an_appended_block_cannot_add_claims() {
        let root = KeyPair::new();
        let forged = BlockBuilder::new()
            .code(
                r#"user("u-2"); provider("other"); route("grafana"); email("eve@evil.example");
                domain("evil.example"); group("admins"); right("panel", "admin");"#,
            )
            .unwrap();
        let t = Biscuit::from_base64(fresh(&root), root.public())
            .unwrap()
            .append(forged)
            .unwrap()
            .to_base64()
            .unwrap();
        let v = verifier(&root);
        let claims = v.verify(&t, "panel", Some("read")).unwrap();
        assert_eq!(claims.sub, "u-1");
        assert_eq!(claims.provider, "basic");
        assert_eq!(claims.route, "panel");
        assert_eq!(claims.email.as_deref(), Some("bo@example.org"));
        assert_eq!(claims.domain.as_deref(), Some("example.org"));
        assert_eq!(claims.groups, vec!["ops"]);
        assert_eq!(claims.rights, vec!["read"]);
        refuses_other_routes_and_rights(&v, &t);
    }

    #[test]
    fn a_token_missing_a_claim_or_with_a_mistyped_one_is_malformed() {
        let root = KeyPair::new();
        let signed = |code: &str| {
            let mut builder = Biscuit::builder().root_key_id(KID);
            builder = builder.code(code).unwrap();
            builder.build(&root).unwrap().to_base64().unwrap()
        };
        let v = verifier(&root);
        let no_provider = signed(
            r#"user("u-1"); route("panel"); issued_at(2026-01-01T00:00:00Z); expires(2100-01-01T00:00:00Z);"#,
        );
        assert_eq!(
            v.verify(&no_provider, "panel", None),
            Err(VerifyError::Malformed(
                "the token needs exactly one provider fact".into()
            ))
        );
        let two_users = signed(
            r#"user("u-1"); user("u-2"); provider("basic"); route("panel");
            issued_at(2026-01-01T00:00:00Z); expires(2100-01-01T00:00:00Z);"#,
        );
        assert_eq!(
            v.verify(&two_users, "panel", None),
            Err(VerifyError::Malformed(
                "the token needs exactly one user fact".into()
            ))
        );
        let text_expiry = signed(
            r#"user("u-1"); provider("basic"); route("panel"); issued_at(2026-01-01T00:00:00Z);
            expires("tomorrow");"#,
        );
        assert_eq!(
            v.verify(&text_expiry, "panel", None),
            Err(VerifyError::Malformed(
                "the expires fact has the wrong type".into()
            ))
        );
        let numeric_group = signed(
            r#"user("u-1"); provider("basic"); route("panel"); group(7);
            issued_at(2026-01-01T00:00:00Z); expires(2100-01-01T00:00:00Z);"#,
        );
        assert_eq!(
            v.verify(&numeric_group, "panel", None),
            Err(VerifyError::Malformed(
                "the group fact has the wrong type".into()
            ))
        );
    }

    #[test]
    fn fact_flooding_attenuation_hits_the_run_limits() {
        let root = KeyPair::new();
        // 40 facts, and a rule deriving 40 × 40 = 1600 more.
        let mut flood = BlockBuilder::new()
            .code("pair($a, $b) <- n($a), n($b);")
            .unwrap();
        for i in 0..40i64 {
            flood = flood
                .fact(biscuit_auth::builder::fact(
                    "n",
                    &[biscuit_auth::builder::int(i)],
                ))
                .unwrap();
        }
        let t = Biscuit::from_base64(fresh(&root), root.public())
            .unwrap()
            .append(flood)
            .unwrap()
            .to_base64()
            .unwrap();
        let result = verifier(&root).verify(&t, "panel", None);
        assert!(
            matches!(result, Err(VerifyError::LimitExceeded(_))),
            "{result:?}"
        );
        let roomy = verifier(&root).with_limits(AuthorizerLimits {
            max_facts: 5000,
            max_time: Duration::from_secs(5),
            ..DEFAULT_LIMITS
        });
        let result = roomy.verify(&t, "panel", None);
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn keys_json_errors_are_reported() {
        let cases = [
            ("not json", "not valid"),
            (r#"{"keys": []}"#, "no keys"),
            (
                r#"{"keys": [{"kid": 1, "algorithm": "secp256r1", "public_key": "00"}]}"#,
                "unsupported",
            ),
            (
                r#"{"keys": [{"kid": 1, "algorithm": "ed25519", "public_key": "zz"}]}"#,
                "not a valid",
            ),
        ];
        for (json, expected) in cases {
            let err = Verifier::from_jwks_like_json(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn keys_json_round_trips() {
        let root = KeyPair::new();
        let json = format!(
            r#"{{"keys": [{{"kid": {KID}, "algorithm": "ed25519", "public_key": "{}"}}]}}"#,
            root.public().to_bytes_hex()
        );
        let v = Verifier::from_jwks_like_json(&json).unwrap();
        v.verify(&fresh(&root), "panel", None).unwrap();
    }
}
