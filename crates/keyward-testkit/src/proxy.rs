//! A TCP proxy that can go silent: the network failure no error reports. `blackhole()` makes
//! every connection through it, open or new, swallow what it is sent and never answer or
//! close (a NAT or firewall dropping state, a host gone without a reset); `heal()` lets new
//! connections through again, while the silenced ones stay dead, as after a real loss.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Shared {
    silent: AtomicBool,
    /// One flag per connection; set, the connection is dead for good.
    dead: Mutex<Vec<Arc<AtomicBool>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

pub struct Blackhole {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Blackhole {
    /// Listens on an ephemeral port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let dead = Arc::new(AtomicBool::new(s.silent.load(Ordering::SeqCst)));
                s.dead.lock().expect("lock").push(dead.clone());
                let task = tokio::spawn(relay(client, target, dead));
                s.tasks.lock().expect("lock").push(task);
            }
        });
        Blackhole { addr, shared, accept }
    }

    /// Every connection, open or new, goes silent.
    pub fn blackhole(&self) {
        self.shared.silent.store(true, Ordering::SeqCst);
        for d in self.shared.dead.lock().expect("lock").iter() {
            d.store(true, Ordering::SeqCst);
        }
    }

    /// New connections pass again; the silenced ones stay silent.
    pub fn heal(&self) {
        self.shared.silent.store(false, Ordering::SeqCst);
    }

    /// `url` (`postgres://user@host:port/db?…`) pointed at this proxy instead.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (auth, tail) = rest.split_at(host_end);
        let user = auth.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        format!("{scheme}://{user}{}{tail}", self.addr)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.shared.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

async fn relay(client: TcpStream, target: SocketAddr, dead: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(pump(cr, sw, dead.clone()));
    let down = tokio::spawn(pump(sr, cw, dead));
    let _ = tokio::join!(up, down);
}

/// Copies one direction until EOF; once `dead`, swallows everything and never closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dead: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if dead.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if dead.load(Ordering::SeqCst) {
        // A dead link reports nothing, not even the close: hold the socket open.
        std::future::pending::<()>().await;
    }
    let _ = to.shutdown().await;
}
