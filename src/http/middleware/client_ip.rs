//! The client's address and scheme: the socket peer, or, when the peer is a trusted proxy
//! (`server.trusted_proxies`), what the one header named by `server.client_ip_header`
//! (`X-Forwarded-For` by default, or RFC 7239 `Forwarded`) and `X-Forwarded-Proto` say.
//!
//! The chain is walked from the right: each trusted proxy appends the address it saw, so
//! the right-most address that is not a trusted proxy is the client, and whatever the
//! client wrote further left cannot choose it. Every other forwarding header
//! (`Forwarded` when the setting names `X-Forwarded-For` and the reverse, `X-Real-IP`,
//! ...) is ignored: a proxy that passes a client's header through untouched must not let
//! that client pick its address, and so its rate-limit budget, its exemption or the
//! `client_ip` of the access log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;
use tower::{Layer, Service};

use crate::config::ClientIpHeader;

/// The client address of the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Whether the request reached the client side over HTTPS (this listener's TLS, or a
/// trusted proxy's `X-Forwarded-Proto: https`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverHttps(pub bool);

/// What the middleware needs to know.
#[derive(Debug, Clone)]
pub struct ClientIpConfig {
    trusted: Vec<IpNet>,
    header: ClientIpHeader,
    tls: bool,
}

impl ClientIpConfig {
    /// From `server.trusted_proxies` (addresses or CIDRs; validated at start-up),
    /// `server.client_ip_header` and whether this listener terminates TLS.
    pub fn new(trusted_proxies: &[String], header: ClientIpHeader, tls: bool) -> Self {
        let trusted = trusted_proxies
            .iter()
            .filter_map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .ok()
            })
            .collect();
        Self {
            trusted,
            header,
            tls,
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        // Walk the chain from the nearest hop: the first address that is not one of our
        // proxies is the client. Everything further left was written by the client.
        let chain = forwarded_for(headers, self.header);
        chain
            .iter()
            .rev()
            .copied()
            .find(|ip| !self.is_trusted(*ip))
            .or_else(|| chain.first().copied())
            .unwrap_or(peer)
    }

    /// Whether the request came over HTTPS.
    pub fn over_https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        if self.tls {
            return true;
        }
        self.is_trusted(peer)
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }
}

/// `::ffff:1.2.3.4` as `1.2.3.4`, so IPv4 CIDRs match on dual-stack sockets.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses `header` lists (all its lines, in order: client first). For `Forwarded`
/// these are the RFC 7239 `for=` values. Unparsable entries (`unknown`, obfuscated names)
/// end the chain there: nothing left of them can be attributed.
fn forwarded_for(headers: &HeaderMap, header: ClientIpHeader) -> Vec<IpAddr> {
    let joined = headers
        .get_all(header.as_str())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if joined.is_empty() {
        return Vec::new();
    }
    // Splitting on every comma is safe even inside a client's quoted string: only the
    // right-hand entries, which the trusted proxies appended, are ever believed.
    let entries: Vec<String> = match header {
        ClientIpHeader::XForwardedFor => joined.split(',').map(|s| s.trim().to_owned()).collect(),
        ClientIpHeader::Forwarded => joined
            .split(',')
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (name, value) = pair.split_once('=')?;
                        name.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| value.trim().trim_matches('"').to_owned())
                    })
                    // An element without `for=` names no hop: it ends the chain too.
                    .unwrap_or_default()
            })
            .collect(),
    };
    let mut chain = Vec::new();
    for entry in entries.iter().rev() {
        match parse_node(entry) {
            Some(ip) => chain.push(canonical(ip)),
            None => break,
        }
    }
    chain.reverse();
    chain
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|inner| inner.parse().ok())
}

/// Stores [`ClientIp`] and [`OverHttps`] in the request's extensions.
#[derive(Debug, Clone)]
pub struct ClientIpLayer {
    config: Arc<ClientIpConfig>,
}

