//! Image references and name patterns, with their properties.
//!
//! Input: NUL-separated strings; each is read as an image and as a pattern, and every image
//! is matched against every pattern.
//!
//! Properties:
//! - a reference that parses prints back to a string that parses to the same reference, as
//!   written ([`Reference::parse_exact`]) and normalized, and that is canonical;
//! - an image's canonical form is an image with the same registry, repository, spellings and
//!   canonical form;
//! - every spelling of an image (its registry's host in other case, with its default port,
//!   with leading zeros in its port, an IP address written another way, Docker Hub's other
//!   names, the official namespace left out) is the same image, and matches every pattern
//!   exactly as the image does; a pattern whose registry is written another way matches the
//!   same images.

use std::net::{Ipv4Addr, Ipv6Addr};

use image_policy::policy::reference::{AnyReference, is_identifier};
use image_policy::policy::{ImageName, NamePattern, Reference};

/// The target.
pub fn run(data: &[u8]) {
    let texts = crate::parts(data);
    let patterns: Vec<NamePattern> = texts
        .iter()
        .filter_map(|t| NamePattern::parse(t).ok())
        .collect();
    for text in &texts {
        reference(text);
        let Ok(image) = ImageName::parse(text) else {
            continue;
        };
        let canonical = image.canonical();
        let again = ImageName::parse(&canonical)
            .unwrap_or_else(|e| panic!("{text:?}: canonical {canonical:?} is refused: {e}"));
        assert_eq!(same(&image), same(&again), "{text:?} and {canonical:?}");
        for spelling in spellings(&image) {
            let Ok(other) = ImageName::parse(&spelling) else {
                // A spelling this harness makes may pass a limit of the grammar (the path's
                // length does not change, but a longer host is refused by nothing): it must
                // parse.
                panic!("{text:?}: the spelling {spelling:?} is refused");
            };
            assert_eq!(same(&image), same(&other), "{text:?} and {spelling:?}");
            for pattern in &patterns {
                assert_eq!(
                    pattern.matches(&image),
                    pattern.matches(&other),
                    "{pattern} on {text:?} and {spelling:?}"
                );
            }
        }
        for pattern in &patterns {
            let matched = pattern.matches(&image);
            assert_eq!(
                matched,
                pattern.matches(&again),
                "{pattern} on {canonical:?}"
            );
            for respelled in pattern_spellings(pattern.as_str()) {
                if let Ok(other) = NamePattern::parse(&respelled) {
                    assert_eq!(
                        matched,
                        other.matches(&image),
                        "{pattern} and {respelled} on {text:?}"
                    );
                }
            }
        }
    }
}

/// What makes two images one: what matching and every cache key read.
fn same(image: &ImageName) -> (String, String, String, Vec<String>) {
    let mut spellings = image.spellings().to_vec();
    spellings.sort();
    (
        image.registry().to_owned(),
        image.repository().to_owned(),
        image.canonical(),
        spellings,
    )
}

/// A reference prints back to itself.
fn reference(text: &str) {
    if let Ok(parsed) = Reference::parse(text) {
        let printed = parsed.to_string();
        let again = Reference::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} prints as {printed:?}, refused: {e}"));
        assert_eq!(parsed, again, "{text:?} and {printed:?}");
        let exact = Reference::parse_exact(&printed)
            .unwrap_or_else(|e| panic!("{text:?} prints as {printed:?}, refused as written: {e}"));
        assert_eq!(parsed, exact, "{text:?} and {printed:?} as written");
        assert!(
            Reference::parse_canonical(&printed).is_ok(),
            "{printed:?} is not canonical"
        );
        let _ = (parsed.familiar_string(), Reference::parse_docker_ref(text));
    }
    if let Ok(exact) = Reference::parse_exact(text) {
        let printed = exact.to_string();
        assert_eq!(
            Reference::parse_exact(&printed).as_ref(),
            Ok(&exact),
            "{text:?} as written"
        );
    }
    let _ = AnyReference::parse(text).map(|r| r.to_string());
}

