//! The grammar of image references (distribution's `reference` package): names, hosts,
//! tags and digests, and the parsing of a whole reference into its parts.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use super::{
    BAD_DIGEST, BAD_HOST, BAD_NAME, BAD_TAG, DEFAULT_DOMAIN, IMAGE_ID, LEGACY_DEFAULT_DOMAIN,
    MAX_PATH_LEN, MAX_TAG_LEN, NAME_MISSING, NON_ASCII, OFFICIAL_REPO_PREFIX, QUOTE_LIMIT,
    Reference, ReferenceError,
};

/// Whether `s` is a registry host with an optional port: `gcr.io`, `localhost:5000`,
/// `192.168.1.1:5000`, `[fd00::1]:5000`. Upper case is allowed.
pub fn is_valid_domain(s: &str) -> bool {
    let (host_ok, port) = match s.strip_prefix('[') {
        // As distribution: hex digits and colons in brackets, no zone, no embedded IPv4.
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, "")) => (is_ipv6(address), None),
            Some((address, rest)) => match rest.strip_prefix(':') {
                Some(port) => (is_ipv6(address), Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match s.split_once(':') {
            Some((host, port)) => (is_domain_name(host), Some(port)),
            None => (is_domain_name(s), None),
        },
    };
    host_ok && port.is_none_or(is_port)
}

/// Splits a repository name (no tag, no digest) into its domain and path, as distribution's
/// anchored name expression does: the first component is the domain whenever it is a valid
/// host and more components follow, so `foo/bar` is (`foo`, `bar`) and `foo` is (``, `foo`).
/// `None` when `name` is not a repository name. The path length is not checked.
pub fn split_name(name: &str) -> Option<(&str, &str)> {
    if let Some((domain, path)) = name.split_once('/')
        && is_valid_domain(domain)
        && is_path(path)
    {
        return Some((domain, path));
    }
    is_path(name).then_some(("", name))
}

/// Whether `s` is a valid tag: 1 to 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn is_valid_tag(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok
        && s.len() <= MAX_TAG_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `s` is a digest this module accepts: `sha256:` and 64 lowercase hex digits, or
/// `sha384:` and 96, or `sha512:` and 128.
pub fn is_valid_digest(s: &str) -> bool {
    check_digest(s).is_ok()
}

/// Whether `s` is a bare image ID: exactly 64 lowercase hex digits.
pub fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(is_lower_hex)
}

/// A reference split into its parts, borrowed from the input.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Parts<'a> {
    pub(super) domain: &'a str,
    pub(super) path: &'a str,
    pub(super) tag: Option<&'a str>,
    pub(super) digest: Option<&'a str>,
}

/// Why parsing failed, before the input is attached: [`Flaw::at`] makes it the
/// [`ReferenceError`] that quotes it. (Not a [`crate::policy::Problem`], which is a policy's.)
pub(super) enum Flaw {
    Empty,
    Format(&'static str),
    Uppercase,
    TooLong(usize),
    NotCanonical(String),
    DigestFormat,
    DigestUnsupported(String),
    DigestLength {
        algorithm: &'static str,
        expected: usize,
        actual: usize,
    },
}

impl Flaw {
    pub(super) fn at(self, input: &str) -> ReferenceError {
        let input = excerpt(input);
        match self {
            Self::Empty => ReferenceError::Empty,
            Self::Format(reason) => ReferenceError::InvalidFormat { input, reason },
            Self::Uppercase => ReferenceError::NameContainsUppercase { input },
            Self::TooLong(length) => ReferenceError::NameTooLong { input, length },
            Self::NotCanonical(canonical) => ReferenceError::NameNotCanonical {
                input,
                canonical: excerpt(&canonical),
            },
            Self::DigestFormat => ReferenceError::DigestInvalidFormat { input },
            Self::DigestUnsupported(algorithm) => ReferenceError::DigestUnsupported {
                input,
                algorithm: excerpt(&algorithm),
            },
            Self::DigestLength {
                algorithm,
                expected,
                actual,
            } => ReferenceError::DigestInvalidLength {
                input,
                algorithm,
                expected,
                actual,
            },
        }
    }
}

/// distribution's `ParseNormalizedNamed`.
pub(super) fn parse_normalized(input: &str) -> Result<Reference, Flaw> {
    if input.is_empty() {
        return Err(Flaw::Empty);
    }
    if is_identifier(input) {
        return Err(Flaw::Format(IMAGE_ID));
    }
    let (domain, remainder) = split_docker_domain(input);
    // Go cuts at the first ':' only, so an upper-case digest algorithm reads as an upper-case
    // name there; cutting the digest first gives the same verdict with the true reason.
    let name_and_tag = remainder
        .split_once('@')
        .map_or(remainder.as_ref(), |(name, _)| name);
    let remote = name_and_tag
        .split_once(':')
        .map_or(name_and_tag, |(remote, _)| remote);
    if remote.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Flaw::Uppercase);
    }
    let reference = parse_as_written(&format!("{domain}/{remainder}"))?;
    if reference.domain_len == 0 {
        // `domain` was taken as the registry but is no valid host (`foo_bar.com/x`).
        return Err(Flaw::Format(BAD_HOST));
    }
    Ok(reference)
}

