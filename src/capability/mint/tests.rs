//! Mint → verify round trips, the failure cases, the cache and key rotation.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use biscuit_auth::macros::block;
use biscuit_auth::{KeyPair, UnverifiedBiscuit};

use super::*;
use crate::capability::generate_key_file;
use crate::capability::verify::{PublicKeyEntry, Verifier, VerifyError};

fn analyst() -> Identity {
    Identity {
        subject: "u-42".into(),
        email: Some("ann@example.com".into()),
        email_verified: true,
        name: Some("Ann".into()),
        groups: vec!["analysts".into(), "staff".into()],
        provider: "google".into(),
        ..Identity::default()
    }
}

fn grants(list: &[&str]) -> Vec<String> {
    list.iter().map(|g| (*g).to_owned()).collect()
}

fn minter_with(store: Arc<KeyStore>, ttl: Duration) -> Minter {
    let config = CapabilityConfig {
        ttl,
        ..CapabilityConfig::default()
    };
    Minter::new(&config, store).unwrap()
}

fn setup() -> (Minter, Verifier) {
    let store = KeyStore::fixed(KeyRing::ephemeral());
    let verifier = store.ring().verifier();
    (minter_with(store, Duration::from_secs(300)), verifier)
}

#[test]
fn minted_token_round_trips_with_all_claims() {
    let (minter, verifier) = setup();
    let now = SystemTime::now();
    let token = minter
        .mint_at(&analyst(), "panel", &grants(&["read", "write"]), now)
        .unwrap();
    let claims = verifier.verify(&token, "panel", Some("read")).unwrap();
    assert_eq!(claims.sub, "u-42");
    assert_eq!(claims.email.as_deref(), Some("ann@example.com"));
    assert_eq!(claims.domain.as_deref(), Some("example.com"));
    assert_eq!(claims.groups, vec!["analysts", "staff"]);
    assert_eq!(claims.provider, "google");
    assert_eq!(claims.route, "panel");
    assert_eq!(claims.rights, vec!["read", "write"]);
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(secs(claims.issued_at), secs(now));
    assert_eq!(secs(claims.expires), secs(now + Duration::from_secs(300)));
    verifier.verify(&token, "panel", None).unwrap();
}

#[test]
fn unverified_email_carries_no_domain() {
    let (minter, verifier) = setup();
    let identity = Identity {
        email_verified: false,
        ..analyst()
    };
    let token = minter.mint(&identity, "panel", &[]).unwrap();
    let claims = verifier.verify(&token, "panel", None).unwrap();
    assert_eq!(claims.email.as_deref(), Some("ann@example.com"));
    assert_eq!(claims.domain, None);
}

#[test]
fn expired_token_is_rejected() {
    let (minter, verifier) = setup();
    let token = minter
        .mint(&analyst(), "panel", &grants(&["read"]))
        .unwrap();
    let later = SystemTime::now() + Duration::from_secs(301);
    assert_eq!(
        verifier.verify_at(&token, "panel", Some("read"), later),
        Err(VerifyError::Expired)
    );
    let minted_long_ago = SystemTime::now() - Duration::from_secs(600);
    let old = minter
        .mint_at(&analyst(), "panel", &[], minted_long_ago)
        .unwrap();
    assert_eq!(
        verifier.verify(&old, "panel", None),
        Err(VerifyError::Expired)
    );
}

