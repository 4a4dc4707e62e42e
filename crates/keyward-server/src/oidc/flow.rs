//! What a browser carries through a single sign-on, sealed (ChaCha20-Poly1305 under a key
//! from the pepper, so any node sharing the pepper opens it and no node keeps it): the flow
//! — state, nonce and PKCE verifier — from the redirect to the provider until it comes back,
//! then the proof of the email the provider verified, until the member's workspace or
//! one-time code is given. Each is sealed for its stage (a flow is never taken for a proof)
//! and carries when it ends.

use chrono::{DateTime, Utc};
use keyward_core::pepper::{hex_encode, Pepper};
use keyward_core::Random;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::manage::seal;

/// How long a person has at the provider, and then for the second step.
pub const FLOW_TTL: chrono::Duration = chrono::Duration::minutes(10);
pub const PROOF_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// The browser's way to the provider and back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Sent as `state` and required back unchanged: the answer belongs to this browser.
    pub state: String,
    /// Required in the ID token: the token was made for this flow.
    pub nonce: String,
    /// PKCE: sent with the code, whose request carried its SHA-256.
    pub verifier: String,
    /// When it ends (ms).
    pub ends: i64,
}

impl Flow {
    pub fn new(random: &dyn Random, now: DateTime<Utc>) -> Flow {
        // 32 random bytes each; hex is within PKCE's verifier alphabet and length (43–128).
        let token = || {
            let mut raw = [0u8; 32];
            random.fill(&mut raw);
            hex_encode(&raw)
        };
        Flow { state: token(), nonce: token(), verifier: token(), ends: (now + FLOW_TTL).timestamp_millis() }
    }
}

/// An email the provider verified, not yet signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub email: String,
    pub ends: i64,
}

impl Proof {
    pub fn new(email: String, now: DateTime<Utc>) -> Proof {
        Proof { email, ends: (now + PROOF_TTL).timestamp_millis() }
    }
}

/// The two stages, each sealed apart.
pub trait Stage: Serialize + DeserializeOwned {
    const NAME: &'static str;
    fn ends(&self) -> i64;
}

impl Stage for Flow {
    const NAME: &'static str = "flow";
    fn ends(&self) -> i64 {
        self.ends
    }
}

impl Stage for Proof {
    const NAME: &'static str = "proof";
    fn ends(&self) -> i64 {
        self.ends
    }
}

pub fn seal<T: Stage>(pepper: &Pepper, random: &dyn Random, what: &T) -> Option<String> {
    let body = serde_json::to_vec(what).ok()?;
    seal::seal_oidc(pepper, random, T::NAME, &body)
}

/// The sealed value, if it is one of this stage, intact and not ended at `now`.
pub fn open<T: Stage>(pepper: &Pepper, sealed: &str, now: DateTime<Utc>) -> Option<T> {
    let body = seal::open_oidc(pepper, T::NAME, sealed)?;
    let what: T = serde_json::from_slice(&body).ok()?;
    (what.ends() > now.timestamp_millis()).then_some(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::OsRandom;

    #[test]
    fn sealed_stages_open_only_as_themselves_and_until_they_end() {
        let pepper = Pepper::generate(&OsRandom);
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let flow = Flow::new(&OsRandom, now);
        assert_eq!(flow.verifier.len(), 64);
        assert_ne!(flow.state, flow.nonce);
        let sealed = seal(&pepper, &OsRandom, &flow).unwrap();
        assert!(!sealed.contains(&flow.verifier) && !sealed.contains(&flow.state));
        assert_eq!(open::<Flow>(&pepper, &sealed, now), Some(flow.clone()));
        // A flow is not a proof; another pepper opens nothing; an ended one is refused.
        assert_eq!(open::<Proof>(&pepper, &sealed, now), None);
        assert_eq!(open::<Flow>(&Pepper::generate(&OsRandom), &sealed, now), None);
        assert_eq!(open::<Flow>(&pepper, &sealed, now + FLOW_TTL), None);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(open::<Flow>(&pepper, &String::from_utf8(tampered).unwrap(), now), None);
        let proof = Proof::new("a@example.com".into(), now);
        let sealed = seal(&pepper, &OsRandom, &proof).unwrap();
        assert_eq!(open::<Proof>(&pepper, &sealed, now).map(|p| p.email), Some("a@example.com".into()));
        assert_eq!(open::<Flow>(&pepper, &sealed, now), None);
    }
}
