//! The stable verification codes every verification surface answers with.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Valid,
    Malformed,
    NotFound,
    Revoked,
    Expired,
    Pending,
    IpNotAllowed,
    InsufficientPermissions,
    RateLimited,
    InvalidSignature,
    NonceExpired,
    Replayed,
    /// The key is disabled, or its owner (a service account) is disabled or deleted.
    Disabled,
    /// The key's credits are spent.
    UsageExceeded,
    /// The key belongs to another environment than the one verification is bound to (a
    /// `test` key where only `live` ones may pass, or the reverse).
    WrongEnvironment,
    /// The key's workspace is suspended by the service's operator: every key of it answers
    /// this until the workspace is resumed.
    Suspended,
}

impl VerifyCode {
    /// Every code, in the order the contract lists them.
    pub const ALL: [VerifyCode; 16] = [
        VerifyCode::Valid,
        VerifyCode::Malformed,
        VerifyCode::NotFound,
        VerifyCode::Revoked,
        VerifyCode::Expired,
        VerifyCode::Pending,
        VerifyCode::IpNotAllowed,
        VerifyCode::InsufficientPermissions,
        VerifyCode::RateLimited,
        VerifyCode::InvalidSignature,
        VerifyCode::NonceExpired,
        VerifyCode::Replayed,
        VerifyCode::Disabled,
        VerifyCode::UsageExceeded,
        VerifyCode::WrongEnvironment,
        VerifyCode::Suspended,
    ];

    /// The code's place in [`VerifyCode::ALL`] (counters index arrays by it).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::Malformed => "MALFORMED",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Revoked => "REVOKED",
            VerifyCode::Expired => "EXPIRED",
            VerifyCode::Pending => "PENDING",
            VerifyCode::IpNotAllowed => "IP_NOT_ALLOWED",
            VerifyCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            VerifyCode::RateLimited => "RATE_LIMITED",
            VerifyCode::InvalidSignature => "INVALID_SIGNATURE",
            VerifyCode::NonceExpired => "NONCE_EXPIRED",
            VerifyCode::Replayed => "REPLAYED",
            VerifyCode::Disabled => "DISABLED",
            VerifyCode::UsageExceeded => "USAGE_EXCEEDED",
            VerifyCode::WrongEnvironment => "WRONG_ENVIRONMENT",
            VerifyCode::Suspended => "SUSPENDED",
        }
    }

    /// Refusals about the credential itself (forward-auth answers 401); the others are about
    /// what the credential may do (403).
    pub fn is_authentication_failure(self) -> bool {
        !matches!(
            self,
            VerifyCode::Valid
                | VerifyCode::IpNotAllowed
                | VerifyCode::InsufficientPermissions
                | VerifyCode::RateLimited
                | VerifyCode::UsageExceeded
                | VerifyCode::WrongEnvironment
                | VerifyCode::Suspended
        )
    }

    /// Refusals of a valid key that ran out of its limits or credits (429 on the surfaces
    /// that answer by status).
    pub fn is_limit(self) -> bool {
        matches!(self, VerifyCode::RateLimited | VerifyCode::UsageExceeded)
    }
}
