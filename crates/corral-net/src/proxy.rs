//! The proxy's runtime: a thread with a tokio runtime serving the sockets init bound inside the
//! sandbox (the proxy listener and the DNS sink), started by the supervisor once the sandbox
//! exists, stopped at the session's end.
//!
//! Bounded under abuse: at most [`Config::max_connections`] connections are served at once
//! (more are accepted and closed, counted as `too_many_connections`); a request head or SOCKS5
//! exchange must complete within [`Config::head_timeout`] (slowloris); heads are at most
//! [`crate::head::MAX_HEAD`] bytes; each tunnel holds two fixed buffers; name resolution runs on
//! at most [`RESOLVER_THREADS`] threads. Memory stays proportional to the connection cap.

use crate::policy::Policy;
use crate::record::{ConnRecord, NetEvent, RateCap, Summary};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Threads resolving names at once (getaddrinfo blocks).
pub const RESOLVER_THREADS: usize = 8;
/// How long the proxy waits, at stop, for open connections to close and report.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// The proxy's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which hosts, ports and addresses.
    pub policy: Policy,
    /// Most bytes sent out (sandbox → hosts) in the session; `None`: no cap.
    pub max_egress_bytes: Option<u64>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for a client to send a complete request head, SOCKS5 exchange or TLS ClientHello.
    pub head_timeout: Duration,
    /// Time for name resolution.
    pub resolve_timeout: Duration,
    /// Time for one TCP connect to an upstream address.
    pub connect_timeout: Duration,
}

