//! Helpers of the management routes: approval quorums, no-escalation checks, one-time codes,
//! account and address lockouts, new key records, idempotent answers, sealing, audit origins,
//! deleted workspaces' erasure.

pub(crate) mod audit;
pub(crate) mod erasure;
pub(crate) mod escalation;
pub(crate) mod idempotency;
pub(crate) mod key_records;
pub(crate) mod limiter;
pub(crate) mod lockout;
pub(crate) mod mfa;
pub(crate) mod quorum;
pub(crate) mod seal;
