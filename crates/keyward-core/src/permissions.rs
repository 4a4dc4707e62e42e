//! The permission query language of `POST /v1/keys/verify`:
//! `wallet.read AND (tx.create OR tx.approve)`. `AND` binds tighter than `OR`; parentheses
//! group. A granted permission ending in `.*` covers every permission below it
//! (`wallet.*` covers `wallet.read` and `wallet.tx.create`); `*` covers everything.

use crate::error::CoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Perm(String),
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
}

const MAX_QUERY_LEN: usize = 1024;
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    And,
    Or,
    Open,
    Close,
}

fn is_perm_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '*' | '/')
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' {
            out.push(Tok::Open);
            chars.next();
        } else if c == ')' {
            out.push(Tok::Close);
            chars.next();
        } else if is_perm_char(c) {
            let mut end = i;
            while let Some(&(j, d)) = chars.peek() {
                if !is_perm_char(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            let w = &s[i..end];
            out.push(match w {
                "AND" => Tok::And,
                "OR" => Tok::Or,
                _ => Tok::Word(w.to_string()),
            });
        } else {
            return Err(format!("unexpected character {c:?} at position {i}"));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn or_expr(&mut self) -> Result<Query, String> {
        let mut left = self.and_expr()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let right = self.and_expr()?;
            left = Query::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Query, String> {
        let mut left = self.atom()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let right = self.atom()?;
            left = Query::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Query, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Word(w)) => {
                self.pos += 1;
                Ok(Query::Perm(w))
            }
            Some(Tok::Open) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err("too deeply nested".into());
                }
                self.pos += 1;
                let q = self.or_expr()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err("missing closing parenthesis".into());
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(q)
            }
            Some(t) => Err(format!("expected a permission, found {t:?}")),
            None => Err("unexpected end of query".into()),
        }
    }
}

impl Query {
    pub fn parse(s: &str) -> Result<Query, CoreError> {
        let bad = |m: String| CoreError::invalid("permissions", format!("invalid permission query: {m}"));
        if s.len() > MAX_QUERY_LEN {
            return Err(bad(format!("longer than {MAX_QUERY_LEN} characters")));
        }
        let toks = tokenize(s).map_err(bad)?;
        let mut p = Parser { toks, pos: 0, depth: 0 };
        let q = p.or_expr().map_err(bad)?;
        if p.pos != p.toks.len() {
            return Err(bad(format!("unexpected {:?}", p.toks[p.pos])));
        }
        Ok(q)
    }

    pub fn allows(&self, granted: &[String]) -> bool {
        match self {
            Query::Perm(p) => granted.iter().any(|g| permission_covers(g, p)),
            Query::And(a, b) => a.allows(granted) && b.allows(granted),
            Query::Or(a, b) => a.allows(granted) || b.allows(granted),
        }
    }

    /// Like [`Query::allows`], asking `has` whether each required permission is held.
    pub fn allows_with(&self, has: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Query::Perm(p) => has(p),
            Query::And(a, b) => a.allows_with(has) && b.allows_with(has),
            Query::Or(a, b) => a.allows_with(has) || b.allows_with(has),
        }
    }
}

/// Does the granted permission `g` cover the required permission `p`?
pub fn permission_covers(g: &str, p: &str) -> bool {
    if g == "*" || g == p {
        return true;
    }
    match g.strip_suffix('*') {
        // `wallet.*` covers `wallet.read`; the separator must match so `wal*` is literal-prefix.
        Some(stem) if stem.ends_with('.') || stem.ends_with(':') => p.starts_with(stem) && p.len() > stem.len(),
        _ => false,
    }
}

/// A permission or role name as stored on a key.
pub fn valid_name(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.chars().all(is_perm_char) && s != "AND" && s != "OR"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn precedence_and_parentheses() {
        let q = Query::parse("a OR b AND c").unwrap();
        assert!(q.allows(&g(&["a"])));
        assert!(!q.allows(&g(&["b"])));
        assert!(q.allows(&g(&["b", "c"])));
        let q = Query::parse("(a OR b) AND c").unwrap();
        assert!(!q.allows(&g(&["a"])));
        assert!(q.allows(&g(&["a", "c"])));
    }

    #[test]
    fn issue_example() {
        let q = Query::parse("wallet.read AND (tx.create OR tx.approve)").unwrap();
        assert!(q.allows(&g(&["wallet.read", "tx.approve"])));
        assert!(!q.allows(&g(&["wallet.read"])));
        assert!(q.allows(&g(&["wallet.*", "tx.*"])));
        assert!(q.allows(&g(&["*"])));
    }

    #[test]
    fn wildcards() {
        assert!(permission_covers("wallet.*", "wallet.read"));
        assert!(permission_covers("wallet.*", "wallet.tx.create"));
        assert!(!permission_covers("wallet.*", "wallet"));
        assert!(!permission_covers("wallet.*", "wallets.read"));
        assert!(!permission_covers("wal*", "wallet.read"));
        assert!(!permission_covers("wallet.read", "wallet.*"));
    }

    #[test]
    fn syntax_errors_name_the_field() {
        for bad in ["", "a AND", "(a", "a)", "a b", "a & b", "AND a", "()"] {
            let e = Query::parse(bad).unwrap_err();
            assert_eq!(e.field(), "permissions", "{bad}");
        }
        let deep = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert!(Query::parse(&deep).is_err());
    }
}
