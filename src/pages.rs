//! The HTML pages people see: login, error, logout and its confirmation, rendered with minijinja.
//!
//! Defaults are embedded in the binary from `templates/`; a `templates` directory named in the
//! config overrides any of them file by file (and may add partials the overrides `include` or
//! `extends`). Autoescaping is on for every template. Every template is compiled and test-rendered
//! at load, so a broken override is reported with its file and line before it serves; rendering
//! itself never fails the request: a render error falls back to a plain built-in page.
//!
//! ```
//! use portcullis::pages::{ErrorPage, Pages};
//!
//! let pages = Pages::load(None).unwrap();
//! let html = pages.error(&ErrorPage::for_status(403, "req-1"));
//! assert!(html.contains("req-1"));
//! ```
//!
//! API clients get JSON instead: the server asks [`wants_html`] and otherwise answers with
//! [`error_json`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

/// File names of the pages the gateway renders.
pub const LOGIN_TEMPLATE: &str = "login.html";
pub const ERROR_TEMPLATE: &str = "error.html";
pub const LOGOUT_TEMPLATE: &str = "logout.html";
pub const LOGOUT_CONFIRM_TEMPLATE: &str = "logout_confirm.html";

const DEFAULTS: [(&str, &str); 4] = [
    (LOGIN_TEMPLATE, include_str!("../templates/login.html")),
    (ERROR_TEMPLATE, include_str!("../templates/error.html")),
    (LOGOUT_TEMPLATE, include_str!("../templates/logout.html")),
    (
        LOGOUT_CONFIRM_TEMPLATE,
        include_str!("../templates/logout_confirm.html"),
    ),
];

/// Variables of `error.html`: the names Panel's auth error template uses.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ErrorPage {
    pub status: u16,
    /// Short heading, e.g. "Access denied".
    pub title: String,
    /// Category shown next to the status, e.g. "Forbidden".
    pub error_type: String,
    /// One sentence for the person reading it.
    pub error: String,
    /// Further detail or what to do next.
    pub error_msg: String,
    pub request_id: String,
}

impl ErrorPage {
    /// A page with the standard wording for `status` (403, 404, 429, 502, …).
    pub fn for_status(status: u16, request_id: &str) -> ErrorPage {
        let (title, error_type, error, error_msg) = match status {
            400 => (
                "Bad request",
                "Bad Request",
                "The request could not be understood.",
                "Go back and try again.",
            ),
            401 => (
                "Sign-in required",
                "Unauthorized",
                "You need to sign in to see this page.",
                "Sign in and try again.",
            ),
            403 => (
                "Access denied",
                "Forbidden",
                "You are signed in, but the access policy does not allow this request.",
                "If you think you should have access, ask the people who run this service.",
            ),
            404 => (
                "Not found",
                "Not Found",
                "Nothing is served at this address.",
                "Check the address and try again.",
            ),
            429 => (
                "Too many attempts",
                "Too Many Requests",
                "There were too many failed sign-in attempts.",
                "Wait a little and try again.",
            ),
            502..=504 => (
                "Service unavailable",
                "Bad Gateway",
                "The application behind the gateway did not answer.",
                "Try again in a moment.",
            ),
            500..=599 => (
                "Something went wrong",
                "Gateway Error",
                "The gateway could not complete the request.",
                "Try again in a moment.",
            ),
            _ => ("Error", "Error", "The request failed.", ""),
        };
        ErrorPage {
            status,
            title: title.into(),
            error_type: error_type.into(),
            error: error.into(),
            error_msg: error_msg.into(),
            request_id: request_id.into(),
        }
    }
}

/// One "Continue with …" button on the login page.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderButton {
    /// Configured provider name (bounded; used in URLs and metrics).
    pub name: String,
    /// What the button says, e.g. "Google".
    pub display_name: String,
    /// Where the button goes, e.g. `/oauth2/start?provider=google&rd=%2Fpanel`.
    pub start_url: String,
}

/// Variables of `login.html`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoginPage {
    pub providers: Vec<ProviderButton>,
    /// Show the username/password form (basic auth is configured).
    pub basic_form: bool,
    /// Hidden `csrf_token` field of the form.
    pub csrf_token: Option<String>,
    /// Message shown above the form, e.g. after a failed attempt.
    pub error: Option<String>,
    /// Where to go after login (already validated by the server), posted back as `rd`.
    pub rd: String,
    /// The form's `action`, e.g. `/login`.
    pub login_action: String,
}

/// Variables of `logout.html`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogoutPage {
    pub login_url: String,
}

