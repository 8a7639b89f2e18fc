//! The AEAD: XChaCha20-Poly1305 with keys from HKDF-SHA256, several secrets for rotation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

use super::SessionError;

/// Format version, the first byte of every sealed value.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const SALT: &[u8] = b"portcullis sealed cookie v1";

/// Secrets kept as HKDF pseudo-random keys; one AEAD key per (secret, purpose).
#[derive(Clone)]
pub(super) struct Sealer {
    secrets: Vec<Hkdf<Sha256>>,
}

impl Sealer {
    /// `secrets` must not be empty; the first seals.
    pub(super) fn new(secrets: &[Vec<u8>]) -> Sealer {
        Sealer {
            secrets: secrets
                .iter()
                .map(|s| Hkdf::<Sha256>::new(Some(SALT), s))
                .collect(),
        }
    }

    fn key(hkdf: &Hkdf<Sha256>, purpose: &str) -> [u8; 32] {
        let mut key = [0u8; 32];
        hkdf.expand(purpose.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }

    fn cipher(hkdf: &Hkdf<Sha256>, purpose: &str) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Self::key(hkdf, purpose).into())
    }

    /// A 32-byte key for `purpose` from each secret, the sealing one first.
    pub(super) fn keys(&self, purpose: &str) -> Vec<[u8; 32]> {
        self.secrets
            .iter()
            .map(|hkdf| Self::key(hkdf, purpose))
            .collect()
    }

    /// base64url(version ‖ nonce ‖ ciphertext), authenticated together with `aad`.
    pub(super) fn seal(
        &self,
        purpose: &str,
        aad: &[u8],
        plain: &[u8],
    ) -> Result<String, SessionError> {
        let first = self
            .secrets
            .first()
            .ok_or(SessionError::Seal("no secret"))?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let aad = [&[VERSION][..], aad].concat();
        let ciphertext = Self::cipher(first, purpose)
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| SessionError::Seal("encryption failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext if any secret opens it; `None` for anything tampered, truncated or foreign.
    pub(super) fn open(&self, purpose: &str, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < 1 + NONCE_LEN + 16 || raw[0] != VERSION {
            return None;
        }
        let nonce = XNonce::try_from(&raw[1..1 + NONCE_LEN]).ok()?;
        let aad = [&[VERSION][..], aad].concat();
        self.secrets.iter().find_map(|hkdf| {
            Self::cipher(hkdf, purpose)
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &raw[1 + NONCE_LEN..],
                        aad: &aad,
                    },
                )
                .ok()
        })
    }
}
