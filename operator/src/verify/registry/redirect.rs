//! Where a registry may send the verifier. Registries redirect (blob downloads go to CDNs), so
//! redirects are followed, at most [`MAX_REDIRECTS`]; but whoever may create a Pod chooses the
//! registry host under a broad pattern, so a redirect must not turn the webhook's Pod into a
//! client of the cluster's own network. A redirect is refused:
//!
//! - from HTTPS to plain HTTP, unless the target is a registry opted into plain HTTP
//!   (`--insecure-registry`);
//! - to a scheme other than HTTP(S);
//! - to a link-local address (169.254.0.0/16, fe80::/10) or a cloud metadata address
//!   (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`, `metadata.google.internal`);
//! - to a loopback or unspecified address, `localhost`, or the Pod's own addresses, unless
//!   `--allow-redirects-to-loopback` says otherwise (for registries on the same host, in
//!   development).
//!
//! Host names are checked as written; the client's resolver ([`Resolver`]) also refuses to
//! connect anywhere a name resolves to a link-local or metadata address, so a name that points
//! there is refused too, whether reached by a redirect or not. A redirected answer is read
//! only as what was asked for (a manifest, a blob), within the same limits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::policy::hosts::PlainHttp;

/// The most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// What redirects may reach, besides what is always refused.
#[derive(Debug, Clone, Default)]
pub struct RedirectRules {
    /// Registries reached over plain HTTP: the only plain-HTTP targets after HTTPS.
    pub plain_http: PlainHttp,
    /// Whether loopback, unspecified and the Pod's own addresses may be redirected to.
    pub allow_loopback: bool,
    /// The Pod's own addresses (`POD_IP`, `POD_IPS`), refused like loopback.
    pub own_addresses: Vec<IpAddr>,
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefusal {
    /// More than [`MAX_REDIRECTS`].
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
    /// From HTTPS to a plain-HTTP address that is not an opted-in registry.
    #[error("a redirect from HTTPS to plain HTTP ({0}), which is never followed")]
    PlainHttp(String),
    /// To a scheme that is not HTTP(S).
    #[error("a redirect to {0}, which is not HTTP(S)")]
    Scheme(String),
    /// To a link-local or cloud metadata address.
    #[error("a redirect to the link-local or metadata address {0}, which is never followed")]
    LinkLocal(String),
    /// To a loopback, unspecified or the Pod's own address.
    #[error(
        "a redirect to the local address {0}, which is not followed (--allow-redirects-to-loopback)"
    )]
    Local(String),
}

impl RedirectRules {
    /// Whether a redirect from `from` to `to` may be followed.
    pub fn check(&self, from: Option<&Url>, to: &Url) -> Result<(), RedirectRefusal> {
        let shown = || shorten(to);
        let host_port = match (to.host_str(), to.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(RedirectRefusal::Scheme(shown())),
        };
        match to.scheme() {
            "https" => {}
            "http" => {
                let from_https = from.is_none_or(|f| f.scheme() == "https");
                if from_https && !self.plain_http.contains(&host_port) {
                    return Err(RedirectRefusal::PlainHttp(shown()));
                }
            }
            _ => return Err(RedirectRefusal::Scheme(shown())),
        }
        let host = to.host_str().unwrap_or_default();
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return self.address(ip, shown);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_NAMES.contains(&name.as_str()) {
            return Err(RedirectRefusal::LinkLocal(shown()));
        }
        let local = name == "localhost" || name.ends_with(".localhost");
        if local && !self.allow_loopback {
            return Err(RedirectRefusal::Local(shown()));
        }
        Ok(())
    }

    fn address(&self, ip: IpAddr, shown: impl Fn() -> String) -> Result<(), RedirectRefusal> {
        let ip = canonical(ip);
        if is_link_local_or_metadata(ip) {
            return Err(RedirectRefusal::LinkLocal(shown()));
        }
        let local = ip.is_loopback() || ip.is_unspecified() || self.own_addresses.contains(&ip);
        if local && !self.allow_loopback {
            return Err(RedirectRefusal::Local(shown()));
        }
        Ok(())
    }

