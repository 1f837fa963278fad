//! SSRF protection for forwarded requests.
//!
//! Forward targets are configured by users, so a target URL may point at anything the Lambda
//! can reach: the instance metadata service, VPC-internal services, localhost. Two gates stop
//! that. `EgressPolicy::check_url` refuses bad URLs before any request (wrong scheme,
//! credentials in the URL, an IP-literal host that is not public, a `localhost` name), so it can
//! also run on the configured endpoints at start-up. `GuardedResolver`, installed
//! in the client built by `guarded_client`, drops non-public addresses at resolution time, so a
//! name that passed the URL check cannot later resolve (or rebind) to an internal address: the
//! connection is only ever made to an address the policy accepted.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// IPv4 ranges that are never a legitimate forward target unless allow-listed: private,
/// shared (CGNAT), loopback, link-local (the metadata service lives at 169.254.169.254),
/// documentation, benchmarking, the 6to4 relay anycast (a relay decapsulates what it receives
/// and sends it on to wherever the inner packet says), multicast and reserved space.
const NON_PUBLIC_V4: [(Ipv4Addr, u32); 16] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    // Reserved space, which also holds the broadcast address 255.255.255.255.
    (Ipv4Addr::new(240, 0, 0, 0), 4),
    (Ipv4Addr::new(255, 255, 255, 255), 32),
];

/// All publicly routed IPv6 unicast space lies in 2000::/3; everything outside it (::, ::1,
/// fc00::/7 with the metadata address fd00:ec2::254, fe80::/10, ff00::/8, 100::/64,
/// 64:ff9b:1::/48) is not a forward target.
const GLOBAL_UNICAST_V6: (Ipv6Addr, u32) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// Ranges inside 2000::/3 that are not a forward target: documentation, and Teredo, a tunnel
/// whose addresses stand for an IPv4 server and client (the client's obfuscated) that the packet
/// really goes through, which the policy cannot judge as one address.
const NON_PUBLIC_IN_GLOBAL_V6: [(Ipv6Addr, u32); 3] = [
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32),
];

/// IPv6 prefixes whose last 32 bits are an IPv4 address the packet really goes to
/// (IPv4-mapped, NAT64 well-known prefix, IPv4-compatible), so they are judged as that address.
const EMBEDDING_V4_IN_LOW_BITS: [(Ipv6Addr, u32); 3] = [
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),
];

/// 6to4 (2002::/16) carries the IPv4 address of its gateway in bits 16..48.
const SIX_TO_FOUR: (Ipv6Addr, u32) = (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16);

/// Why a forward target was refused. Messages name at most a scheme, a host and an address,
/// never a full URL, because query strings may carry tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SsrfError {
    /// The scheme is not https (or http is used where only loopback http is allowed).
    #[error("scheme {0:?} is not allowed for forward targets (https only; http only to loopback when enabled)")]
    Scheme(String),
    /// The URL embeds credentials, which would leak into logs and to redirects' targets.
    #[error("forward target URLs must not carry credentials (user:pass@)")]
    Credentials,
    /// The URL has no host to check (and so nowhere legitimate to go).
    #[error("forward target URL has no host")]
    NoHost,
    /// The host is, or resolved to, an address inside the network.
    #[error("{host} is not a public address ({ip})")]
    NonPublic {
        /// The host as written in the URL (or the address itself).
        host: String,
        /// The refused address.
        ip: IpAddr,
    },
    /// Every address the name resolved to was refused.
    #[error("{0} resolves only to non-public addresses")]
    Unresolvable(String),
}

impl SsrfError {
    /// Finds a policy refusal in an error's source chain, so a caller holding a
    /// `reqwest::Error` from [`guarded_client`] can tell "refused by policy" (permanent) from a
    /// passing connection failure (retryable).
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a SsrfError> {
        std::iter::successors(Some(err), |&e| e.source())
            .find_map(|e| e.downcast_ref::<SsrfError>())
    }
}

impl From<SsrfError> for crate::Error {
    /// A target that points inside is a configuration error: retrying cannot fix it.
    fn from(err: SsrfError) -> Self {
        crate::Error::permanent(format!("forward target refused: {err}"))
    }
}

