use proptest::prelude::*;

use super::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Any string as a pattern or as an image: an answer or an error, never a panic.
    #[test]
    fn no_input_panics(
        pattern in "[a-zA-Z0-9./:@*_\\-\\[\\]é ]{0,40}",
        image in "[a-zA-Z0-9./:@_\\-\\[\\]é]{0,40}",
        anything in any::<String>(),
    ) {
        let image = ImageName::parse(&image);
        for text in [pattern.as_str(), anything.as_str()] {
            if let (Ok(p), Ok(i)) = (NamePattern::parse(text), image.as_ref()) {
                let _ = p.matches(i);
            }
        }
        let _ = ImageName::parse(&anything);
    }

    /// A pattern that is an image's own canonical name matches it, and a star in place
    /// of any run of its repository path still matches.
    #[test]
    fn an_image_matches_its_own_name_with_any_run_starred(
        image in "[a-z]{1,8}\\.[a-z]{2,3}(:[0-9]{2,4})?/[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}:[a-z0-9]{1,6}",
        cut in any::<prop::sample::Index>(),
        len in 0usize..10,
    ) {
        let parsed = ImageName::parse(&image).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let name = parsed.reference().name().to_owned();
        prop_assert!(NamePattern::parse(&name).map(|p| p.matches(&parsed)).unwrap_or(false));
        // Stars go after the registry: a star between a host and its port would turn the
        // port into a tag pattern, as `host:5000*` is (docs/contract.md §2: the tag follows the last ':').
        let first_slash = name.find('/').unwrap_or(0) + 1;
        let start = first_slash + cut.index(name.len() - first_slash);
        let end = (start + len).min(name.len());
        let starred = format!("{}*{}", &name[..start], &name[end..]);
        let pattern = NamePattern::parse(&starred).map_err(|e| TestCaseError::fail(format!("{starred}: {e}")))?;
        prop_assert!(pattern.matches(&parsed), "{} must match {}", starred, image);
    }
}

fn matches(pattern: &str, image: &str) -> bool {
    let pattern = NamePattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    let image = ImageName::parse(image).unwrap_or_else(|e| panic!("{image}: {e}"));
    pattern.matches(&image)
}

/// The original documentation's table, row for row (docs/contract.md §2).
#[test]
fn the_seed_table() {
    let table: &[(&str, &[&str])] = &[
        (
            "registry.example.org/myproject/my-image:mytag",
            &["registry.example.org/myproject/my-image:mytag"],
        ),
        (
            "registry.example.org/myproject/my-image",
            &[
                "registry.example.org/myproject/my-image:mytag",
                "registry.example.org/myproject/my-image:other-tag",
            ],
        ),
        (
            "registry.example.org/myproject/my-image:*",
            &[
                "registry.example.org/myproject/my-image:mytag",
                "registry.example.org/myproject/my-image:other-tag",
            ],
        ),
        (
            "registry.example.org/myproject/*",
            &[
                "registry.example.org/myproject/my-image:mytag",
                "registry.example.org/myproject/anotherimage:anothertag",
            ],
        ),
        (
            "registry.example.org/*/my-image:mytag",
            &[
                "registry.example.org/myproject/my-image:mytag",
                "registry.example.org/anotherproject/my-image:mytag",
            ],
        ),
        (
            "registry.example.org/*/my-image",
            &[
                "registry.example.org/myproject/my-image:mytag",
                "registry.example.org/myproject/my-image:anothertag",
            ],
        ),
        (
            "registry.example.org/*",
            &[
                "registry.example.org/myproject/my-image:mytag",
                "registry.example.org/anotherproject/anotherimage:anothertag",
            ],
        ),
        (
            "*.example.org/*",
            &[
                "my-registry.example.org/myproject/my-image:mytag",
                "registry.example.org/anotherproject/anotherimage:anothertag",
            ],
        ),
        (
            "*",
            &[
                "my-registry.example.org/myproject/my-image:mytag",
                "registry.example.org/anotherproject/anotherimage:anothertag",
                "registry.io/project/image:tag",
            ],
        ),
    ];
    for (pattern, images) in table {
        for image in *images {
            assert!(matches(pattern, image), "{pattern} must match {image}");
        }
    }
}