/// Variables of `logout_confirm.html`, shown when a logout request may not be the person's own
/// (another site's link or image): a button that posts to `logout_action`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogoutConfirmPage {
    /// The form's `action`: `/oauth2/logout`.
    pub logout_action: String,
    /// Where "Stay signed in" goes.
    pub cancel_url: String,
}

/// A template that could not be read, compiled or test-rendered.
#[derive(Debug)]
pub struct TemplateIssue {
    /// The override file, or `templates/<name>` for a built-in default.
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Why [`Pages::load`] failed; lists every broken template at once.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("cannot read the templates directory {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} broken template(s):\n{}", .0.len(), join_lines(.0))]
    Templates(Vec<TemplateIssue>),
}

fn join_lines(issues: &[TemplateIssue]) -> String {
    issues
        .iter()
        .map(|issue| format!("  {issue}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The compiled page templates; cheap to share behind an `Arc`.
pub struct Pages {
    env: Environment<'static>,
}

impl fmt::Debug for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pages")
    }
}

impl Pages {
    /// Compiles the built-in pages, replaced by any same-named file in `override_dir`.
    ///
    /// Every `*.html` file of the directory is loaded (so overrides can share partials). Each
    /// page is test-rendered with sample values; all problems are reported together.
    pub fn load(override_dir: Option<&Path>) -> Result<Pages, PageError> {
        let mut env = Environment::new();
        // Every template is HTML whatever its file name: autoescape is never off.
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        let mut origin: Vec<(String, PathBuf)> = Vec::new();
        let mut issues = Vec::new();

        let mut sources: Vec<(String, String, PathBuf)> = DEFAULTS
            .iter()
            .map(|(name, source)| {
                let file = Path::new("templates").join(name);
                ((*name).to_owned(), (*source).to_owned(), file)
            })
            .collect();
        if let Some(dir) = override_dir {
            for (name, source, file) in read_overrides(dir, &mut issues)? {
                sources.retain(|(existing, _, _)| *existing != name);
                sources.push((name, source, file));
            }
        }
        for (name, source, file) in sources {
            if let Err(err) = env.add_template_owned(name.clone(), source) {
                issues.push(issue_from(&file, &err));
            }
            origin.push((name, file));
        }
        let file_of = |name: &str| {
            origin
                .iter()
                .find(|(candidate, _)| candidate == name)
                .map(|(_, file)| file.clone())
                .unwrap_or_else(|| PathBuf::from(name))
        };
        if issues.is_empty() {
            let pages = Pages { env };
            for (name, result) in pages.sample_renders() {
                if let Err(err) = result {
                    let file = err.name().map_or_else(|| file_of(name), file_of);
                    issues.push(issue_from(&file, &err));
                }
            }
            if issues.is_empty() {
                return Ok(pages);
            }
        }
        Err(PageError::Templates(issues))
    }

    /// The error page for a browser. Never fails: a render error yields a plain built-in page.
    pub fn error(&self, page: &ErrorPage) -> String {
        self.render(ERROR_TEMPLATE, page)
            .unwrap_or_else(|| fallback_error(page))
    }

    /// The login page with provider buttons and/or the basic-auth form.
    pub fn login(&self, page: &LoginPage) -> String {
        self.render(LOGIN_TEMPLATE, page).unwrap_or_else(|| {
            self.error(&ErrorPage {
                title: "Sign in".into(),
                ..ErrorPage::for_status(500, "")
            })
        })
    }

    /// The "signed out" page.
    pub fn logout(&self, page: &LogoutPage) -> String {
        self.render(LOGOUT_TEMPLATE, page).unwrap_or_else(|| {
            format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed out</title></head>\
                 <body><h1>You are signed out</h1><p><a href=\"{}\">Sign in again</a></p></body></html>",
                escape_html(&page.login_url)
            )
        })
    }

    /// The "sign out?" page with its one-button form.
    pub fn logout_confirm(&self, page: &LogoutConfirmPage) -> String {
        self.render(LOGOUT_CONFIRM_TEMPLATE, page).unwrap_or_else(|| {
            format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign out?</title></head>\
                 <body><h1>Sign out?</h1><form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form>\
                 <p><a href=\"{}\">Stay signed in</a></p></body></html>",
                escape_html(&page.logout_action),
                escape_html(&page.cancel_url)
            )
        })
    }

    fn render<T: Serialize>(&self, name: &str, ctx: &T) -> Option<String> {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.env.get_template(name)?.render(Serde(ctx))
        }));
        match outcome {
            Ok(Ok(html)) => Some(html),
            Ok(Err(err)) => {
                tracing::error!(template = name, error = %err, "page failed to render; serving the built-in fallback");
                None
            }
            Err(_) => {
                tracing::error!(
                    template = name,
                    "page rendering panicked; serving the built-in fallback"
                );
                None
            }
        }
    }

    fn sample_renders(&self) -> Vec<(&'static str, Result<String, minijinja::Error>)> {
        let render = |name: &'static str, ctx: minijinja::Value| {
            (
                name,
                self.env
                    .get_template(name)
                    .and_then(|template| template.render(ctx)),
            )
        };
        let login = LoginPage {
            providers: vec![ProviderButton {
                name: "google".into(),
                display_name: "Google".into(),
                start_url: "/oauth2/start?provider=google".into(),
            }],
            basic_form: true,
            csrf_token: Some("token".into()),
            error: Some("sample".into()),
            rd: "/".into(),
            login_action: "/login".into(),
        };
        vec![
            render(
                ERROR_TEMPLATE,
                Serde(&ErrorPage::for_status(403, "sample")).into(),
            ),
            render(LOGIN_TEMPLATE, Serde(&login).into()),
            render(
                LOGOUT_TEMPLATE,
                Serde(&LogoutPage {
                    login_url: "/login".into(),
                })
                .into(),
            ),
            render(
                LOGOUT_CONFIRM_TEMPLATE,
                Serde(&LogoutConfirmPage {
                    logout_action: "/oauth2/logout".into(),
                    cancel_url: "/".into(),
                })
                .into(),
            ),
        ]
    }
}

