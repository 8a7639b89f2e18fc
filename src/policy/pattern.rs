//! Host patterns, segment-wise path globs and email-domain sets: parsed once at load, matched
//! on the hot path without allocating.

use std::collections::HashSet;

/// `host:` of a route or rule: an exact host or `*.example.com` (any subdomain, not the apex).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HostPattern {
    Any,
    Exact(String),
    /// Holds `.example.com` for `*.example.com`.
    Suffix(String),
}

impl HostPattern {
    /// A fully qualified spelling (`app.example.com.`) is the same host: requests are matched
    /// without the trailing dot, so the pattern drops it too.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        let text = text.strip_suffix('.').unwrap_or(&text).to_string();
        if text.is_empty() {
            return Err("empty host".into());
        }
        if let Some(rest) = text.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(format!("invalid host pattern `{text}`"));
            }
            return Ok(HostPattern::Suffix(format!(".{rest}")));
        }
        if text.contains('*') || text.contains('/') || text.contains(':') {
            return Err(format!(
                "invalid host `{text}`: only `host` or `*.domain` (no port, no path)"
            ));
        }
        Ok(HostPattern::Exact(text))
    }

    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment, any content.
    Any,
    /// `**`: zero or more whole segments.
    AnyDepth,
    /// A segment with `*` inside, e.g. `*.js`: matched within the segment only.
    Wild(String),
}

/// A path glob matched segment by segment, case-sensitively: `/panel/static/**`.
///
/// `*` stays inside one segment, `**` spans segments (zero or more). Characters such as `;`,
/// `%` or `.` are ordinary characters. One trailing `/` on the request path is ignored, so
/// `/admin` and `/admin/` are the same path to every rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathGlob {
    text: String,
    segments: Vec<Segment>,
    /// For the common `/a/b/**` (non-empty literals, then `**`): `/a/b`. Such a glob matches
    /// exactly the paths that are this prefix or continue it with `/`, with no splitting.
    literal_prefix: Option<String>,
}

impl PathGlob {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("path glob `{text}` must start with `/`"));
        }
        if text.contains(['?', '#']) {
            return Err(format!(
                "path glob `{text}` must not contain `?` or `#`: paths are matched without the query"
            ));
        }
        let mut segments = Vec::new();
        for seg in split(text) {
            if seg == ".." || seg == "." {
                return Err(format!(
                    "path glob `{text}` must not contain `.` or `..` segments"
                ));
            }
            segments.push(match seg {
                "**" => Segment::AnyDepth,
                "*" => Segment::Any,
                s if s.contains("**") => {
                    return Err(format!("`**` must be a whole segment in `{text}`"));
                }
                s if s.contains('*') => Segment::Wild(s.to_owned()),
                s => Segment::Literal(s.to_owned()),
            });
        }
        Ok(PathGlob {
            text: text.to_owned(),
            literal_prefix: literal_prefix(&segments),
            segments,
        })
    }

    /// `/**`: every path.
    pub(crate) fn any() -> Self {
        PathGlob {
            text: "/**".to_owned(),
            segments: vec![Segment::AnyDepth],
            literal_prefix: Some(String::new()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The first segment when it is a literal: what the route index keys on.
    pub(crate) fn first_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(s)) => Some(s),
            _ => None,
        }
    }

    /// (leading literal segments, their total length): the more, the more specific.
    pub(crate) fn specificity(&self) -> (usize, usize) {
        let mut n = 0;
        let mut chars = 0;
        for s in &self.segments {
            match s {
                Segment::Literal(l) => {
                    n += 1;
                    chars += l.len() + 1;
                }
                _ => break,
            }
        }
        // A glob without wildcards is more specific than any prefix of the same length.
        let exact = self
            .segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)));
        (n * 2 + usize::from(exact), chars)
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        if !path.starts_with('/') {
            return false;
        }
        if let Some(prefix) = &self.literal_prefix {
            return path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        }
        let mut segs = [""; 32];
        let mut n = 0;
        for s in split(path) {
            if n == segs.len() {
                return self.matches_slow(path);
            }
            segs[n] = s;
            n += 1;
        }
        match_segments(&self.segments, &segs[..n])
    }

    #[cold]
    fn matches_slow(&self, path: &str) -> bool {
        let segs: Vec<&str> = split(path).collect();
        match_segments(&self.segments, &segs)
    }
}

