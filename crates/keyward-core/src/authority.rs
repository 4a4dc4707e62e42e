//! What a key may do: its own permissions plus those of its roles, each in the scopes it was
//! given. Derived once when a key is cached (and again when one of its roles changes), so
//! a verification checks precomputed lists and does no more work than a key without roles.
//!
//! The rule: a role named in the key's `grants` applies only inside the scopes of its grants
//! (seed 001's "For Each Role"); the key's own permissions and every other role of the key
//! apply inside the key's own `scopes`. An unscoped check sees every permission; a scoped one
//! sees only those whose scopes cover the scope asked about.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use keyward_proto::keys::KeyGrant;

use crate::permissions::{permission_covers, Query};
use crate::scopes::any_covers;

/// The permissions each role named by a key grants (a role nobody defined grants none).
pub type RoleDefs = BTreeMap<String, Vec<String>>;

/// Everything a key's authority is derived from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Basis {
    /// Shared with the derived authority when no role adds to them (most keys).
    pub permissions: Arc<[String]>,
    pub scopes: Arc<[String]>,
    /// Every role the key holds (its own, its grants' and its service account's), in order.
    pub roles: Box<[String]>,
    pub grants: Box<[KeyGrant]>,
    pub defs: RoleDefs,
}

/// A key's authority, precomputed.
#[derive(Debug, Clone, Default)]
pub struct Authority {
    /// The union of every permission the key holds, in first-seen order.
    effective: Arc<[String]>,
    /// Permissions that apply inside the key's own scopes.
    under_own: Arc<[String]>,
    own_scopes: Arc<[String]>,
    /// Each grant's scopes and its role's permissions; empty for most keys.
    granted: Box<[Scoped]>,
}

/// A basis with the authority derived from it. Keys that hold the same basis share one
/// (`intern::access`): most keys of a workspace hold the same few permission sets.
#[derive(Debug)]
pub struct Access {
    pub basis: Basis,
    pub authority: Authority,
    /// The roles, then the scopes, comma-separated as the identity headers carry them:
    /// joined once for all the keys that share this access, not on every request.
    pub listed: (Box<str>, Box<str>),
    /// Each role with the scopes it applies in, as `X-Keyward-Grants` carries it
    /// ([`Basis::grants_listed`]).
    pub grants_listed: Box<str>,
    /// The verify answer's `"roles":…,"permissions":…,"grants":…,"scopes":…`, serialized
    /// once for all the keys that share this access (see `verify::VerifiableKey`).
    pub answer: Box<str>,
}

/// The fields of the verify answer an access decides, in the answer's order.
#[derive(serde::Serialize)]
struct AnswerPart<'a> {
    roles: &'a [String],
    permissions: &'a [String],
    grants: &'a [KeyGrant],
    scopes: &'a [String],
}

impl Access {
    pub fn new(basis: Basis) -> Access {
        let listed = (basis.roles.join(",").into(), basis.scopes.join(",").into());
        let grants_listed = basis.grants_listed().into();
        let authority = basis.derive();
        let answer = crate::verify::json_fields(&AnswerPart {
            roles: &basis.roles,
            permissions: authority.effective(),
            grants: &basis.grants,
            scopes: &basis.scopes,
        });
        Access { authority, basis, listed, grants_listed, answer }
    }
}

// An access is its basis: the authority is derived from it.
impl PartialEq for Access {
    fn eq(&self, other: &Self) -> bool {
        self.basis == other.basis
    }
}

impl Eq for Access {}

impl std::hash::Hash for Access {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.basis.hash(state);
    }
}

/// Permissions that apply only inside some scopes.
#[derive(Debug, Clone, Default)]
struct Scoped {
    scopes: Box<[String]>,
    permissions: Box<[String]>,
}

