//! Registry host names that reach the same registry: the one list of Docker Hub's hosts, and
//! the canonical spelling of any registry host.
//!
//! Docker Hub answers to several names: `docker.io`, which image references use (and which
//! the reference grammar supplies when an image names no registry), the legacy index name
//! `index.docker.io`, the registry API host `registry-1.docker.io` that runtimes actually
//! connect to, and `registry.hub.docker.com`, which serves the same API.
//!
//! Any host may also be written with its port in several ways that reach the same server: with
//! leading zeros (`host:025000` is `host:25000` to every URL and port parser) or with the
//! default port of its scheme written out (`host:443` for HTTPS, `host:80` for a registry opted
//! into plain HTTP). [`canonical_host`] writes each registry one way, for matching and for every
//! cache key, so that spelling an image differently never escapes the policy
//! (docs/contract.md §2).

use std::collections::HashSet;

/// The registry of images that name none: `busybox` is `docker.io/library/busybox`.
pub const DOCKER_HUB: &str = "docker.io";

/// The legacy name of [`DOCKER_HUB`], which the reference grammar folds into it.
pub const DOCKER_HUB_LEGACY: &str = "index.docker.io";

/// The host Docker Hub's registry API answers on.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Every name of Docker Hub, [`DOCKER_HUB`] first.
pub const DOCKER_HUB_HOSTS: [&str; 4] = [
    DOCKER_HUB,
    DOCKER_HUB_LEGACY,
    DOCKER_HUB_API,
    "registry.hub.docker.com",
];

/// The repository namespace of Docker Hub's official images: `busybox` is `library/busybox`.
pub const OFFICIAL_NAMESPACE: &str = "library/";

/// The default port of HTTPS.
const HTTPS_PORT: &str = "443";
/// The default port of plain HTTP.
const HTTP_PORT: &str = "80";

/// Whether a lowercase host name (with its port, if any) is one of Docker Hub's.
pub fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_HOSTS.contains(&host)
}

/// The host that serves the registry API of `domain` (`host[:port]` as in a reference):
/// lowercase, and [`DOCKER_HUB_API`] for every name of Docker Hub.
pub fn api_host(domain: &str) -> String {
    let host = domain.to_ascii_lowercase();
    if is_docker_hub(&host) {
        DOCKER_HUB_API.to_owned()
    } else {
        host
    }
}

/// The registries reached over plain HTTP (`--insecure-registry`); every other one is reached
/// over HTTPS. That decides a registry's default port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainHttp {
    /// `host` (port 80) or `host:port`, lowercase, port without leading zeros.
    hosts: HashSet<String>,
}

impl PlainHttp {
    /// The registries `hosts` (`host` or `host:port`, in any case and spelling of the port).
    pub fn new<S: AsRef<str>>(hosts: impl IntoIterator<Item = S>) -> Self {
        let hosts = hosts
            .into_iter()
            .map(|host| {
                let (name, port) = split(host.as_ref());
                match port {
                    Some(port) if port != HTTP_PORT => format!("{name}:{port}"),
                    _ => name,
                }
            })
            .collect();
        PlainHttp { hosts }
    }

    /// Whether no registry is reached over plain HTTP.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Whether the registry at `host` (`host[:port]`, any spelling) is reached over plain HTTP.
    pub fn contains(&self, host: &str) -> bool {
        let (name, port) = split(host);
        self.is_plain(&name, port.as_deref())
    }

    /// Whether a registry of this host name, on some port, is reached over plain HTTP: a
    /// token realm on that host may be plain HTTP too.
    pub fn has_name(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.hosts.iter().any(|host| split(host).0 == name)
    }

    fn is_plain(&self, name: &str, port: Option<&str>) -> bool {
        match port {
            None | Some(HTTP_PORT) => self.hosts.contains(name),
            Some(port) => self.hosts.contains(&format!("{name}:{port}")),
        }
    }
}

impl<const N: usize> From<[String; N]> for PlainHttp {
    fn from(hosts: [String; N]) -> Self {
        PlainHttp::new(hosts)
    }
}

