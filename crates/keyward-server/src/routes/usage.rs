//! Usage and alerts: `GET /v1/keys/{id}/usage`, `GET /v1/usage` (totals and the busiest
//! keys), `GET /v1/alerts`, `POST /v1/alerts/{id}/acknowledge`, and `GET /metrics`.

use keyward_core::audit_action::AuditAction;
use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use keyward_core::clock::{from_ms, to_ms};
use keyward_core::roles::Action;
use keyward_core::wire::usage::{AlertList, AlertView, KeyUsage, TopKey, UsageBucket, WorkspaceUsage};
use keyward_store::{Alert, Bucket, DAY_MS, HOUR_MS, MINUTE_MS};

use crate::audit::{target as audit_target, RequestOrigin};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Caller;
use crate::metrics::Gauges;
use crate::state::{AppState, SharedState};

/// Most buckets one answer holds.
const MAX_BUCKETS: i64 = 2_880;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// RFC 3339; default 24 hours before `to`.
    pub from: Option<String>,
    /// RFC 3339; default now.
    pub to: Option<String>,
    /// `minute`, `hour` (default) or `day`.
    pub granularity: Option<String>,
    /// Only the verifications whose request named this tag.
    pub tag: Option<String>,
    /// `GET /v1/usage` only: only the keys of this environment, `test` or `live`
    /// (verifications of unknown keys are then not counted).
    pub environment: Option<String>,
}

struct Range {
    granularity: &'static str,
    width: i64,
    from: i64,
    to: i64,
}

fn range(state: &AppState, q: &UsageParams) -> ApiResult<Range> {
    let (granularity, width) = match q.granularity.as_deref().unwrap_or("hour") {
        "minute" => ("minute", MINUTE_MS),
        "hour" => ("hour", HOUR_MS),
        "day" => ("day", DAY_MS),
        _ => return Err(ApiError::invalid("granularity", "granularity must be minute, hour or day")),
    };
    let to = super::paging::time("to", q.to.as_deref())?.unwrap_or_else(|| state.clock.now());
    let from = super::paging::time("from", q.from.as_deref())?.unwrap_or(to - chrono::Duration::hours(24));
    if from >= to {
        return Err(ApiError::invalid("from", "from must be before to"));
    }
    let (from, to) = (to_ms(from).div_euclid(width) * width, to_ms(to));
    if (to - from) / width > MAX_BUCKETS {
        return Err(ApiError::invalid(
            "granularity",
            format!("at most {MAX_BUCKETS} buckets: widen granularity or narrow the range"),
        ));
    }
    if let Some(t) = &q.tag {
        keyward_core::validate::tags(&[t.as_str().into()])
            .map_err(|_| ApiError::invalid("tag", "a tag is 1-64 characters without control characters"))?;
    }
    Ok(Range { granularity, width, from, to })
}

/// The finest stored buckets that still cover the range: minutes while they are kept, then
/// hours, then days.
fn source(state: &AppState, r: &Range) -> &'static str {
    let (minutes, hours, _) = state.config.usage_retention;
    let now = state.clock.now();
    if r.granularity == "minute" || from_ms(r.from) >= now - minutes {
        "minute"
    } else if r.granularity == "hour" || from_ms(r.from) >= now - hours {
        "hour"
    } else {
        "day"
    }
}

fn add(into: &mut BTreeMap<String, u64>, code: &str, n: u64) {
    *into.entry(code.to_string()).or_default() += n;
}

/// Every bucket of the range (empty ones too) with the rows summed into them.
fn buckets(r: &Range, rows: &[Bucket]) -> Vec<UsageBucket> {
    let mut out: Vec<UsageBucket> = (0..)
        .map(|i| r.from + i * r.width)
        .take_while(|s| *s < r.to)
        .map(|s| UsageBucket { start: from_ms(s), total: 0, by_code: BTreeMap::new() })
        .collect();
    for b in rows {
        let i = (b.start_ms.div_euclid(r.width) * r.width - r.from) / r.width;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            let n = u64::try_from(b.count).unwrap_or(0);
            slot.total += n;
            add(&mut slot.by_code, &b.code, n);
        }
    }
    out
}

/// A total and its split by code.
type Counted = (u64, BTreeMap<String, u64>);

fn totals(rows: &[Bucket]) -> (u64, BTreeMap<String, u64>) {
    let mut by_code = BTreeMap::new();
    let mut total = 0;
    for b in rows {
        let n = u64::try_from(b.count).unwrap_or(0);
        total += n;
        add(&mut by_code, &b.code, n);
    }
    (total, by_code)
}

