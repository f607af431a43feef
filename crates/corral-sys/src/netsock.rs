//! The sockets of the network layer that need the kernel: the listening sockets init binds inside
//! the sandbox's network namespace (handed to the supervisor, see `corral-net`), and this host's
//! own interface addresses (which the proxy never dials).

use corral_core::plan::{DNS_PORT, PROXY_PORT};
use rustix::net::{bind, listen, socket_with, AddressFamily, SocketFlags, SocketType};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;

/// Connections the kernel queues for the proxy before the supervisor accepts them (the proxy
/// also caps how many it serves at once).
const PROXY_BACKLOG: i32 = 1024;
/// Queued connections for the API gateway (an agent opens a few at a time).
const GATEWAY_BACKLOG: i32 = 128;
/// Queued TCP connections for the DNS sink (DNS over TCP is rare).
const DNS_BACKLOG: i32 = 64;

/// A socket that could not be made, strace-style.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct SockError {
    /// The call, e.g. `bind(tcp 127.0.0.1:3128)`.
    pub op: String,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

fn make(kind: SocketType, addr: SocketAddr, backlog: Option<i32>) -> Result<OwnedFd, SockError> {
    let what = if kind == SocketType::STREAM { "tcp" } else { "udp" };
    let e = |op: &str| {
        let op = format!("{op}({what} {addr})");
        move |errno: rustix::io::Errno| SockError {
            op,
            source: errno.into(),
        }
    };
    let fd = socket_with(AddressFamily::INET, kind, SocketFlags::CLOEXEC, None).map_err(e("socket"))?;
    bind(&fd, &addr).map_err(e("bind"))?;
    if let Some(n) = backlog {
        listen(&fd, n).map_err(e("listen"))?;
    }
    Ok(fd)
}

/// Binds, on 127.0.0.1 of the calling process's network namespace: the proxy's TCP listener
/// ([`PROXY_PORT`]), the DNS sink's UDP socket and its TCP listener ([`DNS_PORT`], which needs
/// `CAP_NET_BIND_SERVICE` in the namespace's owner). In that order.
pub fn bind_sandbox_sockets() -> Result<[OwnedFd; 3], SockError> {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    Ok([
        make(
            SocketType::STREAM,
            SocketAddr::new(lo, PROXY_PORT),
            Some(PROXY_BACKLOG),
        )?,
        make(SocketType::DGRAM, SocketAddr::new(lo, DNS_PORT), None)?,
        make(
            SocketType::STREAM,
            SocketAddr::new(lo, DNS_PORT),
            Some(DNS_BACKLOG),
        )?,
    ])
}

/// Binds the agent API gateway's TCP listener on 127.0.0.1 of the calling process's network
/// namespace ([`corral_core::agents::GATEWAY_PORT`]).
pub fn bind_gateway_socket() -> Result<OwnedFd, SockError> {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    make(
        SocketType::STREAM,
        SocketAddr::new(lo, corral_core::agents::GATEWAY_PORT),
        Some(GATEWAY_BACKLOG),
    )
}

/// Every address of this host's interfaces (getifaddrs(3)), as the supervisor's network
/// namespace sees them. Empty if the call fails (the proxy still refuses loopback, private and
/// link-local ranges by class).
pub fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we own into `head`; on success we walk it read-only
    // and free it exactly once below. Each ifa_addr is either null or points at a sockaddr whose
    // sa_family says which larger struct it is, as getifaddrs(3) documents.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let sa = (*cur).ifa_addr;
            if !sa.is_null() {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*sa.cast::<libc::sockaddr_in>();
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*sa.cast::<libc::sockaddr_in6>();
                        out.push(IpAddr::V6(std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses_include_loopback() {
        // Every network namespace has lo; its address is listed once it is up, as on any host.
        let addrs = host_addresses();
        assert!(addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{addrs:?}");
    }
}