#[test]
fn token_from_another_gateway_key_is_rejected() {
    let (minter, _) = setup();
    let token = minter.mint(&analyst(), "panel", &[]).unwrap();
    let kid = UnverifiedBiscuit::from_base64(&token)
        .unwrap()
        .root_key_id()
        .unwrap();
    let impostor = Verifier::from_keys([PublicKeyEntry {
        kid,
        public_key: KeyPair::new().public(),
    }]);
    assert_eq!(
        impostor.verify(&token, "panel", None),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn altered_token_bytes_are_rejected() {
    let (minter, verifier) = setup();
    let token = minter
        .mint(&analyst(), "panel", &grants(&["read"]))
        .unwrap();
    let mut bytes = UnverifiedBiscuit::from_base64(&token)
        .unwrap()
        .to_vec()
        .unwrap();
    // Inside the authority block's payload: where "u-42" is.
    let at = bytes
        .windows(4)
        .position(|w| w == b"u-42")
        .expect("subject in the payload");
    bytes[at + 3] = b'3';
    let altered = base64_url(&bytes);
    assert_eq!(
        verifier.verify(&altered, "panel", None),
        Err(VerifyError::BadSignature)
    );
    let truncated = &token[..token.len() / 2];
    assert!(matches!(
        verifier.verify(truncated, "panel", None),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        verifier.verify("", "panel", None),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn token_for_another_route_is_rejected() {
    let (minter, verifier) = setup();
    let token = minter
        .mint(&analyst(), "panel", &grants(&["read"]))
        .unwrap();
    assert_eq!(
        verifier.verify(&token, "admin", Some("read")),
        Err(VerifyError::WrongRoute {
            route: "admin".into()
        })
    );
}

#[test]
fn missing_right_is_rejected() {
    let (minter, verifier) = setup();
    let token = minter
        .mint(&analyst(), "panel", &grants(&["read"]))
        .unwrap();
    assert_eq!(
        verifier.verify(&token, "panel", Some("write")),
        Err(VerifyError::MissingRight {
            right: "write".into()
        })
    );
}

#[test]
fn unknown_key_id_is_rejected() {
    let (minter, _) = setup();
    let token = minter.mint(&analyst(), "panel", &[]).unwrap();
    let kid = UnverifiedBiscuit::from_base64(&token)
        .unwrap()
        .root_key_id();
    let other = Verifier::from_keys([PublicKeyEntry {
        kid: 7,
        public_key: KeyPair::new().public(),
    }]);
    assert_eq!(
        other.verify(&token, "panel", None),
        Err(VerifyError::UnknownKey { kid })
    );
}

#[test]
fn attenuated_token_keeps_only_the_kept_right() {
    let (minter, verifier) = setup();
    let token = minter
        .mint(&analyst(), "panel", &grants(&["read", "write"]))
        .unwrap();
    // What a downstream service does before passing the token on: no key needed.
    let unverified = UnverifiedBiscuit::from_base64(&token).unwrap();
    let narrowed = unverified
        .append(block!(r#"check if operation("read");"#))
        .unwrap()
        .to_base64()
        .unwrap();
    let claims = verifier.verify(&narrowed, "panel", Some("read")).unwrap();
    assert_eq!(
        claims.rights,
        vec!["read"],
        "the removed right is not reported"
    );
    assert!(matches!(
        verifier.verify(&narrowed, "panel", Some("write")),
        Err(VerifyError::Attenuated { block: 1, .. })
    ));
    // The original still carries both.
    verifier.verify(&token, "panel", Some("write")).unwrap();
}

#[test]
fn attenuation_cannot_add_rights_or_change_the_user() {
    let (minter, verifier) = setup();
    let token = minter
        .mint(&analyst(), "panel", &grants(&["read"]))
        .unwrap();
    let forged = UnverifiedBiscuit::from_base64(&token)
        .unwrap()
        .append(block!(
            r#"right("panel", "admin"); user("root"); route("admin");"#
        ))
        .unwrap()
        .to_base64()
        .unwrap();
    assert_eq!(
        verifier.verify(&forged, "panel", Some("admin")),
        Err(VerifyError::MissingRight {
            right: "admin".into()
        })
    );
    assert_eq!(
        verifier.verify(&forged, "admin", None),
        Err(VerifyError::WrongRoute {
            route: "admin".into()
        })
    );
    assert_eq!(verifier.verify(&forged, "panel", None).unwrap().sub, "u-42");
}

#[test]
fn warm_cache_returns_the_same_token_until_80_percent_of_ttl() {
    let store = KeyStore::fixed(KeyRing::ephemeral());
    let minter = minter_with(store, Duration::from_secs(100));
    let user = analyst();
    let read = grants(&["read"]);
    let t0 = SystemTime::now();
    let first = minter
        .token_at(b"sess", &user, "panel", &read, 1, t0)
        .unwrap();
    let at_79 = minter
        .token_at(
            b"sess",
            &user,
            "panel",
            &read,
            1,
            t0 + Duration::from_secs(79),
        )
        .unwrap();
    assert_eq!(first, at_79);
    let at_81 = minter
        .token_at(
            b"sess",
            &user,
            "panel",
            &read,
            1,
            t0 + Duration::from_secs(81),
        )
        .unwrap();
    assert_ne!(first, at_81, "re-minted past 80% of the TTL");
    let new_policy = minter
        .token_at(
            b"sess",
            &user,
            "panel",
            &read,
            2,
            t0 + Duration::from_secs(81),
        )
        .unwrap();
    assert_ne!(
        at_81, new_policy,
        "re-minted when the policy generation changes"
    );
    let regrouped = Identity {
        groups: vec!["staff".into()],
        ..user.clone()
    };
    let other = minter
        .token_at(
            b"sess",
            &regrouped,
            "panel",
            &read,
            2,
            t0 + Duration::from_secs(81),
        )
        .unwrap();
    assert_ne!(new_policy, other, "re-minted when the identity changes");
    assert!(first.is_sensitive());
}

#[test]
fn invalid_config_is_refused() {
    let store = KeyStore::fixed(KeyRing::ephemeral());
    let bad_header = CapabilityConfig {
        header: "X Auth".into(),
        ..CapabilityConfig::default()
    };
    assert!(matches!(
        Minter::new(&bad_header, store.clone()),
        Err(MintError::InvalidHeader(_))
    ));
    let zero_ttl = CapabilityConfig {
        ttl: Duration::ZERO,
        ..CapabilityConfig::default()
    };
    assert!(matches!(
        Minter::new(&zero_ttl, store),
        Err(MintError::InvalidTtl)
    ));
}

#[test]
fn config_reads_ttl_as_seconds_and_rejects_unknown_keys() {
    let config: CapabilityConfig =
        serde_json::from_str(r#"{"keys_dir": "/k", "ttl": 60}"#).unwrap();
    assert_eq!(config.ttl, Duration::from_secs(60));
    assert_eq!(config.header, "X-Auth-Capability");
    assert_eq!(config.keys_dir.as_deref(), Some(Path::new("/k")));
    assert!(serde_json::from_str::<CapabilityConfig>(r#"{"tll": 60}"#).is_err());
    assert!(serde_json::from_str::<CapabilityConfig>(r#"{"ttl": "5m"}"#).is_err());
}

#[test]
fn rotation_with_the_directory_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let (old_kid, _, old_path) = generate_key_file(dir.path()).unwrap();
    let store = KeyStore::watch_with(dir.path(), Duration::from_millis(50)).unwrap();
    let minter = minter_with(store.clone(), Duration::from_secs(300));
    let user = analyst();
    let old_token = minter.token(b"sess", &user, "panel", &[], 1).unwrap();
    let published = || {
        Verifier::from_jwks_like_json(std::str::from_utf8(&store.public_keys_json()).unwrap())
            .unwrap()
    };

    // A new key in the directory: it signs, and the old key still verifies.
    let (new_kid, _, _) = generate_key_file(dir.path()).unwrap();
    wait_for(|| store.ring().signing_kid() == new_kid);
    let new_token = minter.token(b"sess", &user, "panel", &[], 1).unwrap();
    assert_ne!(
        old_token, new_token,
        "the cache must not serve a token of the old key"
    );
    assert_eq!(kid_of(new_token.to_str().unwrap()), Some(new_kid));
    let verifier = published();
    assert!(
        verifier
            .verify(old_token.to_str().unwrap(), "panel", None)
            .is_ok()
    );
    assert!(
        verifier
            .verify(new_token.to_str().unwrap(), "panel", None)
            .is_ok()
    );

    // The old key removed: its tokens stop verifying, the new ones still do.
    std::fs::remove_file(old_path).unwrap();
    wait_for(|| store.ring().public_keys().len() == 1);
    let verifier = published();
    assert_eq!(
        verifier.verify(old_token.to_str().unwrap(), "panel", None),
        Err(VerifyError::UnknownKey { kid: Some(old_kid) })
    );
    assert!(
        verifier
            .verify(new_token.to_str().unwrap(), "panel", None)
            .is_ok()
    );

    // A broken key file keeps the last good ring.
    std::fs::write(dir.path().join("key-4000000000.pem"), "garbage").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(store.ring().signing_kid(), new_kid);
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "the key directory change was not picked up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kid_of(token: &str) -> Option<u32> {
    UnverifiedBiscuit::from_base64(token).unwrap().root_key_id()
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}
