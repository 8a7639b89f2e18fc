//! CEL functions portcullis adds: `matches` with regexes compiled at load, and `inCidr`.
//!
//! - `s.matches(re)` / `matches(s, re)`: RE2-syntax regex search. A literal pattern is compiled
//!   once when the policy loads (a bad one fails the load); a computed one is compiled per call.
//! - `ip.inCidr(net)` / `inCidr(ip, net)`: whether the address string `ip` (e.g. `request.ip`)
//!   lies in the CIDR `net` (`"10.0.0.0/8"`, `"2001:db8::/32"`).

use std::net::IpAddr;
use std::sync::Arc;

use cel::extractors::This;
use cel::{Context, ExecutionError, Value};

use super::expr::Literals;

/// The functions added here, for load-time checks of unknown functions.
pub(crate) const NAMES: [&str; 2] = ["matches", "inCidr"];

const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) fn build_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// A root context carrying the environment and these functions, built once per policy set.
pub(crate) fn root_context(literals: Arc<Literals>) -> Context<'static, 'static> {
    let mut root = Context::with_env(super::expr::env().clone());
    let regexes = literals.clone();
    // Neither name is an overload of the environment (cel's own `matches` is compiled out),
    // so adding them cannot fail; a failure would surface as "unknown function" at load.
    let _ = root.add_function(
        "matches",
        move |This(text): This<Arc<String>>,
              pattern: Arc<String>|
              -> Result<Value, ExecutionError> {
            let found = match regexes.regexes.get(pattern.as_str()) {
                Some(re) => re.is_match(&text),
                None => build_regex(&pattern)
                    .map_err(|e| ExecutionError::function_error("matches", e))?
                    .is_match(&text),
            };
            Ok(Value::Bool(found))
        },
    );
    let cidrs = literals;
    let _ = root.add_function(
        "inCidr",
        move |This(ip): This<Arc<String>>, net: Arc<String>| -> Result<Value, ExecutionError> {
            let addr: IpAddr = ip.parse().map_err(|_| {
                ExecutionError::function_error("inCidr", format!("not an IP address: {ip:?}"))
            })?;
            let contains = match cidrs.cidrs.get(net.as_str()) {
                Some(n) => n.contains(&addr),
                None => net
                    .parse::<ipnet::IpNet>()
                    .map_err(|_| {
                        ExecutionError::function_error("inCidr", format!("not a CIDR: {net:?}"))
                    })?
                    .contains(&addr),
            };
            Ok(Value::Bool(contains))
        },
    );
    root
}
