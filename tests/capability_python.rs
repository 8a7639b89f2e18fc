//! The Python example (`examples/panel/verify_token.py`, biscuit-python) accepts a real token
//! minted by the library and refuses tampered, expired, other-route and narrowed-away ones.
//!
//! Python: `$PORTCULLIS_PYTHON`, else `<repo>/.venv/bin/python`
//! (`python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt`).
#![cfg(feature = "gateway")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use biscuit_auth::UnverifiedBiscuit;
use portcullis::capability::{CapabilityConfig, KeyRing, KeyStore, Minter};
use portcullis::identity::Identity;

fn python() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = match std::env::var_os("PORTCULLIS_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => repo.join(".venv/bin/python"),
    };
    assert!(
        python.exists(),
        "no Python for the biscuit-python example at {}: set PORTCULLIS_PYTHON, or run \
         `python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt` in {}",
        python.display(),
        repo.display()
    );
    let probe = Command::new(&python)
        .args(["-c", "import biscuit_auth"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{} cannot import biscuit_auth: `{} -m pip install -r requirements-test.txt`\n{}",
        python.display(),
        python.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    python
}

struct Fixture {
    minter: Minter,
    keys: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let store = KeyStore::fixed(KeyRing::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, store.public_keys_json()).unwrap();
    let minter = Minter::new(&CapabilityConfig::default(), store).unwrap();
    Fixture {
        minter,
        keys,
        _dir: dir,
    }
}

fn analyst() -> Identity {
    Identity {
        subject: "u-42".into(),
        email: Some("ann@example.com".into()),
        email_verified: true,
        groups: vec!["analysts".into(), "staff".into()],
        provider: "google".into(),
        ..Identity::default()
    }
}

/// Runs the example; returns (accepted, stdout).
fn verify_py(f: &Fixture, token: &str, extra: &[&str]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/panel/verify_token.py");
    let output = Command::new(python())
        .arg(script)
        .args(["--keys", f.keys.to_str().unwrap()])
        .args(extra)
        .arg(token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 1)) && !stderr.contains("Traceback"),
        "verify_token.py crashed ({:?}):\n{stdout}\n{stderr}",
        output.status
    );
    (output.status.success(), stdout)
}

fn grants() -> Vec<String> {
    vec!["read".into(), "write".into()]
}

#[test]
fn python_accepts_a_minted_token_and_shows_the_user() {
    let f = fixture();
    let token = f.minter.mint(&analyst(), "panel", &grants()).unwrap();
    let (ok, out) = verify_py(&f, &token, &["--route", "panel", "--right", "read"]);
    assert!(ok, "{out}");
    for line in [
        "user: u-42",
        "email: ann@example.com",
        "domain: example.com",
        "groups: analysts, staff",
        "provider: google",
        "rights: read, write",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn python_refuses_a_tampered_token() {
    let f = fixture();
    let token = f.minter.mint(&analyst(), "panel", &grants()).unwrap();
    let mut bytes = UnverifiedBiscuit::from_base64(&token)
        .unwrap()
        .to_vec()
        .unwrap();
    let at = bytes.windows(4).position(|w| w == b"u-42").unwrap();
    bytes[at + 3] = b'3';
    let tampered = base64::engine::general_purpose::URL_SAFE.encode(bytes);
    let (ok, out) = verify_py(&f, &tampered, &["--route", "panel"]);
    assert!(!ok && out.contains("bad_signature"), "{out}");
}

#[test]
fn python_refuses_an_expired_token() {
    let f = fixture();
    let minted = SystemTime::now() - Duration::from_secs(600);
    let token = f
        .minter
        .mint_at(&analyst(), "panel", &grants(), minted)
        .unwrap();
    let (ok, out) = verify_py(&f, &token, &["--route", "panel"]);
    assert!(!ok && out.contains("expired"), "{out}");
}

#[test]
fn python_refuses_another_route_and_a_missing_right() {
    let f = fixture();
    let token = f
        .minter
        .mint(&analyst(), "panel", &["read".into()])
        .unwrap();
    let (ok, out) = verify_py(&f, &token, &["--route", "grafana"]);
    assert!(!ok && out.contains("wrong_route"), "{out}");
    let (ok, out) = verify_py(&f, &token, &["--route", "panel", "--right", "write"]);
    assert!(!ok && out.contains("missing_right"), "{out}");
}

#[test]
fn python_attenuation_keeps_only_one_right() {
    let f = fixture();
    let token = f.minter.mint(&analyst(), "panel", &grants()).unwrap();
    let narrowed = ["--route", "panel", "--attenuate-to", "read"];
    let (ok, out) = verify_py(&f, &token, &[&narrowed[..], &["--right", "read"]].concat());
    assert!(ok && out.contains("rights: read\n"), "{out}");
    let (ok, out) = verify_py(&f, &token, &[&narrowed[..], &["--right", "write"]].concat());
    assert!(!ok && out.contains("attenuated"), "{out}");
}

#[test]
fn python_refuses_a_token_of_an_unpublished_key() {
    let f = fixture();
    let other = fixture();
    let token = other.minter.mint(&analyst(), "panel", &grants()).unwrap();
    let (ok, out) = verify_py(&f, &token, &["--route", "panel"]);
    assert!(
        !ok && (out.contains("unknown_key") || out.contains("bad_signature")),
        "{out}"
    );
}
