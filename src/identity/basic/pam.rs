//! Checking system accounts through PAM (cargo feature `pam`, crate `nonstick`).
//!
//! One transaction per attempt: `pam_authenticate` with the username and password answered by
//! a non-interactive conversation, then `pam_acct_mgmt` (expired or locked accounts fail).
//! Runs on a blocking thread (PAM modules may sleep, e.g. `pam_faildelay`).

use std::ffi::{OsStr, OsString};

use nonstick::{
    AuthnFlags, ConversationAdapter, ErrorCode, Result as PamResult, Transaction,
    TransactionBuilder,
};

/// Answers PAM's prompts: plain prompts with the username, masked ones with the password.
struct Answers {
    username: String,
    password: String,
}

impl ConversationAdapter for Answers {
    fn prompt(&self, _request: impl AsRef<OsStr>) -> PamResult<OsString> {
        Ok(OsString::from(&self.username))
    }

    fn masked_prompt(&self, _request: impl AsRef<OsStr>) -> PamResult<OsString> {
        Ok(OsString::from(&self.password))
    }

    fn error_msg(&self, _message: impl AsRef<OsStr>) {}

    fn info_msg(&self, _message: impl AsRef<OsStr>) {}
}

/// Why PAM could not give an answer (as opposed to saying no).
#[derive(Debug, thiserror::Error)]
#[error("PAM service error: {0:?}")]
pub(crate) struct PamFailure(ErrorCode);

/// `Ok(true)` when `service` accepts the user and password, `Ok(false)` when it refuses them.
pub(crate) fn authenticate(
    service: &str,
    username: &str,
    password: &str,
) -> Result<bool, PamFailure> {
    let answers = Answers {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    let mut transaction = TransactionBuilder::new_with_service(service)
        .username(username)
        .build(answers.into_conversation())
        .map_err(PamFailure)?;
    let outcome = transaction
        .authenticate(AuthnFlags::empty())
        .and_then(|()| transaction.account_management(AuthnFlags::empty()));
    match outcome {
        Ok(()) => Ok(true),
        Err(
            ErrorCode::AuthenticationError
            | ErrorCode::UserUnknown
            | ErrorCode::PermissionDenied
            | ErrorCode::MaxTries
            | ErrorCode::AccountExpired
            | ErrorCode::CredentialsInsufficient
            | ErrorCode::NewAuthTokRequired
            | ErrorCode::AuthTokExpired,
        ) => Ok(false),
        Err(code) => Err(PamFailure(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `/etc/pam.d/<name>` for the test (needs root); `None` when it cannot.
    fn service_file(name: &str, body: &str) -> Option<String> {
        let path = std::path::Path::new("/etc/pam.d").join(name);
        std::fs::write(&path, body).ok()?;
        Some(name.to_owned())
    }

    #[test]
    fn permit_and_deny_services_answer_yes_and_no() {
        let Some(permit) = service_file(
            "portcullis-test-permit",
            "auth required pam_permit.so\naccount required pam_permit.so\n",
        ) else {
            eprintln!("skipped: cannot write /etc/pam.d (not root)");
            return;
        };
        let deny = service_file(
            "portcullis-test-deny",
            "auth required pam_deny.so\naccount required pam_permit.so\n",
        )
        .unwrap();
        assert!(authenticate(&permit, "anyone", "anything").unwrap());
        assert!(!authenticate(&deny, "anyone", "anything").unwrap());
    }

    #[test]
    fn pam_unix_checks_a_real_password() {
        // A user of the test's own, with a known password, checked by pam_unix.
        let user = "portcullis-pamtest";
        let Some(service) = service_file(
            "portcullis-test-unix",
            "auth required pam_unix.so\naccount required pam_unix.so\n",
        ) else {
            eprintln!("skipped: cannot write /etc/pam.d (not root)");
            return;
        };
        let exists = std::process::Command::new("id")
            .arg(user)
            .output()
            .is_ok_and(|o| o.status.success());
        if !exists {
            let created = std::process::Command::new("useradd")
                .args(["--no-create-home", "--shell", "/usr/sbin/nologin", user])
                .status()
                .is_ok_and(|s| s.success());
            if !created {
                eprintln!("skipped: useradd unavailable");
                return;
            }
        }
        let mut chpasswd = std::process::Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{user}:pam-test-pw-1\n").as_bytes())
            .unwrap();
        assert!(chpasswd.wait().unwrap().success());

        assert!(authenticate(&service, user, "pam-test-pw-1").unwrap());
        assert!(!authenticate(&service, user, "wrong").unwrap());
        assert!(!authenticate(&service, "portcullis-no-such-user", "x").unwrap());
    }
}
