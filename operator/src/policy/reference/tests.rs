use std::collections::BTreeMap;

use serde::Deserialize;

use super::grammar::match_reference;
use super::*;

const CASES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/reference/distribution_reference_cases.jsonl"
));

/// `api` values of rows this module does not check, and why.
const SKIPPED_APIS: &[&str] = &[
    // Glob matching (Go's path.Match) of familiar names is the pattern module's job; the
    // grammar has nothing to say about it.
    "FamiliarMatch(pattern, ParseAnyReference(input)) = path.Match on FamiliarName OR FamiliarString",
    "FamiliarMatch",
];

/// How many rows of each checked `api` the table holds: a new or renamed family fails
/// here instead of going unchecked.
const EXPECTED_COUNTS: &[(&str, usize)] = &[
    ("Parse (no normalization)", 48),
    ("Parse via JSON Field", 4),
    ("ParseNormalizedNamed", 123),
    (
        "ParseNamed (input must already be canonical/fully-qualified)",
        8,
    ),
    (
        "ParseDockerRef (normalize + add :latest; drops tag when digest present)",
        11,
    ),
    ("ParseAnyReference (bare 64-hex => digest reference)", 14),
    ("WithName (name only, no tag/digest)", 7),
    ("WithName", 6),
    ("WithName+[WithDigest]+WithTag", 5),
    ("WithName+[WithTag]+WithDigest", 4),
    ("WithTag(ParseNormalizedNamed(\"busybox\"), tag)", 1),
    ("WithDigest(ParseNormalizedNamed(\"busybox\"), digest)", 1),
    ("anchored domain regexp (domain[:port], IPv6 in [])", 30),
    ("anchored name regexp (name only) subs=[domain,path]", 63),
    ("reference regexp subs=[name,tag,digest]", 12),
    ("anchored identifier (64 lowercase hex)", 5),
];

/// One row of the table. Unknown fields are refused so that a new expectation cannot be
/// ignored silently.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    source: String,
    api: String,
    input: String,
    valid: bool,
    error: Option<String>,
    name: Option<String>,
    domain: Option<String>,
    path: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
    string: Option<String>,
    normalized: Option<String>,
    familiar_name: Option<String>,
    familiar_string: Option<String>,
    digest_only: Option<bool>,
    #[allow(dead_code)] // Explains the row; nothing to check.
    note: Option<String>,
    #[allow(dead_code)] // FamiliarMatch rows only, which are skipped.
    pattern: Option<String>,
    #[allow(dead_code)]
    expected_match: Option<bool>,
    #[allow(dead_code)]
    expected_error: Option<bool>,
}

