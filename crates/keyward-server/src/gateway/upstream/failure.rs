//! Why the upstream gave no answer: unreachable (a 502 at the gateway) or too slow (504).

/// Why the upstream gave no answer.
#[derive(Debug)]
pub enum Failure {
    Unreachable(String),
    TimedOut,
}

pub(crate) fn unreachable(e: impl std::fmt::Display) -> Failure {
    Failure::Unreachable(e.to_string())
}
