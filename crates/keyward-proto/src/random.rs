//! The source of randomness new signing keys are drawn from (`keyward_core` implements it
//! with the OS's CSPRNG and re-exports it as `keyward_core::Random`).

/// The source of randomness. Passed in so tests can be deterministic where they need to be.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}