fn rows() -> Vec<Row> {
    CASES
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The one row where this module differs from distribution's test on purpose: go-digest
/// reports sha512 unsupported only because that test binary does not link crypto/sha512.
fn is_sha512_row(row: &Row) -> bool {
    row.api == "Parse (no normalization)" && row.input.starts_with("validname@sha512:")
}

#[test]
fn distribution_conformance_table() {
    let rows = rows();
    assert_eq!(rows.len(), 352, "the table changed; review EXPECTED_COUNTS");
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    let mut skipped = 0;
    for row in &rows {
        if SKIPPED_APIS.contains(&row.api.as_str()) {
            skipped += 1;
            continue;
        }
        check_row(row);
        *checked.entry(row.api.as_str()).or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = EXPECTED_COUNTS.iter().copied().collect();
    assert_eq!(checked, expected);
    assert_eq!(checked.values().sum::<usize>(), 342);
    assert_eq!(skipped, 10);
}

fn check_row(row: &Row) {
    let context = format!("{} {:?} ({})", row.api, row.input, row.source);
    match row.api.as_str() {
        "Parse (no normalization)" if is_sha512_row(row) => {
            let reference = Reference::parse_exact(&row.input).expect(&context);
            assert_eq!(
                reference.digest().map(|d| d.len()),
                Some(7 + 128),
                "{context}"
            );
        }
        "Parse (no normalization)" | "Parse via JSON Field" => {
            check_exact(row, Reference::parse_exact(&row.input), &context);
        }
        "ParseNormalizedNamed" => check_normalized(row, &context),
        "ParseNamed (input must already be canonical/fully-qualified)" => {
            check_outcome(row, Reference::parse_canonical(&row.input), &context, |r| {
                expect_eq(&row.domain, r.domain(), "domain", &context);
                expect_eq(&row.path, r.path(), "path", &context);
            });
        }
        "ParseDockerRef (normalize + add :latest; drops tag when digest present)" => {
            check_outcome(
                row,
                Reference::parse_docker_ref(&row.input),
                &context,
                |r| {
                    expect_eq(&row.normalized, &r.to_string(), "normalized", &context);
                },
            );
        }
        "ParseAnyReference (bare 64-hex => digest reference)" => {
            check_outcome(row, AnyReference::parse(&row.input), &context, |r| {
                expect_eq(&row.normalized, &r.to_string(), "normalized", &context);
                let digest_only = matches!(r, AnyReference::Digest(_));
                assert_eq!(row.digest_only, Some(digest_only), "{context}");
            });
        }
        "WithName (name only, no tag/digest)" | "WithName" => check_with_name(row, &context),
        "WithName+[WithDigest]+WithTag" | "WithName+[WithTag]+WithDigest" => {
            check_with_tag_and_digest(row, &context);
        }
        "WithTag(ParseNormalizedNamed(\"busybox\"), tag)" => {
            let tag = row.tag.as_deref().expect(&context);
            assert_eq!(is_valid_tag(tag), row.valid, "{context}");
            let busybox = Reference::parse("busybox").expect(&context);
            assert_eq!(busybox.with_tag(tag).is_ok(), row.valid, "{context}");
        }
        "WithDigest(ParseNormalizedNamed(\"busybox\"), digest)" => {
            let digest = row.digest.as_deref().expect(&context);
            assert_eq!(is_valid_digest(digest), row.valid, "{context}");
            let busybox = Reference::parse("busybox").expect(&context);
            assert_eq!(busybox.with_digest(digest).is_ok(), row.valid, "{context}");
        }
        "anchored domain regexp (domain[:port], IPv6 in [])" => {
            assert_eq!(is_valid_domain(&row.input), row.valid, "{context}");
        }
        "anchored name regexp (name only) subs=[domain,path]" => {
            let split = split_name(&row.input);
            assert_eq!(split.is_some(), row.valid, "{context}");
            if let Some((domain, path)) = split {
                expect_eq(&row.domain, domain, "domain", &context);
                expect_eq(&row.path, path, "path", &context);
            }
        }
        "reference regexp subs=[name,tag,digest]" => {
            let matched = match_reference(&row.input);
            assert_eq!(matched.is_ok(), row.valid, "{context}");
            if let Ok(parts) = matched {
                let name = Reference::from_parts(&parts).name;
                expect_eq(&row.name, &name, "name", &context);
                assert_eq!(parts.tag, row.tag.as_deref(), "tag of {context}");
                assert_eq!(parts.digest, row.digest.as_deref(), "digest of {context}");
            }
        }
        "anchored identifier (64 lowercase hex)" => {
            assert_eq!(is_identifier(&row.input), row.valid, "{context}");
        }
        other => panic!("no check for api {other:?}: add one or list it in SKIPPED_APIS"),
    }
}

/// Asserts validity and the error kind (when the row names one), then runs `check` on a
/// valid result.
fn check_outcome<T: fmt::Debug>(
    row: &Row,
    result: Result<T, ReferenceError>,
    context: &str,
    check: impl FnOnce(&T),
) {
    match (&result, row.valid) {
        (Ok(value), true) => check(value),
        (Err(e), false) => {
            if let Some(kind) = &row.error {
                assert_eq!(e.kind(), kind, "{context}: {e}");
            }
        }
        _ => panic!("{context}: expected valid={}, got {result:?}", row.valid),
    }
}

fn expect_eq(expected: &Option<String>, actual: &str, what: &str, context: &str) {
    if let Some(expected) = expected {
        assert_eq!(actual, expected, "{what} of {context}");
    }
}

fn check_exact(row: &Row, result: Result<Reference, ReferenceError>, context: &str) {
    check_outcome(row, result, context, |r| {
        expect_eq(&row.name, r.name(), "name", context);
        expect_eq(&row.domain, r.domain(), "domain", context);
        expect_eq(&row.string, &r.to_string(), "string", context);
        // A missing tag or digest in the row means the reference has none.
        assert_eq!(r.tag(), row.tag.as_deref(), "tag of {context}");
        assert_eq!(r.digest(), row.digest.as_deref(), "digest of {context}");
        assert_eq!(
            r.to_string(),
            row.input,
            "Parse keeps the input as written: {context}"
        );
    });
}

fn check_normalized(row: &Row, context: &str) {
    check_outcome(row, Reference::parse(&row.input), context, |r| {
        expect_eq(&row.domain, r.domain(), "domain", context);
        expect_eq(&row.path, r.path(), "path", context);
        expect_eq(&row.tag, r.tag().unwrap_or_default(), "tag", context);
        expect_eq(
            &row.digest,
            r.digest().unwrap_or_default(),
            "digest",
            context,
        );
        expect_eq(&row.normalized, &r.to_string(), "normalized", context);
        expect_eq(
            &row.familiar_name,
            r.familiar_name(),
            "familiar name",
            context,
        );
        expect_eq(
            &row.familiar_string,
            &r.familiar_string(),
            "familiar string",
            context,
        );
        assert!(!r.domain().is_empty(), "{context}");
        let again = Reference::parse(&r.to_string());
        assert_eq!(again.as_ref(), Ok(r), "round trip of {context}");
    });
}

/// Go's `WithName`: the anchored name expression, then the path length.
fn check_with_name(row: &Row, context: &str) {
    let result = match split_name(&row.input) {
        None => Err("ErrReferenceInvalidFormat"),
        Some((_, path)) if path.len() > MAX_PATH_LEN => Err("ErrNameTooLong"),
        Some(split) => Ok(split),
    };
    match (result, row.valid) {
        (Ok((domain, path)), true) => {
            expect_eq(&row.domain, domain, "domain", context);
            expect_eq(&row.path, path, "path", context);
        }
        (Err(kind), false) => assert_eq!(Some(kind), row.error.as_deref(), "{context}"),
        (result, _) => panic!("{context}: expected valid={}, got {result:?}", row.valid),
    }
}

/// Go's `WithTag`/`WithDigest` check only the shape of a digest; these rows use a 37-digit
/// sha256 "digest", which this module's `Reference` refuses. So the shape is checked here,
/// and the refusal is asserted rather than skipped.
fn check_with_tag_and_digest(row: &Row, context: &str) {
    assert!(row.valid, "{context}");
    assert!(split_name(&row.input).is_some(), "{context}");
    let tag = row.tag.as_deref();
    let digest = row.digest.as_deref();
    assert!(tag.is_none_or(is_valid_tag), "{context}");
    assert!(digest.is_none_or(is_digest_shape), "{context}");
    let mut expected = row.input.clone();
    push_tag_and_digest(&mut expected, tag, digest);
    expect_eq(&row.string, &expected, "string", context);

    let mut reference = Reference::parse_exact(&row.input).expect(context);
    if let Some(tag) = tag {
        reference = reference.with_tag(tag).expect(context);
    }
    match digest {
        Some(digest) if !is_valid_digest(digest) => {
            let e = reference.with_digest(digest).expect_err(context);
            assert_eq!(e.kind(), "digest.ErrDigestInvalidLength", "{context}");
        }
        Some(digest) => {
            reference = reference.with_digest(digest).expect(context);
            expect_eq(&row.string, &reference.to_string(), "string", context);
        }
        None => expect_eq(&row.string, &reference.to_string(), "string", context),
    }
}

const HEX64: &str = "e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";

#[test]
fn normalizes_docker_hub_names() {
    let r = Reference::parse("busybox").unwrap();
    assert_eq!(
        (r.domain(), r.path(), r.name(), r.tag(), r.digest()),
        (
            "docker.io",
            "library/busybox",
            "docker.io/library/busybox",
            None,
            None
        )
    );
    assert_eq!(r.familiar_name(), "busybox");
    let r = Reference::parse("index.docker.io/user/app:1.0").unwrap();
    assert_eq!(r.to_string(), "docker.io/user/app:1.0");
    assert_eq!(r.familiar_string(), "user/app:1.0");
    let r = Reference::parse("gcr.io/x/y").unwrap();
    assert_eq!(r.familiar_name(), "gcr.io/x/y");
}

#[test]
fn default_tag_and_docker_ref() {
    let plain = Reference::parse("busybox").unwrap().with_default_tag();
    assert_eq!(plain.to_string(), "docker.io/library/busybox:latest");
    let tagged = Reference::parse("busybox:1").unwrap().with_default_tag();
    assert_eq!(tagged.tag(), Some("1"));
    let digested = Reference::parse(&format!("busybox@sha256:{HEX64}")).unwrap();
    assert_eq!(digested.clone().with_default_tag(), digested);
    let both = format!("busybox:1@sha256:{HEX64}");
    assert_eq!(Reference::parse(&both).unwrap().tag(), Some("1"));
    assert_eq!(Reference::parse_docker_ref(&both).unwrap().tag(), None);
}

#[test]
fn pins_a_digest_and_keeps_the_tag() {
    let pinned = Reference::parse("app:v1")
        .unwrap()
        .with_digest(&format!("sha256:{HEX64}"));
    assert_eq!(
        pinned.unwrap().to_string(),
        format!("docker.io/library/app:v1@sha256:{HEX64}")
    );
    let short = Reference::parse("app")
        .unwrap()
        .with_digest("sha256:abcd")
        .unwrap_err();
    assert_eq!(short.kind(), "ErrReferenceInvalidFormat");
    let e = Reference::parse("app")
        .unwrap()
        .with_tag(".bad")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("invalid image reference \"docker.io/library/app:.bad\": {BAD_TAG}")
    );
}

#[test]
fn digest_algorithms() {
    assert!(is_valid_digest(&format!("sha256:{HEX64}")));
    assert!(is_valid_digest(&format!("sha384:{}", "a".repeat(96))));
    assert!(is_valid_digest(&format!("sha512:{}", "a".repeat(128))));
    let kind = |s: &str| Reference::parse(&format!("app@{s}")).unwrap_err().kind();
    assert_eq!(
        kind(&format!("sha256:{}", HEX64.to_uppercase())),
        "digest.ErrDigestInvalidFormat"
    );
    assert_eq!(kind(&format!("md5:{HEX64}")), "digest.ErrDigestUnsupported");
    assert_eq!(
        kind(&format!("Sha256:{HEX64}")),
        "digest.ErrDigestInvalidFormat"
    );
    assert_eq!(
        kind(&format!("sha384:{HEX64}")),
        "digest.ErrDigestInvalidLength"
    );
}

#[test]
fn bare_ids_are_digests_not_names() {
    let e = Reference::parse(HEX64).unwrap_err();
    assert_eq!(e.kind(), "ErrReferenceInvalidFormat");
    assert!(
        e.to_string()
            .contains("cannot specify 64-byte hexadecimal strings"),
        "{e}"
    );
    let any = AnyReference::parse(HEX64).unwrap();
    assert_eq!(any, AnyReference::Digest(format!("sha256:{HEX64}")));
    // As a name, `sha256:<hex>` would be the image `sha256` with a tag: a runtime reads
    // it as an image ID instead, and so must a policy.
    let any = AnyReference::parse(&format!("sha256:{HEX64}")).unwrap();
    assert!(matches!(any, AnyReference::Digest(_)));
}

#[test]
fn refuses_a_registry_that_is_no_host() {
    // Go returns a name with an empty domain here.
    let e = Reference::parse("foo_bar.com/app").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("invalid image reference \"foo_bar.com/app\": {BAD_HOST}")
    );
    assert_eq!(
        Reference::parse_exact("foo_bar.com/app").unwrap().domain(),
        ""
    );
}