/// What each row of the table must not match: a pattern is not a prefix match.
#[test]
fn the_seed_table_is_not_too_generous() {
    let table = [
        (
            "registry.example.org/myproject/my-image:mytag",
            "registry.example.org/myproject/my-image:other-tag",
        ),
        (
            "registry.example.org/myproject/my-image:mytag",
            "registry.example.org/myproject/my-image",
        ),
        (
            "registry.example.org/myproject/my-image",
            "registry.example.org/myproject/my-image-2:mytag",
        ),
        (
            "registry.example.org/myproject/my-image",
            "registry.example.org/myproject/my-image/sub:mytag",
        ),
        (
            "registry.example.org/myproject/my-image",
            "other.example.org/myproject/my-image:mytag",
        ),
        (
            "registry.example.org/myproject/*",
            "registry.example.org/otherproject/my-image:mytag",
        ),
        (
            "registry.example.org/*/my-image:mytag",
            "registry.example.org/myproject/my-image:othertag",
        ),
        (
            "registry.example.org/*",
            "registry.example.org.evil.io/myproject/my-image:mytag",
        ),
        (
            "registry.example.org/*",
            "registry.example.org:5000/myproject/my-image:mytag",
        ),
        ("*.example.org/*", "example.org/myproject/my-image:mytag"),
        (
            "*.example.org/*",
            "registry.example.com/myproject/my-image:mytag",
        ),
    ];
    for (pattern, image) in table {
        assert!(!matches(pattern, image), "{pattern} must not match {image}");
    }
}

#[test]
fn any_spelling_of_a_docker_hub_image_matches() {
    let spellings = [
        "busybox",
        "busybox:latest",
        "library/busybox",
        "docker.io/busybox",
        "docker.io/library/busybox:latest",
        "index.docker.io/library/busybox",
        "index.docker.io/busybox:latest",
    ];
    let patterns = [
        "busybox",
        "busybox:latest",
        "library/busybox",
        "docker.io/busybox",
        "docker.io/library/busybox",
        "docker.io/library/*",
        "index.docker.io/library/busybox:latest",
        "index.docker.io/*",
        "docker.io/*",
        "busy*",
        "*/busybox",
    ];
    for pattern in patterns {
        for image in spellings {
            assert!(matches(pattern, image), "{pattern} must match {image}");
        }
    }
    assert!(!matches("docker.io/library/*", "docker.io/someone/busybox"));
    assert!(matches("docker.io/someone/*", "someone/busybox"));
    assert!(matches(
        "someone/busybox",
        "index.docker.io/someone/busybox:1.0"
    ));
    assert!(!matches("busybox", "someone/busybox"));
}

#[test]
fn digests() {
    let digest = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    let other = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    let by_digest = format!("registry.example.org/p/app@{digest}");
    let by_tag_and_digest = format!("registry.example.org/p/app:v1@{digest}");
    // A tag-less pattern matches any digest, with or without a tag.
    assert!(matches("registry.example.org/p/app", &by_digest));
    assert!(matches("registry.example.org/p/app:*", &by_digest));
    assert!(matches("registry.example.org/p/*", &by_tag_and_digest));
    // A tagged pattern needs that tag: a bare digest has none.
    assert!(!matches("registry.example.org/p/app:v1", &by_digest));
    assert!(matches("registry.example.org/p/app:v1", &by_tag_and_digest));
    assert!(matches("registry.example.org/p/app:v*", &by_tag_and_digest));
    // A pattern pinned to a digest matches that digest only.
    assert!(matches(
        &format!("registry.example.org/p/app@{digest}"),
        &by_digest
    ));
    assert!(matches(
        &format!("registry.example.org/p/app@{digest}"),
        &by_tag_and_digest
    ));
    assert!(!matches(
        &format!("registry.example.org/p/app@{other}"),
        &by_digest
    ));
    assert!(!matches(
        &format!("registry.example.org/p/app@{digest}"),
        "registry.example.org/p/app:v1"
    ));
    assert!(!matches(
        &format!("registry.example.org/p/app:v2@{digest}"),
        &by_tag_and_digest
    ));
}

