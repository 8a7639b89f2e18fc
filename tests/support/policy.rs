//! Policy files for tests, built from the routes and rules many tests share.

/// A rule list item that admits everyone, logged in or not.
pub const EVERYONE: &str = "      - name: everyone\n        guest: true\n";

/// A rule list item that admits anyone logged in, and sends guests to log in.
pub const LOGGED_IN: &str = "      - name: logged in\n        allow: {}\n";

/// A policy file holding `routes`, each made by [`route`] or its kin.
pub fn routes(routes: &[String]) -> String {
    format!("routes:\n{}", routes.concat())
}

/// A route `name` for requests under `path` (a glob) to `upstream`, decided by `rules`
/// (rule list items, indented six spaces).
pub fn route(name: &str, path: &str, upstream: &str, rules: &str) -> String {
    route_with_keys(name, path, upstream, "", rules)
}

/// [`route`] with WebSocket upgrades allowed.
pub fn websocket_route(name: &str, path: &str, upstream: &str, rules: &str) -> String {
    route_with_keys(name, path, upstream, "    websocket: true\n", rules)
}

/// A route `name` for every request to `host` (any path), to `upstream`, decided by `rules`.
pub fn host_route(name: &str, host: &str, upstream: &str, rules: &str) -> String {
    format!(
        "  - name: {name}\n    match: {{ host: {host} }}\n    upstream: {upstream}\n    rules:\n{rules}"
    )
}

/// `dead`: `/dead/**` to a closed port, so every request it admits fails at the upstream (502).
pub fn dead_route() -> String {
    route("dead", "/dead/**", "http://127.0.0.1:1", EVERYONE)
}

fn route_with_keys(name: &str, path: &str, upstream: &str, keys: &str, rules: &str) -> String {
    format!(
        "  - name: {name}\n    match: {{ path: \"{path}\" }}\n    upstream: {upstream}\n{keys}    rules:\n{rules}"
    )
}
