//! corral's network layer, run in the supervisor (host side): the filtering egress proxy (HTTP
//! `CONNECT`, absolute-form HTTP, SOCKS5 with remote resolution) and the DNS sink.
//!
//! The sandbox's init binds the listening sockets inside the sandbox's network namespace and hands
//! them over (SCM_RIGHTS); this crate accepts on them and dials out from the host namespace. Every
//! decision is a value ([`policy::Policy::decide`], [`policy::Policy::check_addr`]) with a stable
//! [`reason::Reason`]; the parsers ([`head`], [`socks`], [`tls`], [`dns`]) are sans-I/O and fuzzed;
//! [`proxy`], [`serve`], [`tunnel`] and [`dnssink`] are the I/O.
#![forbid(unsafe_code)]

pub mod dns;
pub mod dnssink;
pub mod gateway;
pub mod head;
pub mod policy;
pub mod proxy;
pub mod reason;
pub mod record;
pub mod serve;
pub mod socks;
pub mod target;
pub mod tls;
pub mod tunnel;
