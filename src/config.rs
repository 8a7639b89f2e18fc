//! `gateway.yaml` → [`Config`]: `${ENV}` expansion, parsing, and validation that reports every
//! error at once with file, line and key.
//!
//! Raw serde types are turned once into a validated [`Config`]; nothing after this module
//! re-checks addresses, URLs or paths.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::capability::CapabilityConfig;
use crate::identity::basic::BasicAuthConfig;
use crate::identity::headers::IdentityHeaderNames;
use crate::identity::providers::ProviderConfig;
use crate::identity::redirect::allowed_host_entry;
use crate::session::SessionConfig;
use crate::telemetry::DecisionLogConfig;

/// The validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config came from (`None` for the embedded default); relative paths are resolved.
    pub source: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    /// The URL users reach the gateway at; redirect URIs and cookie `Secure` derive from it.
    pub public_url: url::Url,
    /// No `public_url` was configured: it was derived from the first `listen` address and
    /// follows it when `serve --listen` replaces the addresses.
    public_url_follows_listen: bool,
    /// Policy directory, watched for changes; `None` serves the embedded example policies.
    pub policies: Option<PathBuf>,
    /// Directory whose templates override the embedded defaults.
    pub templates: Option<PathBuf>,
    pub tls: Option<TlsConfig>,
    pub upstream: UpstreamConfig,
    pub headers: HeaderConfig,
    /// Names of the identity headers the upstream receives.
    pub identity_headers: IdentityHeaderNames,
    pub session: SessionConfig,
    pub capability: CapabilityConfig,
    pub providers: Vec<ProviderConfig>,
    pub basic_auth: Option<BasicAuthConfig>,
    /// Hosts besides `public_url`'s that a login's `rd` may send the browser to, normalised for
    /// [`safe_redirect`](crate::identity::redirect::safe_redirect): `host`, `host:port`, or
    /// `.example.com` (written `*.example.com`) for any subdomain.
    pub allowed_redirect_hosts: Vec<String>,
    /// A separate listener for `/metrics`; `None` serves it on the main listener.
    pub metrics_listen: Option<SocketAddr>,
    pub decision_log: DecisionLogConfig,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's headers (and an idle keep-alive connection
    /// may wait for the next request, an HTTP/2 one with nothing in flight) before the
    /// connection is closed.
    pub client_header_timeout: Duration,
    /// Threads serving connections, each with its own event loop and upstream pool.
    pub workers: usize,
}

/// `tls:` — certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `upstream:` — how the gateway talks to the apps behind it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time until the upstream's response headers arrive; the body may stream for longer.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Per worker. Past it, a connection that finishes its exchange is closed and the next
    /// request opens a new one, so it must exceed a worker's concurrent requests to one upstream.
    pub pool_max_idle_per_host: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 1024,
        }
    }
}

/// `headers:` — header hygiene.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderConfig {
    /// Extra client-sent headers to remove before anything else, beside the built-in identity set.
    pub strip: Vec<String>,
    /// Peers whose `X-Forwarded-For` is kept and appended to; from anyone else it is replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<OneOrMany>>,
    public_url: Option<Spanned<String>>,
    policies: Option<Spanned<PathBuf>>,
    templates: Option<Spanned<PathBuf>>,
    tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    upstream: UpstreamConfig,
    #[serde(default)]
    headers: HeaderConfig,
    #[serde(default)]
    identity_headers: IdentityHeaderNames,
    #[serde(default)]
    session: SessionConfig,
    #[serde(default)]
    capability: CapabilityConfig,
    #[serde(default)]
    providers: Vec<ProviderConfig>,
    basic_auth: Option<BasicAuthConfig>,
    #[serde(default)]
    allowed_redirect_hosts: Vec<Spanned<String>>,
    metrics_listen: Option<Spanned<String>>,
    #[serde(default)]
    decision_log: DecisionLogConfig,
    #[serde(default, with = "humantime_serde")]
    shutdown_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    client_header_timeout: Option<Duration>,
    workers: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

