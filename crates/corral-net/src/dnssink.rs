//! The DNS sink: the sandbox's resolver (127.0.0.1:53, UDP and TCP). Every query is answered
//! REFUSED and recorded; nothing is forwarded, so DNS carries nothing out of the sandbox (no
//! exfiltration through query names). Programs reach the network through the proxy, which
//! resolves names itself.

use crate::dns::{formerr, parse_query, qtype_name, refused, MAX_TCP_MESSAGE};
use crate::proxy::Shared;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest UDP datagram read (anything longer is cut, then malformed).
const UDP_BUF: usize = 4096;
/// DNS-over-TCP connections served at once.
const MAX_TCP_CONNS: usize = 32;
/// Back-off after a failed receive or accept (keeps an error from spinning).
const BACKOFF: Duration = Duration::from_millis(50);

/// The answer to one query message, and the query when it parsed.
fn answer(s: &Shared, pkt: &[u8], transport: &'static str) -> Option<Vec<u8>> {
    match parse_query(pkt) {
        Ok(q) => {
            let reply = refused(pkt, &q);
            s.record_dns(q.name, qtype_name(q.qtype), transport);
            Some(reply)
        }
        Err(_) => formerr(pkt),
    }
}

/// Serves the UDP socket until the runtime stops.
pub(crate) async fn serve_udp(s: Arc<Shared>, sock: tokio::net::UdpSocket) {
    let mut buf = vec![0u8; UDP_BUF];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        if let Some(reply) = answer(&s, &buf[..n], "udp") {
            let _ = sock.send_to(&reply, peer).await;
        }
    }
}

/// Serves DNS over TCP (length-prefixed messages) until the runtime stops.
pub(crate) async fn serve_tcp(s: Arc<Shared>, listener: tokio::net::TcpListener) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        if active.load(Ordering::Acquire) >= MAX_TCP_CONNS {
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (s, active) = (s.clone(), active.clone());
        tokio::spawn(async move {
            let limit = s.cfg.head_timeout;
            let _ = tokio::time::timeout(limit, async {
                loop {
                    let mut len = [0u8; 2];
                    stream.read_exact(&mut len).await?;
                    let len = usize::from(u16::from_be_bytes(len));
                    if len == 0 || len > MAX_TCP_MESSAGE {
                        return Ok(());
                    }
                    let mut msg = vec![0u8; len];
                    stream.read_exact(&mut msg).await?;
                    let Some(reply) = answer(&s, &msg, "tcp") else {
                        return Ok(());
                    };
                    let Ok(n) = u16::try_from(reply.len()) else {
                        return Ok(());
                    };
                    stream.write_all(&n.to_be_bytes()).await?;
                    stream.write_all(&reply).await?;
                }
                #[allow(unreachable_code)]
                Ok::<(), std::io::Error>(())
            })
            .await;
            active.fetch_sub(1, Ordering::AcqRel);
        });
    }
}
