//! A signed copy of a workspace's audit chain head, to keep away from the database:
//! `keyward audit head --signed` writes one, `keyward audit verify --anchor` checks that the
//! chain still holds it (the anchored seq present with the same hash). It is signed with
//! Ed25519 under a key derived from the pepper for the workspace, so someone who can write
//! the database (or the anchor file) but lacks the pepper can forge neither.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::pepper::Pepper;

/// The `format` of this kind of document.
pub const FORMAT: &str = "keyward.audit_anchor.v1";

/// A workspace's anchor signing key: the Ed25519 key whose seed is
/// `Pepper::derive("audit-anchor", workspace_id)`.
pub struct AnchorKey(SigningKey);

impl AnchorKey {
    pub fn for_workspace(pepper: &Pepper, workspace_id: &str) -> AnchorKey {
        AnchorKey(SigningKey::from_bytes(&pepper.derive("audit-anchor", workspace_id)))
    }

    /// The public key, base64 (32 bytes).
    pub fn public_key(&self) -> String {
        B64.encode(self.0.verifying_key().to_bytes())
    }
}

/// The signed head, as written to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// [`FORMAT`]
    pub format: String,
    pub workspace_id: String,
    /// The head's seq (0 for an empty chain).
    pub seq: i64,
    /// The head event's hash.
    pub hash: String,
    /// The head event's time (null for an empty chain).
    pub time: Option<DateTime<Utc>>,
    /// When the anchor was taken.
    pub signed_at: DateTime<Utc>,
    /// The workspace's anchor key, base64 Ed25519.
    pub public_key: String,
    /// Ed25519 over [`Anchor::signed_content`], base64.
    pub signature: String,
}

fn ms(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Anchor {
    /// Signs `(seq, hash, time)` of `workspace_id`'s chain.
    pub fn sign(
        key: &AnchorKey,
        workspace_id: &str,
        seq: i64,
        hash: &str,
        time: Option<DateTime<Utc>>,
        signed_at: DateTime<Utc>,
    ) -> Anchor {
        let mut a = Anchor {
            format: FORMAT.into(),
            workspace_id: workspace_id.into(),
            seq,
            hash: hash.into(),
            time: time.map(crate::clock::to_ms).map(crate::clock::from_ms),
            signed_at: crate::clock::from_ms(crate::clock::to_ms(signed_at)),
            public_key: key.public_key(),
            signature: String::new(),
        };
        a.signature = B64.encode(key.0.sign(a.signed_content().as_bytes()).to_bytes());
        a
    }

    /// Every field but the signature, one per line.
    pub fn signed_content(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.format,
            self.workspace_id,
            self.seq,
            self.hash,
            self.time.as_ref().map_or_else(|| "-".to_string(), ms),
            ms(&self.signed_at),
            self.public_key
        )
    }

    /// Parses an anchor document.
    pub fn parse(text: &str) -> Result<Anchor, CoreError> {
        let a: Anchor = serde_json::from_str(text)
            .map_err(|e| CoreError::invalid("anchor", format!("not an audit anchor document: {e}")))?;
        if a.format != FORMAT {
            return Err(CoreError::invalid("anchor", format!("format must be {FORMAT}")));
        }
        Ok(a)
    }

    /// Checks that this workspace's anchor key (from the pepper, not the document) signed
    /// exactly this content.
    pub fn check(&self, key: &AnchorKey) -> Result<(), CoreError> {
        let bad = || {
            CoreError::invalid(
                "anchor",
                "the anchor's signature does not verify with this workspace's key (the file was altered, \
                 or it was signed with another pepper)",
            )
        };
        if self.public_key != key.public_key() {
            return Err(bad());
        }
        let sig = B64
            .decode(&self.signature)
            .ok()
            .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
            .ok_or_else(bad)?;
        key.0.verifying_key().verify_strict(self.signed_content().as_bytes(), &sig).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper(b: &str) -> Pepper {
        Pepper::from_hex(&b.repeat(32)).unwrap()
    }

    #[test]
    fn signed_anchors_round_trip_and_alterations_are_refused() {
        let key = AnchorKey::for_workspace(&pepper("ab"), "ws_1");
        let t = DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
        let a = Anchor::sign(&key, "ws_1", 7, &"e".repeat(64), Some(t), t);
        let text = serde_json::to_string_pretty(&a).unwrap();
        let back = Anchor::parse(&text).unwrap();
        assert_eq!(back, a);
        back.check(&key).unwrap();

        for altered in [
            Anchor { seq: 6, ..a.clone() },
            Anchor { hash: "f".repeat(64), ..a.clone() },
            Anchor { workspace_id: "ws_2".into(), ..a.clone() },
            Anchor { time: None, ..a.clone() },
        ] {
            assert_eq!(altered.check(&key).unwrap_err().field(), "anchor");
        }
        // Another workspace's key, or another pepper's, does not verify it; nor does a
        // document re-signed with a key of the forger's own.
        assert!(a.check(&AnchorKey::for_workspace(&pepper("ab"), "ws_2")).is_err());
        assert!(a.check(&AnchorKey::for_workspace(&pepper("cd"), "ws_1")).is_err());
        let forged = Anchor::sign(&AnchorKey::for_workspace(&pepper("cd"), "ws_1"), "ws_1", 9, "00", None, t);
        assert!(forged.check(&key).is_err());
        assert!(Anchor::parse("{}").is_err());
        assert!(Anchor::parse(&text.replace(FORMAT, "other")).is_err());
    }
}