impl ClientIpLayer {
    /// The layer for `config`.
    pub fn new(config: ClientIpConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for ClientIpLayer {
    type Service = ClientIpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIpService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// See [`ClientIpLayer`].
#[derive(Debug, Clone)]
pub struct ClientIpService<S> {
    inner: S,
    config: Arc<ClientIpConfig>,
}

impl<S> Service<Request> for ClientIpService<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        let ip = self.config.client_ip(peer, req.headers());
        let https = self.config.over_https(peer, req.headers());
        req.extensions_mut().insert(ClientIp(ip));
        req.extensions_mut().insert(OverHttps(https));
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn config(trusted: &[&str], header: ClientIpHeader) -> ClientIpConfig {
        let trusted: Vec<String> = trusted.iter().map(|t| (*t).to_owned()).collect();
        ClientIpConfig::new(&trusted, header, false)
    }

    #[test]
    fn untrusted_peers_are_taken_at_their_word_only() {
        let config = config(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let spoofed = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);

        assert_eq!(
            config.client_ip(ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        assert!(!config.over_https(ip("203.0.113.9"), &spoofed));
    }

    #[test]
    fn trusted_proxies_name_the_first_untrusted_hop_from_the_right() {
        let xff = config(&["10.0.0.0/8", "192.0.2.1"], ClientIpHeader::XForwardedFor);
        let forwarded = config(&["10.0.0.0/8", "192.0.2.1"], ClientIpHeader::Forwarded);
        // The client prepended a fake address; the proxies appended the real one.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.0.2.1")]);
        let rfc7239 = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::1]:4711";proto=https, for=10.1.2.3"#,
        )]);

        assert_eq!(xff.client_ip(ip("10.0.0.5"), &chain), ip("198.51.100.7"));
        assert_eq!(
            forwarded.client_ip(ip("10.0.0.5"), &rfc7239),
            ip("2001:db8::1")
        );
        assert_eq!(
            xff.client_ip(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
        assert!(xff.over_https(
            ip("::ffff:10.0.0.5"),
            &headers(&[("x-forwarded-proto", "https")])
        ));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let xff = config(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let forwarded = config(&["10.0.0.0/8"], ClientIpHeader::Forwarded);
        let both = headers(&[
            ("forwarded", "for=198.51.100.66"),
            ("x-real-ip", "198.51.100.77"),
            ("x-forwarded-for", "203.0.113.5"),
        ]);
        let only_forwarded = headers(&[("forwarded", "for=198.51.100.66")]);
        let only_xff = headers(&[("x-forwarded-for", "203.0.113.5")]);

        assert_eq!(xff.client_ip(ip("10.0.0.5"), &both), ip("203.0.113.5"));
        assert_eq!(
            forwarded.client_ip(ip("10.0.0.5"), &both),
            ip("198.51.100.66")
        );
        assert_eq!(
            xff.client_ip(ip("10.0.0.5"), &only_forwarded),
            ip("10.0.0.5")
        );
        assert_eq!(
            forwarded.client_ip(ip("10.0.0.5"), &only_xff),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn every_line_of_the_header_counts_in_order() {
        let config = config(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let lines = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7, 10.0.0.9"),
        ]);

        assert_eq!(config.client_ip(ip("10.0.0.5"), &lines), ip("198.51.100.7"));
    }

    #[test]
    fn garbage_in_the_chain_stops_attribution() {
        let xff = config(&["10.0.0.0/8"], ClientIpHeader::XForwardedFor);
        let forwarded = config(&["10.0.0.0/8"], ClientIpHeader::Forwarded);
        let garbage = headers(&[("x-forwarded-for", "not-an-ip, 10.0.0.9")]);
        let hidden = headers(&[("forwarded", "for=6.6.6.6, for=_hidden, for=10.0.0.9")]);
        let no_for = headers(&[("forwarded", "for=6.6.6.6, proto=https")]);

        // Only trusted hops are left: the leftmost known address is used.
        assert_eq!(xff.client_ip(ip("10.0.0.5"), &garbage), ip("10.0.0.9"));
        assert_eq!(forwarded.client_ip(ip("10.0.0.5"), &hidden), ip("10.0.0.9"));
        assert_eq!(forwarded.client_ip(ip("10.0.0.5"), &no_for), ip("10.0.0.5"));
    }
}