fn push_unique(out: &mut Vec<String>, items: &[String]) {
    for p in items {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
}

impl Basis {
    /// Roles held under the key's own scopes: those with no grant of their own.
    fn ungranted_roles(&self) -> impl Iterator<Item = &String> {
        self.roles.iter().filter(|r| !self.grants.iter().any(|g| &g.role == *r))
    }

    /// Every role the key holds with the scopes it applies in: a role with a grant in the
    /// grant's scopes, any other in the key's own. `role=scope scope, role=scope`: roles in
    /// the key's order, each once, separated by `, `; a role's scopes separated by one space
    /// (none: the role counts only where no scope is asked). Unambiguous, since names hold
    /// no `=`, `,` or space.
    pub fn grants_listed(&self) -> String {
        let mut out = String::new();
        for (i, role) in self.roles.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(role);
            out.push('=');
            let scopes = match self.grants.iter().find(|g| &g.role == role) {
                Some(g) => &g.scopes[..],
                None => &self.scopes[..],
            };
            out.push_str(&scopes.join(" "));
        }
        out
    }

    pub fn derive(&self) -> Authority {
        let none = Vec::new();
        let def = |r: &str| self.defs.get(r).unwrap_or(&none);
        let mut under_own: Arc<[String]> = Arc::clone(&self.permissions);
        if self.ungranted_roles().any(|r| !def(r).is_empty()) {
            let mut v = self.permissions.to_vec();
            for r in self.ungranted_roles() {
                push_unique(&mut v, def(r));
            }
            under_own = v.into();
        }
        let granted: Vec<_> = self
            .grants
            .iter()
            .map(|g| Scoped { scopes: g.scopes.clone().into(), permissions: def(&g.role).clone().into() })
            .collect();
        let mut effective = Arc::clone(&under_own);
        if !granted.is_empty() {
            let mut v = under_own.to_vec();
            for g in &granted {
                push_unique(&mut v, &g.permissions);
            }
            effective = v.into();
        }
        Authority { effective, under_own, own_scopes: Arc::clone(&self.scopes), granted: granted.into() }
    }
}

impl Authority {
    /// Every permission the key holds, whatever the scope.
    pub fn effective(&self) -> &[String] {
        &self.effective
    }

    /// Does the key satisfy `query` (if any) in `scope` (if any)?
    pub fn allows(&self, query: Option<&Query>, scope: Option<&str>) -> bool {
        let Some(scope) = scope else {
            return query.is_none_or(|q| q.allows(&self.effective));
        };
        let own = any_covers(&self.own_scopes, scope);
        if self.granted.is_empty() {
            // The common case: exactly the work of a key without roles.
            return own && query.is_none_or(|q| q.allows(&self.under_own));
        }
        // No allocation: each required permission asks the covering sets directly.
        let covers = |g: &Scoped| any_covers(&g.scopes, scope);
        if !own && !self.granted.iter().any(covers) {
            return false;
        }
        let held = |set: &[String], p: &str| set.iter().any(|g| permission_covers(g, p));
        query.is_none_or(|q| {
            q.allows_with(&|p| {
                (own && held(&self.under_own, p)) || self.granted.iter().any(|g| covers(g) && held(&g.permissions, p))
            })
        })
    }
}

/// What a member may hand out: everything, or only what these patterns cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Everything,
    Only(Vec<String>),
}

