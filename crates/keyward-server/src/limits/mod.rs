//! Rate limits and credits spent on the verify path: counted on this node (`local`) or
//! shared between nodes through Redis (`redis`, with Redis's clock as seen here; `fast`
//! limits from leases of tokens taken from it, `lease`); and rate limiting as a service,
//! limits not about keys (`service`).

pub mod lease;
pub mod local;
pub mod redis;
mod redis_batch;
mod redis_clock;
mod redis_conn;
pub mod service;
