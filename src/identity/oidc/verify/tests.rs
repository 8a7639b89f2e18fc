//! ID-token checks with keys we control: the cases a live provider will not produce.

use openidconnect::core::{
    CoreClient, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AuthUrl, ClientId, ClientSecret, IssuerUrl, JsonWebKeyId, JsonWebKeySet, PrivateSigningKey,
    TokenUrl,
};
use serde_json::json;

use super::*;

const ISSUER: &str = "https://id.example.com";
const CLIENT: &str = "portcullis";

fn key(pem: &str, kid: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into()))).unwrap()
}

fn signing_key() -> CoreRsaPrivateSigningKey {
    key(include_str!("../testdata/test-only-rsa.pem"), "k1")
}

fn client_trusting(keys: &[&CoreRsaPrivateSigningKey]) -> OidcClient {
    CoreClient::new(
        ClientId::new(CLIENT.into()),
        IssuerUrl::new(ISSUER.into()).unwrap(),
        JsonWebKeySet::new(keys.iter().map(|k| k.as_verification_key()).collect()),
    )
    .set_client_secret(ClientSecret::new("client-secret".into()))
    .set_auth_uri(AuthUrl::new(format!("{ISSUER}/auth")).unwrap())
    .set_token_uri(TokenUrl::new(format!("{ISSUER}/token")).unwrap())
}

fn now() -> i64 {
    crate::session::now_secs() as i64
}

fn good_claims() -> Value {
    json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "alice", "exp": now() + 300, "iat": now(), "nonce": "n-1",
        "email": "alice@example.com", "email_verified": true, "groups": ["admins", "analysts"],
    })
}