/// `/a/b` for `a`, `b`, `**`; `None` for any other shape (or an empty literal).
fn literal_prefix(segments: &[Segment]) -> Option<String> {
    let (Segment::AnyDepth, literals) = segments.split_last()? else {
        return None;
    };
    let mut prefix = String::new();
    for segment in literals {
        match segment {
            Segment::Literal(literal) if !literal.is_empty() => {
                prefix.push('/');
                prefix.push_str(literal);
            }
            _ => return None,
        }
    }
    Some(prefix)
}

/// Segments of `/a/b/` → `a`, `b`; of `/` → nothing. Inner empty segments are kept.
fn split(path: &str) -> impl Iterator<Item = &str> {
    let body = &path[1..];
    let body = body.strip_suffix('/').unwrap_or(body);
    body.split('/').filter(move |_| !body.is_empty())
}

fn match_segments(glob: &[Segment], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((Segment::AnyDepth, rest)) => {
            if rest.is_empty() {
                return true;
            }
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((seg, rest)) => match path.split_first() {
            None => false,
            Some((first, path_rest)) => {
                let ok = match seg {
                    Segment::Literal(l) => l == first,
                    Segment::Any => true,
                    Segment::Wild(w) => wildcard(w.as_bytes(), first.as_bytes()),
                    // Handled by the arm above.
                    Segment::AnyDepth => false,
                };
                ok && match_segments(rest, path_rest)
            }
        },
    }
}

/// `*` matches any run of characters within one segment.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            p += 1;
            mark = t;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `domains:`: exact domains and `*.sub` wildcards, lower-cased.
#[derive(Clone, Debug, Default)]
pub(crate) struct DomainSet {
    exact: HashSet<String>,
    /// `.sub.example.com` for `*.sub.example.com`.
    suffixes: Vec<String>,
}

impl DomainSet {
    pub(crate) fn insert(&mut self, text: &str) -> Result<(), String> {
        let d = text.trim().to_ascii_lowercase();
        let bare = d.strip_prefix("*.").unwrap_or(&d);
        let valid = !bare.is_empty()
            && !bare.starts_with('.')
            && !bare.ends_with('.')
            && !bare.contains("..")
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return Err(format!(
                "invalid email domain `{text}`: write `example.com` or `*.example.com`"
            ));
        }
        if d.starts_with("*.") {
            self.suffixes.push(d[1..].to_owned());
        } else {
            self.exact.insert(d);
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }

