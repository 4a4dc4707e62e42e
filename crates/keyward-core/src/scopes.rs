//! Resource scopes such as `wallet:w_123`. A granted scope ending in `:*` covers every scope
//! under it (`wallet:*` covers `wallet:w_1` and `wallet:w_1:tx`); `*` covers everything.

pub fn scope_covers(granted: &str, wanted: &str) -> bool {
    crate::permissions::permission_covers(granted, wanted)
}

pub fn any_covers(granted: &[String], wanted: &str) -> bool {
    granted.iter().any(|g| scope_covers(g, wanted))
}

pub fn valid_scope(s: &str) -> bool {
    crate::permissions::valid_name(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_matching() {
        assert!(scope_covers("wallet:*", "wallet:w_1"));
        assert!(scope_covers("wallet:w_1", "wallet:w_1"));
        assert!(!scope_covers("wallet:w_1", "wallet:w_2"));
        assert!(!scope_covers("wallet:*", "vault:w_1"));
        assert!(scope_covers("*", "vault:w_1"));
        assert!(!scope_covers("wallet:*", "wallet:"));
    }
}
