//! Identities: a customer of the operator (Unkey's `externalId`), whose named limits and
//! credits every key naming it shares (see docs/IDENTITIES.md). The stored record, how the
//! API shows it, and the checks of its create and update requests.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use keyward_proto::identities::{CreateIdentityRequest, IdentityView, UpdateIdentityRequest};
use keyward_proto::keys::{CreditsSpec, RateLimitSpec};

use crate::error::CoreError;
use crate::ratelimit::{KeyCredits, RateLimit};
use crate::validate::{credits, external_id, meta, ratelimits};

/// The prefix of identity ids (`idn_01J…`).
pub const ID_PREFIX: &str = "idn";

/// An identity as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityRecord {
    pub id: String,
    pub workspace_id: String,
    pub external_id: String,
    pub meta: Map<String, Value>,
    pub ratelimits: Vec<RateLimit>,
    pub credits: Option<KeyCredits>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl IdentityRecord {
    pub fn view(&self) -> IdentityView {
        IdentityView {
            id: self.id.clone(),
            external_id: self.external_id.clone(),
            meta: self.meta.clone(),
            ratelimits: self.ratelimits.iter().map(RateLimitSpec::from).collect(),
            credits: self.credits.map(|c| CreditsSpec { remaining: c.remaining, refill: c.refill }),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// A new identity from a checked create request.
    pub fn create(
        req: &CreateIdentityRequest,
        id: String,
        workspace_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, CoreError> {
        Ok(IdentityRecord {
            id,
            workspace_id: workspace_id.to_string(),
            external_id: external_id("external_id", &req.external_id)?,
            meta: req.meta.as_ref().map(meta).transpose()?.unwrap_or_default(),
            ratelimits: ratelimits(req.ratelimits.as_deref().unwrap_or_default())?,
            credits: req.credits.as_ref().map(|c| credits(c, now)).transpose()?,
            created_at: now,
            updated_at: now,
        })
    }

    /// A bare identity made on the fly for a key naming an unknown `external_id`.
    pub fn bare(id: String, workspace_id: &str, external_id: &str, now: DateTime<Utc>) -> Self {
        IdentityRecord {
            id,
            workspace_id: workspace_id.to_string(),
            external_id: external_id.to_string(),
            meta: Map::new(),
            ratelimits: Vec::new(),
            credits: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A checked patch of an identity: `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityChanges {
    pub meta: Option<Map<String, Value>>,
    pub ratelimits: Option<Vec<RateLimit>>,
    pub credits: Option<Option<KeyCredits>>,
}

impl IdentityChanges {
    pub fn check(req: &UpdateIdentityRequest, now: DateTime<Utc>) -> Result<Self, CoreError> {
        Ok(IdentityChanges {
            meta: req.meta.as_ref().map(meta).transpose()?,
            ratelimits: req.ratelimits.as_deref().map(ratelimits).transpose()?,
            credits: req.credits.as_ref().map(|c| c.as_ref().map(|c| credits(c, now)).transpose()).transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == IdentityChanges::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(v: Value) -> Result<IdentityRecord, CoreError> {
        let req: CreateIdentityRequest = serde_json::from_value(v).unwrap();
        IdentityRecord::create(&req, "idn_1".into(), "ws_1", DateTime::from_timestamp(1_800_000_000, 0).unwrap())
    }

    #[test]
    fn hostile_values_are_named() {
        assert!(create(json!({"external_id": "cus_1"})).is_ok());
        for (v, field) in [
            (json!({"external_id": ""}), "external_id"),
            (json!({"external_id": "a\u{0}b"}), "external_id"),
            (json!({"external_id": "x".repeat(256)}), "external_id"),
            (json!({"external_id": " padded"}), "external_id"),
            (json!({"external_id": "a", "meta": {"x": "y".repeat(5000)}}), "meta"),
            (json!({"external_id": "a", "meta": [1]}), "meta"),
            (json!({"external_id": "a", "ratelimits": [{"name": "a", "limit": 0, "duration": "1m"}]}), "ratelimits[0]"),
            (json!({"external_id": "a", "credits": {"remaining": u64::MAX}}), "credits.remaining"),
        ] {
            let e = create(v.clone()).unwrap_err();
            assert_eq!(e.field(), field, "{v}");
        }
        let l = create(json!({"external_id": "a", "ratelimits": [{"name": "a", "limit": 1, "duration": "1m", "auto_apply": false}]}))
            .unwrap();
        assert!(!l.ratelimits[0].auto_apply);
        assert!(!l.view().ratelimits[0].auto_apply);
    }
}
