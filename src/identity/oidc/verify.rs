//! ID-token verification (signature via JWKS, iss, aud, azp, exp, iat with skew, nonce) and the
//! mapping of verified claims to an [`Identity`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreIdToken, CoreJwsSigningAlgorithm};
use openidconnect::{ClaimsVerificationError, Nonce, SignatureVerificationError};
use serde_json::{Map, Value};

use super::discovery::OidcClient;
use super::error::IdTokenProblem;
use crate::identity::Identity;

/// Allowed clock difference with the provider, both ways: a token "from the future" (`iat`) and
/// one that expired a moment ago (`exp`) by less than this are accepted.
pub(crate) const CLOCK_SKEW_SECS: i64 = 60;

/// Claims that describe the token rather than the user; kept out of `user.claims`.
const TOKEN_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "auth_time",
    "azp",
    "sid",
    "jti",
    "acr",
    "amr",
];

/// Asymmetric algorithms only: an HMAC-signed ID token keyed with the client secret is refused.
fn allowed_algs() -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm as A;
    vec![
        A::RsaSsaPkcs1V15Sha256,
        A::RsaSsaPkcs1V15Sha384,
        A::RsaSsaPkcs1V15Sha512,
        A::RsaSsaPssSha256,
        A::RsaSsaPssSha384,
        A::RsaSsaPssSha512,
        A::EcdsaP256Sha256,
        A::EcdsaP384Sha384,
        A::EdDsa,
    ]
}

/// Verifies `id_token` for `client` and returns its claims as JSON.
///
/// `nonce` is `Some` at login (must match) and `None` on refresh (a refreshed ID token need not
/// carry one). `now` is Unix seconds.
pub(crate) fn verify_id_token(
    client: &OidcClient,
    id_token: &CoreIdToken,
    nonce: Option<&Nonce>,
    now: i64,
) -> Result<Map<String, Value>, IdTokenProblem> {
    // openidconnect compares `exp` with this clock only; running it `CLOCK_SKEW_SECS` behind
    // gives `exp` the same tolerance as `iat`.
    let skewed_now = chrono::DateTime::<chrono::Utc>::from_timestamp(now - CLOCK_SKEW_SECS, 0)
        .unwrap_or_else(chrono::Utc::now);
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(allowed_algs())
        .set_time_fn(move || skewed_now)
        .set_issue_time_verifier_fn(move |iat| {
            if iat.timestamp() > now + CLOCK_SKEW_SECS {
                Err(format!("{FUTURE}: issued at {}", iat.timestamp()))
            } else {
                Ok(())
            }
        });
    let checked = match nonce {
        Some(expected) => id_token.claims(&verifier, expected).map(|_| ()),
        None => id_token
            .claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .map(|_| ()),
    };
    checked.map_err(|e| problem(&e))?;
    let claims = payload(&id_token.to_string()).ok_or(IdTokenProblem::Malformed)?;
    // openidconnect leaves azp to the client: present → must be us; several audiences → required.
    let client_id = client.client_id().as_str();
    let several_audiences = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => {}
        None if !several_audiences => {}
        _ => return Err(IdTokenProblem::AuthorizedParty),
    }
    Ok(claims)
}

const FUTURE: &str = "issued in the future";

fn problem(error: &ClaimsVerificationError) -> IdTokenProblem {
    match error {
        ClaimsVerificationError::Expired(reason) if reason.starts_with(FUTURE) => {
            IdTokenProblem::IssuedInFuture
        }
        ClaimsVerificationError::Expired(_) => IdTokenProblem::Expired,
        ClaimsVerificationError::InvalidAudience(_) => IdTokenProblem::Audience,
        ClaimsVerificationError::InvalidIssuer(_) => IdTokenProblem::Issuer,
        ClaimsVerificationError::InvalidNonce(_) => IdTokenProblem::Nonce,
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => IdTokenProblem::UnknownKey,
        ClaimsVerificationError::SignatureVerification(_) => IdTokenProblem::Signature,
        _ => IdTokenProblem::Other,
    }
}

/// The JSON payload of a compact JWS. Only called on a token whose signature was verified.
pub(crate) fn payload(jwt: &str) -> Option<Map<String, Value>> {
    let mut parts = jwt.split('.');
    let (_, body, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// `userinfo` claims override the ID token's (fresher, same provider), except `sub`, which the
/// caller has checked to be equal.
pub(crate) fn merge_userinfo(claims: &mut Map<String, Value>, userinfo: Map<String, Value>) {
    for (key, value) in userinfo {
        if key != "sub" {
            claims.insert(key, value);
        }
    }
}

/// Groups at a dotted path (`groups`, `realm_access.roles`): an array of strings or one string.
pub(crate) fn groups_at(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    let mut segments = path.split('.');
    let Some(first) = segments.next() else {
        return Vec::new();
    };
    let mut value = claims.get(first);
    for segment in segments {
        value = value.and_then(|v| v.get(segment));
    }
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The [`Identity`] for verified (and merged) claims.
pub(crate) fn identity_from_claims(
    mut claims: Map<String, Value>,
    provider: &str,
    groups_claim: Option<&str>,
) -> Option<Identity> {
    let subject = claims.get("sub")?.as_str()?.to_owned();
    let text = |claims: &Map<String, Value>, key: &str| {
        claims.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    let email = text(&claims, "email");
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let groups = groups_claim
        .map(|path| groups_at(&claims, path))
        .unwrap_or_default();
    let identity_name = text(&claims, "name");
    let preferred_username = text(&claims, "preferred_username");
    for key in TOKEN_CLAIMS.iter().chain(&[
        "sub",
        "email",
        "email_verified",
        "name",
        "preferred_username",
    ]) {
        claims.remove(*key);
    }
    Some(Identity {
        subject,
        email,
        email_verified,
        name: identity_name,
        preferred_username,
        groups,
        provider: provider.to_owned(),
        claims,
    })
}

#[cfg(test)]
mod tests;
