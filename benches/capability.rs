//! Capability token costs: mint, verify (Rust), and the request path with a warm cache.
//!
//! `cargo bench --bench capability -- --warm-up-time 1 --measurement-time 3`
//! Targets: verify median ≤ 150 µs; warm-cache request overhead ≤ 2 µs. `verify` is a token's
//! first sight, `verify_seen` a repeat (signature remembered, Datalog run again).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use portcullis::capability::{CapabilityConfig, KeyRing, KeyStore, Minter};
use portcullis::identity::Identity;

/// The allocator the gateway binary runs with (src/main.rs), so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn analyst() -> Identity {
    Identity {
        subject: "108234567890123456789".into(),
        email: Some("ann@example.com".into()),
        email_verified: true,
        name: Some("Ann Analyst".into()),
        groups: vec!["analysts".into(), "staff".into(), "eu".into()],
        provider: "google".into(),
        ..Identity::default()
    }
}

fn capability(c: &mut Criterion) {
    let store = KeyStore::fixed(KeyRing::ephemeral());
    let verifier = store.ring().verifier();
    let minter = Minter::new(&CapabilityConfig::default(), store).unwrap();
    let identity = analyst();
    let grants = vec!["read".to_owned(), "write".to_owned()];
    let session = [7u8; 32];

    c.bench_function("capability/mint", |b| {
        b.iter(|| minter.mint(black_box(&identity), "panel", &grants).unwrap())
    });

    let token = minter.mint(&identity, "panel", &grants).unwrap();
    // First sight: every signature check runs (remembering is off).
    let first_sight = verifier.clone().with_seen_capacity(0);
    c.bench_function("capability/verify", |b| {
        b.iter(|| {
            first_sight
                .verify(black_box(&token), "panel", Some("read"))
                .unwrap()
        })
    });
    // The same token again, as a service sees it on each request of a session: the signature
    // is remembered; expiry, route and right are checked anew.
    c.bench_function("capability/verify_seen", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(&token), "panel", Some("read"))
                .unwrap()
        })
    });

    // Breakdown of verify: the signature check and parse alone.
    let public_key = store_key(&verifier);
    c.bench_function("capability/verify_signature_only", |b| {
        b.iter(|| biscuit_auth::Biscuit::from_base64(black_box(&token), public_key).unwrap())
    });

    // Reference: biscuit's bare verify + authorize (`allow if true`), to read the numbers
    // above relative to the machine's load.
    c.bench_function("capability/verify_biscuit_minimal", |b| {
        b.iter(|| {
            let token = biscuit_auth::Biscuit::from_base64(black_box(&token), public_key).unwrap();
            let mut authorizer = biscuit_auth::macros::authorizer!(
                r#"time({now}); allow if true;"#,
                now = std::time::SystemTime::now()
            )
            .set_limits(portcullis::verify::DEFAULT_LIMITS)
            .build(&token)
            .unwrap();
            authorizer.authorize().unwrap()
        })
    });

    minter
        .token(&session, &identity, "panel", &grants, 1)
        .unwrap();
    c.bench_function("capability/token_warm_cache", |b| {
        b.iter(|| {
            minter
                .token(black_box(&session), &identity, "panel", &grants, 1)
                .unwrap()
        })
    });

    // What the guard adds per request: the cached value into the outgoing headers.
    c.bench_function("capability/request_overhead_warm", |b| {
        let mut headers = HeaderMap::new();
        b.iter(|| {
            let value = minter
                .token(black_box(&session), &identity, "panel", &grants, 1)
                .unwrap();
            headers.insert(minter.header_name().clone(), value);
        })
    });
}

fn store_key(verifier: &portcullis::verify::Verifier) -> biscuit_auth::PublicKey {
    let kid = verifier.kids().next().unwrap();
    verifier.public_key(kid).unwrap()
}

criterion_group!(benches, capability);
criterion_main!(benches);