fn sign_with(claims: Value, key: &CoreRsaPrivateSigningKey) -> CoreIdToken {
    let claims: CoreIdTokenClaims = serde_json::from_value(claims).unwrap();
    CoreIdToken::new(
        claims,
        key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .unwrap()
}

fn sign(claims: Value) -> CoreIdToken {
    sign_with(claims, &signing_key())
}

fn with(changes: Value) -> Value {
    let mut claims = good_claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn check(token: &CoreIdToken, nonce: Option<&str>) -> Result<Map<String, Value>, IdTokenProblem> {
    let nonce = nonce.map(|n| Nonce::new(n.into()));
    verify_id_token(
        &client_trusting(&[&signing_key()]),
        token,
        nonce.as_ref(),
        now(),
    )
}

#[test]
fn valid_token_yields_its_claims() {
    let claims = check(&sign(good_claims()), Some("n-1")).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
}

#[test]
fn bad_tokens_are_refused_with_the_reason() {
    let cases: Vec<(&str, Value, Option<&str>, IdTokenProblem)> = vec![
        (
            "expired beyond the skew",
            with(json!({"exp": now() - 120, "iat": now() - 400})),
            Some("n-1"),
            IdTokenProblem::Expired,
        ),
        (
            "issued in the future",
            with(json!({"iat": now() + 600, "exp": now() + 900})),
            Some("n-1"),
            IdTokenProblem::IssuedInFuture,
        ),
        (
            "wrong audience",
            with(json!({"aud": "someone-else"})),
            Some("n-1"),
            IdTokenProblem::Audience,
        ),
        (
            "extra untrusted audience",
            with(json!({"aud": [CLIENT, "other"], "azp": CLIENT})),
            Some("n-1"),
            IdTokenProblem::Audience,
        ),
        (
            "wrong issuer",
            with(json!({"iss": "https://evil.example.com"})),
            Some("n-1"),
            IdTokenProblem::Issuer,
        ),
        (
            "nonce mismatch",
            good_claims(),
            Some("n-2"),
            IdTokenProblem::Nonce,
        ),
        (
            "nonce missing",
            with(json!({"nonce": null})),
            Some("n-1"),
            IdTokenProblem::Nonce,
        ),
        (
            "foreign azp",
            with(json!({"azp": "other-client"})),
            Some("n-1"),
            IdTokenProblem::AuthorizedParty,
        ),
    ];
    for (name, claims, nonce, want) in cases {
        assert_eq!(check(&sign(claims), nonce), Err(want), "{name}");
    }
}

#[test]
fn small_clock_skew_on_iat_is_tolerated() {
    let token = sign(with(json!({"iat": now() + CLOCK_SKEW_SECS - 5})));
    assert!(check(&token, Some("n-1")).is_ok());
}

#[test]
fn small_clock_skew_on_exp_is_tolerated() {
    let cases = [
        ("expired 30 s ago", now() - 30, Ok(())),
        (
            "expired just inside the skew",
            now() - CLOCK_SKEW_SECS + 2,
            Ok(()),
        ),
        (
            "expired just past the skew",
            now() - CLOCK_SKEW_SECS - 2,
            Err(IdTokenProblem::Expired),
        ),
        (
            "expired 120 s ago",
            now() - 120,
            Err(IdTokenProblem::Expired),
        ),
    ];
    for (name, exp, want) in cases {
        let token = sign(with(json!({"exp": exp, "iat": now() - 400})));
        assert_eq!(check(&token, Some("n-1")).map(drop), want, "{name}");
    }
}

#[test]
fn refresh_without_nonce_is_accepted() {
    assert!(check(&sign(with(json!({"nonce": null}))), None).is_ok());
}

#[test]
fn unknown_kid_is_reported_as_such() {
    let other = key(include_str!("../testdata/test-only-rsa-2.pem"), "k2");
    let token = sign_with(good_claims(), &other);
    assert_eq!(check(&token, Some("n-1")), Err(IdTokenProblem::UnknownKey));
    let rotated = client_trusting(&[&signing_key(), &other]);
    assert!(verify_id_token(&rotated, &token, Some(&Nonce::new("n-1".into())), now()).is_ok());
}

#[test]
fn tampered_signature_is_refused() {
    let token = sign(good_claims()).to_string();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let forged = serde_json::to_vec(&with(json!({"sub": "mallory"}))).unwrap();
    parts[1] = URL_SAFE_NO_PAD.encode(forged);
    let forged: CoreIdToken = parts.join(".").parse().unwrap();
    assert_eq!(check(&forged, Some("n-1")), Err(IdTokenProblem::Signature));
}

#[test]
fn hmac_signed_token_is_refused() {
    let claims: CoreIdTokenClaims = serde_json::from_value(good_claims()).unwrap();
    let hmac = openidconnect::core::CoreHmacKey::new("client-secret".as_bytes());
    let token = CoreIdToken::new(
        claims,
        &hmac,
        CoreJwsSigningAlgorithm::HmacSha256,
        None,
        None,
    )
    .unwrap();
    assert!(check(&token, Some("n-1")).is_err());
}

#[test]
fn groups_come_from_nested_claim_paths() {
    let claims = json!({
        "groups": ["a", "b"],
        "realm_access": {"roles": ["admin", "user"]},
        "single": "solo",
        "ids": [1, 2],
    });
    let map = claims.as_object().unwrap();
    assert_eq!(groups_at(map, "groups"), ["a", "b"]);
    assert_eq!(groups_at(map, "realm_access.roles"), ["admin", "user"]);
    assert_eq!(groups_at(map, "single"), ["solo"]);
    assert_eq!(groups_at(map, "ids"), ["1", "2"]);
    assert!(groups_at(map, "realm_access.missing").is_empty());
    assert!(groups_at(map, "nothing").is_empty());
}

#[test]
fn identity_maps_standard_claims_and_keeps_the_rest() {
    let mut claims = good_claims().as_object().unwrap().clone();
    claims.insert("department".into(), "research".into());
    let identity = identity_from_claims(claims, "corp", Some("groups")).unwrap();
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert!(identity.email_verified);
    assert_eq!(identity.groups, ["admins", "analysts"]);
    assert_eq!(identity.provider, "corp");
    assert_eq!(identity.claims.get("department"), Some(&json!("research")));
    assert!(identity.claims.get("nonce").is_none() && identity.claims.get("exp").is_none());
}

#[test]
fn userinfo_overrides_but_cannot_change_subject() {
    let mut claims = good_claims().as_object().unwrap().clone();
    let info = json!({"sub": "mallory", "groups": ["fresh"]})
        .as_object()
        .unwrap()
        .clone();
    merge_userinfo(&mut claims, info);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["groups"], json!(["fresh"]));
}