/// A registry host written one way: lowercase, its port without leading zeros, and the
/// default port of its scheme dropped (443, or 80 for a registry in `plain`), unless that
/// would make it the spelling of another server: with `reg` opted into plain HTTP (port 80),
/// `reg:443` (HTTPS) stays as it is. Docker Hub's names stay as they are (see
/// [`is_docker_hub`]).
pub fn canonical_host(domain: &str, plain: &PlainHttp) -> String {
    let (name, port) = split(domain);
    let drop = match port.as_deref() {
        None => true,
        Some(HTTP_PORT) => plain.is_plain(&name, None),
        Some(HTTPS_PORT) => {
            !plain.is_plain(&name, Some(HTTPS_PORT)) && !plain.is_plain(&name, None)
        }
        Some(_) => false,
    };
    match port {
        Some(port) if !drop => format!("{name}:{port}"),
        _ => name,
    }
}

/// Whether a host (`host[:port]`, IPv6 in brackets) names a port.
pub fn has_port(host: &str) -> bool {
    split(host).1.is_some()
}

/// A host's name (lowercase, brackets kept for IPv6) and port (without leading zeros).
fn split(domain: &str) -> (String, Option<String>) {
    let domain = domain.to_ascii_lowercase();
    let colon = match domain.rfind(']') {
        Some(bracket) => domain
            .get(bracket..)
            .and_then(|tail| tail.find(':'))
            .map(|at| bracket + at),
        None => domain.rfind(':'),
    };
    let Some(colon) = colon else {
        return (domain, None);
    };
    let name = domain.get(..colon).unwrap_or_default().to_owned();
    let port = domain.get(colon + 1..).unwrap_or_default();
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return (domain, None);
    }
    let trimmed = port.trim_start_matches('0');
    let port = if trimmed.is_empty() { "0" } else { trimmed };
    (name, Some(port.to_owned()))
}

/// The first component of a name pattern with its literal port written as
/// [`canonical_host`] writes it for HTTPS: without leading zeros, `:443` dropped (a glob
/// before the port is kept as it is). A pattern knows no scheme: an image of a registry opted
/// into plain HTTP on port 443 is matched all the same, since it is also spelled without it.
pub fn canonical_pattern_host(first: &str) -> String {
    canonical_host(first, &PlainHttp::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_reached_on_its_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("Index.Docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("registry.hub.docker.com"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert!(DOCKER_HUB_HOSTS.iter().all(|h| is_docker_hub(h)));
        assert!(!is_docker_hub("docker.io.example.org"));
    }

    #[test]
    fn one_spelling_per_registry() {
        let https = PlainHttp::default();
        for (written, canonical) in [
            ("registry.example.org", "registry.example.org"),
            ("Registry.Example.ORG:443", "registry.example.org"),
            ("registry.example.org:0443", "registry.example.org"),
            ("127.0.0.1:025000", "127.0.0.1:25000"),
            ("127.0.0.1:25000", "127.0.0.1:25000"),
            ("localhost:80", "localhost:80"),
            ("localhost:0", "localhost:0"),
            ("localhost:000", "localhost:0"),
            ("[fd00::1]:443", "[fd00::1]"),
            ("[FD00::1]:05000", "[fd00::1]:5000"),
            ("[fd00::1]", "[fd00::1]"),
            ("docker.io:443", "docker.io"),
        ] {
            assert_eq!(canonical_host(written, &https), canonical, "{written}");
        }
        let plain = PlainHttp::new(["Reg.Local:0080", "other:5000"]);
        assert_eq!(canonical_host("reg.local:80", &plain), "reg.local");
        assert_eq!(canonical_host("reg.local:00080", &plain), "reg.local");
        assert_eq!(canonical_host("reg.local:443", &plain), "reg.local:443");
        assert_eq!(canonical_host("other:05000", &plain), "other:5000");
        assert!(plain.contains("REG.LOCAL") && plain.contains("reg.local:080"));
        assert!(!plain.contains("reg.local:443") && plain.contains("other:5000"));
        assert!(plain.has_name("Other") && !plain.has_name("elsewhere"));
    }

    #[test]
    fn a_patterns_literal_port_is_written_as_an_images() {
        assert_eq!(
            canonical_pattern_host("Reg.Example.org:0443"),
            "reg.example.org"
        );
        assert_eq!(canonical_pattern_host("reg:025000"), "reg:25000");
        assert_eq!(canonical_pattern_host("reg"), "reg");
        assert_eq!(canonical_pattern_host("*.example.org:443"), "*.example.org");
        assert_eq!(canonical_pattern_host("reg:4*"), "reg:4*");
    }
}