/// distribution's `splitDockerDomain`: the registry and the rest, Docker Hub by default.
fn split_docker_domain(input: &str) -> (&str, Cow<'_, str>) {
    let (mut domain, remainder) = match input.split_once('/') {
        Some((first, rest)) if must_be_domain(first) => (first, rest),
        _ => (DEFAULT_DOMAIN, input),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN;
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        return (
            domain,
            Cow::Owned(format!("{OFFICIAL_REPO_PREFIX}{remainder}")),
        );
    }
    (domain, Cow::Borrowed(remainder))
}

/// Whether the first component of a name can only be a registry (distribution's
/// `splitDockerDomain`): a repository path never has a `.`, a `:` or upper case, and
/// `localhost` is always the local registry. Any other first component is a path on Docker
/// Hub: `1234/app` is `docker.io/1234/app`.
pub fn must_be_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// distribution's `Parse`.
pub(super) fn parse_as_written(input: &str) -> Result<Reference, Flaw> {
    if input.is_empty() {
        return Err(Flaw::Empty);
    }
    let parts = match match_reference(input) {
        Ok(parts) => parts,
        Err(reason) => {
            // Say "lowercase" only when that is the one thing wrong.
            let only_case = input.bytes().any(|b| b.is_ascii_uppercase())
                && match_reference(&input.to_ascii_lowercase()).is_ok();
            return Err(if only_case {
                Flaw::Uppercase
            } else {
                Flaw::Format(reason)
            });
        }
    };
    if !is_address_if_bracketed(parts.domain) {
        return Err(Flaw::Format(BAD_HOST));
    }
    if parts.path.len() > MAX_PATH_LEN {
        return Err(Flaw::TooLong(parts.path.len()));
    }
    if let Some(digest) = parts.digest {
        check_digest(digest)?;
    }
    Ok(Reference::from_parts(&parts))
}

/// The grammar alone (distribution's `ReferenceRegexp`): no length or digest checks.
///
/// The split is unique: `@` appears only before the digest, and a `:` after the last `/`
/// can only start the tag (a port's `:` is always followed by `/`).
pub(super) fn match_reference(s: &str) -> Result<Parts<'_>, &'static str> {
    if !s.is_ascii() {
        return Err(NON_ASCII);
    }
    let (name_and_tag, digest) = match s.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !is_digest_shape(d)) {
        return Err(BAD_DIGEST);
    }
    let (name, tag) = match name_and_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_and_tag, None),
    };
    if tag.is_some_and(|t| !is_valid_tag(t)) {
        return Err(BAD_TAG);
    }
    if name.is_empty() {
        return Err(NAME_MISSING);
    }
    let (domain, path) = split_name(name).ok_or_else(|| name_problem(name))?;
    Ok(Parts {
        domain,
        path,
        tag,
        digest,
    })
}