#[utoipa::path(get, path = "/v1/keys/{id}/usage", tag = "usage", params(("id" = String, Path), UsageParams),
    responses((status = 200, body = KeyUsage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn key_usage(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<UsageParams>,
) -> ApiResult<Json<KeyUsage>> {
    caller.require(Action::Read)?;
    let r = range(&state, &q)?;
    let ws = &caller.0.workspace_id;
    super::keys::find(&state, &caller, &id).await?;
    let rows = state
        .store
        .usage_buckets(source(&state, &r), ws, Some(&id), q.tag.as_deref(), from_ms(r.from), from_ms(r.to))
        .await?;
    let (total, by_code) = totals(&rows);
    Ok(Json(KeyUsage {
        key_id: id,
        granularity: r.granularity.into(),
        from: from_ms(r.from),
        to: from_ms(r.to),
        total,
        by_code,
        buckets: buckets(&r, &rows),
    }))
}

#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageParams),
    responses((status = 200, body = WorkspaceUsage), (status = 400, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn workspace_usage(
    State(state): State<SharedState>,
    caller: Caller,
    Query(q): Query<UsageParams>,
) -> ApiResult<Json<WorkspaceUsage>> {
    caller.require(Action::Read)?;
    let r = range(&state, &q)?;
    let ws = &caller.0.workspace_id;
    if let Some(e) = &q.environment {
        if !keyward_core::model::ENVIRONMENTS.contains(&e.as_str()) {
            return Err(ApiError::invalid("environment", format!("unknown environment {e:?}")));
        }
    }
    let (env, tag) = (q.environment.as_deref(), q.tag.as_deref());
    let rows =
        state.store.usage_buckets_in(source(&state, &r), ws, None, tag, env, from_ms(r.from), from_ms(r.to)).await?;
    let (total, by_code) = totals(&rows);
    let mut per_key: HashMap<&str, Counted> = HashMap::new();
    let mut unknown_keys = 0;
    for b in &rows {
        let n = u64::try_from(b.count).unwrap_or(0);
        if b.key_id.is_empty() {
            unknown_keys += n;
            continue;
        }
        let e = per_key.entry(b.key_id.as_str()).or_default();
        e.0 += n;
        add(&mut e.1, &b.code, n);
    }
    let mut top: Vec<(&str, Counted)> = per_key.into_iter().collect();
    top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let mut top_keys = Vec::new();
    for (key_id, (total, by_code)) in top.into_iter().take(10) {
        let name = state.store.get_key(ws, key_id).await?.map(|k| k.name);
        top_keys.push(TopKey { key_id: key_id.to_string(), name, total, by_code });
    }
    Ok(Json(WorkspaceUsage {
        granularity: r.granularity.into(),
        from: from_ms(r.from),
        to: from_ms(r.to),
        total,
        by_code,
        unknown_keys,
        buckets: buckets(&r, &rows),
        top_keys,
    }))
}

fn alert_view(a: Alert) -> AlertView {
    AlertView {
        id: a.id,
        key_id: a.key_id,
        kind: a.kind,
        window_start: a.window_start,
        detail: a.detail,
        created_at: a.created_at,
        acknowledged_at: a.acknowledged_at,
        acknowledged_by: a.acknowledged_by,
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// `true` or `false`; both when left out.
    pub acknowledged: Option<String>,
    pub key_id: Option<String>,
    /// 1-200, default 50
    pub limit: Option<String>,
}

#[utoipa::path(get, path = "/v1/alerts", tag = "usage", params(AlertParams),
    responses((status = 200, description = "newest first", body = AlertList), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn list_alerts(
    State(state): State<SharedState>,
    caller: Caller,
    Query(q): Query<AlertParams>,
) -> ApiResult<Json<AlertList>> {
    caller.require(Action::ReadAudit)?;
    let acknowledged = match q.acknowledged.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(ApiError::invalid("acknowledged", "acknowledged must be true or false")),
    };
    let limit = i64::from(super::paging::limit(q.limit.as_deref())?);
    if q.key_id.as_ref().is_some_and(|k| k.len() > 64) {
        return Err(ApiError::invalid("key_id", "key_id must be at most 64 characters"));
    }
    let items = state.store.list_alerts(&caller.0.workspace_id, acknowledged, q.key_id.as_deref(), limit).await?;
    Ok(Json(AlertList { items: items.into_iter().map(alert_view).collect() }))
}

#[utoipa::path(post, path = "/v1/alerts/{id}/acknowledge", tag = "usage", params(("id" = String, Path)),
    responses((status = 200, body = AlertView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("management_key" = [])))]
pub async fn acknowledge_alert(
    State(state): State<SharedState>,
    caller: Caller,
    origin: RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertView>> {
    caller.require(Action::ReadAudit)?;
    let audit =
        caller.audit(&origin, AuditAction::AlertAcknowledge, audit_target("alert", &id, None), serde_json::json!({}));
    let a = state
        .store
        .acknowledge_alert(&caller.0.workspace_id, &id, &caller.0.member_id, state.clock.now(), &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert with id {id:?}")))?;
    Ok(Json(alert_view(a)))
}

#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format (0.0.4); no per-key labels", content_type = "text/plain")))]
pub async fn metrics(State(state): State<SharedState>) -> Response {
    // The outbox depth is one COUNT; a scrape while storage is down still answers the rest.
    let outbox_pending = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.outbox_pending())
        .await
        .ok()
        .and_then(Result::ok);
    let redis_errors = state.shared.as_ref().map(|s| s.errors.load(std::sync::atomic::Ordering::Relaxed));
    let redis_limits = state.shared.as_ref().map(|shared| {
        let l = &state.leases;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        crate::metrics::RedisLimits {
            exact_runs: n(&l.exact_runs),
            exact_batches: shared.exact_batches(),
            lease_runs: n(&l.lease_runs),
            return_runs: n(&l.return_runs),
            lease_tokens_held: l.held(),
        }
    });
    let (usage_entries_dropped, usage_rows_dropped) = state.usage.dropped();
    let body = state.metrics.render(&Gauges {
        cache_entries: state.cache.len(),
        known_loaded: state.cache.known_loaded(),
        usage_entries_dropped,
        usage_rows_dropped,
        usage_tags_dropped: state.usage.tags_dropped(),
        outbox_pending,
        redis_errors,
        redis_limits,
    });
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
