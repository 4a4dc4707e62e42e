//! The gateway's per-route rules: which permissions (and, through a path template, which
//! resource scope) a request needs. Rules are matched on the normal form of the path
//! (`path.rs`), ASCII case-insensitively unless a rule says `case_sensitive = true`, and the
//! most specific matching rule applies (see [`Rank`]).

use std::borrow::Cow;

use serde::Deserialize;

use keyward_core::permissions::Query as PermQuery;

use super::path::normalise;

/// Most captures a template may hold (a scope names a few at most).
const MAX_CAPTURES: usize = 8;

/// One `[[route]]`: requests it matches must satisfy `permissions` (if any), within `scope`
/// (if any).
#[derive(Debug, Clone)]
pub struct RouteRule {
    /// The `prefix` or `path` as written, for messages.
    written: String,
    pattern: Pattern,
    permissions: Option<PermQuery>,
    scope: Option<Vec<ScopePart>>,
    case_sensitive: bool,
    rank: Rank,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// The path starts with this string (normalised).
    Prefix(String),
    /// The path's segments, one by one.
    Template(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: any one segment.
    Capture,
    /// `{*name}`, last only: the rest of the path (possibly nothing).
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ScopePart {
    Text(String),
    /// The value of the template's capture with this index.
    Capture(usize),
}

/// How specific a rule is; the greatest matching one applies. Compared in this order:
/// more literal segments; then more segments in all (a `{name}` counts, `{*rest}` does
/// not); then a `path` template before a `prefix`; then a template without `{*rest}`
/// first; then, at the first position where the two differ, a literal segment before a
/// capture; then the longer prefix. Rules equal in all of these apply in file order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    literals: usize,
    segments: usize,
    template: bool,
    exact: bool,
    /// Per position: 2 literal, 1 capture, 0 rest.
    shape: Vec<u8>,
    length: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    route: Vec<RuleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    prefix: Option<String>,
    path: Option<String>,
    permissions: Option<String>,
    scope: Option<String>,
    #[serde(default)]
    case_sensitive: bool,
}

/// Parses a rules file: `[[route]]` tables, each with `prefix` or `path`, and `permissions`
/// and/or `scope`. The rules come back most specific first.
pub fn parse_rules(text: &str) -> Result<Vec<RouteRule>, String> {
    let file: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut rules = file.route.into_iter().map(rule).collect::<Result<Vec<_>, String>>()?;
    // Stable: equal ranks keep file order.
    rules.sort_by(|a, b| b.rank.cmp(&a.rank));
    Ok(rules)
}

fn rule(entry: RuleEntry) -> Result<RouteRule, String> {
    let (pattern, names, written) = match (&entry.prefix, &entry.path) {
        (Some(prefix), None) => {
            let normal = normalise(prefix, true).map_err(|e| format!("route prefix {prefix:?}: {e}"))?;
            (Pattern::Prefix(normal.into_owned()), Vec::new(), prefix)
        }
        (None, Some(path)) => {
            let (segments, names) = template(path).map_err(|e| format!("route path {path:?}: {e}"))?;
            (Pattern::Template(segments), names, path)
        }
        _ => return Err("each [[route]] needs exactly one of prefix and path".into()),
    };
    let permissions = entry
        .permissions
        .as_deref()
        .map(PermQuery::parse)
        .transpose()
        .map_err(|e| format!("route {written:?}: permissions: {e}"))?;
    let scope = entry
        .scope
        .as_deref()
        .map(|s| scope_template(s, &names))
        .transpose()
        .map_err(|e| format!("route {written:?}: scope: {e}"))?;
    let rank = rank(&pattern);
    let written = written.clone();
    Ok(RouteRule { written, pattern, permissions, scope, case_sensitive: entry.case_sensitive, rank })
}

/// A template's segments and its captures' names, in order.
fn template(path: &str) -> Result<(Vec<Segment>, Vec<String>), String> {
    let body = path.strip_prefix('/').ok_or("must start with /")?;
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut segments = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let pieces: Vec<&str> = if body.is_empty() { Vec::new() } else { body.split('/').collect() };
    for (i, piece) in pieces.iter().enumerate() {
        if let Some(inner) = piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let (rest, name) = match inner.strip_prefix('*') {
                Some(name) => (true, name),
                None => (false, inner),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("{{{inner}}}: a capture is named with letters, digits and _"));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("{{{inner}}}: the name is used twice"));
            }
            if rest && i + 1 != pieces.len() {
                return Err(format!("{{{inner}}}: a {{*rest}} capture must be the last segment"));
            }
            names.push(name.to_string());
            segments.push(if rest { Segment::Rest } else { Segment::Capture });
        } else {
            if piece.contains(['{', '}']) {
                return Err(format!("{piece:?}: a capture is a whole segment, {{name}} or {{*name}}"));
            }
            if piece.is_empty() {
                return Err(super::path::PathError::EmptySegment.to_string());
            }
            let one = format!("/{piece}");
            let normal = normalise(&one, true).map_err(|e| e.to_string())?;
            segments.push(Segment::Literal(normal[1..].to_string()));
        }
    }
    if names.len() > MAX_CAPTURES {
        return Err(format!("at most {MAX_CAPTURES} captures"));
    }
    Ok((segments, names))
}

