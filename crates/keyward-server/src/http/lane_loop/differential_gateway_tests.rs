//! The own loop against hyper for a lane that takes every request, as the gateway's does:
//! every header, the method and the target passed on, bodiless requests only (a body goes to
//! hyper), and answers whole, streamed with a known length, or streamed chunked. Generated
//! scripts of such requests, pipelined and cut at any byte, must come back byte for byte the
//! same from a server with the loop and one without (the `date` lines aside).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, Response, Uri};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use proptest::prelude::*;

use super::differential_tests::{case_runtime, end_and_cut, exchange_both, start_front};
use super::Whole;
use crate::http::connections::{Front, Lane, Reads};
use crate::http::pipeline::{read_body, too_large, within};

/// Answers with what it got: method, target, every header in order, the body's length. A
/// path under `/stream/` streams the answer in pieces of unknown total length, one under
/// `/sized/` in pieces of a length known in advance.
struct Relay {
    own: bool,
}

/// An answer body in pieces, its length known in advance or not.
struct Pieces {
    left: VecDeque<Bytes>,
    sized: bool,
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.left.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.left.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.sized {
            true => SizeHint::with_exact(self.left.iter().map(|b| b.len() as u64).sum()),
            false => SizeHint::default(),
        }
    }
}

/// An upstream's answer that fails after its first piece (the connection to it broke).
struct Breaks {
    sent: bool,
}

impl http_body::Body for Breaks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if std::mem::replace(&mut self.sent, true) {
            return Poll::Ready(Some(Err(std::io::Error::other("upstream gone"))));
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))))
    }
}

fn relay(method: &Method, uri: &Uri, headers: &HeaderMap, body: usize) -> Response<Body> {
    let mut text = format!("{method} {uri} body={body}\n");
    for (name, value) in headers {
        text += &format!("{name}={}\n", String::from_utf8_lossy(value.as_bytes()));
    }
    let path = uri.path();
    let mut resp = if path.starts_with("/stream/") || path.starts_with("/sized/") {
        let left = text.into_bytes().chunks(9).map(Bytes::copy_from_slice).collect();
        Response::new(Body::new(Pieces { left, sized: path.starts_with("/sized/") }))
    } else if path == "/breaks" {
        Response::new(Body::new(Breaks { sent: false }))
    } else if path == "/empty" {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(text))
    };
    resp.headers_mut().insert("x-relay", "1".parse().unwrap());
    resp
}

impl Lane for Relay {
    fn takes(&self, _: &Request<Incoming>) -> bool {
        true
    }

    async fn answer(&self, req: Request<Incoming>, _: SocketAddr) -> Response<Body> {
        let (parts, body) = req.into_parts();
        match within(Duration::from_secs(2), read_body(body, 1 << 20, too_large)).await {
            Ok(body) => relay(&parts.method, &parts.uri, &parts.headers, body.len()),
            Err(e) => axum::response::IntoResponse::into_response(e),
        }
    }

    fn own_loop(&self) -> bool {
        self.own
    }

    fn takes_whole(&self, method: &str, path: &str) -> bool {
        method != "HEAD" && method != "CONNECT" && path.starts_with('/')
    }

    fn reads(&self) -> Reads<'_> {
        Reads::All
    }

    fn body_limit(&self) -> usize {
        0
    }

    fn body_timeout(&self) -> Duration {
        Duration::from_secs(2)
    }

    fn answer_whole(&self, req: Whole<'_>) -> impl Future<Output = Response<Body>> + Send {
        let (method, uri) = req.request.unwrap();
        std::future::ready(relay(&method, &uri, &req.headers, req.body.map_or(0, <[u8]>::len)))
    }
}

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    target: &'static str,
    headers: Vec<(String, &'static str)>,
    body: Option<usize>,
    close: bool,
}

impl Req {
    fn bytes(&self) -> Vec<u8> {
        let mut b = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            b += &format!("{name}: {value}\r\n");
        }
        if let Some(n) = self.body {
            b += &format!("content-length: {n}\r\n");
        }
        if self.close {
            b += "connection: close\r\n";
        }
        b += "\r\n";
        let mut bytes = b.into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', self.body.unwrap_or(0)));
        bytes
    }
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("OPTIONS"), Just("PATCH"), Just("HEAD")],
        prop_oneof![
            Just("/a"),
            Just("/a/b?x=1&y=%20"),
            Just("/stream/s"),
            Just("/sized/z?q"),
            Just("/empty"),
            Just("/%7Euser"),
            Just("/a?"),
            Just("*"),
            Just("http://h/abs"),
        ],
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("Host".to_string()),
                    Just("X-API-Key".to_string()),
                    Just("accept".to_string()),
                    "[a-zA-Z][a-zA-Z0-9-]{0,12}",
                ],
                prop_oneof![Just("v"), Just("two  spaces"), Just(""), Just("tab\there"), Just("ünï")],
            ),
            0..5,
        ),
        prop_oneof![4 => Just(None), 1 => Just(Some(0)), 1 => (1usize..40).prop_map(Some)],
        prop_oneof![6 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(method, target, headers, body, close)| Req { method, target, headers, body, close })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_own_loop_relays_as_hyper_does(
        reqs in proptest::collection::vec(req(), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let rt = case_runtime();
        rt.block_on(async {
            let timeout = Duration::from_millis(800);
            let own = start_front(Front::Lane(Arc::new(Relay { own: true })), timeout).await;
            let hyper = start_front(Front::Lane(Arc::new(Relay { own: false })), timeout).await;
            let mut bytes = Vec::new();
            let mut closed = false;
            for r in &reqs {
                bytes.extend(r.bytes());
                if r.close {
                    closed = true;
                    break;
                }
            }
            let pieces = end_and_cut(bytes, closed, &cuts);
            let (a, b) = exchange_both(&own, &hyper, &pieces).await;
            prop_assert_eq!(a, b);
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// The upstream's answer breaks off midway: both servers close the connection, serve
/// nothing more on it, and never end the answer as if whole. Where they may differ: hyper
/// still held the head and first piece in its buffer and drops them; the loop had sent
/// them (as hyper would have, had the upstream paused first), so its answer is a chunked
/// one without its last chunk.
#[tokio::test]
async fn an_answer_that_breaks_off_ends_the_connection_alike() {
    let timeout = Duration::from_secs(60);
    let own = start_front(Front::Lane(Arc::new(Relay { own: true })), timeout).await;
    let hyper = start_front(Front::Lane(Arc::new(Relay { own: false })), timeout).await;
    let pieces = [b"GET /breaks HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\n\r\n".to_vec()];
    let (a, b) = exchange_both(&own, &hyper, &pieces).await;
    assert_eq!(b, "", "hyper drops what it held");
    assert!(a.is_empty() || a.ends_with("\r\n7\r\npartial\r\n"), "cut short, never ended: {a}");
    assert!(!a.contains("0\r\n\r\n") && !a.contains("GET /a"), "nothing more after the break: {a}");
}