#[test]
fn a_registry_in_brackets_is_an_ipv6_address() {
    // distribution's grammar takes any hex digits and colons in brackets; an address that no
    // runtime dials as IPv6 names a registry no policy can name, so it is refused.
    for input in [
        "[fd00123123123]:5000/app",
        "[1]:80/app",
        "[1:2]:5000/app",
        "[:::]/app",
        "[1:2:3:4:5:6:7:8:9]/app",
        "[12345::1]/app",
        "[::1::2]/app",
        "[f:f:f:f:f:f:f:f:f]:5000/app:v1",
    ] {
        for parsed in [Reference::parse(input), Reference::parse_exact(input)] {
            let e = parsed.expect_err(input);
            assert_eq!(
                e.to_string(),
                format!("invalid image reference {input:?}: {BAD_HOST}")
            );
        }
    }
    for input in [
        "[::1]/app".to_owned(),
        "[::]:5000/app".to_owned(),
        "[0:0:0:0:0:0:0:1]:5000/app".to_owned(),
        "[FD00::0001]/app".to_owned(),
        format!("[::ffff:7f00:1]:5000/app@sha256:{HEX64}"),
    ] {
        let reference = Reference::parse(&input).expect(&input);
        // The reference keeps the registry as written; matching writes it one way.
        assert!(input.starts_with(reference.domain()), "{input}");
    }
}

