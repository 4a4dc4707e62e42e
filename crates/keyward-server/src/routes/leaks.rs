//! Leaked keys reported from outside: GitHub's secret-scanning partner call
//! (`POST /v1/secret-scanning/github`, signed by GitHub) and a report from anyone who found
//! a key (`POST /v1/leaks`, no credentials: holding the whole key is the proof). What a
//! leak does is `leaks::found`'s.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use keyward_core::keyformat::{self, TokenKind};
use keyward_core::model::KeyRecord;
use keyward_core::wire::leaks::{GithubFeedback, GithubTokenMatch, LeakReport, LeakReportAnswer};

use crate::audit::RequestOrigin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse_json, RawBody};
use crate::http::pipeline::{read_body, too_large};
use crate::leaks::signing_keys::Rejected;
use crate::leaks::{leaked, LeakSource};
use crate::state::SharedState;

/// The largest call from GitHub read (its batches can be large).
pub const MAX_GITHUB_BODY: usize = 4 * 1024 * 1024;
/// The most matches one call may carry.
pub const MAX_GITHUB_MATCHES: usize = 10_000;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A Keyward secret key's shape and checksum: anything else is no key of ours, answered
/// without a lookup.
fn secret_key(token: &str) -> bool {
    keyformat::parse(token).is_some_and(|p| p.kind == TokenKind::Secret)
}

#[utoipa::path(post, path = "/v1/secret-scanning/github", tag = "leaks",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "which of the signer's public keys signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "base64 DER ECDSA P-256 signature over SHA-256 of the raw body")),
    request_body(content = Vec<GithubTokenMatch>, description = "GitHub's secret-scanning partner call: the matches of the workspace's key pattern found in public code (at most 10,000)"),
    responses(
        (status = 200, description = "GitHub's feedback: `true_positive` for each match that is a key of this server (in any state), `false_positive` otherwise; a live key was handled as the workspace's `leaked_keys` policy says", body = Vec<GithubFeedback>),
        (status = 400, description = "a body that is not an array of matches", body = ErrorBody),
        (status = 401, description = "no signature, an unknown key identifier or a bad signature: nothing was done", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn github(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Vec<GithubFeedback>>> {
    let raw = read_body(body, MAX_GITHUB_BODY, too_large).await?;
    let now = state.clock.now();
    let id = header(&headers, "github-public-key-identifier");
    let sig = header(&headers, "github-public-key-signature");
    if let Err(why) = state.scanning_keys.check(id, sig, &raw, now).await {
        tracing::warn!(?why, "a secret-scanning call was refused");
        return Err(ApiError::Unauthenticated(match why {
            Rejected::MissingHeaders => {
                "Github-Public-Key-Identifier and Github-Public-Key-Signature are required".into()
            }
            Rejected::UnknownKey | Rejected::BadSignature => "the signature does not verify".into(),
        }));
    }
    let matches: Vec<GithubTokenMatch> = parse_json(&raw)?;
    if matches.len() > MAX_GITHUB_MATCHES {
        return Err(ApiError::PayloadTooLarge(format!("at most {MAX_GITHUB_MATCHES} matches per call")));
    }
    // One lookup for the whole batch, by hash; only strings of a key's shape and checksum
    // are hashed at all.
    let hashes: Vec<Option<String>> =
        matches.iter().map(|m| secret_key(&m.token).then(|| state.pepper.hash(&m.token))).collect();
    let mut wanted: Vec<String> = hashes.iter().flatten().cloned().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut found: HashMap<String, KeyRecord> = HashMap::new();
    for rec in state.store.keys_by_hashes(&wanted).await? {
        if let Some(h) = rec.hash.clone() {
            found.insert(h, rec);
        }
    }
    let mut feedback = Vec::with_capacity(matches.len());
    for (m, hash) in matches.iter().zip(&hashes) {
        let rec = hash.as_ref().and_then(|h| found.get(h));
        let label = if rec.is_some() { "true_positive" } else { "false_positive" };
        // Only a key not reported before costs a write; repeats (in this batch or since)
        // are answered from the lookup.
        if let Some(rec) = rec.filter(|r| r.leak.is_none()).cloned() {
            let from = LeakSource {
                source: LeakSource::github_source(&m.source),
                url: Some(m.url.as_str()),
                reporter: "github secret scanning",
                origin: keyward_store::Origin::default(),
            };
            let after = leaked(&state, &rec, &from).await?;
            if let Some(h) = after.hash.clone() {
                found.insert(h, after);
            }
        }
        feedback.push(GithubFeedback {
            token_raw: m.token.clone(),
            token_type: m.token_type.clone(),
            label: label.into(),
        });
    }
    Ok(Json(feedback))
}

#[utoipa::path(post, path = "/v1/leaks", tag = "leaks", request_body = LeakReport,
    responses(
        (status = 202, description = "received: the same answer for a live key, a dead one and a string that is no key; a live key was handled as its workspace's `leaked_keys` policy says", body = LeakReportAnswer),
        (status = 400, description = "a body that is not a report (`field` names what is wrong)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, description = "too many reports from this address; see `Retry-After`", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn report(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    origin: RequestOrigin,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<LeakReportAnswer>)> {
    let now = state.clock.now();
    let ip = state.client_ip(peer.ip(), &headers);
    // Every request counts, well-formed or not, before any other work.
    if let Some(retry_after) = state.leak_report_refused(ip, now).await {
        return Err(ApiError::RateLimited { retry_after, message: "too many leak reports; try again later".into() });
    }
    let r: LeakReport = parse_json(&body)?;
    if r.url.as_ref().is_some_and(|u| u.chars().count() > crate::leaks::found::MAX_LEAK_URL) {
        return Err(ApiError::invalid("url", "url must be at most 2048 characters"));
    }
    // Never a verification: no usage is counted, no last-used mark, no cache entry.
    if secret_key(&r.key) {
        if let Some(rec) = state.store.key_by_hash(&state.pepper.hash(&r.key)).await? {
            let from = LeakSource {
                source: "report".into(),
                url: r.url.as_deref(),
                reporter: "leak report",
                origin: origin.0,
            };
            leaked(&state, &rec, &from).await?;
        }
    }
    Ok((StatusCode::ACCEPTED, Json(LeakReportAnswer { status: "received".into() })))
}
