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
//! into plain HTTP). An IP address has several spellings too: an IPv6 address with its zeros
//! compressed or not, leading zeros in a group, upper-case hex, or an IPv4 address mapped into
//! IPv6 (`[::ffff:7f00:1]` is `127.0.0.1` to Go's dialer, containerd's); and an IPv4 address in
//! the shorthands that `inet_aton` (glibc's resolver) and URL parsers read (`127.1`,
//! `0x7f.0.0.1`, `0177.0.0.1`, `2130706433`). [`canonical_host`] writes each registry one way,
//! for matching and for every cache key, so that spelling an image differently never escapes
//! the policy (docs/contract.md §2).

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::reference::must_be_domain;

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
/// its name as [`canonical_name`] writes it, its port without leading zeros, and
/// [`DOCKER_HUB_API`] for every name of Docker Hub.
pub fn api_host(domain: &str) -> String {
    let host = match split(domain) {
        (name, Some(port)) => format!("{name}:{port}"),
        (name, None) => name,
    };
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
        let name = canonical_name(name);
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

/// A registry host written one way: lowercase, an IP address as [`canonical_name`] writes it,
/// its port without leading zeros, and the default port of its scheme dropped (443, or 80 for
/// a registry in `plain`), unless that would make it the spelling of another server: with
/// `reg` opted into plain HTTP (port 80), `reg:443` (HTTPS) stays as it is. Docker Hub's names
/// stay as they are (see [`is_docker_hub`]).
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

/// A host name (no port) written one way: an IPv6 address in brackets in its RFC 5952 form
/// (`[::1]`), or as the IPv4 address it maps (`[::ffff:7f00:1]` is `127.0.0.1`); an IPv4
/// address in any of its shorthands as four decimal numbers; any other name in lowercase.
///
/// A bracketed name that is not an IPv6 address stays as it is, lowercase: the reference
/// grammar refuses it in an image, and in a pattern it is a glob to compare as written.
pub fn canonical_name(name: &str) -> String {
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(address) => match address.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => format!("[{address}]"),
            },
            Err(_) => name.to_ascii_lowercase(),
        };
    }
    match ipv4_shorthand(name) {
        Some(address) => address.to_string(),
        None => name.to_ascii_lowercase(),
    }
}

/// A port of decimal digits written one way: without leading zeros (`025000` is `25000`, `00`
/// is `0`), as every URL and port parser reads it.
pub fn canonical_port(port: &str) -> &str {
    let trimmed = port.trim_start_matches('0');
    match trimmed {
        "" if !port.is_empty() => "0",
        trimmed => trimmed,
    }
}

/// The IPv4 address a name spells as `inet_aton` reads it (and the WHATWG URL standard's
/// IPv4 parser, which the `url` crate under reqwest follows): one to four dot-separated
/// numbers, each decimal, octal with a leading `0`, or hex after `0x`; every number but the
/// last is one byte, the last fills the remaining bytes. glibc's `getaddrinfo` resolves such a
/// name to that address without asking DNS, so it is the same registry; a name with any other
/// label is a DNS name.
fn ipv4_shorthand(name: &str) -> Option<Ipv4Addr> {
    let mut numbers = [0u64; 4];
    let mut count = 0;
    for label in name.split('.') {
        *numbers.get_mut(count)? = ipv4_number(label)?;
        count += 1;
    }
    let (last, leading) = numbers.get(..count)?.split_last()?;
    let room = 8 * (5 - count as u32);
    if leading.iter().any(|n| *n > 0xff) || *last >> room != 0 {
        return None;
    }
    let value = leading
        .iter()
        .zip([24u32, 16, 8])
        .fold(*last, |value, (byte, shift)| value | byte << shift);
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

/// One number of an IPv4 shorthand: `0x` then hex (`0x` alone is 0, as `inet_aton` reads it),
/// `0` then octal, or decimal. `None` for anything else or beyond 32 bits.
fn ipv4_number(label: &str) -> Option<u64> {
    let (digits, radix) = match label.get(..2) {
        Some("0x" | "0X") => (label.get(2..).unwrap_or_default(), 16),
        _ if label.len() > 1 && label.starts_with('0') => (label.get(1..).unwrap_or_default(), 8),
        _ if label.is_empty() => return None,
        _ => (label, 10),
    };
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|n| *n <= u64::from(u32::MAX))
}

/// A host's name (as [`canonical_name`] writes it) and port (without leading zeros).
fn split(domain: &str) -> (String, Option<String>) {
    let (name, port) = split_raw(domain);
    match port {
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (canonical_name(name), Some(canonical_port(port).to_owned()))
        }
        _ => (canonical_name(domain), None),
    }
}

/// A host as written, cut at the colon of its port (the one after `]` for IPv6).
fn split_raw(domain: &str) -> (&str, Option<&str>) {
    let colon = match domain.rfind(']') {
        Some(bracket) => domain
            .get(bracket..)
            .and_then(|tail| tail.find(':'))
            .map(|at| bracket + at),
        None => domain.rfind(':'),
    };
    match colon {
        Some(colon) => (
            domain.get(..colon).unwrap_or_default(),
            domain.get(colon + 1..),
        ),
        None => (domain, None),
    }
}