/// One problem in a config file, located and with a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.key
        )?;
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The public URL of a gateway without a configured `public_url`: its first listen address.
fn url_of_listener(addr: SocketAddr, tls: bool) -> url::Url {
    let scheme = if tls { "https" } else { "http" };
    url::Url::parse(&format!("{scheme}://{addr}/")).expect("socket address URL")
}

impl Config {
    /// The configuration `portcullis serve` uses without `--config`: loopback only, the embedded
    /// example policies, ephemeral keys.
    pub fn embedded_default() -> Config {
        let listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        Config {
            source: None,
            listen: vec![listen],
            public_url: url_of_listener(listen, false),
            public_url_follows_listen: true,
            policies: None,
            templates: None,
            tls: None,
            upstream: UpstreamConfig::default(),
            headers: HeaderConfig::default(),
            identity_headers: IdentityHeaderNames::default(),
            session: SessionConfig::default(),
            capability: CapabilityConfig::default(),
            providers: Vec::new(),
            basic_auth: None,
            allowed_redirect_hosts: Vec::new(),
            metrics_listen: None,
            decision_log: DecisionLogConfig::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            client_header_timeout: DEFAULT_CLIENT_HEADER_TIMEOUT,
            workers: default_workers(),
        }
    }

    /// `serve --listen`: these addresses instead of the configured ones (none: no change). A
    /// public URL that was derived from `listen` is derived again, from the first of them.
    pub fn listen_on(&mut self, addrs: Vec<SocketAddr>) {
        let Some(&first) = addrs.first() else {
            return;
        };
        if self.public_url_follows_listen {
            self.public_url = url_of_listener(first, self.tls.is_some());
        }
        self.listen = addrs;
    }

    /// Reads, expands and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: 0,
                column: 0,
                key: "(file)".into(),
                message: format!("cannot read the config file: {err}"),
                hint: Some(
                    "pass an existing file with --config, or omit it to use the embedded default"
                        .into(),
                ),
            }])
        })?;
        Config::parse(&text, path, |name| std::env::var(name).ok())
    }

    /// Parses config text; `env` resolves `${NAME}` references (injected so tests need no globals).
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let expanded = expand_env(text, &file, &env)?;
        let raw: RawConfig = serde_saphyr::from_str(&expanded).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|loc| (loc.line(), loc.column()))
                .unwrap_or((0, 0));
            let plain = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line,
                column,
                key: "(yaml)".into(),
                message: err.render_with_options(plain),
                hint: Some("see the gateway.yaml reference in README.md".into()),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Validator::new(file, base).finish(raw, path)
    }
}

const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_WORKERS: usize = 256;

/// One worker per CPU core the process may run on.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

