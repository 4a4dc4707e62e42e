//! Keyward's verification codes as Unkey's `data.code`: Unkey has eight, so each of
//! Keyward's maps to the nearest (a revoked key is one Unkey would have deleted).

use keyward_core::verify::VerifyCode;

pub(crate) fn unkey_code(code: VerifyCode) -> &'static str {
    match code {
        VerifyCode::Valid => "VALID",
        VerifyCode::NotFound | VerifyCode::Revoked | VerifyCode::Malformed => "NOT_FOUND",
        VerifyCode::Expired => "EXPIRED",
        VerifyCode::Disabled => "DISABLED",
        VerifyCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
        VerifyCode::RateLimited => "RATE_LIMITED",
        VerifyCode::UsageExceeded => "USAGE_EXCEEDED",
        // Not this caller's to use here: an address or environment refused, a key awaiting
        // approval, a suspended workspace's key, a signed request's refusals (which /v2
        // never sees).
        VerifyCode::IpNotAllowed
        | VerifyCode::WrongEnvironment
        | VerifyCode::Suspended
        | VerifyCode::Pending
        | VerifyCode::InvalidSignature
        | VerifyCode::NonceExpired
        | VerifyCode::Replayed => "FORBIDDEN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_one_of_unkeys_eight() {
        let unkey = [
            "VALID",
            "NOT_FOUND",
            "FORBIDDEN",
            "INSUFFICIENT_PERMISSIONS",
            "USAGE_EXCEEDED",
            "RATE_LIMITED",
            "DISABLED",
            "EXPIRED",
        ];
        for c in VerifyCode::ALL {
            assert!(unkey.contains(&unkey_code(c)), "{c:?}");
        }
        assert_eq!(unkey_code(VerifyCode::Revoked), "NOT_FOUND");
        assert_eq!(unkey_code(VerifyCode::WrongEnvironment), "FORBIDDEN");
        assert_eq!(unkey_code(VerifyCode::IpNotAllowed), "FORBIDDEN");
        assert_eq!(unkey_code(VerifyCode::Suspended), "FORBIDDEN");
    }
}