/// Where forwarded requests may go. Built once from configuration and shared by the URL check
/// and the resolver, so both gates apply the same rules.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow_http_loopback: bool,
    allow: Vec<IpNet>,
}

impl EgressPolicy {
    /// A policy that refuses non-public addresses except those in `allow`; `allow_http_loopback`
    /// exists for local development and tests against a server on this machine.
    pub fn new(allow_http_loopback: bool, allow: Vec<IpNet>) -> Self {
        Self {
            allow_http_loopback,
            allow,
        }
    }

    /// Parses FORWARD_ALLOW_CIDRS-style text (comma-separated CIDRs or single IPs, blanks
    /// ignored) so that operators can open specific internal ranges; the error names the bad
    /// entry so the configuration can be fixed.
    pub(crate) fn parse_allow_list(text: &str) -> Result<Vec<IpNet>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("invalid CIDR or IP address in allow list: {entry:?}"))
            })
            .collect()
    }

    /// Checks a URL before any request is made. IP-literal hosts are judged here because the
    /// HTTP client connects to them without asking the resolver, and so are `localhost` and
    /// `*.localhost`, which always mean loopback (RFC 6761) whatever DNS says; other names are
    /// judged by [`GuardedResolver`] when they are resolved.
    pub(crate) fn check_url(&self, url: &reqwest::Url) -> Result<(), SsrfError> {
        let scheme = url.scheme();
        if scheme != "https" && scheme != "http" {
            return Err(SsrfError::Scheme(scheme.to_owned()));
        }
        let host = url.host_str().ok_or(SsrfError::NoHost)?;
        let literal = literal_ip(host);
        if scheme == "http" && !(self.allow_http_loopback && is_loopback_host(host, literal)) {
            return Err(SsrfError::Scheme(scheme.to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SsrfError::Credentials);
        }
        match literal {
            Some(ip) => self.judge(host, ip),
            None if is_localhost_name(host) => self.judge(host, IpAddr::V4(Ipv4Addr::LOCALHOST)),
            None => Ok(()),
        }
    }

    /// Refuses non-public addresses unless allow-listed (or loopback with
    /// `allow_http_loopback`), because those are the addresses an attacker-supplied target
    /// would use to reach inside.
    #[cfg(test)]
    fn check_ip(&self, ip: IpAddr) -> Result<(), SsrfError> {
        self.judge(&ip.to_string(), ip)
    }

    fn judge(&self, host: &str, ip: IpAddr) -> Result<(), SsrfError> {
        if self.allows(ip) {
            Ok(())
        } else {
            Err(SsrfError::NonPublic {
                host: host.to_owned(),
                ip,
            })
        }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || (self.allow_http_loopback && is_loopback(ip)) || self.allow_listed(ip)
    }

    fn allow_listed(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allow
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }

    /// The resolved addresses the policy accepts, or an error if none is left.
    fn retain_allowed(&self, host: &str, found: Vec<IpAddr>) -> Result<Vec<IpAddr>, SsrfError> {
        let allowed: Vec<IpAddr> = found.into_iter().filter(|ip| self.allows(*ip)).collect();
        if allowed.is_empty() {
            Err(SsrfError::Unresolvable(host.to_owned()))
        } else {
            Ok(allowed)
        }
    }
}

/// The IP address a URL host spells literally (IPv6 hosts come in brackets), if any.
fn literal_ip(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

fn is_loopback_host(host: &str, literal: Option<IpAddr>) -> bool {
    match literal {
        Some(ip) => is_loopback(ip),
        None => is_localhost_name(host),
    }
}

/// `localhost`, a name under it, with or without the root's trailing dot.
fn is_localhost_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NON_PUBLIC_V4.iter().any(|&(net, len)| in_v4(ip, net, len))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let (global, global_len) = GLOBAL_UNICAST_V6;
    in_v6(ip, global, global_len)
        && !NON_PUBLIC_IN_GLOBAL_V6
            .iter()
            .any(|&(net, len)| in_v6(ip, net, len))
}