/// The likelier reason a name is invalid: its host when the first component can only be one.
fn name_problem(name: &str) -> &'static str {
    match name.split_once('/') {
        Some((first, _)) if first.contains([':', '[', ']']) && !is_valid_domain(first) => BAD_HOST,
        _ => BAD_NAME,
    }
}

/// A DNS name as distribution allows it: dot-separated labels of letters, digits and inner
/// hyphens.
fn is_domain_name(s: &str) -> bool {
    s.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// Whether a domain in brackets holds an IPv6 address. distribution's grammar takes any run of
/// hex digits and colons (`[fd00123]`, `[1:2]`, `[:::]`); no runtime dials such a host as an
/// address, and one that reads it otherwise (glibc reads `[1]` as `0.0.0.1`) would reach a
/// registry the policy cannot name, so it is refused.
fn is_address_if_bracketed(domain: &str) -> bool {
    match domain.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .is_some_and(|(address, _)| address.parse::<Ipv6Addr>().is_ok()),
        None => true,
    }
}

fn is_ipv6(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A repository path: components separated by single slashes.
fn is_path(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let is_alnum = |i: usize| {
        bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let mut i = 0;
    loop {
        let start = i;
        while is_alnum(i) {
            i += 1;
        }
        if i == start {
            return false;
        }
        match bytes.get(i) {
            None => return true,
            Some(b'.') => i += 1,
            Some(b'_') => {
                i += if bytes.get(i + 1) == Some(&b'_') {
                    2
                } else {
                    1
                }
            }
            Some(b'-') => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            Some(_) => return false,
        }
    }
}

/// The digest's shape in a reference: an algorithm (letters and digits in components
/// joined by `-_+.`, each starting with a letter), `:`, at least 32 hex digits of any case.
pub(super) fn is_digest_shape(s: &str) -> bool {
    let Some((algorithm, hex)) = s.split_once(':') else {
        return false;
    };
    let mut expect_letter = true;
    for b in algorithm.bytes() {
        if expect_letter {
            if !b.is_ascii_alphabetic() {
                return false;
            }
            expect_letter = false;
        } else if matches!(b, b'-' | b'_' | b'+' | b'.') {
            expect_letter = true;
        } else if !b.is_ascii_alphanumeric() {
            return false;
        }
    }
    !expect_letter && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest's `Digest.Validate`, with sha256, sha384 and sha512 available.
pub(super) fn check_digest(s: &str) -> Result<(), Flaw> {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return Err(Flaw::DigestFormat);
    };
    if algorithm.is_empty() || encoded.is_empty() {
        return Err(Flaw::DigestFormat);
    }
    let (algorithm, expected) = match algorithm {
        "sha256" => ("sha256", 64),
        "sha384" => ("sha384", 96),
        "sha512" => ("sha512", 128),
        other if is_go_digest(algorithm, encoded) => {
            return Err(Flaw::DigestUnsupported(other.to_owned()));
        }
        _ => return Err(Flaw::DigestFormat),
    };
    if encoded.len() != expected {
        return Err(Flaw::DigestLength {
            algorithm,
            expected,
            actual: encoded.len(),
        });
    }
    if !encoded.bytes().all(is_lower_hex) {
        return Err(Flaw::DigestFormat);
    }
    Ok(())
}

/// go-digest's `DigestRegexpAnchored`, which decides "unsupported" against "invalid format":
/// `[a-z0-9]+([.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+`.
fn is_go_digest(algorithm: &str, encoded: &str) -> bool {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    algorithm.split(['.', '+', '_', '-']).all(component_ok)
        && !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

fn is_lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

pub(super) fn push_tag_and_digest(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
}

/// At most [`QUOTE_LIMIT`] characters of `s`, with `…` when cut: enough to recognize an
/// input without copying a megabyte of it into a log line.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
        None => s.to_owned(),
    }
}
