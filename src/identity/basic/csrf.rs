//! CSRF protection of the login form: a signed double-submit cookie.
//!
//! The login page sets a cookie holding a random nonce and its issue time
//! (`<nonce>.<unix seconds>`); the form carries `HMAC-SHA256(key, "portcullis-csrf-v1" ‖ cookie)`
//! in its hidden `csrf_token` field. A POST is accepted only when the cookie is present, not
//! older than [`CSRF_TTL`], and the form token is its MAC (checked in constant time). A cross-site
//! page can neither read the cookie nor compute the MAC, so it cannot forge the pair; the cookie
//! is `SameSite=Lax; HttpOnly`, and `__Host-` prefixed over HTTPS so a sibling subdomain cannot
//! plant its own.
//!
//! The keys are derived from the session secrets (HKDF, a purpose of their own), so replicas that
//! share the secret accept each other's forms and a restart keeps open forms valid; the first
//! secret signs, every secret verifies (rotation). With no secret configured the session key is
//! ephemeral, and so is this one: after a restart an open form fails once with "form expired,
//! try again" and the re-render issues a fresh pair.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Name of the hidden form field carrying the token.
pub const CSRF_FIELD: &str = "csrf_token";
/// Cookie name over plain HTTP.
pub const CSRF_COOKIE: &str = "portcullis_csrf";
/// Cookie name over HTTPS (`__Host-` cookies must be `Secure`, `Path=/`, without `Domain`).
pub const CSRF_COOKIE_SECURE: &str = "__Host-portcullis_csrf";
/// How long a login form stays valid.
pub const CSRF_TTL: Duration = Duration::from_secs(2 * 3600);

const CONTEXT: &[u8] = b"portcullis-csrf-v1\0";
/// Tolerated clock step backwards for a cookie "issued in the future".
const SKEW_SECS: u64 = 60;

/// What the server puts on the login page response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrfToken {
    /// Value of the `Set-Cookie` header to send with the login page.
    pub set_cookie: String,
    /// Value of the hidden `csrf_token` form field (`LoginPage::csrf_token`).
    pub form_token: String,
}

/// Why a login POST failed the CSRF check. All map to 403 "form expired, reload and try again".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    #[error("the login form's CSRF cookie or token is missing")]
    Missing,
    #[error("the login form has expired")]
    Expired,
    #[error("the login form's CSRF token does not match")]
    Forged,
}

/// The purpose the CSRF keys are derived for ([`crate::session::SessionCodec::derived_keys`]).
pub const CSRF_KEY_PURPOSE: &str = "portcullis login form csrf v1";

/// Issues tokens with the first key and accepts them under any.
pub(crate) struct Csrf {
    keys: Vec<[u8; 32]>,
}

impl Csrf {
    /// `keys` sign (the first) and verify (all); with none, one random key for this process.
    pub(crate) fn new(keys: Vec<[u8; 32]>) -> Self {
        let keys = if keys.is_empty() {
            vec![rand::random()]
        } else {
            keys
        };
        Csrf { keys }
    }

    fn mac(key: &[u8; 32], cookie_value: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        mac.update(CONTEXT);
        mac.update(cookie_value.as_bytes());
        mac
    }

    /// A token pair; reuses a still-fresh cookie from the request so several open tabs agree.
    pub(crate) fn issue(&self, cookies: &[&str], secure: bool, now_unix: u64) -> CsrfToken {
        let fresh = cookies.iter().copied().find(|value| {
            issued_at(value).is_some_and(|issued| {
                issued <= now_unix + SKEW_SECS
                    && now_unix.saturating_sub(issued) < CSRF_TTL.as_secs() / 2
            })
        });
        let cookie_value = match fresh {
            Some(value) => value.to_owned(),
            None => format!(
                "{}.{now_unix}",
                URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
            ),
        };
        let form_token = URL_SAFE_NO_PAD.encode(
            Self::mac(&self.keys[0], &cookie_value)
                .finalize()
                .into_bytes(),
        );
        let (name, secure_attr) = if secure {
            (CSRF_COOKIE_SECURE, "; Secure")
        } else {
            (CSRF_COOKIE, "")
        };
        CsrfToken {
            set_cookie: format!(
                "{name}={cookie_value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure_attr}",
                CSRF_TTL.as_secs()
            ),
            form_token,
        }
    }

    /// Accepts when one of the request's CSRF cookies is fresh and `form_token` is its MAC.
    pub(crate) fn check(
        &self,
        cookies: &[&str],
        form_token: Option<&str>,
        now_unix: u64,
    ) -> Result<(), CsrfError> {
        let form_token = form_token
            .filter(|t| !t.is_empty())
            .ok_or(CsrfError::Missing)?;
        if cookies.is_empty() {
            return Err(CsrfError::Missing);
        }
        let tag = URL_SAFE_NO_PAD
            .decode(form_token)
            .map_err(|_| CsrfError::Forged)?;
        let mut outcome = Err(CsrfError::Forged);
        for cookie in cookies {
            let signed = self
                .keys
                .iter()
                .any(|key| Self::mac(key, cookie).verify_slice(&tag).is_ok());
            if !signed {
                continue;
            }
            let fresh = issued_at(cookie).is_some_and(|issued| {
                issued <= now_unix + SKEW_SECS
                    && now_unix.saturating_sub(issued) <= CSRF_TTL.as_secs()
            });
            if fresh {
                return Ok(());
            }
            outcome = Err(CsrfError::Expired);
        }
        outcome
    }
}