fn read_overrides(
    dir: &Path,
    issues: &mut Vec<TemplateIssue>,
) -> Result<Vec<(String, String, PathBuf)>, PageError> {
    let read_err = |source| PageError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".html") || !path.is_file() {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(source) => found.push((name, source, path)),
            Err(err) => issues.push(TemplateIssue {
                file: path,
                line: None,
                message: format!("cannot read: {err}"),
            }),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

fn issue_from(file: &Path, err: &minijinja::Error) -> TemplateIssue {
    let message = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    TemplateIssue {
        file: file.to_owned(),
        line: err.line(),
        message,
    }
}

fn fallback_error(page: &ErrorPage) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\
         <body><h1>{status} {title}</h1><p>{error}</p><p>{error_msg}</p><p>Request ID: <code>{request_id}</code></p></body></html>",
        status = page.status,
        title = escape_html(&page.title),
        error = escape_html(&page.error),
        error_msg = escape_html(&page.error_msg),
        request_id = escape_html(&page.request_id),
    )
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// The JSON error body for API clients: `{"error":…,"status":…,"request_id":…}`.
pub fn error_json(status: u16, error: &str, request_id: &str) -> String {
    serde_json::json!({ "error": error, "status": status, "request_id": request_id }).to_string()
}

/// Whether the client is a browser navigating (HTML page) rather than an API or XHR client (JSON).
///
/// True when an `Accept` header lists `text/html` and `X-Requested-With` is not `XMLHttpRequest`.
pub fn wants_html(headers: &http::HeaderMap) -> bool {
    // A `HeaderName` constant: a `&str` key would be parsed on every request.
    const X_REQUESTED_WITH: http::HeaderName = http::HeaderName::from_static("x-requested-with");
    let xhr = headers
        .get_all(X_REQUESTED_WITH)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"XMLHttpRequest"));
    if xhr {
        return false;
    }
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/html") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn default_pages_render_with_their_variables() {
        let pages = Pages::load(None).unwrap();
        let html = pages.error(&ErrorPage {
            status: 403,
            title: "Access denied".into(),
            error_type: "Forbidden".into(),
            error: "No rule admits you".into(),
            error_msg: "Ask an admin".into(),
            request_id: "abc123".into(),
        });
        for needle in [
            "403",
            "Access denied",
            "Forbidden",
            "No rule admits you",
            "Ask an admin",
            "abc123",
        ] {
            assert!(html.contains(needle), "missing {needle}");
        }
        let login = pages.login(&LoginPage {
            providers: vec![ProviderButton {
                name: "google".into(),
                display_name: "Google".into(),
                start_url: "/oauth2/start?provider=google&rd=%2F".into(),
            }],
            basic_form: true,
            csrf_token: Some("tok-1".into()),
            error: None,
            rd: "/panel".into(),
            login_action: "/login".into(),
        });
        assert!(login.contains("Continue with Google"));
        assert!(login.contains("&#x2f;oauth2&#x2f;start?provider=google&amp;rd=%2F"));
        assert!(login.contains(r#"name="csrf_token" value="tok-1""#));
        assert!(login.contains(r#"action="&#x2f;login""#));
        let logout = pages.logout(&LogoutPage {
            login_url: "/login".into(),
        });
        assert!(logout.contains(r#"href="&#x2f;login""#));
    }

    #[test]
    fn injected_script_in_error_message_is_escaped() {
        let pages = Pages::load(None).unwrap();
        let html = pages.error(&ErrorPage {
            error_msg: "<script>alert(1)</script>".into(),
            error: "\"><img src=x onerror=alert(1)>".into(),
            ..ErrorPage::for_status(403, "r")
        });
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("<img src=x"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        let login = pages.login(&LoginPage {
            error: Some("<script>x</script>".into()),
            rd: "\"><script>y</script>".into(),
            basic_form: true,
            ..LoginPage::default()
        });
        assert!(!login.contains("<script>"));
    }

    #[test]
    fn custom_template_override_renders() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "error.html",
            "{% include \"brand.html\" %}<h1>{{ status }} {{ title }}</h1><p>{{ error_msg }}</p>",
        );
        write(dir.path(), "brand.html", "<header>ACME</header>");
        let pages = Pages::load(Some(dir.path())).unwrap();
        let html = pages.error(&ErrorPage {
            error_msg: "<b>x</b>".into(),
            ..ErrorPage::for_status(403, "r")
        });
        assert_eq!(
            html,
            "<header>ACME</header><h1>403 Access denied</h1><p>&lt;b&gt;x&lt;&#x2f;b&gt;</p>"
        );
        // Pages without an override keep the default.
        assert!(pages.logout(&LogoutPage::default()).contains("signed out"));
    }

    #[test]
    fn template_syntax_error_is_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "login.html",
            "<html>\n<body>\n{% if error %}\n<p>{{ error }</p>\n{% endif %}\n",
        );
        let err = Pages::load(Some(dir.path())).unwrap_err();
        let PageError::Templates(issues) = &err else {
            panic!("unexpected {err}")
        };
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].file, dir.path().join("login.html"));
        assert_eq!(issues[0].line, Some(4));
        let shown = err.to_string();
        assert!(
            shown.contains(&format!("{}:4:", dir.path().join("login.html").display())),
            "{shown}"
        );
    }

    #[test]
    fn template_runtime_error_is_reported_at_load() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "logout.html",
            "<p>\n{{ login_url | nosuchfilter }}",
        );
        let err = Pages::load(Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("logout.html:2:"), "{err}");
    }

    #[test]
    fn missing_override_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Pages::load(Some(&dir.path().join("nope"))).unwrap_err();
        assert!(matches!(err, PageError::Read { .. }));
    }

    #[test]
    fn render_failure_falls_back_to_a_plain_page() {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_template(ERROR_TEMPLATE, "{{ range(1, 2, 0) }}")
            .unwrap();
        let pages = Pages { env };
        let html = pages.error(&ErrorPage {
            error: "<b>".into(),
            ..ErrorPage::for_status(502, "rid-9")
        });
        assert!(html.contains("502 Service unavailable"));
        assert!(html.contains("rid-9"));
        assert!(html.contains("&lt;b&gt;"));
        // A missing template falls back too.
        let login = pages.login(&LoginPage::default());
        assert!(login.contains("500"));
        assert!(
            pages
                .logout(&LogoutPage {
                    login_url: "/l".into()
                })
                .contains("href=\"/l\"")
        );
    }

    #[test]
    fn error_json_has_error_status_and_request_id() {
        let body: serde_json::Value =
            serde_json::from_str(&error_json(429, "rate \"limited\"", "r-1")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "rate \"limited\"", "status": 429, "request_id": "r-1"})
        );
    }

    #[test]
    fn wants_html_only_for_browser_navigation() {
        type Case = (&'static str, &'static [(&'static str, &'static str)], bool);
        let cases: &[Case] = &[
            (
                "browser",
                &[(
                    "accept",
                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                )],
                true,
            ),
            ("api json", &[("accept", "application/json")], false),
            ("no accept", &[], false),
            ("wildcard only", &[("accept", "*/*")], false),
            (
                "xhr",
                &[
                    ("accept", "text/html"),
                    ("x-requested-with", "XMLHttpRequest"),
                ],
                false,
            ),
            ("html refused", &[("accept", "text/html;q=0, */*")], false),
            ("case", &[("accept", "Text/HTML")], true),
        ];
        for (name, headers, expected) in cases {
            let mut map = http::HeaderMap::new();
            for (k, v) in *headers {
                map.append(*k, HeaderValue::from_static(v));
            }
            assert_eq!(wants_html(&map), *expected, "{name}");
        }
    }
}