    /// `domain` must already be lower-case (as `Identity::domain` returns it).
    pub(crate) fn contains(&self, domain: &str) -> bool {
        self.exact.contains(domain)
            || self
                .suffixes
                .iter()
                .any(|s| domain.len() > s.len() && domain.ends_with(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefix_globs_agree_with_segment_matching() {
        let globs = ["/**", "/a/**", "/a/b/**", "/a//**", "/a/*/**", "/a"];
        let paths = [
            "/", "/a", "/a/", "/a//", "/ab", "/a/b", "/a/b/", "/a/bc", "/a//b", "//a", "/b/a",
            "/a/b/c/d", "a/b",
        ];
        for glob in globs {
            let g = PathGlob::parse(glob).unwrap();
            for path in paths {
                let segments: Vec<&str> = if path.starts_with('/') {
                    split(path).collect()
                } else {
                    continue;
                };
                let by_segments = match_segments(&g.segments, &segments);
                assert_eq!(g.matches(path), by_segments, "{glob} vs {path}");
            }
        }
        assert_eq!(
            PathGlob::parse("/a/b/**")
                .unwrap()
                .literal_prefix
                .as_deref(),
            Some("/a/b")
        );
        assert_eq!(PathGlob::parse("/a//**").unwrap().literal_prefix, None);
        assert_eq!(PathGlob::any().literal_prefix.as_deref(), Some(""));
    }

    #[test]
    fn path_globs_match_segment_wise() {
        let cases: &[(&str, &str, bool)] = &[
            ("/panel/static/**", "/panel/static/app.js", true),
            ("/panel/static/**", "/panel/static", true),
            ("/panel/static/**", "/panel/static/", true),
            ("/panel/static/**", "/panel/static/a/b/c.css", true),
            ("/panel/static/**", "/panel/staticX", false),
            ("/panel/static/**", "/panel/staticX/app.js", false),
            ("/panel/static/**", "/Panel/static/app.js", false),
            ("/panel/static/**", "/panel/static;x/../admin", false),
            ("/panel/static/**", "/panel/static%2F..%2Fadmin", false),
            ("/panel/static/**", "/panel//static/app.js", false),
            ("/panel/static/**", "/panel", false),
            ("/panel/static/**", "panel/static/x", false),
            ("/panel/ws", "/panel/ws", true),
            ("/panel/ws", "/panel/ws/", true),
            ("/panel/ws", "/panel/ws/x", false),
            ("/panel/ws", "/panel/ws;jsessionid=1", false),
            ("/panel/*/edit", "/panel/7/edit", true),
            ("/panel/*/edit", "/panel/7/8/edit", false),
            ("/**/*.js", "/a/b/c.js", true),
            ("/**/*.js", "/a/b/c.jsx", false),
            ("/assets/*.css", "/assets/site.css", true),
            ("/assets/*.css", "/assets/x/site.css", false),
            ("/**", "/", true),
            ("/**", "/anything/at/all", true),
            ("/", "/", true),
            ("/", "/x", false),
        ];
        for (glob, path, want) in cases {
            let g = PathGlob::parse(glob).unwrap();
            assert_eq!(g.matches(path), *want, "{glob} vs {path}");
        }
    }

    #[test]
    fn bad_globs_are_rejected() {
        for bad in ["panel", "/a/**x", "/a?b", "/a/../b", "/a#x"] {
            assert!(PathGlob::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deep_paths_still_match() {
        let deep = format!("/a{}", "/x".repeat(100));
        assert!(PathGlob::parse("/a/**").unwrap().matches(&deep));
        assert!(!PathGlob::parse("/b/**").unwrap().matches(&deep));
    }

    #[test]
    fn host_patterns() {
        let wild = HostPattern::parse("*.Example.com").unwrap();
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("evil-example.com"));
        assert!(!wild.matches("a.example.com.evil.org"));
        let exact = HostPattern::parse("app.example.com").unwrap();
        assert!(exact.matches("app.example.com"));
        assert!(!exact.matches("xapp.example.com"));
        assert_eq!(HostPattern::parse("App.Example.com.").unwrap(), exact);
        assert_eq!(HostPattern::parse("*.example.com.").unwrap(), wild);
        assert!(HostPattern::parse("a.com:8080").is_err());
    }

    #[test]
    fn domain_sets_match_exact_and_subdomains_only() {
        let mut set = DomainSet::default();
        set.insert("Example.COM").unwrap();
        set.insert("*.corp.example.org").unwrap();
        assert!(set.contains("example.com"));
        assert!(!set.contains("evil-example.com"));
        assert!(!set.contains("example.com.evil.org"));
        assert!(!set.contains("sub.example.com"));
        assert!(set.contains("eu.corp.example.org"));
        assert!(!set.contains("corp.example.org"));
        assert!(!set.contains("xcorp.example.org"));
        assert!(set.insert("bad domain").is_err());
        assert!(set.insert("@example.com").is_err());
    }
}
