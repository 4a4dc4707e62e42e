//! The error body every refusal of the API carries, built in one place by the server and by
//! the SDK's tower layer.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// invalid_request, unauthenticated, forbidden, workspace_suspended, not_found,
    /// method_not_allowed, conflict, mfa_required, rate_limited, payload_too_large,
    /// bad_gateway, unavailable, internal
    pub code: String,
    pub message: String,
    /// The input field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Verification refusals: the verification code (e.g. `REVOKED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_code: Option<String>,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                field: None,
                verification_code: None,
            },
        }
    }

    pub fn field(mut self, field: Option<&str>) -> Self {
        self.error.field = field.map(str::to_string);
        self
    }

    pub fn verification_code(mut self, code: Option<&str>) -> Self {
        self.error.verification_code = code.map(str::to_string);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK layer serializes this with an empty fallback; strings always serialize.
    #[test]
    fn error_bodies_serialize_whole() {
        let b =
            ErrorBody::new("forbidden", "no \"quotes\" \u{0} lost").field(Some("f")).verification_code(Some("REVOKED"));
        let s = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<ErrorBody>(&s).unwrap(), b);
    }
}
