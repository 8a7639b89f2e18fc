//! The credentials file: usernames with argon2id hashes and the identity facts policies use.
//!
//! ```yaml
//! users:
//!   alice:
//!     password_hash: "$argon2id$v=19$m=19456,t=2,p=1$…"   # from `portcullis hash-password`
//!     email: alice@example.com
//!     email_verified: true        # only then do domain rules match
//!     name: Alice Example
//!     groups: [analysts]
//! ```
//!
//! A plain-text `password:` (or a `password_hash` that is not an argon2 PHC string) is refused at
//! load with the line and the command that makes a hash. Every problem is reported at once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHasher, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::identity::Identity;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    users: BTreeMap<String, Spanned<RawUser>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    password_hash: Option<Spanned<String>>,
    /// Only read to refuse it with a helpful message.
    #[serde(default)]
    password: Option<Spanned<String>>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// One problem in the credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialIssue {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Why a credentials file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", Issues(path, issues))]
    Invalid {
        path: PathBuf,
        issues: Vec<CredentialIssue>,
    },
}

struct Issues<'a>(&'a Path, &'a [CredentialIssue]);

impl fmt::Display for Issues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.1.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.0.display(),
                issue.line,
                issue.column,
                issue.message
            )?;
        }
        Ok(())
    }
}

/// A user of the credentials file.
#[derive(Clone)]
pub(crate) struct UserEntry {
    /// Validated argon2 PHC string.
    pub(crate) hash: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    groups: Vec<String>,
}

impl UserEntry {
    pub(crate) fn identity(&self, username: &str) -> Identity {
        Identity {
            subject: username.to_owned(),
            email: self.email.clone(),
            email_verified: self.email_verified && self.email.is_some(),
            name: self.name.clone(),
            preferred_username: Some(username.to_owned()),
            groups: self.groups.clone(),
            provider: super::PROVIDER.to_owned(),
            claims: serde_json::Map::new(),
        }
    }
}

/// A parsed, validated credentials file.
#[derive(Default)]
pub(crate) struct Credentials {
    pub(crate) users: HashMap<String, UserEntry>,
}

impl Credentials {
    /// Parses and validates `text` read from `path` (the path only names errors).
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Credentials, CredentialsError> {
        let invalid = |issues| CredentialsError::Invalid {
            path: path.to_owned(),
            issues,
        };
        let raw: RawFile = serde_saphyr::from_str(text).map_err(|err| {
            let (line, column) = err
                .location()
                .map_or((0, 0), |loc| (loc.line(), loc.column()));
            invalid(vec![CredentialIssue {
                line,
                column,
                message: first_line(&err.to_string()),
            }])
        })?;
        let mut users = HashMap::with_capacity(raw.users.len());
        let mut issues = Vec::new();
        for (username, spanned) in raw.users {
            let at = &spanned.referenced;
            let user = spanned.value;
            let issue = |loc: &serde_saphyr::Location, message: String| CredentialIssue {
                line: loc.line(),
                column: loc.column(),
                message,
            };
            if let Err(why) = super::check_username(&username) {
                issues.push(issue(at, format!("username {username:?} {why}")));
                continue;
            }
            if let Some(plain) = &user.password {
                issues.push(issue(
                    &plain.referenced,
                    format!(
                        "users.{username}.password: plain-text passwords are refused; run \
                         `portcullis hash-password` and put its output in `password_hash:` instead"
                    ),
                ));
                continue;
            }
            let Some(hash) = user.password_hash else {
                issues.push(issue(
                    at,
                    format!(
                        "users.{username}: `password_hash` is missing; run `portcullis hash-password` to make one"
                    ),
                ));
                continue;
            };
            if let Err(why) = check_hash(&hash.value) {
                issues.push(issue(
                    &hash.referenced,
                    format!("users.{username}.password_hash: {why}"),
                ));
                continue;
            }
            users.insert(
                username,
                UserEntry {
                    hash: hash.value,
                    email: user.email,
                    email_verified: user.email_verified,
                    name: user.name,
                    groups: user.groups,
                },
            );
        }
        if issues.is_empty() {
            Ok(Credentials { users })
        } else {
            Err(invalid(issues))
        }
    }

    /// Argon2 parameters of the stored hashes (the first user's), so a dummy verification for an
    /// unknown username costs the same as a real one.
    pub(crate) fn typical_params(&self) -> Option<Params> {
        let mut names: Vec<&String> = self.users.keys().collect();
        names.sort();
        let entry = self.users.get(*names.first()?)?;
        let parsed = PasswordHash::new(&entry.hash).ok()?;
        Params::try_from(&parsed).ok()
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).to_owned()
}

fn check_hash(hash: &str) -> Result<(), String> {
    let Some(rest) = hash.strip_prefix('$') else {
        return Err(
            "this looks like a plain-text password, which is refused; run \
                    `portcullis hash-password` and paste its output here"
                .to_owned(),
        );
    };
    let algorithm = rest.split('$').next().unwrap_or_default();
    if !algorithm.starts_with("argon2") {
        return Err(format!(
            "algorithm `{algorithm}` is not supported; use argon2id hashes from `portcullis hash-password`"
        ));
    }
    let parsed = PasswordHash::new(hash).map_err(|_| {
        "not a valid PHC hash string; run `portcullis hash-password` to make one".to_owned()
    })?;
    Algorithm::new(parsed.algorithm.as_str())
        .map_err(|_| format!("unknown argon2 variant `{algorithm}`"))?;
    Params::try_from(&parsed).map_err(|err| format!("invalid argon2 parameters: {err}"))?;
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the hash has no salt or output; run `portcullis hash-password`".into());
    }
    Ok(())
}

/// Hashes `password` as an argon2id PHC string with `params` and a random salt.
pub(crate) fn hash_with(
    password: &[u8],
    params: Params,
) -> Result<String, argon2::password_hash::Error> {
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    Ok(hasher.hash_password(password)?.to_string())
}
