//! The gateway's signing keys: a directory of Ed25519 private keys named by key id.
//!
//! Each key is a PKCS#8 PEM file `key-<kid>.pem`; `kid` is a `u32` (the Biscuit `root_key_id`),
//! by default the Unix time in seconds when `portcullis keygen` wrote it, so the highest kid is
//! the newest key and signs. Other files (dot files, a Kubernetes ConfigMap's `..data`, a
//! README) are ignored; a `key-*.pem` that does not parse fails the whole load.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use biscuit_auth::{KeyPair, PublicKey};
use bytes::Bytes;

use super::verify::{KeyDocument, KeySetDocument, PublicKeyEntry, Verifier};

const PREFIX: &str = "key-";
const SUFFIX: &str = ".pem";

/// The key directory could not be read into a usable ring.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("capability keys: cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("capability keys: {path} is not an Ed25519 PKCS#8 PEM private key ({reason}); replace it with `portcullis keygen {dir}`", dir = path.parent().unwrap_or(Path::new(".")).display())]
    BadKey { path: PathBuf, reason: String },
    #[error(
        "capability keys: no key-<kid>.pem in {dir}; create one with `portcullis keygen {dir}`"
    )]
    Empty { dir: PathBuf },
    #[error("capability keys: cannot find a free key id in {dir}")]
    NoFreeKid { dir: PathBuf },
}

/// An immutable set of signing keys; the newest signs, all verify.
pub struct KeyRing {
    /// Newest first; never empty.
    keys: Vec<(u32, KeyPair)>,
    public_json: Bytes,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<u32> = self.keys.iter().map(|(kid, _)| *kid).collect();
        f.debug_struct("KeyRing")
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Loads every `key-<kid>.pem` in `dir`.
    pub fn load_dir(dir: &Path) -> Result<KeyRing, KeyError> {
        let io = |source| KeyError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(kid) = kid_of(&path) else { continue };
            let pem = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
                path: path.clone(),
                source,
            })?;
            let keypair = KeyPair::from_private_key_pem(&pem).map_err(|e| KeyError::BadKey {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            keys.push((kid, keypair));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                dir: dir.to_owned(),
            });
        }
        Ok(Self::from_keys(keys))
    }

    /// One key generated in memory (kid = now in seconds), for a gateway without `keys_dir`.
    pub fn ephemeral() -> KeyRing {
        Self::from_keys(vec![(now_secs(), KeyPair::new())])
    }

    fn from_keys(mut keys: Vec<(u32, KeyPair)>) -> KeyRing {
        keys.sort_by_key(|(kid, _)| std::cmp::Reverse(*kid));
        let doc = KeySetDocument {
            keys: keys
                .iter()
                .map(|(kid, kp)| KeyDocument {
                    kid: *kid,
                    algorithm: "ed25519".to_owned(),
                    public_key: kp.public().to_bytes_hex(),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&doc).expect("key documents serialize");
        Self {
            keys,
            public_json: Bytes::from(json),
        }
    }

    /// Key id of the signing (newest) key; tokens carry it as `root_key_id`.
    pub fn signing_kid(&self) -> u32 {
        self.keys[0].0
    }

    pub(crate) fn signer(&self) -> (u32, &KeyPair) {
        let (kid, keypair) = &self.keys[0];
        (*kid, keypair)
    }

    /// All public keys, newest first.
    pub fn public_keys(&self) -> Vec<PublicKeyEntry> {
        self.keys
            .iter()
            .map(|(kid, kp)| PublicKeyEntry {
                kid: *kid,
                public_key: kp.public(),
            })
            .collect()
    }

    /// keys.json, the body of `GET /.well-known/portcullis/keys.json`: built once per ring.
    pub fn public_keys_json(&self) -> Bytes {
        self.public_json.clone()
    }

    /// A verifier trusting every key of this ring.
    pub fn verifier(&self) -> Verifier {
        Verifier::from_keys(self.public_keys())
    }
}

/// Writes a new key `key-<kid>.pem` (mode 0600) into `dir`, creating the directory (0700) if
/// needed. The kid is now in Unix seconds, or one past the newest key if that is later, so the
/// new key is always the newest and signs from the next reload on.
pub fn generate_key_file(dir: &Path) -> Result<(u32, PublicKey, PathBuf), KeyError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { path, source }
    };
    create_private_dir(dir).map_err(io(dir))?;
    let newest = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().and_then(|e| kid_of(&e.path())))
        .max();
    let kid = match newest {
        Some(newest) if newest >= now_secs() => {
            newest.checked_add(1).ok_or_else(|| KeyError::NoFreeKid {
                dir: dir.to_owned(),
            })?
        }
        _ => now_secs(),
    };
    let keypair = KeyPair::new();
    let pem = keypair.to_private_key_pem().map_err(|e| KeyError::BadKey {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let path = dir.join(format!("{PREFIX}{kid}{SUFFIX}"));
    // Written beside under a dot name (ignored by the loader), then renamed into place, so the
    // watcher never reads half a key.
    let staged = dir.join(format!(".{PREFIX}{kid}{SUFFIX}.tmp"));
    write_private(&staged, pem.as_bytes()).map_err(io(&staged))?;
    std::fs::rename(&staged, &path).map_err(io(&path))?;
    Ok((kid, keypair.public(), path))
}

fn kid_of(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn now_secs() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _, _) = generate_key_file(dir.path()).unwrap();
        let (second, public, path) = generate_key_file(dir.path()).unwrap();
        assert!(second > first, "a new key must get a higher kid");
        assert_eq!(
            path.file_name().unwrap(),
            format!("key-{second}.pem").as_str()
        );
        let ring = KeyRing::load_dir(dir.path()).unwrap();
        assert_eq!(ring.signing_kid(), second);
        assert_eq!(ring.public_keys()[0].public_key, public);
        assert_eq!(ring.public_keys().len(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (_, _, path) = generate_key_file(dir.path()).unwrap();
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn unrelated_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path()).unwrap();
        std::fs::write(dir.path().join("README"), "keys").unwrap();
        std::fs::write(dir.path().join(".key-9.pem.tmp"), "half").unwrap();
        std::fs::write(dir.path().join("key-abc.pem"), "junk").unwrap();
        assert_eq!(
            KeyRing::load_dir(dir.path()).unwrap().public_keys().len(),
            1
        );
    }

    #[test]
    fn broken_key_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_file(dir.path()).unwrap();
        std::fs::write(dir.path().join("key-7.pem"), "not a key").unwrap();
        let err = KeyRing::load_dir(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains("key-7.pem"), "{err}");
    }

    #[test]
    fn empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = KeyRing::load_dir(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("portcullis keygen"), "{err}");
    }

    #[test]
    fn keys_json_parses_back_into_a_verifier() {
        let ring = KeyRing::ephemeral();
        let json = ring.public_keys_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.contains("\"algorithm\": \"ed25519\""), "{text}");
        let verifier = Verifier::from_jwks_like_json(text).unwrap();
        assert_eq!(
            verifier.kids().collect::<Vec<_>>(),
            vec![ring.signing_kid()]
        );
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let ring = KeyRing::ephemeral();
        let debug = format!("{ring:?}");
        assert!(!debug.contains(&ring.public_keys()[0].public_key.to_bytes_hex()));
        assert!(debug.contains(&ring.signing_kid().to_string()));
    }
}
