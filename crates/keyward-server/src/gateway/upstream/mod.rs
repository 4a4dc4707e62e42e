//! The gateway's HTTP/1 client to its upstream: connections and their pool (`conn`), answer
//! heads (`head`), body framing (`framing`), bodies (`body`), the client itself (`client`).
//!
//! It is written for proxying, for its one upstream: a request goes out
//! as one buffer (its head written straight from the gateway's rewritten headers), an
//! answer's head is parsed with `httparse` into the `HeaderMap` the server sends on, without
//! the hop-by-hop headers, and its body is taken from the connection's read buffer. A small
//! answer that came with its head is handed over whole and its connection goes back to the
//! pool at once; a longer one (by length, chunked, or until the upstream closes) is read by
//! the answer's body as the client takes it. One read buffer per connection is reused for
//! every answer, and one deadline timer per connection is moved for each wait: a general
//! client's per-message buffer, dispatch task and timers were half of the gateway's own CPU
//! (docs/BENCHMARKS.md, sixth step).
//!
//! Connections are kept in a small pool per serving thread and used by the request that took
//! them, in the serving thread's one task for the client's connection. `https://` upstreams
//! are reached with rustls, trusting the public roots and the configured CA; redirects are
//! passed back, never followed.

pub(crate) mod body;
pub(crate) mod client;
pub(crate) mod conn;
pub(crate) mod failure;
pub(crate) mod framing;
pub(crate) mod head;

#[cfg(test)]
mod differential_tests;
