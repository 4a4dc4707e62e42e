//! The lane's own loop against its reference, hyper's HTTP/1 server, serving the same lane:
//! two servers, one with the own loop and one without, read the same bytes from real sockets
//! and must write the same bytes back (the `date` lines aside). Generated scripts mix requests
//! the loop takes (bodies of every length, request ids, `Connection` tokens, other headers,
//! Content-Length in odd forms) with those it leaves to hyper (other routes, a query, HTTP/1.0,
//! chunked bodies, `Expect`, bodies past the limit, malformed heads), pipelined and cut into
//! pieces at any byte. A request after which the server closes comes last (bytes sent past a
//! close could reset the connection and lose the answers before it, on either server).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, Request, Response};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Whole;
use crate::error::ApiError;
use crate::http::connections::{serve, Bounds, Front, Lane, Reads};
use crate::http::pipeline::{read_body, too_large, within};
use crate::http::workers::Workers;

const LIMIT: usize = 200;
const BODY_TIMEOUT: Duration = Duration::from_millis(300);
const HEADER_TIMEOUT: Duration = Duration::from_millis(800);
const ID: HeaderName = HeaderName::from_static("x-request-id");
static READS: [HeaderName; 1] = [ID];

/// Answers from what it read: the body's length and sum, the first request id; a body
/// starting with `4` is refused with 429 and a header of its own.
struct Echo {
    own: bool,
}

fn reply(headers: &HeaderMap, body: Result<&[u8], ApiError>) -> Response<Body> {
    let mut resp = match body {
        Ok(b) if b.first() == Some(&b'4') => {
            (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response()
        }
        Ok(b) => {
            let sum: u64 = b.iter().map(|c| u64::from(*c)).sum();
            ([("content-type", "application/json")], format!("{{\"len\":{},\"sum\":{sum}}}", b.len())).into_response()
        }
        Err(e) => e.into_response(),
    };
    if let Some(id) = headers.get(ID) {
        resp.headers_mut().insert(ID, id.clone());
    }
    resp
}

impl Lane for Echo {
    fn takes(&self, req: &Request<Incoming>) -> bool {
        req.method() == Method::POST && req.uri().path() == "/v1/keys/verify"
    }

    async fn answer(&self, req: Request<Incoming>, _: SocketAddr) -> Response<Body> {
        let (parts, body) = req.into_parts();
        match within(BODY_TIMEOUT, read_body(body, LIMIT, too_large)).await {
            Ok(body) => reply(&parts.headers, Ok(&body)),
            Err(e) => reply(&parts.headers, Err(e)),
        }
    }

    fn own_loop(&self) -> bool {
        self.own
    }

    fn takes_whole(&self, method: &str, path: &str) -> bool {
        method == "POST" && path == "/v1/keys/verify"
    }

    fn reads(&self) -> Reads<'_> {
        Reads::Only(&READS)
    }

    fn body_limit(&self) -> usize {
        LIMIT
    }

    fn body_timeout(&self) -> Duration {
        BODY_TIMEOUT
    }

    fn answer_whole(&self, req: Whole<'_>) -> impl Future<Output = Response<Body>> + Send {
        std::future::ready(reply(&req.headers, req.body))
    }
}

/// A server of a lane (in front of a router that names what it got, for `Echo`).
pub(super) struct Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _workers: Workers,
}

async fn start(own: bool) -> Server {
    start_with(own, HEADER_TIMEOUT).await
}

async fn start_with(own: bool, header_read_timeout: Duration) -> Server {
    let router = axum::Router::new()
        .fallback(|req: axum::extract::Request| async move { format!("router {} {}", req.method(), req.uri()) });
    start_front(Front::Split(Arc::new(Echo { own }), router), header_read_timeout).await
}

pub(super) async fn start_front<L: Lane>(front: Front<L>, header_read_timeout: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let workers = Workers::start(1).unwrap();
    let bounds = Bounds { header_read_timeout, max_connections: 64 };
    let served = tokio::spawn(serve(listener, front, bounds, Arc::default(), stopped, None, workers.dispatcher()));
    Server { addr, stop, served, _workers: workers }
}