#[test]
fn parse_exact_takes_any_valid_host_as_domain() {
    let r = Reference::parse_exact("foo/bar:1").unwrap();
    assert_eq!((r.domain(), r.path(), r.tag()), ("foo", "bar", Some("1")));
    let r = Reference::parse_exact("foo").unwrap();
    assert_eq!((r.domain(), r.path(), r.name()), ("", "foo", "foo"));
}

#[test]
fn messages_name_the_input_and_the_fault() {
    let message = |s: &str| Reference::parse(s).unwrap_err().to_string();
    assert_eq!(
        message("Foo/Bar"),
        "invalid image reference \"Foo/Bar\": repository name must be lowercase"
    );
    assert_eq!(
        message(""),
        "invalid image reference \"\": the reference is empty"
    );
    assert_eq!(
        message("app:"),
        format!("invalid image reference \"app:\": {BAD_TAG}")
    );
    assert_eq!(
        message("app@x"),
        format!("invalid image reference \"app@x\": {BAD_DIGEST}")
    );
    assert_eq!(
        message("a//b"),
        format!("invalid image reference \"a//b\": {BAD_NAME}")
    );
    assert_eq!(
        message("héllo"),
        format!("invalid image reference \"héllo\": {NON_ASCII}")
    );
    assert_eq!(
        message("localhost:http/app"),
        format!("invalid image reference \"localhost:http/app\": {BAD_HOST}")
    );
    assert_eq!(
        message(&format!("app@sha256:{}", &HEX64[..40])),
        format!(
            "invalid image reference \"app@sha256:{}\": a sha256 digest has 64 hex digits, \
             this one has 40",
            &HEX64[..40]
        )
    );
    assert_eq!(
        message(&format!("app@md5:{HEX64}")),
        format!(
            "invalid image reference \"app@md5:{HEX64}\": digest algorithm \"md5\" is not \
             supported (use sha256, sha384 or sha512)"
        )
    );
    let long = format!("a/{}", "b".repeat(300));
    assert!(message(&long).ends_with("repository path is 302 characters long, the limit is 255"));
    let e = Reference::parse_canonical("busybox").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid image reference \"busybox\": not in canonical form, write \
         \"docker.io/library/busybox\""
    );
    assert_eq!(e.kind(), "ErrNameNotCanonical");
}