/// `wallet:{wallet_id}`: text and the template's captures.
fn scope_template(raw: &str, names: &[String]) -> Result<Vec<ScopePart>, String> {
    let mut parts = Vec::new();
    let mut rest = raw;
    // The scope with each capture as `x` must be a scope name.
    let mut sample = String::new();
    while let Some(open) = rest.find('{') {
        let (text, after) = rest.split_at(open);
        let close = after.find('}').ok_or("an unclosed {")?;
        let name = &after[1..close];
        let index = names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| format!("{{{name}}} is not a capture of the rule's path"))?;
        if !text.is_empty() {
            parts.push(ScopePart::Text(text.to_string()));
        }
        parts.push(ScopePart::Capture(index));
        sample.push_str(text);
        sample.push('x');
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("an unopened }".into());
    }
    if !rest.is_empty() {
        parts.push(ScopePart::Text(rest.to_string()));
    }
    sample.push_str(rest);
    if !keyward_core::scopes::valid_scope(&sample) {
        return Err(format!("{raw:?} is not a scope (letters, digits and . _ - : * /, and {{captures}})"));
    }
    Ok(parts)
}

fn rank(pattern: &Pattern) -> Rank {
    match pattern {
        Pattern::Prefix(p) => {
            let body = p.trim_start_matches('/');
            let body = body.strip_suffix('/').unwrap_or(body);
            let n = if body.is_empty() { 0 } else { body.split('/').count() };
            Rank { literals: n, segments: n, template: false, exact: false, shape: vec![2; n], length: p.len() }
        }
        Pattern::Template(segments) => {
            let shape: Vec<u8> = segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(_) => 2,
                    Segment::Capture => 1,
                    Segment::Rest => 0,
                })
                .collect();
            let literals = shape.iter().filter(|&&s| s == 2).count();
            let segments_n = shape.iter().filter(|&&s| s > 0).count();
            let exact = !shape.contains(&0);
            Rank { literals, segments: segments_n, template: true, exact, shape, length: 0 }
        }
    }
}

impl RouteRule {
    /// The `prefix` or `path` as the rules file wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }

    pub fn permissions(&self) -> Option<&PermQuery> {
        self.permissions.as_ref()
    }

    fn same(&self, a: &str, b: &str) -> bool {
        if self.case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    }

    /// Walks a template over `path` (normalised), telling `capture` each capture's value;
    /// false when it does not match. A trailing `/` on the path is ignored.
    fn walk<'p>(&self, segments: &[Segment], path: &'p str, mut capture: impl FnMut(&'p str)) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let mut rest = rest.strip_suffix('/').unwrap_or(rest);
        for segment in segments {
            if *segment == Segment::Rest {
                capture(rest);
                return true;
            }
            if rest.is_empty() {
                return false;
            }
            let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
            match segment {
                Segment::Literal(l) if !self.same(l, head) => return false,
                Segment::Capture => capture(head),
                _ => {}
            }
            rest = tail;
        }
        rest.is_empty()
    }

    /// Does the rule apply to `path` (normalised)?
    pub fn matches(&self, path: &str) -> bool {
        match &self.pattern {
            Pattern::Prefix(p) => path.len() >= p.len() && path.get(..p.len()).is_some_and(|head| self.same(head, p)),
            Pattern::Template(segments) => self.walk(segments, path, |_| {}),
        }
    }

    /// The scope `path` (which the rule matches) must be allowed in, its captures filled in.
    pub fn scope_for<'r>(&'r self, path: &str) -> Option<Cow<'r, str>> {
        let parts = self.scope.as_ref()?;
        if let [ScopePart::Text(t)] = parts.as_slice() {
            return Some(Cow::Borrowed(t));
        }
        let mut values: [&str; MAX_CAPTURES] = [""; MAX_CAPTURES];
        if let Pattern::Template(segments) = &self.pattern {
            let mut n = 0;
            self.walk(segments, path, |v| {
                if let Some(slot) = values.get_mut(n) {
                    *slot = v;
                }
                n += 1;
            });
        }
        let mut out = String::new();
        for part in parts {
            match part {
                ScopePart::Text(t) => out.push_str(t),
                ScopePart::Capture(i) => out.push_str(values.get(*i).copied().unwrap_or_default()),
            }
        }
        Some(Cow::Owned(out))
    }
}