/// Other spellings of an image, made from its parts (not from how it was written).
fn spellings(image: &ImageName) -> Vec<String> {
    let reference = image.reference();
    let mut version = String::new();
    if let Some(tag) = reference.tag() {
        version.push(':');
        version.push_str(tag);
    }
    if let Some(digest) = reference.digest() {
        version.push('@');
        version.push_str(digest);
    }
    let repository = image.repository();
    let mut names: Vec<String> = host_spellings(image.registry())
        .into_iter()
        .map(|host| format!("{host}/{repository}"))
        .collect();
    if image.registry() == "docker.io" {
        for host in [
            "index.docker.io",
            "registry-1.docker.io:443",
            "Registry.Hub.Docker.com",
        ] {
            names.push(format!("{host}/{repository}"));
        }
        if let Some(short) = repository
            .strip_prefix("library/")
            .filter(|short| !short.contains('/') && !is_identifier(short))
        {
            names.push(short.to_owned());
            names.push(format!("docker.io/{short}"));
        }
        // Only a first component without `.`, `:` or upper case is read as a path.
        let first = repository.split('/').next().unwrap_or_default();
        if first != "localhost" && !first.contains(['.', ':']) && repository.contains('/') {
            names.push(repository.to_owned());
        }
    }
    names
        .into_iter()
        .map(|name| format!("{name}{version}"))
        .collect()
}

/// Other spellings of a registry host as an image writes it (`docker.io` for Docker Hub).
fn host_spellings(registry: &str) -> Vec<String> {
    let (host, port) = split_port(registry);
    let ports: Vec<String> = match port {
        Some(port) => vec![format!(":{port}"), format!(":000{port}")],
        None => vec![String::new(), ":443".into(), ":0443".into()],
    };
    let mut hosts = vec![host.to_uppercase()];
    if let Some(v6) = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<Ipv6Addr>().ok())
    {
        let groups = v6.segments();
        hosts.push(format!(
            "[{}]",
            groups.map(|g| format!("{g:04X}")).join(":")
        ));
        hosts.push(format!("[{}]", groups.map(|g| format!("{g:x}")).join(":")));
    } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
        let [a, b, c, d] = v4.octets();
        let n = u32::from(v4);
        hosts.push(format!("0x{a:x}.{b}.0{c:o}.{d}"));
        hosts.push(format!("{a}.{}", n & 0xff_ffff));
        hosts.push(format!("[::ffff:{:x}:{:x}]", n >> 16, n & 0xffff));
        hosts.push(format!("0X{n:X}"));
    }
    hosts
        .iter()
        .flat_map(|h| ports.iter().map(move |p| format!("{h}{p}")))
        .collect()
}

/// Other spellings of a pattern's literal registry: upper case, `:443` and leading zeros.
fn pattern_spellings(pattern: &str) -> Vec<String> {
    let Some((first, rest)) = pattern.split_once('/') else {
        return Vec::new();
    };
    if first.contains('*') || !first.contains(['.', ':']) {
        return Vec::new();
    }
    let (host, port) = split_port(first);
    let port = match port {
        // `host:` has no port to write otherwise: it is not `host:0`.
        Some(port) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => {
            return Vec::new();
        }
        Some(port) => format!(":0{port}"),
        None => ":443".to_owned(),
    };
    vec![
        format!("{}/{rest}", first.to_uppercase()),
        format!("{host}{port}/{rest}"),
    ]
}

/// A host and its port, if any (the colon after `]` for IPv6).
fn split_port(host: &str) -> (&str, Option<&str>) {
    let after = host.rfind(']').unwrap_or(0);
    match host.get(after..).and_then(|tail| tail.rfind(':')) {
        Some(colon) => (
            host.get(..after + colon).unwrap_or(host),
            host.get(after + colon + 1..),
        ),
        None => (host, None),
    }
}