    /// The client's redirect policy: these rules, at most [`MAX_REDIRECTS`] hops.
    pub fn policy(self) -> reqwest::redirect::Policy {
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(RedirectRefusal::TooMany);
            }
            match self.check(attempt.previous().last(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        })
    }
}

/// Names of cloud metadata services.
const METADATA_NAMES: [&str; 2] = ["metadata.google.internal", "metadata.goog"];

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Link-local (169.254.0.0/16, fe80::/10) and the cloud metadata addresses outside them
/// (AWS's IPv6 `fd00:ec2::254`, Alibaba's `100.100.100.200`).
pub fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// At most 120 characters of a URL, without its query (which may carry a token).
fn shorten(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.as_str().chars().take(120).collect()
}

/// The system resolver, without the link-local and metadata addresses a name resolves to: no
/// registry lives there, and a name that points there (by a redirect or not) is refused.
#[derive(Debug, Default, Clone)]
pub struct Resolver;

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !is_link_local_or_metadata(a.ip()))
                .collect();
            if usable.is_empty() && !found.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(RedirectRefusal::LinkLocal(format!(
                        "{host} (resolves only to link-local addresses)"
                    )));
                return Err(refused);
            }
            let addrs: Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

/// The resolver, shared.
pub fn resolver() -> Arc<Resolver> {
    Arc::new(Resolver)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    #[test]
    fn what_a_redirect_may_reach() {
        let rules = RedirectRules {
            plain_http: PlainHttp::new(["registry.local:5000"]),
            ..RedirectRules::default()
        };
        let from = url("https://registry.example.org/v2/app/blobs/sha256:00");
        let ok = |to: &str| rules.check(Some(&from), &url(to));
        assert_eq!(ok("https://cdn.example.net/blob?sig=x"), Ok(()));
        assert_eq!(ok("http://registry.local:5000/v2/x"), Ok(()));
        assert!(matches!(
            ok("http://cdn.example.net/x"),
            Err(RedirectRefusal::PlainHttp(_))
        ));
        for link_local in [
            "https://169.254.169.254/latest/meta-data/",
            "http://169.254.169.254/latest/meta-data/iam",
            "https://[fe80::1]/x",
            "https://[::ffff:169.254.169.254]/x",
            "https://[fd00:ec2::254]/x",
            "https://100.100.100.200/x",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://METADATA.google.internal./x",
        ] {
            let refused = ok(link_local);
            assert!(
                matches!(
                    refused,
                    Err(RedirectRefusal::LinkLocal(_)) | Err(RedirectRefusal::PlainHttp(_))
                ),
                "{link_local}: {refused:?}"
            );
        }
        for local in [
            "https://127.0.0.1:8443/x",
            "https://[::1]/x",
            "https://0.0.0.0/x",
            "https://localhost/x",
            "https://a.localhost/x",
            "https://10.1.2.3/x",
        ] {
            let refused = RedirectRules {
                own_addresses: vec!["10.1.2.3".parse().unwrap()],
                ..RedirectRules::default()
            }
            .check(Some(&from), &url(local));
            assert!(
                matches!(refused, Err(RedirectRefusal::Local(_))),
                "{local}: {refused:?}"
            );
        }
        let allowed = RedirectRules {
            allow_loopback: true,
            ..RedirectRules::default()
        };
        assert_eq!(
            allowed.check(Some(&from), &url("https://127.0.0.1:8443/x")),
            Ok(())
        );
        assert!(matches!(
            allowed.check(Some(&from), &url("https://169.254.169.254/")),
            Err(RedirectRefusal::LinkLocal(_))
        ));
        assert!(matches!(
            ok("file:///etc/passwd"),
            Err(RedirectRefusal::Scheme(_))
        ));
        assert!(matches!(
            ok("ftp://cdn.example.net/x"),
            Err(RedirectRefusal::Scheme(_))
        ));
        // What is said never carries the query, which may hold a signed token.
        let Err(refused) = ok("http://cdn.example.net/x?token=secret") else {
            panic!("refused")
        };
        assert!(!refused.to_string().contains("secret"), "{refused}");
    }
}