#[test]
fn messages_escape_and_cut_the_input() {
    let e = Reference::parse("app\n:x").unwrap_err().to_string();
    assert!(
        e.starts_with("invalid image reference \"app\\n:x\": "),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let huge = "a:".repeat(500_000);
    let e = Reference::parse(&huge).unwrap_err().to_string();
    assert!(e.len() < 400, "{} bytes", e.len());
    assert!(e.contains(&format!("\"{}…\"", "a:".repeat(64))), "{e}");
    let wide = "é".repeat(1000);
    let e = Reference::parse_exact(&wide).unwrap_err().to_string();
    assert!(e.contains(&format!("\"{}…\"", "é".repeat(128))), "{e}");
}

#[test]
fn odd_inputs_are_errors() {
    for input in [
        "@", "::", ":", "/", "[", "]", "[]", "[]/a", "[::1", "a@", "@@", "a:@", "\0",
    ] {
        assert!(Reference::parse(input).is_err(), "{input:?}");
        assert!(Reference::parse_exact(input).is_err(), "{input:?}");
    }
    assert!(!is_valid_domain("[]"));
    assert!(!is_valid_domain("a:"));
    assert!(!is_valid_domain("[::1]:"));
    assert!(!is_valid_tag(&"a".repeat(129)));
    assert!(is_valid_tag(&"a".repeat(128)));
}

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const CHARS: &[char] = &[
    '/', '/', ':', ':', '@', '.', '.', '_', '_', '-', '-', '[', ']', 'a', 'b', 'c', 'f', 'z', '0',
    '1', '9', 'A', 'F', 'Z', 'é', '\u{212a}', '\0', ' ', '%', '+', '\n',
];

const TOKENS: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "localhost",
    "localhost:5000",
    "[::1]:5000",
    "[fc00::1]",
    "127.0.0.1:8080",
    "gcr.io",
    "Foo",
    "library",
    "busybox",
    "a",
    "a-b",
    "a--b",
    "a__b",
    "a.b",
    "x_y",
    "/",
    "/",
    "/",
    ":",
    ":",
    "@",
    "latest",
    "Tag_1.0",
    "sha256:",
    "sha512:",
    HEX64,
    "-",
    "_",
    ".",
    "0",
    "É",
];

