//! Route lookup without scanning every route: routes are bucketed by host (exact, wildcard
//! suffix, any) and, within a bucket, by the first literal path segment of each glob.
//!
//! Order, documented in docs/policy.md: the most specific host bucket that has a match wins
//! (exact, then the longest `*.suffix`, then routes without a host); within it the glob with
//! the most leading literal segments (an exact path beats a prefix of the same depth), then the
//! longer literal text, then the route defined first (file name order, then position in file).

use foldhash::HashMap;
use std::cmp::Reverse;

use super::RequestInfo;
use super::pattern::HostPattern;
use super::set::RouteEntry;

#[derive(Debug, Default)]
pub(crate) struct RouteIndex {
    exact: HashMap<String, PathIndex>,
    suffix: HashMap<String, PathIndex>,
    any: PathIndex,
}

#[derive(Debug, Default)]
struct PathIndex {
    by_first: HashMap<String, Vec<Candidate>>,
    other: Vec<Candidate>,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    route: u32,
    glob: u32,
    /// The glob's [`specificity`](super::pattern::PathGlob::specificity), worked out once.
    specificity: (usize, usize),
}

impl RouteIndex {
    pub(crate) fn build(routes: &[RouteEntry]) -> Self {
        let mut index = RouteIndex::default();
        for (r, entry) in routes.iter().enumerate() {
            let bucket = match &entry.scope.host {
                HostPattern::Any => &mut index.any,
                HostPattern::Exact(h) => index.exact.entry(h.clone()).or_default(),
                HostPattern::Suffix(s) => index.suffix.entry(s.clone()).or_default(),
            };
            for (g, glob) in entry.scope.paths.iter().enumerate() {
                let c = Candidate {
                    route: r as u32,
                    glob: g as u32,
                    specificity: glob.specificity(),
                };
                match glob.first_literal() {
                    Some(first) => bucket.by_first.entry(first.to_owned()).or_default().push(c),
                    None => bucket.other.push(c),
                }
            }
        }
        index
    }

    /// The index of the route that serves `req`, if any.
    pub(crate) fn lookup(&self, routes: &[RouteEntry], req: &RequestInfo) -> Option<usize> {
        let host = req.host.as_str();
        if let Some(found) = self.exact.get(host).and_then(|b| b.best(routes, req)) {
            return Some(found);
        }
        if !self.suffix.is_empty() {
            // Longest suffix first: cut at each dot from the left.
            for (i, _) in host.match_indices('.') {
                if let Some(found) = self
                    .suffix
                    .get(&host[i..])
                    .and_then(|b| b.best(routes, req))
                {
                    return Some(found);
                }
            }
        }
        self.any.best(routes, req)
    }
}

impl PathIndex {
    fn best(&self, routes: &[RouteEntry], req: &RequestInfo) -> Option<usize> {
        // A byte search: `split('/')` sets up a general pattern searcher for a segment or two.
        let rest = req.path.get(1..).unwrap_or("");
        let first = rest
            .bytes()
            .position(|byte| byte == b'/')
            .map_or(rest, |end| &rest[..end]);
        let keyed = self.by_first.get(first).map_or(&[][..], Vec::as_slice);
        keyed
            .iter()
            .chain(self.other.iter())
            .filter_map(|c| {
                let entry = routes.get(c.route as usize)?;
                let glob = entry.scope.paths.get(c.glob as usize)?;
                (entry.scope.method_ok(&req.method) && glob.matches(&req.path))
                    .then_some(((c.specificity, Reverse(c.route)), c.route as usize))
            })
            .max_by_key(|(key, _)| *key)
            .map(|(_, route)| route)
    }
}