/// The rule that applies to `path` (normalised): the most specific that matches.
pub fn applying<'r>(rules: &'r [RouteRule], path: &str) -> Option<&'r RouteRule> {
    rules.iter().find(|r| r.matches(path))
}

// Rules are kept sorted by rank; this is only for tests that compare two.
#[cfg(test)]
fn more_specific(a: &RouteRule, b: &RouteRule) -> std::cmp::Ordering {
    a.rank.cmp(&b.rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<RouteRule> {
        parse_rules(text).unwrap()
    }

    /// Which rule (its pattern as written) applies to `path`, after normalising it.
    fn which<'r>(rules: &'r [RouteRule], raw: &str) -> Option<&'r str> {
        let path = normalise(raw, true).unwrap();
        applying(rules, &path).map(RouteRule::written)
    }

    const EXAMPLE: &str = r#"
        [[route]]
        prefix = "/v2/admin"
        permissions = "admin.*"

        [[route]]
        path = "/v2/wallets/{wallet_id}/transactions"
        scope = "wallet:{wallet_id}"
        permissions = "tx.create"
    "#;

    #[test]
    fn spellings_of_a_protected_path_meet_the_rule() {
        let r = rules(EXAMPLE);
        for raw in ["/v2/admin/x", "/v2/%61dmin/x", "/V2/ADMIN/x", "/v2/Admin", "/%76%32/admin"] {
            assert_eq!(which(&r, raw), Some("/v2/admin"), "{raw}");
        }
        assert_eq!(which(&r, "/v2/wallets"), None);
    }

    #[test]
    fn case_sensitive_rules_compare_exactly() {
        let r = rules("[[route]]\nprefix = \"/Files\"\npermissions = \"f.read\"\ncase_sensitive = true\n");
        assert_eq!(which(&r, "/Files/a"), Some("/Files"));
        assert_eq!(which(&r, "/files/a"), None);
        assert_eq!(which(&r, "/%46iles/a"), Some("/Files"), "decoded before comparing");
    }

    #[test]
    fn templates_match_segment_wise_and_fill_scopes() {
        let r = rules(EXAMPLE);
        let path = "/v2/wallets/w_1/transactions";
        let rule = applying(&r, path).unwrap();
        assert_eq!(rule.scope_for(path).as_deref(), Some("wallet:w_1"));
        let rule = applying(&r, "/V2/Wallets/W_3/transactions/").unwrap();
        assert_eq!(rule.scope_for("/V2/Wallets/W_3/transactions/").as_deref(), Some("wallet:W_3"), "values as sent");
        for path in ["/v2/wallets/transactions", "/v2/wallets/w_1/transactions/x", "/v2/wallets/w_1/tx", "/v2/wallets"]
        {
            assert!(applying(&r, path).is_none(), "{path}");
        }
        let r = rules("[[route]]\npath = \"/files/{owner}/{*rest}\"\nscope = \"files:{owner}:{rest}\"\n");
        let rule = applying(&r, "/files/u_1/a/b.txt").unwrap();
        assert_eq!(rule.scope_for("/files/u_1/a/b.txt").as_deref(), Some("files:u_1:a/b.txt"));
        assert_eq!(rule.scope_for("/files/u_1").as_deref(), Some("files:u_1:"), "the rest may be empty");
        assert!(applying(&r, "/files").is_none());
        let r = rules("[[route]]\nprefix = \"/v3\"\nscope = \"api:v3\"\n");
        assert_eq!(applying(&r, "/v3/x").unwrap().scope_for("/v3/x").as_deref(), Some("api:v3"));
        let r = rules("[[route]]\npath = \"/\"\npermissions = \"root\"\n");
        assert_eq!(which(&r, "/"), Some("/"));
        assert_eq!(which(&r, "/x"), None);
    }

    #[test]
    fn the_most_specific_rule_applies_whatever_the_file_order() {
        let patterns = [
            "prefix = \"/v2\"",
            "prefix = \"/v2/wallets\"",
            "path = \"/v2/{*rest}\"",
            "path = \"/v2/wallets/{*rest}\"",
            "path = \"/v2/wallets/{id}\"",
            "path = \"/v2/wallets/{id}/transactions\"",
            "path = \"/v2/wallets/export/transactions\"",
            "path = \"/v2/{kind}/w_1/transactions\"",
            "path = \"/v2/wallets/{id}/{sub}\"",
        ];
        let cases = [
            // More literal segments.
            ("/v2/wallets/export/transactions", "/v2/wallets/export/transactions"),
            // Equal literals and segments: the earlier literal wins.
            ("/v2/wallets/w_1/transactions", "/v2/wallets/{id}/transactions"),
            ("/v2/keys/w_1/transactions", "/v2/{kind}/w_1/transactions"),
            // More segments (a rest capture counts none).
            ("/v2/wallets/w_1/limits", "/v2/wallets/{id}/{sub}"),
            ("/v2/wallets/w_1", "/v2/wallets/{id}"),
            // A path template beats a prefix of as many literal segments.
            ("/v2/wallets", "/v2/wallets/{*rest}"),
            ("/v2/wallets/w_1/a/b", "/v2/wallets/{*rest}"),
            ("/v2", "/v2/{*rest}"),
            ("/v2/x", "/v2/{*rest}"),
            // Prefixes are string prefixes of the normal path.
            ("/v2/walletsX", "/v2/wallets"),
            ("/v2x", "/v2"),
        ];
        // Every rotation of the file gives the same answers.
        for shift in 0..patterns.len() {
            let mut text = String::new();
            for pattern in patterns.iter().cycle().skip(shift).take(patterns.len()) {
                text.push_str(&format!("[[route]]\n{pattern}\npermissions = \"p\"\n"));
            }
            let r = rules(&text);
            for (path, want) in cases {
                assert_eq!(which(&r, path), Some(want), "{path} (shift {shift})");
            }
            for pair in r.windows(2) {
                assert_ne!(more_specific(&pair[0], &pair[1]), std::cmp::Ordering::Less);
            }
        }
        // Equal rank: the one written first.
        let r = rules("[[route]]\npath = \"/a/{x}\"\n[[route]]\npath = \"/a/{y}\"\n");
        assert_eq!(which(&r, "/a/b"), Some("/a/{x}"));
        // The longer prefix among equals.
        let r = rules("[[route]]\nprefix = \"/a/b\"\n[[route]]\nprefix = \"/a/bc\"\n");
        assert_eq!(which(&r, "/a/bcd"), Some("/a/bc"));
        assert_eq!(which(&r, "/a/bx"), Some("/a/b"));
    }

    #[test]
    fn bad_rules_are_refused_with_their_reason() {
        for (text, says) in [
            ("[[route]]\npermissions = \"a\"\n", "exactly one of prefix and path"),
            ("[[route]]\nprefix = \"/a\"\npath = \"/a\"\n", "exactly one of prefix and path"),
            ("[[route]]\nprefix = \"a\"\n", "must start with /"),
            ("[[route]]\nprefix = \"/a/../b\"\n", ". or .."),
            ("[[route]]\nprefix = \"/a%2Fb\"\n", "encoded /"),
            ("[[route]]\npath = \"a/{x}\"\n", "must start with /"),
            ("[[route]]\npath = \"/a//{x}\"\n", "empty segment"),
            ("[[route]]\npath = \"/a/{x}/{x}\"\n", "used twice"),
            ("[[route]]\npath = \"/a/{*x}/b\"\n", "must be the last"),
            ("[[route]]\npath = \"/a/{x-y}\"\n", "letters, digits and _"),
            ("[[route]]\npath = \"/a/{}\"\n", "letters, digits and _"),
            ("[[route]]\npath = \"/a/b{x}\"\n", "a capture is a whole segment"),
            ("[[route]]\npath = \"/a/{x}\"\nscope = \"w:{y}\"\n", "{y} is not a capture"),
            ("[[route]]\npath = \"/a/{x}\"\nscope = \"w:{x\"\n", "unclosed"),
            ("[[route]]\npath = \"/a/{x}\"\nscope = \"w x:{x}\"\n", "is not a scope"),
            ("[[route]]\nprefix = \"/a\"\nscope = \"w:{x}\"\n", "{x} is not a capture"),
            ("[[route]]\nprefix = \"/a\"\npermissions = \"a AND\"\n", "permissions"),
            ("[[route]]\nprefix = \"/a\"\nscop = \"x\"\n", "unknown field"),
        ] {
            let err = parse_rules(text).err().unwrap_or_default();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn rules_are_stored_normalised() {
        let r = rules("[[route]]\nprefix = \"/v2/%61dmin\"\npermissions = \"admin.*\"\n");
        assert_eq!(which(&r, "/v2/admin/x"), Some("/v2/%61dmin"));
        let r = rules("[[route]]\npath = \"/v2/%61dmin/{x}\"\npermissions = \"admin.*\"\n");
        assert_eq!(which(&r, "/v2/admin/x"), Some("/v2/%61dmin/{x}"));
    }
}
