//! CEL functions portcullis adds: `matches` with regexes compiled at load, and `inCidr`.
//!
//! - `s.matches(re)` / `matches(s, re)`: RE2-syntax regex search. A literal pattern is compiled
//!   once when the policy loads (a bad one fails the load); a computed one is compiled per call.
//! - `ip.inCidr(net)` / `inCidr(ip, net)`: whether the address string `ip` (e.g. `request.ip`)
//!   lies in the CIDR `net` (`"10.0.0.0/8"`, `"2001:db8::/32"`).

use std::net::IpAddr;
use std::sync::Arc;

use cel::common::types::{CelBool, CelString, STRING_TYPE};
use cel::common::value::CowVal;
use cel::extractors::This;
use cel::{Context, DeclarationError, Env, ExecutionError, Value};

use super::expr::Literals;

/// The functions added here, for load-time checks of unknown functions.
pub(crate) const NAMES: [&str; 1] = ["matches"];

const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) fn build_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// A root context carrying the environment and these functions, built once per policy set.
pub(crate) fn root_context(literals: Arc<Literals>) -> Context<'static, 'static> {
    let mut root = Context::with_env(super::expr::env().clone());
    literals.constants.install(&mut root);
    let regexes = literals;
    // `matches` is not an overload of the environment (cel's own is compiled out), so adding
    // it cannot fail; a failure would surface as "unknown function" at load.
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
    root
}

/// Declares `inCidr` on the environment: a plain overload, no captured state, no conversions.
pub(crate) fn declare(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        "inCidr",
        "inCidr_string_string",
        vec![STRING_TYPE, STRING_TYPE],
        in_cidr,
    )?;
    env.add_member_overload(
        "inCidr",
        "string_inCidr_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        in_cidr,
    )
}

fn in_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let arg = |i: usize| {
        args.get(i)
            .and_then(|a| a.downcast_ref::<CelString>())
            .map(|s| s.inner())
            .ok_or_else(|| ExecutionError::function_error("inCidr", "expects two strings"))
    };
    let (ip, net) = (arg(0)?, arg(1)?);
    let addr: IpAddr = ip.parse().map_err(|_| {
        ExecutionError::function_error("inCidr", format!("not an IP address: {ip:?}"))
    })?;
    let net: ipnet::IpNet = net
        .parse()
        .map_err(|_| ExecutionError::function_error("inCidr", format!("not a CIDR: {net:?}")))?;
    Ok(CowVal::owned(CelBool::from(net.contains(&addr))))
}