/// The first component of a name pattern written as [`canonical_host`] writes an image's
/// registry for HTTPS: its literal name as [`canonical_name`] writes it, its literal port
/// without leading zeros, `:443` dropped. A glob is kept as written (`*.example.org`, `reg:4*`,
/// `[fd00::*]`), and is matched against the registry so written. A pattern knows no scheme:
/// an image of a registry opted into plain HTTP on port 443 is matched all the same, since it
/// is also spelled without it.
///
/// A first component that an image would read as a path component, not a registry (no `.`,
/// no `:`, not `localhost`, no upper case: `1234/app` is `docker.io/1234/app`), is only
/// lowercased: a number there is no address.
pub fn canonical_pattern_host(first: &str) -> String {
    if !must_be_domain(first) {
        return first.to_ascii_lowercase();
    }
    let (name, port) = split_raw(first);
    let name = if name.contains('*') {
        name.to_ascii_lowercase()
    } else {
        canonical_name(name)
    };
    match port {
        Some(port) => match split(first).1.as_deref() {
            Some(HTTPS_PORT) => name,
            Some(number) => format!("{name}:{number}"),
            // A glob, or no number: kept, so that it keeps matching only what it matched.
            None => format!("{name}:{}", port.to_ascii_lowercase()),
        },
        None => name,
    }
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
    fn an_ip_address_is_written_as_its_address() {
        let https = PlainHttp::default();
        for (written, canonical) in [
            // RFC 5952: lowercase, no leading zeros, the longest run of zero groups compressed
            // (the first of equal runs), a single zero group not compressed.
            ("[0:0:0:0:0:0:0:1]", "[::1]"),
            ("[0000:0000:0000:0000:0000:0000:0000:0001]", "[::1]"),
            ("[::0:1]", "[::1]"),
            ("[FD00::0001]:05000", "[fd00::1]:5000"),
            ("[fd00:0::1]:443", "[fd00::1]"),
            ("[2001:DB8:0:0:1:0:0:1]", "[2001:db8::1:0:0:1]"),
            ("[2001:db8:0:1:1:1:1:1]", "[2001:db8:0:1:1:1:1:1]"),
            ("[0:0:0:1:0:0:0:0]", "[0:0:0:1::]"),
            ("[::]", "[::]"),
            // IPv4-mapped: the IPv4 address, which Go's dialer connects to.
            ("[::ffff:7f00:1]", "127.0.0.1"),
            ("[::FFFF:7F00:0001]:5000", "127.0.0.1:5000"),
            ("[0:0:0:0:0:ffff:a00:1]:443", "10.0.0.1"),
            // IPv4-compatible (deprecated) and NAT64 addresses are IPv6 addresses.
            ("[::7f00:1]", "[::7f00:1]"),
            ("[64:ff9b::7f00:1]", "[64:ff9b::7f00:1]"),
            // The IPv4 shorthands of inet_aton.
            ("127.1", "127.0.0.1"),
            ("127.0.1:5000", "127.0.0.1:5000"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0X7F.0x0.0.01", "127.0.0.1"),
            ("0177.0.0.1:0443", "127.0.0.1"),
            ("2130706433:5000", "127.0.0.1:5000"),
            ("0x7f000001", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("010.0.0.1", "8.0.0.1"),
            ("10.0x10203", "10.1.2.3"),
            ("0x.0.0.0", "0.0.0.0"),
            ("255.255.255.255", "255.255.255.255"),
            ("4294967295", "255.255.255.255"),
            // Not addresses: DNS names, in lowercase.
            ("4294967296", "4294967296"),
            ("256.0.0.1", "256.0.0.1"),
            ("1.2.3.4.5", "1.2.3.4.5"),
            ("1.2.3.08", "1.2.3.08"),
            ("1.2.65536", "1.2.65536"),
            ("0x1g.0.0.1", "0x1g.0.0.1"),
            ("1e3.example.org", "1e3.example.org"),
            ("Reg.0x7f.org", "reg.0x7f.org"),
            // Not an IPv6 address: kept as written (the reference grammar refuses it).
            ("[FD00123]:5000", "[fd00123]:5000"),
        ] {
            assert_eq!(canonical_host(written, &https), canonical, "{written}");
        }
        assert_eq!(canonical_name("[::FFFF:127.0.0.1]"), "127.0.0.1");
        let plain = PlainHttp::new(["[0:0::1]:5000", "0x7f.1"]);
        assert!(plain.contains("[::1]:5000") && plain.contains("[::0001]:05000"));
        assert!(plain.contains("127.0.0.1") && plain.contains("[::ffff:7f00:1]:80"));
        assert!(plain.has_name("[0::1]") && plain.has_name("127.0.0.1"));
        assert!(!plain.contains("[::2]:5000") && !plain.contains("127.0.0.2"));
        assert_eq!(api_host("[0::1]:5000"), "[::1]:5000");
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
        assert_eq!(canonical_pattern_host("[0::1]:0443"), "[::1]");
        assert_eq!(canonical_pattern_host("[::FFFF:7F00:1]:*"), "127.0.0.1:*");
        assert_eq!(canonical_pattern_host("127.1:*"), "127.0.0.1:*");
        assert_eq!(canonical_pattern_host("[FD00::*]"), "[fd00::*]");
        assert_eq!(canonical_pattern_host("10.*:5000"), "10.*:5000");
        assert_eq!(canonical_pattern_host("*.org:0443"), "*.org");
        assert_eq!(canonical_pattern_host("reg:http"), "reg:http");
        assert_eq!(canonical_pattern_host("reg:"), "reg:");
        // A component that an image reads as a path on Docker Hub is no address.
        assert_eq!(canonical_pattern_host("1234"), "1234");
        assert_eq!(canonical_pattern_host("0x7f"), "0x7f");
        assert_eq!(canonical_pattern_host("0X7F"), "0.0.0.127");
    }
}
