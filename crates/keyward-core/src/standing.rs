//! A workspace's standing with the service's operator: active, suspended (its keys answer
//! `SUSPENDED`, its members may only read) or deleted (its keys are not found while its
//! data is erased). Every cached key carries its workspace's standing, so verification
//! decides it without a lookup.

use crate::codes::VerifyCode;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Standing {
    #[default]
    Active,
    Suspended,
    Deleted,
}

impl Standing {
    /// As the operator API shows it (`status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Suspended => "suspended",
            Standing::Deleted => "deleted",
        }
    }

    /// The standing of a stored workspace: deletion wins over suspension.
    pub fn of(suspended: bool, deleted: bool) -> Standing {
        match (suspended, deleted) {
            (_, true) => Standing::Deleted,
            (true, false) => Standing::Suspended,
            (false, false) => Standing::Active,
        }
    }

    /// What a verification of one of the workspace's keys answers before anything else is
    /// decided, if the standing refuses it.
    pub fn refusal(self) -> Option<VerifyCode> {
        match self {
            Standing::Active => None,
            Standing::Suspended => Some(VerifyCode::Suspended),
            // Its keys are on their way out: as good as gone already.
            Standing::Deleted => Some(VerifyCode::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_wins_and_each_standing_refuses_as_documented() {
        assert_eq!(Standing::of(false, false), Standing::Active);
        assert_eq!(Standing::of(true, false), Standing::Suspended);
        assert_eq!(Standing::of(true, true), Standing::Deleted);
        assert_eq!(Standing::Active.refusal(), None);
        assert_eq!(Standing::Suspended.refusal(), Some(VerifyCode::Suspended));
        assert_eq!(Standing::Deleted.refusal(), Some(VerifyCode::NotFound));
    }
}
