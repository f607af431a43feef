//! The binary's side of the network layer: the proxy's configuration from the plan (validated
//! before anything launches), its records as audit events, and its end-of-session summary.

use anyhow::Context;
use corral_core::audit::Event;
use corral_core::plan::Plan;
use corral_core::profile::NetworkMode;
use corral_net::proxy::Config;
use corral_net::record::{NetEvent, Summary};

/// Bytes in a MiB.
const MIB: u64 = 1024 * 1024;

/// The network runtime's configuration for a plan in `network.mode = "proxy"` or with an agent
/// API gateway (None otherwise). A bad `network.allow` / `deny` / `allow_cidrs` entry is an error
/// naming it.
pub fn proxy_config(plan: &Plan) -> anyhow::Result<Option<Config>> {
    if plan.network.mode != NetworkMode::Proxy && plan.network.gateway.is_none() {
        return Ok(None);
    }
    let n = &plan.network;
    let host_addrs = corral_sys::netsock::host_addresses();
    let policy = corral_net::policy::Policy::new(&n.allow, &n.deny, &n.allow_cidrs, &host_addrs)
        .context("the network policy")?;
    let cap = n.max_egress_mb.map(|m| m.saturating_mul(MIB));
    Ok(Some(Config::new(policy, cap)))
}

/// `corral why HOST[:PORT]` in proxy mode: the policy's decision on the name (port 443 unless
/// given) and what happens next. The address checks need a resolution, which `why` does not do:
/// it says so.
pub fn why_host(plan: &Plan, target: &str) -> anyhow::Result<Vec<String>> {
    let Some(cfg) = proxy_config(plan)? else {
        return Ok(Vec::new());
    };
    let (host, port) = match corral_net::target::parse_authority(target, Some(443)) {
        Ok(hp) => hp,
        Err(e) => return Ok(vec![format!("{target}: refused by the proxy — {e} (bad_host)")]),
    };
    let d = cfg.policy.decide(&host, port);
    let rule = d
        .rule
        .as_deref()
        .map(|r| format!(" (rule {r:?})"))
        .unwrap_or_default();
    let authority = host.authority(port);
    Ok(if d.allowed() {
        vec![
            format!("{authority}: allowed by network.allow{rule}, through corral's proxy"),
            "  the proxy then resolves the name itself and dials only public addresses (or ranges in network.allow_cidrs); a TLS ClientHello must name this host".to_string(),
        ]
    } else {
        vec![format!(
            "{authority}: refused by the proxy — {} ({}){rule}",
            d.reason.words(),
            d.reason.code()
        )]
    })
}

/// A proxy record as an audit event.
pub fn event(ev: NetEvent) -> Event {
    match ev {
        NetEvent::Conn(r) => Event::NetDecision {
            proto: serde_json::to_value(r.proto)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            host: r.host,
            port: r.port,
            addr: r.addr,
            decision: if r.reason == corral_net::reason::Reason::Allowed {
                "allowed".into()
            } else {
                "denied".into()
            },
            reason: r.reason.code().into(),
            rule: r.rule,
            detail: r.detail,
            bytes_up: r.up,
            bytes_down: r.down,
            duration_ms: r.duration_ms,
        },
        NetEvent::Api(r) => Event::ApiRequest {
            method: r.method,
            path: r.path,
            status: r.status,
            bytes_up: r.bytes_up,
            bytes_down: r.bytes_down,
            duration_ms: r.duration_ms,
            error: r.error,
        },
        NetEvent::Dns {
            name,
            qtype,
            transport,
        } => Event::DnsQuery {
            name,
            qtype,
            transport: transport.into(),
        },
    }
}

/// The session's summary as an audit event.
pub fn summary_event(s: &Summary) -> Event {
    Event::NetSummary {
        line: s.line(),
        allowed: s.allowed,
        denied: s.denied,
        dns_queries: s.dns_queries,
        bytes_up: s.up,
        bytes_down: s.down,
        unrecorded: s.unrecorded,
    }
}

/// The sockets init handed over, as the standard types the proxy takes, with the gateway's
/// configuration (the real credential, read from corral's own environment now: it is never in
/// the plan, never in the sandbox).
pub fn listeners(
    sockets: corral_sys::launch::NetSockets,
    gateway: Option<std::sync::Arc<corral_net::gateway::GatewayConfig>>,
) -> corral_net::proxy::Listeners {
    corral_net::proxy::Listeners {
        proxy: sockets.proxy.map(|p| corral_net::proxy::ProxyListeners {
            proxy: std::net::TcpListener::from(p.proxy),
            dns_udp: std::net::UdpSocket::from(p.dns_udp),
            dns_tcp: std::net::TcpListener::from(p.dns_tcp),
        }),
        gateway: sockets
            .gateway
            .zip(gateway)
            .map(|(fd, cfg)| (std::net::TcpListener::from(fd), cfg)),
    }
}

/// The gateway's configuration for the plan's gateway: the upstream, and the real credential
/// from where the plan says (this process's environment, or an owner-only file). An error names what is missing
/// or malformed.
pub fn gateway_config(plan: &Plan) -> anyhow::Result<Option<corral_net::gateway::GatewayConfig>> {
    use corral_core::agents::KeyHeader;
    use corral_net::gateway::{Credential, GatewayConfig, Upstream};
    let Some(g) = &plan.network.gateway else {
        return Ok(None);
    };
    let secret = match &g.source {
        corral_core::agents::CredentialSource::Env { name } => std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .with_context(|| format!("the agent's credential: {name} is not set in corral's environment"))?,
        corral_core::agents::CredentialSource::File { path } => crate::agent::read_secret_file(path)?,
    };
    let credential = match g.key_header {
        KeyHeader::XApiKey => Credential::ApiKey(secret),
        KeyHeader::Bearer => Credential::Bearer(secret),
        KeyHeader::XGoogApiKey => Credential::GoogApiKey(secret),
    };
    let upstream = Upstream::parse(&g.upstream).context("sandbox.api_upstream")?;
    Ok(Some(GatewayConfig {
        upstream,
        credential,
        extra_roots: Vec::new(),
        max_body: 32 * 1024 * 1024,
    }))
}
