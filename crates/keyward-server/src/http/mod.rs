//! HTTP plumbing: accepting connections, the serving threads, request ids, TLS, and the fast
//! lane that answers verification and the gateway's requests straight from the connection
//! (verification on its own connection loop, `lane_loop`).

pub mod connections;
pub(crate) mod fast_lane;
pub mod lane_loop;
pub(crate) mod pipeline;
pub(crate) mod request_id;
pub mod tls;
pub mod workers;
