//! The capability subcommands: `keygen`, `keys public`, `token verify`, `token inspect`.
//!
//! Each writes its report to `out`; `main.rs` maps the result to the exit code.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use biscuit_auth::UnverifiedBiscuit;

use super::keyring::{KeyRing, generate_key_file};
use super::verify::{Claims, Verifier};

/// How long `token verify --keys URL` waits for keys.json.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `portcullis keygen DIR`: writes a new signing key and prints its kid and public key. The
/// gateway picks it up (it becomes the signing key) without a restart.
pub fn keygen(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let (kid, public_key, path) = generate_key_file(dir)?;
    writeln!(out, "kid: {kid}")?;
    writeln!(out, "public key: {public_key}")?;
    writeln!(out, "written: {}", path.display())?;
    Ok(())
}

/// `portcullis keys public DIR`: prints keys.json for the keys in `DIR`, as the gateway serves
/// it at `/.well-known/portcullis/keys.json`.
pub fn keys_public(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let ring = KeyRing::load_dir(dir)?;
    out.write_all(&ring.public_keys_json())?;
    writeln!(out)?;
    Ok(())
}

/// `portcullis token verify --keys FILE_OR_URL [--route R] [--right G] TOKEN`: verifies offline
/// as a downstream service would. Prints the claims and returns `true` when the token is
/// valid, prints the reason and returns `false` when it is refused; errors only when keys.json
/// cannot be read. Without `route` the route is not checked (tooling only).
pub fn token_verify(
    keys: &str,
    token: &str,
    route: Option<&str>,
    right: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let json = if keys.starts_with("http://") || keys.starts_with("https://") {
        fetch(keys)?
    } else {
        std::fs::read_to_string(keys).with_context(|| format!("cannot read keys file {keys}"))?
    };
    let verifier =
        Verifier::from_jwks_like_json(&json).with_context(|| format!("keys from {keys}"))?;
    let result = match route {
        Some(route) => verifier.verify(token, route, right),
        None => verifier.verify_any_route(token, right),
    };
    match result {
        Ok(claims) => {
            let mut checked = String::from("signature, key, expiry");
            match route {
                Some(route) => checked.push_str(&format!(", route {route:?}")),
                None => checked.push_str(" (route NOT checked: pass --route)"),
            }
            if let Some(right) = right {
                checked.push_str(&format!(", right {right:?}"));
            }
            writeln!(out, "valid: {checked}")?;
            write_claims(&claims, out)?;
            Ok(true)
        }
        Err(error) => {
            writeln!(out, "invalid: {error}")?;
            Ok(false)
        }
    }
}