impl Reach {
    /// The first of `permissions` outside this reach.
    pub fn first_beyond<'a>(&self, permissions: &'a [String]) -> Option<&'a str> {
        match self {
            Reach::Everything => None,
            Reach::Only(mine) => {
                permissions.iter().map(String::as_str).find(|p| !mine.iter().any(|g| permission_covers(g, p)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// Seed 001's example: operator on wallets w_1 and w_2, viewer on everything.
    fn seed_key() -> Basis {
        let mut defs = RoleDefs::new();
        defs.insert("operator".into(), v(&["tx.create", "tx.approve", "wallet.read"]));
        defs.insert("viewer".into(), v(&["wallet.read", "balance.read"]));
        Basis {
            permissions: v(&["profile.read"]).into(),
            scopes: v(&["*"]).into(),
            roles: v(&["operator", "viewer"]).into(),
            grants: vec![KeyGrant { role: "operator".into(), scopes: v(&["wallet:w_1", "wallet:w_2"]) }].into(),
            defs,
        }
    }

    #[test]
    fn table_of_cases() {
        use crate::codes::VerifyCode::{InsufficientPermissions as No, Valid};
        let a = seed_key().derive();
        // (permission query, scope, expected)
        let cases: &[(Option<&str>, Option<&str>, crate::codes::VerifyCode)] = &[
            (Some("tx.create"), Some("wallet:w_1"), Valid),
            (Some("tx.create"), Some("wallet:w_2"), Valid),
            // The operator grant does not cover w_3: its permissions do not count there.
            (Some("tx.create"), Some("wallet:w_3"), No),
            // Viewer holds everywhere (the key's own scopes are `*`).
            (Some("balance.read"), Some("wallet:w_3"), Valid),
            (Some("balance.read AND tx.approve"), Some("wallet:w_1"), Valid),
            (Some("balance.read AND tx.approve"), Some("wallet:w_3"), No),
            (Some("profile.read"), Some("vault:v_1"), Valid),
            // Unscoped: every permission the key holds.
            (Some("tx.approve"), None, Valid),
            (Some("admin.delete"), None, No),
            (None, Some("wallet:w_9"), Valid),
        ];
        for (q, scope, want) in cases {
            let query = q.map(|q| Query::parse(q).unwrap());
            let got = if a.allows(query.as_ref(), *scope) { Valid } else { No };
            assert_eq!(got, *want, "query {q:?} in {scope:?}");
        }
        assert_eq!(a.effective(), v(&["profile.read", "wallet.read", "balance.read", "tx.create", "tx.approve"]));
    }

    #[test]
    fn grants_are_listed_role_by_role_with_their_scopes() {
        assert_eq!(seed_key().grants_listed(), "operator=wallet:w_1 wallet:w_2, viewer=*");
        let mut b = seed_key();
        b.scopes = v(&[]).into();
        b.roles = v(&["viewer", "operator", "auditor"]).into();
        assert_eq!(b.grants_listed(), "viewer=, operator=wallet:w_1 wallet:w_2, auditor=");
        assert_eq!(Basis::default().grants_listed(), "");
        assert_eq!(Access::new(seed_key()).grants_listed.as_ref(), "operator=wallet:w_1 wallet:w_2, viewer=*");
    }

    #[test]
    fn a_granted_role_without_covering_scope_gives_nothing_there() {
        let mut b = seed_key();
        b.scopes = v(&["vault:*"]).into();
        let a = b.derive();
        let q = Query::parse("wallet.read").unwrap();
        assert!(a.allows(Some(&q), Some("wallet:w_1")), "from the operator grant");
        assert!(!a.allows(Some(&q), Some("wallet:w_7")), "viewer applies only in vault:*");
        assert!(a.allows(Some(&q), Some("vault:v_1")));
        assert!(!a.allows(None, Some("ledger:l_1")), "no scope covers ledger:l_1");
    }

    #[test]
    fn undefined_roles_grant_nothing_and_changes_re_derive() {
        let mut b = seed_key();
        b.defs.remove("viewer");
        let q = Query::parse("balance.read").unwrap();
        assert!(!b.derive().allows(Some(&q), None));
        b.defs.insert("viewer".into(), v(&["balance.*"]));
        assert!(b.derive().allows(Some(&q), None));
    }

    #[test]
    fn reach() {
        let r = Reach::Only(v(&["wallet.*", "tx.create"]));
        assert_eq!(r.first_beyond(&v(&["wallet.read", "tx.create"])), None);
        assert_eq!(r.first_beyond(&v(&["wallet.*", "tx.*"])), Some("tx.*"));
        assert_eq!(r.first_beyond(&v(&["*"])), Some("*"));
        assert_eq!(Reach::Everything.first_beyond(&v(&["*"])), None);
    }
}