/// Collects every validation error before giving up, so an operator fixes them in one pass.
struct Validator<'a> {
    file: String,
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    fn new(file: String, base: &'a Path) -> Self {
        Validator {
            file,
            base,
            errors: Vec::new(),
        }
    }

    fn error<T>(&mut self, at: &Spanned<T>, key: &str, message: String, hint: &str) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            key: key.into(),
            message,
            hint: (!hint.is_empty()).then(|| hint.to_string()),
        });
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    /// Files named inside sections (credentials, secrets, logs) start at the config file too.
    fn resolve_nested_paths(&self, raw: &mut RawConfig) {
        let nested = [
            raw.basic_auth
                .as_mut()
                .and_then(|basic| basic.credentials_file.as_mut()),
            raw.session.secret_file.as_mut(),
            raw.decision_log.path.as_mut(),
            raw.capability.keys_dir.as_mut(),
        ];
        let providers = raw
            .providers
            .iter_mut()
            .filter_map(|p| p.client_secret_file.as_mut());
        for path in nested.into_iter().flatten().chain(providers) {
            *path = self.resolve(path);
        }
    }

    fn existing_dir(&mut self, at: &Spanned<PathBuf>, key: &str) -> Option<PathBuf> {
        let path = self.resolve(&at.value);
        if path.is_dir() {
            Some(path)
        } else {
            let message = format!("{} is not a directory", path.display());
            self.error(
                at,
                key,
                message,
                "create it, or fix the path (relative paths start at the config file's directory)",
            );
            None
        }
    }

    fn socket_addr<T>(&mut self, at: &Spanned<T>, value: &str, key: &str) -> Option<SocketAddr> {
        match value.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let message = format!("`{value}` is not an IP address with a port");
                self.error(
                    at,
                    key,
                    message,
                    "write it like 127.0.0.1:8080 or [::1]:8080",
                );
                None
            }
        }
    }

    fn finish(mut self, mut raw: RawConfig, path: &Path) -> Result<Config, ConfigErrors> {
        self.resolve_nested_paths(&mut raw);
        let defaults = Config::embedded_default();

        let listen = match &raw.listen {
            None => defaults.listen.clone(),
            Some(spanned) => {
                let values = match &spanned.value {
                    OneOrMany::One(one) => vec![one.clone()],
                    OneOrMany::Many(many) => many.clone(),
                };
                if values.is_empty() {
                    self.error(
                        spanned,
                        "listen",
                        "no address given".into(),
                        "e.g. listen: 127.0.0.1:8080",
                    );
                }
                values
                    .iter()
                    .filter_map(|value| self.socket_addr(spanned, value, "listen"))
                    .collect()
            }
        };

        let public_url = match &raw.public_url {
            None => {
                let first = listen.first().copied().unwrap_or(defaults.listen[0]);
                url_of_listener(first, raw.tls.is_some())
            }
            Some(spanned) => match url::Url::parse(&spanned.value) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
                Ok(_) | Err(_) => {
                    let message = format!("`{}` is not an http(s) URL", spanned.value);
                    self.error(
                        spanned,
                        "public_url",
                        message,
                        "the URL users open, e.g. https://apps.example.com",
                    );
                    defaults.public_url.clone()
                }
            },
        };

        let policies = raw
            .policies
            .as_ref()
            .and_then(|at| self.existing_dir(at, "policies"));
        let templates = raw
            .templates
            .as_ref()
            .and_then(|at| self.existing_dir(at, "templates"));

        let tls = raw.tls.as_ref().and_then(|at| {
            let cert = self.resolve(&at.value.cert);
            let key = self.resolve(&at.value.key);
            let mut ok = true;
            for (name, file) in [("tls.cert", &cert), ("tls.key", &key)] {
                if !file.is_file() {
                    let message = format!("{} does not exist", file.display());
                    self.error(at, name, message, "give PEM files readable by the gateway");
                    ok = false;
                }
            }
            ok.then_some(TlsConfig { cert, key })
        });

        let mut allowed_redirect_hosts = Vec::new();
        for (index, at) in raw.allowed_redirect_hosts.iter().enumerate() {
            match allowed_host_entry(&at.value) {
                Ok(host) => allowed_redirect_hosts.push(host),
                Err(message) => self.error(
                    at,
                    &format!("allowed_redirect_hosts[{index}]"),
                    message,
                    "write app.example.com, app.example.com:8443 or *.example.com",
                ),
            }
        }

        let metrics_listen = raw
            .metrics_listen
            .as_ref()
            .and_then(|at| self.socket_addr(at, &at.value, "metrics_listen"));

        let workers = match &raw.workers {
            None => default_workers(),
            Some(at) if (1..=MAX_WORKERS).contains(&at.value) => at.value,
            Some(at) => {
                let message = format!("{} workers is out of range", at.value);
                let hint = format!("use 1 to {MAX_WORKERS}, or leave it out for one per CPU core");
                self.error(at, "workers", message, &hint);
                0
            }
        };

        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        Ok(Config {
            source: Some(path.to_path_buf()),
            listen,
            public_url,
            public_url_follows_listen: raw.public_url.is_none(),
            policies,
            templates,
            tls,
            upstream: raw.upstream,
            headers: raw.headers,
            identity_headers: raw.identity_headers,
            session: raw.session,
            capability: raw.capability,
            providers: raw.providers,
            basic_auth: raw.basic_auth,
            allowed_redirect_hosts,
            metrics_listen,
            decision_log: raw.decision_log,
            shutdown_grace: raw.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            client_header_timeout: raw
                .client_header_timeout
                .unwrap_or(DEFAULT_CLIENT_HEADER_TIMEOUT),
            workers,
        })
    }
}