impl Config {
    /// The defaults around a policy.
    pub fn new(policy: Policy, max_egress_bytes: Option<u64>) -> Config {
        Config {
            policy,
            max_egress_bytes,
            max_connections: 512,
            head_timeout: Duration::from_secs(10),
            resolve_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The sockets to serve, bound by the sandbox's init.
#[derive(Debug)]
pub struct Listeners {
    /// The proxy's and the DNS sink's (`network.mode = "proxy"`).
    pub proxy: Option<ProxyListeners>,
    /// The agent API gateway's listener and its configuration.
    pub gateway: Option<(std::net::TcpListener, Arc<crate::gateway::GatewayConfig>)>,
}

/// The proxy's sockets.
#[derive(Debug)]
pub struct ProxyListeners {
    /// The proxy's listening socket.
    pub proxy: std::net::TcpListener,
    /// The DNS sink's UDP socket.
    pub dns_udp: std::net::UdpSocket,
    /// The DNS sink's TCP listener.
    pub dns_tcp: std::net::TcpListener,
}

/// Where records go (the audit log). Called from the proxy's thread.
pub type Sink = Box<dyn Fn(NetEvent) + Send + Sync>;

/// State shared by every task of the proxy.
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    sink: Sink,
    summary: Mutex<Summary>,
    cap: Mutex<RateCap>,
    clock: Instant,
    /// Bytes sent out so far, all connections.
    pub(crate) egress: AtomicU64,
    /// Connections being served.
    pub(crate) active: AtomicUsize,
    /// Set at stop: every task ends.
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
}

impl Shared {
    /// Records a finished connection.
    pub(crate) fn record_conn(&self, r: ConnRecord) {
        if let Ok(mut s) = self.summary.lock() {
            s.add_conn(&r);
        }
        self.emit(NetEvent::Conn(r));
    }

    /// Records an API request through the gateway (always written: each is real traffic).
    pub(crate) fn record_api(&self, r: crate::gateway::ApiRecord) {
        if let Ok(mut s) = self.summary.lock() {
            s.api_requests += 1;
        }
        (self.sink)(NetEvent::Api(r));
    }

    /// The totals so far (for the sandbox's status line).
    pub(crate) fn summary_now(&self) -> Summary {
        self.summary.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Records a DNS query.
    pub(crate) fn record_dns(&self, name: String, qtype: String, transport: &'static str) {
        if let Ok(mut s) = self.summary.lock() {
            s.add_dns(&name);
        }
        self.emit(NetEvent::Dns {
            name,
            qtype,
            transport,
        });
    }

    fn emit(&self, ev: NetEvent) {
        // Connections that moved data, or could have, are always written; the rate cap applies to
        // refusals and DNS queries, which a storm can produce without limit.
        let always =
            matches!(&ev, NetEvent::Conn(r) if r.reason == crate::reason::Reason::Allowed || r.up > 0);
        let now = self.clock.elapsed().as_secs();
        let admitted = always || self.cap.lock().map(|mut c| c.admit(now)).unwrap_or(false);
        if admitted {
            (self.sink)(ev);
        } else if let Ok(mut s) = self.summary.lock() {
            s.unrecorded += 1;
        }
    }

    /// Takes `n` bytes of the egress allowance; false when the cap is reached.
    pub(crate) fn take_egress(&self, n: u64) -> bool {
        let before = self.egress.fetch_add(n, Ordering::Relaxed);
        match self.cfg.max_egress_bytes {
            Some(cap) => before.saturating_add(n) <= cap,
            None => true,
        }
    }

    /// Reserves up to `want` bytes of the egress allowance and returns how many (0: the cap is
    /// used up). Unused bytes go back with [`Shared::release_egress`].
    pub(crate) fn reserve_egress(&self, want: u64) -> u64 {
        let Some(cap) = self.cfg.max_egress_bytes else {
            self.egress.fetch_add(want, Ordering::Relaxed);
            return want;
        };
        let mut cur = self.egress.load(Ordering::Relaxed);
        loop {
            let grant = want.min(cap.saturating_sub(cur));
            if grant == 0 {
                return 0;
            }
            match self
                .egress
                .compare_exchange_weak(cur, cur + grant, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return grant,
                Err(now) => cur = now,
            }
        }
    }

    /// Gives back reserved egress bytes that were not sent.
    pub(crate) fn release_egress(&self, unused: u64) {
        self.egress.fetch_sub(unused, Ordering::Relaxed);
    }

    /// Whether the egress cap is used up.
    pub(crate) fn egress_exhausted(&self) -> bool {
        self.cfg
            .max_egress_bytes
            .is_some_and(|cap| self.egress.load(Ordering::Relaxed) >= cap)
    }
}

/// A running proxy. [`Proxy::stop`] ends it and returns the summary; dropping it stops it too
/// (without the summary).
#[derive(Debug)]
pub struct Proxy {
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<Summary>>,
}

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
#[error("starting the network proxy: {op}: {source}")]
pub struct StartError {
    /// What failed.
    pub op: &'static str,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl Proxy {
    /// Starts serving `listeners` on a new thread.
    pub fn start(cfg: Config, listeners: Listeners, sink: Sink) -> Result<Proxy, StartError> {
        let e = |op: &'static str| move |source| StartError { op, source };
        if let Some(l) = &listeners.proxy {
            for (fd, what) in [
                (l.proxy.set_nonblocking(true), "fcntl(proxy listener, O_NONBLOCK)"),
                (l.dns_udp.set_nonblocking(true), "fcntl(dns socket, O_NONBLOCK)"),
                (l.dns_tcp.set_nonblocking(true), "fcntl(dns listener, O_NONBLOCK)"),
            ] {
                fd.map_err(e(what))?;
            }
        }
        if let Some((l, _)) = &listeners.gateway {
            l.set_nonblocking(true)
                .map_err(e("fcntl(gateway listener, O_NONBLOCK)"))?;
        }
        raise_open_files();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(RESOLVER_THREADS)
            .thread_name("corral-proxy")
            .enable_io()
            .enable_time()
            .build()
            .map_err(e("building the tokio runtime"))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            cfg,
            sink,
            summary: Mutex::new(Summary::default()),
            cap: Mutex::new(RateCap::default()),
            clock: Instant::now(),
            egress: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            stop: stop_rx,
        });
        let thread = std::thread::Builder::new()
            .name("corral-proxy".into())
            .spawn(move || runtime.block_on(serve(shared, listeners)))
            .map_err(e("spawning the proxy thread"))?;
        Ok(Proxy {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops accepting, ends open connections (each is recorded with what it moved so far) and
    /// returns the session's totals.
    pub fn stop(mut self) -> Summary {
        self.stop_inner().unwrap_or_default()
    }

    fn stop_inner(&mut self) -> Option<Summary> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit: each connection served holds
/// two sockets and two pipes, and a supervisor at the usual soft limit (1024) would refuse
/// connections below [`Config::max_connections`]. The sandbox was cloned before, so it keeps
/// its own limits.
fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    if cur.current != cur.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: cur.maximum,
                maximum: cur.maximum,
            },
        );
    }
}

/// The runtime's main task: accept until stopped, then give open connections a moment to report.
async fn serve(shared: Arc<Shared>, l: Listeners) -> Summary {
    let mut stop = shared.stop.clone();
    let mut gateway = None;
    if let Some((listener, cfg)) = l.gateway {
        if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
            let s = shared.clone();
            let record: Arc<dyn Fn(crate::gateway::ApiRecord) + Send + Sync> =
                Arc::new(move |r| s.record_api(r));
            gateway = Some(tokio::spawn(crate::gateway::serve(
                listener,
                cfg,
                record,
                shared.stop.clone(),
            )));
        }
    }
    let proxy = l.proxy.and_then(|p| {
        match (
            tokio::net::TcpListener::from_std(p.proxy),
            tokio::net::UdpSocket::from_std(p.dns_udp),
            tokio::net::TcpListener::from_std(p.dns_tcp),
        ) {
            (Ok(a), Ok(b), Ok(c)) => Some((a, b, c)),
            _ => None,
        }
    });
    match proxy {
        Some((proxy, dns_udp, dns_tcp)) => {
            tokio::select! {
                () = accept_loop(shared.clone(), proxy) => {}
                () = crate::dnssink::serve_udp(shared.clone(), dns_udp) => {}
                () = crate::dnssink::serve_tcp(shared.clone(), dns_tcp) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
        None => {
            let _ = stop.wait_for(|s| *s).await;
        }
    }
    // Connections see the stop too; wait for them to finish their records.
    let deadline = Instant::now() + STOP_GRACE;
    while shared.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The gateway has its own grace for requests in flight: its records are in the summary once
    // it has returned.
    if let Some(gateway) = gateway {
        let _ = gateway.await;
    }
    shared.summary_now()
}

/// Accepts proxy connections, each served on its own task, at most `max_connections` at once.
async fn accept_loop(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if shared.active.load(Ordering::Acquire) >= shared.cfg.max_connections {
            let mut r = ConnRecord::new();
            r.reason = crate::reason::Reason::TooManyConnections;
            shared.record_conn(r);
            drop(stream);
            continue;
        }
        shared.active.fetch_add(1, Ordering::AcqRel);
        let s = shared.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut rec = crate::serve::serve_conn(&s, stream).await;
            rec.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            if rec.proto != crate::record::Proto::Status {
                s.record_conn(rec);
            }
            s.active.fetch_sub(1, Ordering::AcqRel);
        });
    }
}