fn issued_at(cookie_value: &str) -> Option<u64> {
    let (nonce, issued) = cookie_value.rsplit_once('.')?;
    (!nonce.is_empty()).then_some(())?;
    issued.parse().ok()
}

/// The values of our CSRF cookies in a request's `Cookie` headers.
pub(crate) fn cookie_values(headers: &http::HeaderMap) -> Vec<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == CSRF_COOKIE || *name == CSRF_COOKIE_SECURE)
        .map(|(_, value)| value.trim())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_355_820;

    fn cookie_of(token: &CsrfToken) -> String {
        let (pair, _) = token.set_cookie.split_once(';').unwrap();
        pair.split_once('=').unwrap().1.to_owned()
    }

    #[test]
    fn issued_pair_passes() {
        let csrf = Csrf::new(Vec::new());
        let token = csrf.issue(&[], false, NOW);
        assert!(token.set_cookie.starts_with("portcullis_csrf="));
        assert!(token.set_cookie.contains("HttpOnly; SameSite=Lax"));
        let cookie = cookie_of(&token);
        assert_eq!(
            csrf.check(&[&cookie], Some(&token.form_token), NOW + 10),
            Ok(())
        );
    }

    #[test]
    fn missing_forged_and_expired_are_refused() {
        let csrf = Csrf::new(Vec::new());
        let token = csrf.issue(&[], true, NOW);
        assert!(token.set_cookie.starts_with("__Host-portcullis_csrf="));
        assert!(token.set_cookie.ends_with("; Secure"));
        let cookie = cookie_of(&token);
        type Case<'a> = (&'a str, &'a [&'a str], Option<&'a str>, u64, CsrfError);
        let cases: &[Case<'_>] = &[
            ("no token", &[&cookie], None, NOW, CsrfError::Missing),
            ("empty token", &[&cookie], Some(""), NOW, CsrfError::Missing),
            (
                "no cookie",
                &[],
                Some(&token.form_token),
                NOW,
                CsrfError::Missing,
            ),
            (
                "forged token",
                &[&cookie],
                Some("AAAA"),
                NOW,
                CsrfError::Forged,
            ),
            ("not base64", &[&cookie], Some("!!"), NOW, CsrfError::Forged),
            (
                "other cookie",
                &["bm9uY2U.1795355820"],
                Some(&token.form_token),
                NOW,
                CsrfError::Forged,
            ),
            (
                "expired",
                &[&cookie],
                Some(&token.form_token),
                NOW + CSRF_TTL.as_secs() + 1,
                CsrfError::Expired,
            ),
        ];
        for (name, cookies, form, now, expected) in cases {
            assert_eq!(csrf.check(cookies, *form, *now), Err(*expected), "{name}");
        }
        let other_process = Csrf::new(Vec::new());
        assert_eq!(
            other_process.check(&[&cookie], Some(&token.form_token), NOW),
            Err(CsrfError::Forged)
        );
    }

    #[test]
    fn replicas_sharing_keys_accept_each_other_s_forms_through_a_rotation() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let before = Csrf::new(vec![old]);
        let token = before.issue(&[], false, NOW);
        let cookie = cookie_of(&token);
        let check = |csrf: &Csrf| csrf.check(&[&cookie], Some(&token.form_token), NOW);
        assert_eq!(check(&Csrf::new(vec![old])), Ok(()), "another replica");
        assert_eq!(check(&Csrf::new(vec![new, old])), Ok(()), "mid-rotation");
        assert_eq!(check(&Csrf::new(vec![new])), Err(CsrfError::Forged));
        // A rotated replica signs with the new key only.
        let after = Csrf::new(vec![new, old]).issue(&[], false, NOW);
        assert_eq!(
            Csrf::new(vec![new]).check(&[&cookie_of(&after)], Some(&after.form_token), NOW),
            Ok(())
        );
    }

    #[test]
    fn fresh_cookie_is_reused_and_old_one_replaced() {
        let csrf = Csrf::new(Vec::new());
        let first = csrf.issue(&[], false, NOW);
        let cookie = cookie_of(&first);
        let again = csrf.issue(&[&cookie], false, NOW + 60);
        assert_eq!(again, first);
        let later = csrf.issue(&[&cookie], false, NOW + CSRF_TTL.as_secs());
        assert_ne!(cookie_of(&later), cookie);
    }

    #[test]
    fn cookie_values_are_read_from_cookie_headers() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            http::header::COOKIE,
            "a=1; portcullis_csrf=x.1; __Host-portcullis_csrf=y.2"
                .parse()
                .unwrap(),
        );
        headers.append(http::header::COOKIE, "portcullis_csrfx=z".parse().unwrap());
        assert_eq!(cookie_values(&headers), vec!["x.1", "y.2"]);
    }
}
