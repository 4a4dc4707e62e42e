//! Keys imported by hash (`POST /v1/keys/import`): the checks of one item, and the plain
//! SHA-256 a presented secret is looked up by until its first use re-keys it under the HMAC.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::error::CoreError;
use crate::pepper::{hex_decode, hex_encode};
use crate::policy::Policy;
use crate::validate::{CreateKeyRules, NewKey};
use crate::wire::import::{HashVariant, ImportHash, ImportKey};
use crate::wire::keys::CreateKeyRequest;

/// Keys one call may import (all or none of them).
pub const MAX_KEYS_PER_IMPORT: usize = 10_000;
/// Characters of an imported key's display hint.
pub const MAX_START_CHARS: usize = 32;
/// The longest secret looked up by its plain hash: longer ones are not hashed at all, so a
/// huge made-up credential costs nothing.
pub const MAX_IMPORTED_SECRET_LEN: usize = 512;
/// The name of an imported key given none.
pub const DEFAULT_NAME: &str = "imported";

/// An item checked: the key's settings as a created key's, its plain hash (lower-case hex)
/// and its display hint.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImport {
    pub key: NewKey,
    pub import_hash: String,
    pub start: String,
}

/// Checking an import item (the type is the wire crate's). Errors name the field inside the
/// item (`hash.value`, `roles[2]`); the caller prefixes the item's place.
pub trait ImportRules {
    fn validate(&self, now: DateTime<Utc>, policy: &Policy) -> Result<NewImport, CoreError>;
}

impl ImportRules for ImportKey {
    fn validate(&self, now: DateTime<Utc>, policy: &Policy) -> Result<NewImport, CoreError> {
        let import_hash = hex_encode(&decode(&self.hash)?);
        let start = start(self.start.as_deref())?;
        // The same checks and policy as a created key's (lifetimes, default limits).
        let create = CreateKeyRequest {
            name: Some(self.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string())),
            environment: self.environment.clone(),
            expires_at: self.expires_at.clone(),
            roles: self.roles.clone(),
            permissions: self.permissions.clone(),
            meta: self.meta.clone(),
            ratelimits: self.ratelimits.clone(),
            credits: self.credits.clone(),
            external_id: self.external_id.clone(),
            ..Default::default()
        };
        let key = create.validate(now, policy)?;
        Ok(NewImport { key, import_hash, start })
    }
}

/// The 32 bytes a hash stands for, in either variant.
pub fn decode(h: &ImportHash) -> Result<[u8; 32], CoreError> {
    let bad = |what: &str| CoreError::invalid("hash.value", format!("not a SHA-256 hash in {what}"));
    // A hash is 64 hex or 44 base64 characters; anything much longer is not worth decoding.
    if h.value.len() > 88 {
        return Err(bad("either variant"));
    }
    let bytes = match h.variant {
        HashVariant::Sha256Hex => hex_decode(&h.value).filter(|_| h.value.len() == 64).ok_or_else(|| bad("hex"))?,
        HashVariant::Sha256Base64 => [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(&h.value).ok())
            .ok_or_else(|| bad("base64"))?,
    };
    bytes.try_into().map_err(|_| bad("its variant: expected 32 bytes"))
}

/// The display hint: given, or empty.
fn start(raw: Option<&str>) -> Result<String, CoreError> {
    let s = raw.unwrap_or_default();
    if s.len() > MAX_START_CHARS || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CoreError::invalid(
            "start",
            format!("start must be at most {MAX_START_CHARS} printable ASCII characters without spaces"),
        ));
    }
    Ok(s.to_string())
}

/// The plain SHA-256 of a presented secret, as imported hashes are kept (raw).
pub fn plain_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn item(v: serde_json::Value) -> Result<NewImport, CoreError> {
        serde_json::from_value::<ImportKey>(v).unwrap().validate(now(), &Policy::default())
    }

    #[test]
    fn both_variants_name_the_same_hash() {
        let digest = plain_hash("sk_live_abc123");
        let hex = hex_encode(&digest);
        let b64 = STANDARD.encode(digest);
        let a = item(json!({"hash": {"variant": "sha256_hex", "value": hex.to_uppercase()}})).unwrap();
        let b = item(json!({"hash": {"variant": "sha256_base64", "value": b64}})).unwrap();
        let c = item(json!({"hash": {"variant": "sha256_base64", "value": URL_SAFE_NO_PAD.encode(digest)}})).unwrap();
        assert_eq!(a.import_hash, hex);
        assert_eq!(b.import_hash, hex);
        assert_eq!(c.import_hash, hex);
        assert_eq!(a.key.name, DEFAULT_NAME);
        assert_eq!(a.key.environment, "test");
    }

    #[test]
    fn each_bad_field_is_named() {
        let hex = hex_encode(&plain_hash("x"));
        let cases = [
            (json!({"hash": {"variant": "sha256_hex", "value": "abc"}}), "hash.value"),
            (json!({"hash": {"variant": "sha256_hex", "value": format!("{hex}00")}}), "hash.value"),
            (json!({"hash": {"variant": "sha256_base64", "value": "!!!"}}), "hash.value"),
            (json!({"hash": {"variant": "sha256_base64", "value": STANDARD.encode([0u8; 31])}}), "hash.value"),
            (json!({"hash": {"variant": "sha256_base64", "value": "A".repeat(4000)}}), "hash.value"),
            (json!({"hash": {"variant": "sha256_hex", "value": hex}, "start": "a b"}), "start"),
            (json!({"hash": {"variant": "sha256_hex", "value": hex}, "start": "x".repeat(33)}), "start"),
            (json!({"hash": {"variant": "sha256_hex", "value": hex}, "environment": "prod"}), "environment"),
            (json!({"hash": {"variant": "sha256_hex", "value": hex}, "name": " "}), "name"),
            (
                json!({"hash": {"variant": "sha256_hex", "value": hex}, "expires_at": "2001-01-01T00:00:00Z"}),
                "expires_at",
            ),
            (json!({"hash": {"variant": "sha256_hex", "value": hex}, "meta": [1]}), "meta"),
        ];
        for (input, field) in cases {
            let e = item(input.clone()).unwrap_err();
            assert_eq!(e.field(), field, "{input}");
        }
    }

    #[test]
    fn unknown_variants_and_fields_do_not_parse() {
        assert!(serde_json::from_value::<ImportKey>(json!({"hash": {"variant": "md5", "value": "00"}})).is_err());
        let hex = hex_encode(&plain_hash("x"));
        let extra = json!({"hash": {"variant": "sha256_hex", "value": hex}, "secret": "x"});
        assert!(serde_json::from_value::<ImportKey>(extra).is_err());
    }
}