#[test]
fn ports_are_not_tags() {
    assert!(matches("localhost:5000/x", "localhost:5000/x:1.0"));
    assert!(matches("localhost:5000/x", "localhost:5000/x"));
    assert!(matches("localhost:5000/*", "localhost:5000/team/x:1.0"));
    assert!(!matches("localhost:5000/x", "localhost:5001/x"));
    assert!(!matches("localhost/x", "localhost:5000/x"));
    assert!(matches("localhost:*/x", "localhost:5000/x"));
    assert!(matches(
        "registry.example.org:443/p/*",
        "registry.example.org:443/p/app:v1"
    ));
    // The default HTTPS port written out is the same registry (it was not, and an image
    // written with `:443` escaped a pattern written without it).
    assert!(matches(
        "registry.example.org:443/p/*",
        "registry.example.org/p/app:v1"
    ));
    assert!(matches(
        "registry.example.org/p/*",
        "registry.example.org:0443/p/app:v1"
    ));
    assert!(matches("localhost:5000/x:5000", "localhost:5000/x:5000"));
    assert!(!matches("localhost:5000/x:5000", "localhost:5000/x:5001"));
}

#[test]
fn host_names_compare_without_case() {
    assert!(matches(
        "Registry.Example.ORG/p/*",
        "registry.example.org/p/app:v1"
    ));
    assert!(matches(
        "registry.example.org/p/*",
        "REGISTRY.example.org/p/app:v1"
    ));
    assert!(matches("docker.io/library/*", "Docker.IO/library/busybox"));
    assert!(matches("docker.io/library/*", "INDEX.DOCKER.IO/busybox"));
    assert!(matches("busybox", "registry-1.docker.io/library/busybox"));
    assert!(matches(
        "docker.io/library/*",
        "Registry-1.Docker.io/busybox:1"
    ));
    // Tags are case-sensitive in registries, so they are here.
    assert!(!matches(
        "registry.example.org/p/app:V1",
        "registry.example.org/p/app:v1"
    ));
}

#[test]
fn invalid_patterns_say_why() {
    let cases = [
        ("", PatternError::Empty),
        (":v1", PatternError::EmptyName),
        ("registry.example.org/app:", PatternError::EmptyTag),
        ("/app", PatternError::EmptyComponent),
        ("registry.example.org//app", PatternError::EmptyComponent),
        ("registry.example.org/app/", PatternError::EmptyComponent),
        (
            " registry.example.org/app",
            PatternError::Character {
                character: ' ',
                position: 0,
            },
        ),
        (
            "registry.example.org/app?",
            PatternError::Character {
                character: '?',
                position: 24,
            },
        ),
        (
            "registry.example.org/ä",
            PatternError::Character {
                character: 'ä',
                position: 21,
            },
        ),
        (
            "registry.example.org/app@sha256:abc",
            PatternError::Digest("sha256:abc".into()),
        ),
        (
            "registry.example.org/app@md5:00",
            PatternError::Digest("md5:00".into()),
        ),
        (
            "app@sha256:ff@x",
            PatternError::Digest("sha256:ff@x".into()),
        ),
    ];
    for (pattern, expected) in cases {
        assert_eq!(NamePattern::parse(pattern), Err(expected), "{pattern:?}");
    }
    let message = NamePattern::parse("").map(drop).unwrap_err().to_string();
    assert!(message.contains("\"*\""), "{message}");
}

#[test]
fn glob_runs() {
    let cases = [
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "acb", false),
        ("a*a", "a", false),
        ("a*a", "aa", true),
        ("*a*a*", "a", false),
        ("**", "", true),
        ("", "", true),
        ("", "x", false),
        ("ab*ba", "aba", false),
    ];
    for (glob, input, expected) in cases {
        assert_eq!(
            Glob::new(glob).matches(input),
            expected,
            "{glob:?} on {input:?}"
        );
    }
}

#[test]
fn image_ids_are_not_images() {
    let hex = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    for written in [format!("sha256:{hex}"), hex.to_owned()] {
        let err = ImageName::parse(&written).expect_err(&written);
        assert_eq!(err.kind(), "ErrReferenceInvalidFormat", "{written}: {err}");
    }
    assert!(ImageName::parse(&format!("busybox@sha256:{hex}")).is_ok());
    assert!(
        ImageName::parse("sha256:latest").is_ok(),
        "a repository named sha256 is still a name"
    );
}