/// The IPv4 address an IPv6 address stands for, when it is one of the embedding forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    if ip.is_unspecified() || ip.is_loopback() {
        None
    } else if EMBEDDING_V4_IN_LOW_BITS
        .iter()
        .any(|&(net, len)| in_v6(ip, net, len))
    {
        Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
    } else if in_v6(ip, SIX_TO_FOUR.0, SIX_TO_FOUR.1) {
        Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else {
        None
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32u32.saturating_sub(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX
        .checked_shl(128u32.saturating_sub(len))
        .unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// A DNS resolver for the HTTP client that resolves names and drops the addresses the policy
/// refuses. Because the client only connects to what the resolver returns, DNS rebinding (a
/// name that looked fine when checked and resolves inside later) cannot get past it.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    policy: Arc<EgressPolicy>,
    table: Option<Arc<HashMap<String, Vec<IpAddr>>>>,
}

impl GuardedResolver {
    /// A resolver over the system resolver, for production.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self {
            policy,
            table: None,
        }
    }

    /// A resolver over a fixed name → addresses table (names not in it fail), so tests can
    /// exercise resolution without the network.
    #[cfg(test)]
    fn with_table(policy: Arc<EgressPolicy>, table: HashMap<String, Vec<IpAddr>>) -> Self {
        let table = table
            .into_iter()
            .map(|(name, addrs)| (name.to_ascii_lowercase(), addrs))
            .collect();
        Self {
            policy,
            table: Some(Arc::new(table)),
        }
    }

    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let found: Vec<IpAddr> = match &self.table {
            Some(table) => table
                .get(&host.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default(),
            None => tokio::net::lookup_host((host, 0))
                .await?
                .map(|addr| addr.ip())
                .collect(),
        };
        if found.is_empty() {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} did not resolve to any address"),
            ))
        } else {
            Ok(found)
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = resolver.lookup(&host).await?;
            let allowed = resolver.policy.retain_allowed(&host, found)?;
            let addrs: Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// A client for forwarding whose every connection goes through the guarded resolver. Redirects
/// are off because a redirect could point inside (and would carry the request on), and proxies
/// are off because through a proxy the resolver would judge the proxy instead of the target.
/// The scheme and userinfo rules are not enforced here: call [`EgressPolicy::check_url`] first.
pub(crate) fn guarded_client(
    resolver: GuardedResolver,
    timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(resolver)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout.min(crate::outbound::http::CONNECT_TIMEOUT))
        .timeout(timeout)
        .user_agent(concat!("genesys-relay/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn url(text: &str) -> reqwest::Url {
        text.parse().expect("test URL")
    }

    fn strict() -> EgressPolicy {
        EgressPolicy::default()
    }

    fn loopback_ok() -> EgressPolicy {
        EgressPolicy::new(true, Vec::new())
    }

    fn resolver(policy: EgressPolicy, table: &[(&str, &[&str])]) -> GuardedResolver {
        let table = table
            .iter()
            .map(|(name, addrs)| (name.to_string(), addrs.iter().map(|a| ip(a)).collect()))
            .collect();
        GuardedResolver::with_table(Arc::new(policy), table)
    }

    async fn resolve(resolver: &GuardedResolver, name: &str) -> Result<Vec<IpAddr>, String> {
        let name: Name = name.parse().expect("test name");
        match resolver.resolve(name).await {
            Ok(addrs) => Ok(addrs.map(|a| a.ip()).collect()),
            Err(err) => Err(err.to_string()),
        }
    }

    fn assert_refused(policy: &EgressPolicy, addrs: &[&str]) {
        for a in addrs {
            assert!(
                matches!(policy.check_ip(ip(a)), Err(SsrfError::NonPublic { .. })),
                "{a} should be refused"
            );
        }
    }

    fn assert_allowed(policy: &EgressPolicy, addrs: &[&str]) {
        for a in addrs {
            assert_eq!(policy.check_ip(ip(a)), Ok(()), "{a} should be allowed");
        }
    }

    #[test]
    fn every_non_public_ipv4_range_is_refused() {
        assert_refused(
            &strict(),
            &[
                "0.0.0.0",
                "0.255.255.255",
                "10.0.0.0",
                "10.255.255.255",
                "100.64.0.0",
                "100.127.255.255",
                "127.0.0.1",
                "127.255.255.254",
                "169.254.0.1",
                "169.254.169.254",
                "172.16.0.0",
                "172.31.255.255",
                "192.0.0.1",
                "192.0.0.255",
                "192.0.2.1",
                "192.168.0.1",
                "192.168.255.255",
                "198.18.0.1",
                "198.19.255.255",
                "198.51.100.7",
                "203.0.113.9",
                "224.0.0.1",
                "239.255.255.255",
                "240.0.0.1",
                "255.255.255.254",
                "255.255.255.255",
            ],
        );
    }

    #[test]
    fn public_ipv4_addresses_and_range_boundaries_are_allowed() {
        assert_allowed(
            &strict(),
            &[
                "1.1.1.1",
                "8.8.8.8",
                "93.184.216.34",
                "9.255.255.255",
                "11.0.0.0",
                "100.63.255.255",
                "100.128.0.0",
                "126.255.255.255",
                "128.0.0.0",
                "169.253.255.255",
                "169.255.0.0",
                "172.15.255.255",
                "172.32.0.0",
                "192.0.1.0",
                "192.0.3.0",
                "192.167.255.255",
                "192.169.0.0",
                "198.17.255.255",
                "198.20.0.0",
                "198.51.99.255",
                "203.0.112.255",
                "223.255.255.255",
            ],
        );
        assert_refused(&strict(), &["100.64.0.0", "172.16.0.0"]);
    }

    #[test]
    fn every_non_public_ipv6_range_is_refused() {
        assert_refused(
            &strict(),
            &[
                "::",
                "::1",
                "fc00::1",
                "fdff:ffff::1",
                "fe80::1",
                "febf::1",
                "ff02::1",
                "ff0e::1",
                "2001:db8::1",
                "2001:db8:ffff::1",
                "100::1",
                "100::ffff:ffff:ffff:ffff",
                "64:ff9b:1::1",
            ],
        );
    }

    #[test]
    fn public_ipv6_addresses_are_allowed() {
        assert_allowed(
            &strict(),
            &[
                "2606:4700:4700::1111",
                "2001:4860:4860::8888",
                "2001:db9::1",
            ],
        );
    }

    #[test]
    fn metadata_addresses_are_refused() {
        assert_refused(&strict(), &["169.254.169.254", "fd00:ec2::254"]);
        assert_refused(&loopback_ok(), &["169.254.169.254", "fd00:ec2::254"]);
    }

    #[test]
    fn embedded_ipv4_forms_are_judged_by_their_ipv4_address() {
        assert_refused(
            &strict(),
            &[
                "::ffff:127.0.0.1",
                "::ffff:10.0.0.1",
                "::ffff:169.254.169.254",
                "64:ff9b::10.0.0.1",
                "64:ff9b::169.254.169.254",
                "::10.0.0.1",
                "::169.254.169.254",
                "2002:a00:1::1",
                "2002:a9fe:a9fe::1",
            ],
        );
        assert_allowed(
            &strict(),
            &[
                "::ffff:93.184.216.34",
                "64:ff9b::93.184.216.34",
                "::93.184.216.34",
                "2002:5db8:d822::1",
            ],
        );
    }

    #[test]
    fn the_6to4_relay_anycast_is_refused_in_every_form() {
        assert_refused(
            &strict(),
            &[
                "192.88.99.0",
                "192.88.99.1",
                "192.88.99.255",
                "::ffff:192.88.99.1",
                "64:ff9b::192.88.99.1",
                "::192.88.99.1",
                "2002:c058:6301::1",
            ],
        );
        assert_refused(&loopback_ok(), &["192.88.99.1"]);
        assert_allowed(&strict(), &["192.88.98.255", "192.88.100.0"]);
        assert_eq!(
            strict().check_url(&url("https://192.88.99.1/hook")),
            Err(SsrfError::NonPublic {
                host: "192.88.99.1".into(),
                ip: ip("192.88.99.1")
            })
        );
    }

    #[test]
    fn teredo_is_refused_whatever_it_embeds() {
        assert_refused(
            &strict(),
            &[
                "2001::1",
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                // Server 10.0.0.1, client 127.0.0.1 (obfuscated): both inside.
                "2001:0:a00:1::80ff:fffe",
                // Server and client both public: still a tunnel the policy cannot judge.
                "2001:0:5db8:d822::a247:27dd",
                "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
            ],
        );
        assert_refused(&loopback_ok(), &["2001::1"]);
        // The neighbours of 2001::/32 are ordinary global unicast.
        assert_allowed(
            &strict(),
            &["2001:1:0:0:0:0:0:2", "2001:200::1", "2001:4860:4860::8888"],
        );
        assert!(matches!(
            strict().check_url(&url("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/")),
            Err(SsrfError::NonPublic { .. })
        ));
        let allow = EgressPolicy::parse_allow_list("2001:0:4136:e378::/64").expect("valid list");
        assert_allowed(
            &EgressPolicy::new(false, allow),
            &["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
        );
    }

    #[test]
    fn embedded_ipv4_forms_of_every_refused_range_stay_refused() {
        let v4_ranges = [
            [0, 0, 0, 1],
            [10, 1, 2, 3],
            [100, 64, 0, 1],
            [127, 0, 0, 1],
            [169, 254, 169, 254],
            [172, 16, 0, 1],
            [192, 0, 0, 9],
            [192, 0, 2, 1],
            [192, 88, 99, 1],
            [192, 168, 1, 1],
            [198, 18, 0, 1],
            [198, 51, 100, 1],
            [203, 0, 113, 1],
            [224, 0, 0, 1],
            [240, 0, 0, 1],
            [255, 255, 255, 255],
        ];
        for [a, b, c, d] in v4_ranges {
            let v4 = Ipv4Addr::new(a, b, c, d);
            let [h, l] = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
            let forms = [
                Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, h, l),
                Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, h, l),
                Ipv6Addr::new(0, 0, 0, 0, 0, 0, h, l),
                Ipv6Addr::new(0x2002, h, l, 0, 0, 0, 0, 1),
            ];
            assert!(strict().check_ip(IpAddr::V4(v4)).is_err(), "{v4}");
            for form in forms {
                // `::0.0.0.1` is `::1`, loopback: refused all the same.
                assert!(
                    strict().check_ip(IpAddr::V6(form)).is_err(),
                    "{form} (for {v4}) should be refused"
                );
            }
        }
    }

    #[test]
    fn localhost_names_are_judged_as_loopback_without_resolving() {
        for target in [
            "https://localhost/",
            "https://LOCALHOST:8443/hook",
            "https://localhost./",
            "https://api.localhost/",
            "https://a.b.Localhost./",
        ] {
            assert!(
                matches!(
                    strict().check_url(&url(target)),
                    Err(SsrfError::NonPublic { ip, .. }) if ip == ip_v4_loopback()
                ),
                "{target}"
            );
            assert_eq!(loopback_ok().check_url(&url(target)), Ok(()), "{target}");
        }
        let allow = EgressPolicy::parse_allow_list("127.0.0.1").expect("valid list");
        assert_eq!(
            EgressPolicy::new(false, allow).check_url(&url("https://localhost/")),
            Ok(())
        );
        // Names that only look alike are left to the resolver.
        for target in ["https://localhost.example.com/", "https://mylocalhost/"] {
            assert_eq!(strict().check_url(&url(target)), Ok(()), "{target}");
        }
        assert_eq!(
            loopback_ok().check_url(&url("http://api.localhost:8080/")),
            Ok(())
        );
    }

    fn ip_v4_loopback() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    #[test]
    fn allow_list_lets_a_private_cidr_through_and_nothing_else() {
        let allow = EgressPolicy::parse_allow_list("10.20.0.0/16").expect("valid list");
        let policy = EgressPolicy::new(false, allow);
        assert_allowed(&policy, &["10.20.0.1", "10.20.255.255", "::ffff:10.20.3.4"]);
        assert_refused(&policy, &["10.21.0.1", "192.168.1.1", "169.254.169.254"]);
        assert_eq!(policy.check_url(&url("https://10.20.1.2/hook")), Ok(()));
    }

    #[test]
    fn parse_allow_list_accepts_cidrs_single_ips_and_blanks() {
        let nets = EgressPolicy::parse_allow_list(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8,, ")
            .expect("valid list");
        let expected: Vec<IpNet> = ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]
            .iter()
            .map(|n| n.parse().expect("test net"))
            .collect();
        assert_eq!(nets, expected);
        assert_eq!(EgressPolicy::parse_allow_list(""), Ok(Vec::new()));
        assert_eq!(
            EgressPolicy::parse_allow_list("10.1.2.3/8").expect("valid list"),
            vec!["10.0.0.0/8".parse::<IpNet>().expect("test net")]
        );
    }

    #[test]
    fn parse_allow_list_names_the_bad_entry() {
        let err = EgressPolicy::parse_allow_list("10.0.0.0/8, not-a-cidr, 10.0.0.0/33")
            .expect_err("invalid list");
        assert!(err.contains("not-a-cidr"), "{err}");
        let err = EgressPolicy::parse_allow_list("10.0.0.0/33").expect_err("invalid list");
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }

    #[test]
    fn https_to_public_hosts_passes() {
        let policy = strict();
        assert_eq!(
            policy.check_url(&url("https://example.com/hook?token=s3cret")),
            Ok(())
        );
        assert_eq!(
            policy.check_url(&url("https://93.184.216.34:8443/")),
            Ok(())
        );
        assert_eq!(
            policy.check_url(&url("https://[2606:4700:4700::1111]/")),
            Ok(())
        );
    }

    #[test]
    fn http_is_refused_unless_loopback_is_allowed_and_the_host_is_loopback() {
        let strict = strict();
        for target in [
            "http://example.com/",
            "http://localhost/",
            "http://127.0.0.1:8080/",
        ] {
            assert_eq!(
                strict.check_url(&url(target)),
                Err(SsrfError::Scheme("http".into())),
                "{target}"
            );
        }
        let dev = loopback_ok();
        for target in [
            "http://localhost:8080/",
            "http://LOCALHOST/",
            "http://127.0.0.1:8080/",
            "http://127.9.9.9/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(dev.check_url(&url(target)), Ok(()), "{target}");
        }
    }

    #[test]
    fn http_to_a_public_host_is_refused_even_with_loopback_allowed() {
        let dev = loopback_ok();
        for target in [
            "http://example.com/",
            "http://93.184.216.34/",
            "http://10.0.0.1/",
        ] {
            assert_eq!(
                dev.check_url(&url(target)),
                Err(SsrfError::Scheme("http".into())),
                "{target}"
            );
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        for target in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
        ] {
            assert!(
                matches!(strict().check_url(&url(target)), Err(SsrfError::Scheme(_))),
                "{target}"
            );
        }
    }

    #[test]
    fn userinfo_is_refused() {
        for target in [
            "https://user:pass@example.com/",
            "https://user@example.com/",
            "https://:pass@example.com/",
        ] {
            assert_eq!(
                strict().check_url(&url(target)),
                Err(SsrfError::Credentials),
                "{target}"
            );
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_without_resolving() {
        let policy = strict();
        for (target, host, addr) in [
            (
                "https://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
                "169.254.169.254",
            ),
            ("https://10.0.0.1:8443/x", "10.0.0.1", "10.0.0.1"),
            ("https://[::1]/", "[::1]", "::1"),
            (
                "https://[fd00:ec2::254]/",
                "[fd00:ec2::254]",
                "fd00:ec2::254",
            ),
            (
                "https://[::ffff:10.0.0.1]/",
                "[::ffff:a00:1]",
                "::ffff:10.0.0.1",
            ),
            ("https://0x7f.1/", "127.0.0.1", "127.0.0.1"),
            ("https://2130706433/", "127.0.0.1", "127.0.0.1"),
        ] {
            assert_eq!(
                policy.check_url(&url(target)),
                Err(SsrfError::NonPublic {
                    host: host.into(),
                    ip: ip(addr)
                }),
                "{target}"
            );
        }
        // A name is left to the resolver: no lookup happens here.
        assert_eq!(policy.check_url(&url("https://internal.test/")), Ok(()));
    }

    #[test]
    fn errors_do_not_echo_paths_or_query_strings() {
        let err = strict()
            .check_url(&url("https://10.0.0.1/hook?token=s3cret"))
            .expect_err("refused");
        let text = crate::Error::from(err).to_string();
        assert!(!text.contains("s3cret") && !text.contains("hook"), "{text}");
        assert!(text.contains("10.0.0.1"), "{text}");
    }

    #[test]
    fn refusals_are_permanent_errors() {
        let err = crate::Error::from(SsrfError::Unresolvable("internal.test".into()));
        assert_eq!(err.class(), "permanent");
        assert!(err.to_string().contains("internal.test"));
    }

    #[tokio::test]
    async fn resolver_fails_a_name_with_only_private_addresses() {
        let r = resolver(strict(), &[("internal.test", &["10.0.0.1"])]);
        let err = resolve(&r, "internal.test").await.expect_err("refused");
        assert!(
            err.contains("resolves only to non-public addresses"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn resolver_keeps_only_the_public_addresses() {
        let r = resolver(strict(), &[("mixed.test", &["10.0.0.1", "93.184.216.34"])]);
        assert_eq!(
            resolve(&r, "mixed.test").await,
            Ok(vec![ip("93.184.216.34")])
        );
    }

    #[tokio::test]
    async fn resolver_passes_loopback_only_when_allowed() {
        let table: &[(&str, &[&str])] = &[("localhost", &["127.0.0.1", "::1"])];
        let err = resolve(&resolver(strict(), table), "localhost")
            .await
            .expect_err("refused");
        assert!(
            err.contains("resolves only to non-public addresses"),
            "{err}"
        );
        assert_eq!(
            resolve(&resolver(loopback_ok(), table), "localhost").await,
            Ok(vec![ip("127.0.0.1"), ip("::1")])
        );
    }

    #[tokio::test]
    async fn resolver_fails_names_missing_from_the_table() {
        let r = resolver(strict(), &[]);
        assert!(resolve(&r, "unknown.test").await.is_err());
    }

    #[tokio::test]
    async fn resolver_refusal_can_be_found_in_the_error_chain() {
        let r = resolver(strict(), &[("internal.test", &["10.0.0.1"])]);
        let name: Name = "internal.test".parse().expect("test name");
        let err = r.resolve(name).await.err().expect("refused");
        assert_eq!(
            SsrfError::find(err.as_ref()),
            Some(&SsrfError::Unresolvable("internal.test".into()))
        );
    }

    #[tokio::test]
    async fn guarded_client_refuses_a_name_mapped_to_a_private_address() {
        let r = resolver(strict(), &[("internal.test", &["10.1.2.3"])]);
        let client = guarded_client(r, Duration::from_secs(5)).expect("client");
        let err = client
            .get("http://internal.test/")
            .send()
            .await
            .expect_err("refused");
        assert!(err.is_connect(), "{err:?}");
        // The refusal comes from resolution, so no connection to 10.1.2.3 was attempted.
        assert_eq!(
            SsrfError::find(&err),
            Some(&SsrfError::Unresolvable("internal.test".into())),
            "{err:?}"
        );
    }

    /// A listener on 127.0.0.1 with a free port, for a server that never leaves this machine.
    async fn tiny_server() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        (listener, port)
    }

    /// Serves one request on the listener with 200 "ok".
    async fn answer_one(listener: TcpListener) {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .expect("write");
        stream.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn guarded_client_reaches_loopback_only_when_allowed() {
        let table: &[(&str, &[&str])] = &[("downstream.test", &["127.0.0.1"])];

        let (listener, port) = tiny_server().await;
        let server = tokio::spawn(answer_one(listener));
        let client =
            guarded_client(resolver(loopback_ok(), table), Duration::from_secs(5)).expect("client");
        let response = client
            .get(format!("http://downstream.test:{port}/"))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "ok");
        server.await.expect("server");

        let (listener, port) = tiny_server().await;
        let client =
            guarded_client(resolver(strict(), table), Duration::from_secs(5)).expect("client");
        let err = client
            .get(format!("http://downstream.test:{port}/"))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            SsrfError::find(&err),
            Some(&SsrfError::Unresolvable("downstream.test".into())),
            "{err:?}"
        );
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "the refused request must not connect");
    }
}