fn random_input(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.below(2) == 0 {
        for _ in 0..rng.below(40) {
            s.push(rng.pick(CHARS));
        }
    } else {
        for _ in 0..1 + rng.below(8) {
            s.push_str(rng.pick(TOKENS));
        }
    }
    s
}

#[test]
fn random_inputs_never_panic_and_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut normalized_ok, mut exact_ok) = (0, 0);
    for _ in 0..200_000 {
        let input = random_input(&mut rng);
        match Reference::parse(&input) {
            Ok(r) => {
                normalized_ok += 1;
                assert!(!r.domain().is_empty(), "{input:?}");
                let canonical = r.to_string();
                assert_eq!(Reference::parse(&canonical).as_ref(), Ok(&r), "{input:?}");
                assert_eq!(
                    Reference::parse_canonical(&canonical).as_ref(),
                    Ok(&r),
                    "{input:?}"
                );
            }
            Err(e) => assert!(e.to_string().len() < 700, "{input:?}"),
        }
        match Reference::parse_exact(&input) {
            Ok(r) => {
                exact_ok += 1;
                assert_eq!(r.to_string(), input);
                assert_eq!(Reference::parse_exact(&input).as_ref(), Ok(&r));
                assert!(r.path().len() <= MAX_PATH_LEN);
            }
            Err(e) => assert!(!e.kind().is_empty()),
        }
        let _ = AnyReference::parse(&input);
        let _ = (
            split_name(&input),
            is_valid_domain(&input),
            is_valid_tag(&input),
        );
        let _ = is_valid_digest(&input);
    }
    // The generator must reach the success paths, or the round trips prove nothing.
    assert!(normalized_ok > 5_000, "{normalized_ok}");
    assert!(exact_ok > 5_000, "{exact_ok}");
}