/// Replaces `${NAME}` and `${NAME:-default}`; `$$` is a literal `$`. Every unset variable is
/// reported with its line. Values may not contain a newline: that would shift line numbers and
/// could smuggle YAML structure into the file.
fn expand_env(
    text: &str,
    file: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigErrors> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let column = (line.len() - rest.len() + pos + 1) as u64;
                let Some(end) = body.find('}') else {
                    errors.push(env_error(
                        file,
                        index,
                        column,
                        "unclosed `${`",
                        "write ${NAME}, or $$ for a literal $",
                    ));
                    out.push_str(&rest[pos..]);
                    rest = "";
                    continue;
                };
                let (name, default) = match body[..end].split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (&body[..end], None),
                };
                match env(name).or_else(|| default.map(str::to_string)) {
                    Some(value) if value.contains('\n') => errors.push(env_error(
                        file,
                        index,
                        column,
                        &format!("environment variable {name} contains a newline"),
                        "put multi-line secrets in a file and reference the file",
                    )),
                    Some(value) => out.push_str(&value),
                    None => errors.push(env_error(
                        file,
                        index,
                        column,
                        &format!("environment variable {name} is not set"),
                        &format!("export {name}, or give a default: ${{{name}:-value}}"),
                    )),
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn env_error(file: &str, line_index: usize, column: u64, message: &str, hint: &str) -> ConfigError {
    ConfigError {
        file: file.into(),
        line: line_index as u64 + 1,
        column,
        key: "${…}".into(),
        message: message.into(),
        hint: Some(hint.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        let env = |name: &str| match name {
            "SECRET" => Some("s3cr3t".to_string()),
            "MULTI" => Some("a\nb".to_string()),
            _ => None,
        };
        Config::parse(text, Path::new("/etc/portcullis/gateway.yaml"), env)
    }

    #[test]
    fn listen_override_moves_a_derived_public_url_and_keeps_a_configured_one() {
        let there: SocketAddr = "127.0.0.1:9100".parse().unwrap();
        let mut derived = parse("listen: 127.0.0.1:9000\n").unwrap();
        derived.listen_on(vec![there]);
        assert_eq!(derived.listen, vec![there]);
        assert_eq!(derived.public_url.as_str(), "http://127.0.0.1:9100/");

        let mut configured =
            parse("listen: 127.0.0.1:9000\npublic_url: https://apps.example.com\n").unwrap();
        configured.listen_on(vec![there]);
        assert_eq!(configured.listen, vec![there]);
        assert_eq!(configured.public_url.as_str(), "https://apps.example.com/");

        let mut embedded = Config::embedded_default();
        embedded.listen_on(Vec::new());
        assert_eq!(embedded.public_url.as_str(), "http://127.0.0.1:8080/");
        embedded.listen_on(vec![there]);
        assert_eq!(embedded.public_url.as_str(), "http://127.0.0.1:9100/");
    }

    #[test]
    fn minimal_file_takes_defaults() {
        let config = parse("listen: 127.0.0.1:9000\n").unwrap();
        assert_eq!(config.listen, vec!["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(config.upstream.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.shutdown_grace, DEFAULT_SHUTDOWN_GRACE);
        assert_eq!(config.client_header_timeout, DEFAULT_CLIENT_HEADER_TIMEOUT);
        assert_eq!(config.workers, default_workers());
    }

    #[test]
    fn workers_are_counted_and_bounded() {
        assert_eq!(parse("workers: 3\n").unwrap().workers, 3);
        for bad in ["workers: 0\n", "workers: 100000\n"] {
            let errors = parse(bad).unwrap_err().0;
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(errors[0].key, "workers");
            assert_eq!(errors[0].line, 1);
        }
    }

    #[test]
    fn durations_are_humane() {
        let config = parse(
            "upstream:\n  response_timeout: 250ms\nshutdown_grace: 2s\nclient_header_timeout: 5s\n",
        )
        .unwrap();
        assert_eq!(config.client_header_timeout, Duration::from_secs(5));
        assert_eq!(config.upstream.response_timeout, Duration::from_millis(250));
        assert_eq!(config.shutdown_grace, Duration::from_secs(2));
    }

    #[test]
    fn env_references_expand_and_defaults_apply() {
        let out = expand_env("a: ${SECRET}\nb: ${NOPE:-x}\nc: $$5\n", "f", &|n: &str| {
            (n == "SECRET").then(|| "v".to_string())
        })
        .unwrap();
        assert_eq!(out, "a: v\nb: x\nc: $5\n");
    }

    #[test]
    fn every_unset_variable_is_reported_with_its_line() {
        let errors = parse("public_url: ${A}\nlisten: ${B}\n").unwrap_err();
        let lines: Vec<u64> = errors.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2]);
        assert!(
            errors
                .to_string()
                .contains("environment variable B is not set")
        );
    }

    #[test]
    fn multi_line_env_value_is_refused() {
        let errors = parse("public_url: ${MULTI}\n").unwrap_err();
        assert!(errors.0[0].message.contains("newline"), "{errors}");
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let errors = parse("listen: 127.0.0.1:9000\nlisten_typo: 1\n").unwrap_err();
        let error = &errors.0[0];
        assert_eq!(error.file, "/etc/portcullis/gateway.yaml");
        assert_eq!(error.line, 2, "{errors}");
        assert!(error.message.contains("listen_typo"), "{errors}");
    }

    #[test]
    fn all_validation_errors_are_reported_at_once() {
        let text = "listen: [nope, 127.0.0.1:1]\npublic_url: ftp://x\npolicies: /definitely/missing\nmetrics_listen: bad\n";
        let errors = parse(text).unwrap_err();
        let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["listen", "public_url", "policies", "metrics_listen"]
        );
        let lines: Vec<u64> = errors.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4]);
        assert!(errors.to_string().contains("hint:"));
    }

    #[test]
    fn allowed_redirect_hosts_are_normalised() {
        let config =
            parse("allowed_redirect_hosts: [App.example.com, \"*.example.org\", \"h:8443\"]\n")
                .unwrap();
        assert_eq!(
            config.allowed_redirect_hosts,
            ["app.example.com", ".example.org", "h:8443"]
        );
        assert!(
            parse("listen: 127.0.0.1:1\n")
                .unwrap()
                .allowed_redirect_hosts
                .is_empty()
        );
    }

    #[test]
    fn every_bad_redirect_host_is_reported_with_its_line() {
        let text = "listen: 127.0.0.1:1\nallowed_redirect_hosts:\n  - ok.example.com\n  - https://evil.example\n  - \"*.example.com:8443\"\n";
        let errors = parse(text).unwrap_err();
        let found: Vec<(&str, u64)> = errors.0.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            found,
            [
                ("allowed_redirect_hosts[1]", 4),
                ("allowed_redirect_hosts[2]", 5)
            ]
        );
        assert!(errors.to_string().contains("hint:"), "{errors}");
    }

    #[test]
    fn identity_headers_can_pass_the_access_token_under_any_name() {
        let config =
            parse("identity_headers:\n  pass_access_token: true\n  access_token: X-Token\n")
                .unwrap();
        assert!(config.identity_headers.pass_access_token);
        assert_eq!(config.identity_headers.access_token.0, "x-token");
        let default = parse("listen: 127.0.0.1:1\n").unwrap().identity_headers;
        assert!(!default.pass_access_token, "off by default");
        assert_eq!(default.access_token.0, "x-auth-request-access-token");
    }

    #[test]
    fn relative_files_inside_sections_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.yaml");
        let text =
            "basic_auth:\n  credentials_file: users.yaml\nsession:\n  secret_file: /abs/secret\n";
        let config = Config::parse(text, &path, |_| None).unwrap();
        let basic = config.basic_auth.unwrap();
        assert_eq!(basic.credentials_file, Some(dir.path().join("users.yaml")));
        assert_eq!(
            config.session.secret_file,
            Some(PathBuf::from("/abs/secret"))
        );
    }

    #[test]
    fn relative_directories_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pol")).unwrap();
        let path = dir.path().join("gateway.yaml");
        let config = Config::parse("policies: pol\n", &path, |_| None).unwrap();
        assert_eq!(config.policies, Some(dir.path().join("pol")));
    }
}