/// Sends `pieces` (a pause between them) and reads until the server closes; the `date` lines
/// are blanked. What the server sent is the answer: a server that answers and closes before
/// the last piece is sent makes that write fail, or the read end in a reset, at a moment
/// that depends on scheduling, so neither is part of the answer.
pub(super) async fn exchange(addr: SocketAddr, pieces: &[Vec<u8>]) -> String {
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = s.into_split();
    // Read while writing, so an early answer is taken in before the reset that may follow it.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => return (got, None),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, None),
                Err(e) => return (got, Some(e.kind())),
            }
        }
    });
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if wr.write_all(p).await.is_err() {
            break;
        }
    }
    let read = tokio::time::timeout(Duration::from_secs(10), reader).await;
    let Ok(joined) = read else { panic!("the server neither answered nor closed") };
    let (mut got, failed) = joined.unwrap();
    if let Some(kind) = failed {
        got.extend_from_slice(format!("[read failed: {kind:?}]").as_bytes());
    }
    drop(wr);
    let text = String::from_utf8_lossy(&got).into_owned();
    text.split("\r\n")
        .map(|line| if line.starts_with("date: ") { "date: -" } else { line })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The same pieces sent to both servers at once: (the own loop's answer, hyper's).
pub(super) async fn exchange_both(own: &Server, hyper: &Server, pieces: &[Vec<u8>]) -> (String, String) {
    tokio::join!(exchange(own.addr, pieces), exchange(hyper.addr, pieces))
}

/// A proptest case's runtime: one worker, as a serving thread has.
pub(super) fn case_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