/// `portcullis token inspect TOKEN`: prints every block's Datalog WITHOUT verifying anything.
pub fn token_inspect(token: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let biscuit = UnverifiedBiscuit::from_base64(token.trim())
        .map_err(|e| anyhow!("not a Biscuit token: {e}"))?;
    writeln!(
        out,
        "UNVERIFIED: the signature, key and expiry have NOT been checked; \
         use `portcullis token verify` before trusting any of this."
    )?;
    match biscuit.root_key_id() {
        Some(kid) => writeln!(out, "root key id: {kid}")?,
        None => writeln!(out, "root key id: none (not minted by portcullis)")?,
    }
    for index in 0..biscuit.block_count() {
        let label = if index == 0 {
            "authority"
        } else {
            "attenuation"
        };
        writeln!(out, "\nblock {index} ({label}):")?;
        let source = biscuit
            .print_block_source(index)
            .map_err(|e| anyhow!("block {index}: {e}"))?;
        for line in source.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

fn write_claims(claims: &Claims, out: &mut dyn Write) -> std::io::Result<()> {
    let optional = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    writeln!(out, "sub: {}", claims.sub)?;
    writeln!(out, "email: {}", optional(&claims.email))?;
    writeln!(out, "domain: {}", optional(&claims.domain))?;
    writeln!(out, "groups: {}", claims.groups.join(", "))?;
    writeln!(out, "provider: {}", claims.provider)?;
    writeln!(out, "route: {}", claims.route)?;
    writeln!(out, "rights: {}", claims.rights.join(", "))?;
    writeln!(out, "issued at: {} (unix seconds)", unix(claims.issued_at))?;
    let left = claims
        .expires
        .duration_since(SystemTime::now())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    writeln!(
        out,
        "expires: {} (unix seconds; in {left} s)",
        unix(claims.expires)
    )
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// GETs keys.json on a thread of its own, so it works whether or not the caller is already
/// inside a Tokio runtime.
fn fetch(url: &str) -> anyhow::Result<String> {
    let url = url.to_owned();
    std::thread::spawn(move || -> anyhow::Result<String> {
        // reqwest is built without a crypto provider; ring is the project's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let response = client
                .get(&url)
                .send()
                .await
                .with_context(|| format!("cannot fetch {url}"))?
                .error_for_status()
                .with_context(|| format!("fetching {url}"))?;
            Ok(response.text().await?)
        })
    })
    .join()
    .map_err(|_| anyhow!("fetching keys.json panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{CapabilityConfig, KeyStore, Minter};
    use crate::identity::Identity;

    fn token_for(dir: &Path) -> String {
        let store = KeyStore::fixed(KeyRing::load_dir(dir).unwrap());
        let minter = Minter::new(&CapabilityConfig::default(), store).unwrap();
        let identity = Identity {
            subject: "u-1".into(),
            email: Some("ann@example.com".into()),
            email_verified: true,
            groups: vec!["analysts".into()],
            provider: "google".into(),
            ..Identity::default()
        };
        minter.mint(&identity, "panel", &["read".into()]).unwrap()
    }

    fn run(f: impl FnOnce(&mut dyn Write) -> anyhow::Result<bool>) -> (bool, String) {
        let mut out = Vec::new();
        let ok = f(&mut out).unwrap();
        (ok, String::from_utf8(out).unwrap())
    }

    #[test]
    fn keygen_then_keys_public_lists_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (_, printed) = run(|out| keygen(dir.path(), out).map(|_| true));
        let kid = printed
            .lines()
            .next()
            .unwrap()
            .strip_prefix("kid: ")
            .unwrap()
            .to_owned();
        let (_, json) = run(|out| keys_public(dir.path(), out).map(|_| true));
        assert!(json.contains(&format!("\"kid\": {kid}")), "{json}");
        let public = printed
            .lines()
            .nth(1)
            .unwrap()
            .strip_prefix("public key: ed25519/")
            .unwrap();
        assert!(json.contains(public), "{json}");
    }

    #[test]
    fn token_verify_reads_a_keys_file() {
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path(), &mut Vec::new()).unwrap();
        let token = token_for(dir.path());
        let keys = dir.path().join("keys.json");
        std::fs::write(
            &keys,
            KeyRing::load_dir(dir.path()).unwrap().public_keys_json(),
        )
        .unwrap();
        let keys = keys.to_str().unwrap();
        let (ok, text) = run(|out| token_verify(keys, &token, Some("panel"), Some("read"), out));
        assert!(ok, "{text}");
        assert!(
            text.contains("sub: u-1") && text.contains("rights: read"),
            "{text}"
        );
        let (ok, text) = run(|out| token_verify(keys, &token, Some("admin"), None, out));
        assert!(!ok && text.contains("another route"), "{text}");
        let (ok, text) = run(|out| token_verify(keys, &token, None, None, out));
        assert!(ok && text.contains("route NOT checked"), "{text}");
    }

    #[test]
    fn token_verify_fetches_keys_over_http() {
        use std::io::{Read, Write as _};
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path(), &mut Vec::new()).unwrap();
        let token = token_for(dir.path());
        let body = KeyRing::load_dir(dir.path()).unwrap().public_keys_json();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/.well-known/portcullis/keys.json",
            listener.local_addr().unwrap()
        );
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(&body).unwrap();
        });
        let (ok, text) = run(|out| token_verify(&url, &token, Some("panel"), None, out));
        server.join().unwrap();
        assert!(ok, "{text}");
    }

    #[test]
    fn token_inspect_labels_output_unverified() {
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path(), &mut Vec::new()).unwrap();
        let token = token_for(dir.path());
        let (_, text) = run(|out| token_inspect(&token, out).map(|_| true));
        assert!(text.starts_with("UNVERIFIED"), "{text}");
        assert!(text.contains("user(\"u-1\")"), "{text}");
        assert!(text.contains("right(\"panel\", \"read\")"), "{text}");
        assert!(text.contains("check if time($time)"), "{text}");
    }

    #[test]
    fn token_inspect_rejects_garbage() {
        assert!(token_inspect("not-a-token", &mut Vec::new()).is_err());
    }
}