#[test]
fn canonical_and_spellings() {
    let image = ImageName::parse("busybox").expect("busybox");
    assert_eq!(image.canonical(), "docker.io/library/busybox:latest");
    assert!(
        image
            .spellings()
            .contains(&"index.docker.io/library/busybox".to_owned())
    );
    let pinned = ImageName::parse(
        "gcr.io/p/app@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    )
    .expect("pinned");
    assert_eq!(pinned.spellings(), ["gcr.io/p/app"]);
    assert!(
        pinned.canonical().ends_with(
            "app@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        )
    );
}

mod spellings {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use crate::policy::Snapshot;
    use crate::policy::hosts::PlainHttp;
    use crate::policy::pattern::{ImageName, NamePattern};

    /// A registry, and the ways of writing it that reach the same server.
    fn registry() -> impl Strategy<Value = (String, Vec<String>)> {
        prop_oneof![
            Just((
                "docker.io".to_owned(),
                [
                    "docker.io",
                    "Docker.IO",
                    "docker.io:443",
                    "index.docker.io",
                    "index.docker.io:0443",
                    "registry-1.docker.io",
                    "registry-1.docker.io:443",
                    "registry.hub.docker.com",
                    "Registry.Hub.Docker.com:443",
                ]
                .map(str::to_owned)
                .to_vec()
            )),
            ("[a-z]{1,6}\\.(example\\.org|io)").prop_map(|host| {
                let spellings = vec![
                    host.clone(),
                    host.to_uppercase(),
                    format!("{host}:443"),
                    format!("{host}:0443"),
                    format!("{}:00443", host.to_uppercase()),
                ];
                (host, spellings)
            }),
            (1u16..65535)
                .prop_filter("not the default", |p| *p != 443)
                .prop_map(|port| {
                    let host = format!("127.0.0.1:{port}");
                    let spellings = vec![
                        host.clone(),
                        format!("127.0.0.1:0{port}"),
                        format!("127.0.0.1:000{port}"),
                    ];
                    (host, spellings)
                }),
            ipv6(),
            ipv4(),
        ]
    }

    /// A port, as `:<n>` or nothing (443), and its spellings.
    fn port() -> impl Strategy<Value = (String, Vec<String>)> {
        prop_oneof![
            Just((
                String::new(),
                vec![String::new(), ":443".into(), ":0443".into()]
            )),
            (1u16..65535)
                .prop_filter("not the default", |p| *p != 443)
                .prop_map(|p| (format!(":{p}"), vec![format!(":{p}"), format!(":00{p}")])),
        ]
    }

    /// Every host spelling joined with every port spelling.
    fn with_ports(hosts: &[String], ports: &[String]) -> Vec<String> {
        hosts
            .iter()
            .flat_map(|h| ports.iter().map(move |p| format!("{h}{p}")))
            .collect()
    }

    /// An IPv6 address (zero groups made likely, so that there are runs to compress) and the
    /// ways of writing it: RFC 5952, every group written out with and without leading zeros,
    /// upper case, and each run of zeros compressed in turn.
    fn ipv6() -> impl Strategy<Value = (String, Vec<String>)> {
        let group = prop_oneof![3 => Just(0u16), 1 => Just(1u16), 2 => any::<u16>()];
        (prop::array::uniform8(group), port()).prop_map(|(groups, (port, ports))| {
            let address = Ipv6Addr::from(groups);
            let full: Vec<String> = groups.iter().map(|g| format!("{g:x}")).collect();
            let mut hosts = vec![
                format!("[{}]", full.join(":")),
                format!("[{}]", full.join(":").to_uppercase()),
                format!(
                    "[{}]",
                    groups.map(|g| format!("{g:04x}")).join(":").to_uppercase()
                ),
            ];
            // Each maximal run of zero groups compressed, the RFC 5952 choice or not.
            let mut start = 0;
            while start < 8 {
                let zeros = groups
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|g| **g == 0)
                    .count();
                if zeros > 0 {
                    let head = full.get(..start).unwrap_or_default().join(":");
                    let tail = full.get(start + zeros..).unwrap_or_default().join(":");
                    hosts.push(format!("[{head}::{tail}]"));
                    hosts.push(format!("[{}::{}]", head.to_uppercase(), tail));
                }
                start += zeros.max(1);
            }
            // Written in RFC 5952 by the standard library (independent of the code under test);
            // an IPv4-mapped address is the IPv4 address.
            let canonical = match address.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    hosts.push(format!("[{address}]"));
                    format!("[{address}]")
                }
            };
            (format!("{canonical}{port}"), with_ports(&hosts, &ports))
        })
    }

    /// An IPv4 address and the ways of writing it: dotted decimal, each number in hex or
    /// octal, the shorthands of three, two and one numbers (one only where the image reads it
    /// as a registry: with a port, or in upper case), and mapped into IPv6.
    fn ipv4() -> impl Strategy<Value = (String, Vec<String>)> {
        let address = prop_oneof![
            Just(Ipv4Addr::LOCALHOST),
            any::<u32>().prop_map(Ipv4Addr::from)
        ];
        (address, port()).prop_map(|(address, (port, ports))| {
            let [a, b, c, d] = address.octets();
            let n = u32::from(address);
            let mut hosts = vec![
                format!("{a}.{b}.{c}.{d}"),
                format!("0x{a:x}.0x{b:X}.0X{c:x}.0x{d:02x}"),
                format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
                format!("{a}.{b}.{}", u32::from(c) << 8 | u32::from(d)),
                format!("{a}.0x{:x}", n & 0xff_ffff),
                format!("0{a:o}.0{:o}", n & 0xff_ffff),
                format!("0X{n:X}"),
                format!("[::ffff:{:x}:{:x}]", n >> 16, n & 0xffff),
                format!("[0:0:0:0:0:FFFF:{:04X}:{:04x}]", n >> 16, n & 0xffff),
            ];
            let mut all = with_ports(&hosts, &ports);
            if !port.is_empty() {
                hosts = vec![format!("{n}"), format!("0x{n:x}"), format!("0{n:o}")];
                all.extend(with_ports(&hosts, &ports));
            }
            (format!("{address}{port}"), all)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Every spelling of an image matches the same entries and has the same registry,
        /// repository, tag and digest, which make up every cache key.
        #[test]
        fn every_spelling_matches_the_same_entries_with_the_same_keys(
            (canonical, spellings) in registry(),
            path in "[a-z]{1,6}(/[a-z0-9]{1,6}){0,2}",
            version in prop_oneof![
                Just(String::new()),
                "[a-z0-9]{1,5}".prop_map(|t| format!(":{t}")),
                Just(format!("@sha256:{}", "a".repeat(64))),
            ],
            star in 0usize..4,
        ) {
            let hub = canonical == "docker.io";
            let official = hub && !path.contains('/');
            // The paths that name the same repository: an official image with and without
            // `library/`.
            let mut paths = vec![path.clone()];
            if official {
                paths.push(format!("library/{path}"));
            }
            let first = path.split('/').next().unwrap_or("x").to_owned();
            let patterns = [
                format!("{canonical}/*"),
                format!("{canonical}:443/*"),
                format!("{canonical}/{path}"),
                format!("{canonical}:0443/{first}*"),
                format!("*/{path}"),
                "*".to_owned(),
                format!("{path}:*"),
                "library/*".to_owned(),
                "*.example.org/*".to_owned(),
                "*.example.org:443/*".to_owned(),
                "127.0.0.1:*/*".to_owned(),
                format!("registry-1.docker.io/{}*", &path[..path.len().min(star + 1)]),
                "index.docker.io:443/library/*".to_owned(),
            ];
            let images: Vec<serde_json::Value> = patterns
                .iter()
                .enumerate()
                .map(|(i, p)| serde_json::json!({"namePattern": p, "keys": [{"name": format!("k{i}")}]}))
                .collect();
            let keys: Vec<serde_json::Value> = (0..patterns.len())
                .map(|i| serde_json::json!({"name": format!("k{i}"), "publicKey": include_str!("../../../tests/data/keys/p256.pub")}))
                .collect();
            let spec = serde_json::from_value(serde_json::json!({"verification": {"keys": keys, "images": images}}))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let snapshot = Snapshot::compile_spec(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let plain = PlainHttp::default();
            let mut seen: Option<(Vec<usize>, String, String, String)> = None;
            for host in &spellings {
                for p in &paths {
                    let written = format!("{host}/{p}{version}");
                    let image = ImageName::parse_with(&written, &plain)
                        .map_err(|e| TestCaseError::fail(format!("{written}: {e}")))?;
                    let matched: Vec<usize> = snapshot.matching(&image).iter().map(|e| e.index).collect();
                    // A pattern that writes the registry any of its ways matches it.
                    for pattern_host in &spellings {
                        let pattern = NamePattern::parse(&format!("{pattern_host}/*"))
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert!(pattern.matches(&image), "{}/* must match {}", pattern_host, written);
                    }
                    let keys = (
                        matched,
                        image.registry().to_owned(),
                        image.repository().to_owned(),
                        image.canonical(),
                    );
                    match &seen {
                        None => seen = Some(keys),
                        Some(first) => prop_assert_eq!(first, &keys, "{} differs", written),
                    }
                }
            }
            // Something of the policy matches every spelling: `*` at least.
            prop_assert!(seen.is_some_and(|(matched, ..)| matched.contains(&5)));
        }
    }

    #[test]
    fn the_spellings_of_the_issue_are_one_registry() {
        let plain = PlainHttp::default();
        let same = |a: &str, b: &str| {
            let (a, b) = (
                ImageName::parse_with(a, &plain).expect(a),
                ImageName::parse_with(b, &plain).expect(b),
            );
            assert_eq!(
                (a.registry(), a.repository(), a.canonical()),
                (b.registry(), b.repository(), b.canonical())
            );
        };
        same(
            "127.0.0.1:025000/app/unsigned:v1",
            "127.0.0.1:25000/app/unsigned:v1",
        );
        same("registry.example.org:443/x:1", "registry.example.org/x:1");
        same("docker.io:443/library/busybox", "busybox");
        same("registry-1.docker.io:443/library/busybox", "busybox");
        same("registry.hub.docker.com/library/busybox", "busybox");
        // The issue's IPv6 spellings of one registry, and the IPv4 it maps.
        for spelling in [
            "[0:0:0:0:0:0:0:1]:5000/app:v1",
            "[0000::0001]:5000/app:v1",
            "[::0:1]:05000/app:v1",
        ] {
            same(spelling, "[::1]:5000/app:v1");
        }
        for spelling in [
            "[::ffff:7f00:1]:5000/app:v1",
            "[::FFFF:7F00:0001]:5000/app:v1",
            "[0:0:0:0:0:ffff:7f00:1]:5000/app:v1",
            "127.1:5000/app:v1",
            "0x7f.0.0.1:5000/app:v1",
            "2130706433:5000/app:v1",
        ] {
            same(spelling, "127.0.0.1:5000/app:v1");
        }
        let v4 = ImageName::parse_with("[::ffff:7f00:1]:5000/app:v1", &plain).expect("image");
        assert_eq!(v4.canonical(), "127.0.0.1:5000/app:v1");
        // Other addresses stay other registries.
        let differ = |a: &str, b: &str| {
            let (a, b) = (
                ImageName::parse_with(a, &plain).expect(a),
                ImageName::parse_with(b, &plain).expect(b),
            );
            assert_ne!(a.registry(), b.registry());
        };
        differ("[::7f00:1]/app", "127.0.0.1/app");
        differ("[fd00::1]/app", "[fd00::10]/app");
        differ("[fd00::1]/app", "[fd00::1:0]/app");
        differ("127.0.0.1/app", "localhost/app");
        differ("010.0.0.1/app", "10.0.0.1/app");
        // A registry of one label is named in upper case only; its canonical form must read
        // back as it, not as a path on Docker Hub (found by the `names` fuzz target).
        let one_label = ImageName::parse_with("LocalDomain/team/app:v1", &plain).expect("image");
        assert_eq!(one_label.registry(), "localdomain");
        assert_eq!(one_label.canonical(), "LOCALDOMAIN/team/app:v1");
        same(&one_label.canonical(), "LOCALDOMAIN/team/app:v1");
        same("localdomain:443/team/app:v1", "LOCALDOMAIN/team/app:v1");
        let hub = ImageName::parse_with("localdomain/team/app:v1", &plain).expect("image");
        assert_eq!(hub.canonical(), "docker.io/localdomain/team/app:v1");
        // A number alone is a path on Docker Hub, not an address.
        let hub = ImageName::parse_with("2130706433/app", &plain).expect("image");
        assert_eq!(hub.canonical(), "docker.io/2130706433/app:latest");
        let image = ImageName::parse_with("registry.hub.docker.com/library/busybox", &plain)
            .expect("image");
        assert_eq!(image.canonical(), "docker.io/library/busybox:latest");
        // A registry opted into plain HTTP has port 80 as its default instead.
        let plain = PlainHttp::new(["reg.local"]);
        let at_80 = ImageName::parse_with("reg.local:80/app:v1", &plain).expect("image");
        assert_eq!(at_80.registry(), "reg.local");
        let at_443 = ImageName::parse_with("reg.local:443/app:v1", &plain).expect("image");
        assert_eq!(
            at_443.registry(),
            "reg.local:443",
            "HTTPS on 443 is another server"
        );
    }
}