/// One request of a script.
#[derive(Debug, Clone)]
enum Req {
    /// `POST /v1/keys/verify`, HTTP/1.1: its body, request ids, a `Connection` value, other
    /// headers, how its length is said, and its header names' case.
    Verify {
        body: Vec<u8>,
        ids: Vec<String>,
        connection: Option<&'static str>,
        other: Vec<(&'static str, String)>,
        length: Length,
        upper: bool,
    },
    /// Another route, or the verify path with a query or another method.
    Elsewhere(&'static str),
    /// Verify as HTTP/1.0, with `Expect: 100-continue`, or chunked.
    Http10(Vec<u8>),
    Expect(Vec<u8>),
    Chunked(Vec<u8>),
    /// A body past the limit, said and not sent (refused before it is read; bytes sent and
    /// never read would reset the connection).
    TooLarge(usize),
    /// A head hyper refuses.
    Malformed(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Length {
    Plain,
    Zeros,
    Twice,
    Plus,
    Missing,
}

impl Req {
    /// After this one, the server closes (or may: it is the script's last).
    fn closes(&self) -> bool {
        match self {
            Req::Verify { connection, length, body, .. } => {
                connection.is_some_and(|c| c.contains("close") || c.contains("upgrade"))
                    || matches!(length, Length::Plus)
                    || (matches!(length, Length::Missing) && !body.is_empty())
            }
            Req::Http10(_) | Req::TooLarge(_) | Req::Malformed(_) => true,
            Req::Elsewhere(_) | Req::Expect(_) | Req::Chunked(_) => false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let verify = |version: &str, headers: &str, body: &[u8]| {
            let mut b = format!("POST /v1/keys/verify {version}\r\nhost: k\r\n{headers}\r\n").into_bytes();
            b.extend_from_slice(body);
            b
        };
        match self {
            Req::Verify { body, ids, connection, other, length, upper } => {
                let mut h = String::new();
                let cl = if *upper { "Content-Length" } else { "content-length" };
                match length {
                    Length::Plain => h += &format!("{cl}: {}\r\n", body.len()),
                    Length::Zeros => h += &format!("{cl}: 00{}\r\n", body.len()),
                    Length::Twice => h += &format!("{cl}: {n}\r\n{cl}: {n}\r\n", n = body.len()),
                    Length::Plus => h += &format!("{cl}: +{}\r\n", body.len()),
                    Length::Missing => {}
                }
                for id in ids {
                    h += &format!("{}: {id}\r\n", if *upper { "X-Request-ID" } else { "x-request-id" });
                }
                if let Some(c) = connection {
                    h += &format!("connection: {c}\r\n");
                    if c.contains("upgrade") {
                        h += "upgrade: websocket\r\n";
                    }
                }
                for (name, value) in other {
                    h += &format!("{name}: {value}\r\n");
                }
                verify("HTTP/1.1", &h, body)
            }
            Req::Elsewhere(line) => format!("{line}\r\nhost: k\r\ncontent-length: 0\r\n\r\n").into_bytes(),
            Req::Http10(body) => verify("HTTP/1.0", &format!("content-length: {}\r\n", body.len()), body),
            Req::Expect(body) => {
                verify("HTTP/1.1", &format!("expect: 100-continue\r\ncontent-length: {}\r\n", body.len()), body)
            }
            Req::Chunked(body) => {
                let mut chunked = Vec::new();
                for part in body.chunks(7) {
                    chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    chunked.extend_from_slice(part);
                    chunked.extend_from_slice(b"\r\n");
                }
                chunked.extend_from_slice(b"0\r\n\r\n");
                verify("HTTP/1.1", "transfer-encoding: chunked\r\n", &chunked)
            }
            Req::TooLarge(n) => verify("HTTP/1.1", &format!("content-length: {n}\r\n"), b""),
            Req::Malformed(head) => head.as_bytes().to_vec(),
        }
    }
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..=LIMIT),
        1 => Just(b"{\"key\":\"k\"}".to_vec()),
        1 => Just(b"4 refused".to_vec()),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    let verify = (
        body(),
        proptest::collection::vec(prop_oneof![Just("abc".to_string()), "[a-z0-9]{1,12}", Just("two words".to_string())], 0..3),
        prop_oneof![
            4 => Just(None),
            1 => Just(Some("keep-alive")),
            1 => Just(Some("Keep-Alive, ")),
            1 => Just(Some("close")),
            1 => Just(Some("keep-alive, Close")),
            1 => Just(Some("upgrade")),
            1 => Just(Some("te")),
        ],
        proptest::collection::vec(
            prop_oneof![
                Just(("user-agent", "t/1".to_string())),
                Just(("keyward-verify-token", "x".to_string())),
                Just(("content-type", "application/json".to_string())),
                Just(("x-odd", "a\tb".to_string())),
            ],
            0..3,
        ),
        prop_oneof![6 => Just(Length::Plain), 1 => Just(Length::Zeros), 1 => Just(Length::Twice), 1 => Just(Length::Plus), 1 => Just(Length::Missing)],
        any::<bool>(),
    )
        .prop_map(|(body, ids, connection, other, length, upper)| Req::Verify { body, ids, connection, other, length, upper });
    prop_oneof![
        12 => verify,
        1 => prop_oneof![
            Just("GET /v1/keys HTTP/1.1"),
            Just("POST /v1/keys/verify?x=1 HTTP/1.1"),
            Just("GET /v1/keys/verify HTTP/1.1"),
            Just("POST /v1/keys/verifyx HTTP/1.1"),
            Just("POST http://k/v1/keys/verify HTTP/1.1"),
        ]
        .prop_map(Req::Elsewhere),
        1 => body().prop_map(Req::Http10),
        1 => body().prop_map(Req::Expect),
        1 => body().prop_map(Req::Chunked),
        1 => (LIMIT + 1..LIMIT + 64).prop_map(Req::TooLarge),
        1 => prop_oneof![
            Just("POST /v1/keys/verify HTTP/1.1\r\nbad header\r\n\r\n"),
            Just("garbage\r\n\r\n"),
            Just("POST /v1/keys/verify HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab"),
            Just("POST /v1/keys/verify HTTP/1.1\r\nx-request-id: a\0b\r\ncontent-length: 0\r\n\r\n"),
            Just("POST /v1/keys/verify\0 HTTP/1.1\r\ncontent-length: 0\r\n\r\n"),
        ]
        .prop_map(Req::Malformed),
    ]
}

/// Requests up to the first that closes, ended and cut by [`end_and_cut`].
fn script(reqs: &[Req], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut closed = false;
    for r in reqs {
        bytes.extend(r.bytes());
        if r.closes() {
            closed = true;
            break;
        }
    }
    end_and_cut(bytes, closed, cuts)
}

/// A script's `bytes`, ended (unless its last request `closed` the connection) by one the
/// router answers with a close, cut at the given points (taken modulo its length).
pub(super) fn end_and_cut(mut bytes: Vec<u8>, closed: bool, cuts: &[usize]) -> Vec<Vec<u8>> {
    if !closed {
        bytes.extend_from_slice(b"GET /end HTTP/1.1\r\nconnection: close\r\n\r\n");
    }
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % bytes.len()).filter(|c| *c > 0).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut from = 0;
    for c in cuts {
        pieces.push(bytes[from..c].to_vec());
        from = c;
    }
    pieces.push(bytes[from..].to_vec());
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_own_loop_answers_as_hyper_does(
        reqs in proptest::collection::vec(req(), 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let rt = case_runtime();
        rt.block_on(async {
            let (own, hyper) = (start(true).await, start(false).await);
            let pieces = script(&reqs, &cuts);
            let (a, b) = exchange_both(&own, &hyper, &pieces).await;
            prop_assert_eq!(a, b);
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// Heads past what the loop holds — more header lines than it reads, a line longer than its
/// buffer — go to hyper, which answers them as it would have from the start.
#[tokio::test]
async fn heads_too_large_for_the_loop_are_answered_alike() {
    let (own, hyper) = (start(true).await, start(false).await);
    let many: String = (0..40).map(|i| format!("x-h{i}: {i}\r\n")).collect();
    let huge = format!("x-big: {}\r\n", "y".repeat(super::MAX_HOLD + 10));
    for (extra, what) in [(many, "40 lines"), (huge, "a 64 KiB line")] {
        let head = format!("POST /v1/keys/verify HTTP/1.1\r\n{extra}content-length: 2\r\n\r\nhi");
        let pieces = end_and_cut(head.into_bytes(), false, &[]);
        let (a, b) = exchange_both(&own, &hyper, &pieces).await;
        assert_eq!(a, b, "{what}");
        assert!(a.starts_with("HTTP/1.1 "), "{what}: {a}");
    }
}

#[tokio::test]
async fn a_body_late_past_its_timeout_is_refused_alike() {
    let (own, hyper) = (start(true).await, start(false).await);
    let pieces = [b"POST /v1/keys/verify HTTP/1.1\r\ncontent-length: 10\r\nx-request-id: late\r\n\r\nabc".to_vec()];
    let (a, b) = exchange_both(&own, &hyper, &pieces).await;
    assert_eq!(a, b);
    assert!(a.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{a}");
    assert!(a.contains("x-request-id: late\r\n"), "{a}");
}

#[tokio::test]
async fn a_head_not_finished_in_time_ends_the_connection_alike() {
    let (own, hyper) = (start(true).await, start(false).await);
    // An answered request, then half a head; and a connection that sends nothing at all.
    let pieces = [b"POST /v1/keys/verify HTTP/1.1\r\ncontent-length: 2\r\n\r\nhiPOST /v1/ke".to_vec()];
    let (a, b) = exchange_both(&own, &hyper, &pieces).await;
    assert_eq!(a, b);
    assert!(a.contains("{\"len\":2,\"sum\":209}"), "{a}");
    let nothing = [Vec::new()];
    let (a, b) = exchange_both(&own, &hyper, &nothing).await;
    assert_eq!((a.as_str(), b.as_str()), ("", ""));
}

#[tokio::test]
async fn a_stop_closes_idle_connections_at_once() {
    // Idle connections would otherwise stay until their header-read timeout, an hour here.
    let own = start_with(true, Duration::from_secs(3600)).await;
    let mut s = TcpStream::connect(own.addr).await.unwrap();
    s.write_all(b"POST /v1/keys/verify HTTP/1.1\r\ncontent-length: 0\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 17];
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200 OK\r\n");
    own.stop.send(true).unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection was not closed");
    own.served.await.unwrap().unwrap();
}
