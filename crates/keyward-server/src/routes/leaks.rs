//! Leaked credentials reported from outside: GitHub's secret-scanning partner call
//! (`POST /v1/secret-scanning/github`, signed by GitHub) and a report from anyone who found
//! one (`POST /v1/leaks`, no credentials: holding the whole secret is the proof). What a
//! string is, is `leaks::lookup`'s; what a leak does, `leaks::found`'s and
//! `leaks::credential`'s.

use std::collections::HashSet;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use keyward_core::wire::leaks::{GithubFeedback, GithubTokenMatch, LeakReport, LeakReportAnswer};

use crate::audit::RequestOrigin;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse_json, RawBody};
use crate::http::pipeline::{read_body, too_large};
use crate::leaks::signing_keys::Rejected;
use crate::leaks::LeakSource;
use crate::state::SharedState;

/// The largest call from GitHub read (its batches can be large).
pub const MAX_GITHUB_BODY: usize = 4 * 1024 * 1024;
/// The most matches one call may carry.
pub const MAX_GITHUB_MATCHES: usize = 10_000;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[utoipa::path(post, path = "/v1/secret-scanning/github", tag = "leaks",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "which of the signer's public keys signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "base64 DER ECDSA P-256 signature over SHA-256 of the raw body")),
    request_body(content = Vec<GithubTokenMatch>, description = "GitHub's secret-scanning partner call: the matches of the workspace's key pattern found in public code (at most 10,000)"),
    responses(
        (status = 200, description = "GitHub's feedback: `true_positive` for each match that is a secret this server issued, in any state (a secret key, management key, verify token or session token, or a key imported by hash), `false_positive` otherwise (a registered public key is no secret); each was handled as its workspace's `leaked_keys` policy says", body = Vec<GithubFeedback>),
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
    // One lookup per kind of credential for the whole batch; only a credential not
    // reported before costs a write, and a repeat within the batch is handled once.
    let tokens: Vec<&str> = matches.iter().map(|m| m.token.as_str()).collect();
    let found = state.find_leaked(&tokens).await?;
    let mut handled = HashSet::new();
    let mut feedback = Vec::with_capacity(matches.len());
    let mut reports = Vec::new();
    for (m, found) in matches.iter().zip(found) {
        let label = if found.is_some() { "true_positive" } else { "false_positive" };
        feedback.push(GithubFeedback {
            token_raw: m.token.clone(),
            token_type: m.token_type.clone(),
            label: label.into(),
        });
        if let Some(leaked) = found.filter(|l| !l.reported()) {
            let (kind, id) = leaked.identity();
            if handled.insert((kind, id.to_string())) {
                reports.push((leaked, LeakSource::github_source(&m.source), m.url.clone()));
            }
        }
    }
    // The labels are known; the leaks are handled in a task of their own, which the answer
    // waits for up to `github_answer_within` (GitHub gives a call 30 s). A batch of
    // thousands of live keys finishes after the answer rather than time GitHub out.
    let task = tokio::spawn({
        let state = state.clone();
        async move {
            for (leaked, source, url) in reports {
                let from = LeakSource {
                    source,
                    url: Some(url.as_str()),
                    reporter: "github secret scanning",
                    origin: keyward_store::Origin::default(),
                };
                leaked.report(&state, &from).await?;
            }
            Ok::<(), ApiError>(())
        }
    });
    match tokio::time::timeout(state.config.github_answer_within, task).await {
        Ok(Ok(done)) => done?,
        Ok(Err(e)) => return Err(ApiError::Internal(format!("handling reported leaks: {e}"))),
        Err(_) => tracing::warn!(
            matches = matches.len(),
            "a secret-scanning batch takes longer than the answer may wait: its leaks are still being handled"
        ),
    }
    Ok(Json(feedback))
}

#[utoipa::path(post, path = "/v1/leaks", tag = "leaks", request_body = LeakReport,
    responses(
        (status = 202, description = "received: the same answer for a live credential, a dead one and a string that is none; a secret this server issued (secret key, management key, verify token, session token, key imported by hash) was handled as its workspace's `leaked_keys` policy says", body = LeakReportAnswer),
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
    if let Some(Some(leaked)) = state.find_leaked(&[r.key.as_str()]).await?.pop() {
        let from =
            LeakSource { source: "report".into(), url: r.url.as_deref(), reporter: "leak report", origin: origin.0 };
        leaked.report(&state, &from).await?;
    }
    Ok((StatusCode::ACCEPTED, Json(LeakReportAnswer { status: "received".into() })))
}
