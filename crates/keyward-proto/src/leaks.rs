//! Leaked keys on the wire: GitHub's secret-scanning partner call and the feedback it is
//! answered with, and a report from anyone who found a key (`POST /v1/leaks`).

use serde::{Deserialize, Serialize};

/// One match in GitHub's call to `POST /v1/secret-scanning/github` (the body is an array of
/// these), as its partner program documents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GithubTokenMatch {
    /// The string found.
    pub token: String,
    /// The name of the pattern that found it (given at enrolment).
    #[serde(rename = "type", default)]
    pub token_type: String,
    /// The public URL where it was found (may be empty).
    #[serde(default)]
    pub url: String,
    /// Where on GitHub: `content`, `commit`, `issue_comment`, `gist_content`, `npm`, …
    #[serde(default)]
    pub source: String,
}

/// GitHub's feedback on one match: `true_positive` for a string that is a secret this server
/// issued (in any state), `false_positive` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GithubFeedback {
    pub token_raw: String,
    pub token_type: String,
    /// `true_positive` or `false_positive`
    pub label: String,
}

/// `POST /v1/leaks`: a key someone found where it should not be. Needs no credentials;
/// holding the whole key is the proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeakReport {
    /// The whole secret as found: a secret key, management key, verify token or session
    /// token (or a key imported by hash).
    pub key: String,
    /// Where it was found (at most 2048 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The answer to every report, whatever the key was: the same for a live key, a revoked
/// one and a made-up string, so a report tells nothing about what exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeakReportAnswer {
    /// Always `received`.
    pub status: String,
}
