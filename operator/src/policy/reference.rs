//! Image references: the grammar a Pod's `image:` field is read with.
//!
//! This is distribution/reference (v0.6, the package every registry client and the kubelet
//! use) written out by hand: no regular expressions, one linear pass per check, no recursion,
//! and an error instead of a panic for any input.
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]           host: DNS name, IPv4, or "[" IPv6 "]"
//! path             := component [ "/" component ]* component: [a-z0-9]+ joined by . _ __ -+
//! tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" hex          sha256, sha384 or sha512, lowercase hex
//! ```
//!
//! [`Reference::parse`] normalizes like `ParseNormalizedNamed`: `busybox` is
//! `docker.io/library/busybox`. It differs from Go on purpose in a few places, each of which
//! only turns an odd input into a clearer answer:
//! - `sha384` and `sha512` digests are accepted (go-digest accepts them only in programs that
//!   link `crypto/sha512`, which distribution's own test binary does not);
//! - the empty string is [`ReferenceError::Empty`] (Go says "invalid format");
//! - a first component that must be a registry host (it has `.`, `:`, upper case, or is
//!   `localhost`) but is not a valid one is refused: Go would return a name with no registry;
//! - case rules are ASCII only; any non-ASCII character makes the input invalid;
//! - [`Reference::with_digest`] checks the digest fully, not only its shape.
//!
//! [`AnyReference`] also reads what a runtime takes for an image ID (a bare digest), so a
//! policy can refuse it instead of mistaking `sha256:<hex>` for the image `sha256`.

use std::borrow::Cow;
use std::fmt;

use super::hosts::{DOCKER_HUB, DOCKER_HUB_LEGACY, OFFICIAL_NAMESPACE};

/// The registry of names that do not name one.
pub const DEFAULT_DOMAIN: &str = DOCKER_HUB;
/// The old name of [`DEFAULT_DOMAIN`], the only other one the grammar folds into it.
const LEGACY_DEFAULT_DOMAIN: &str = DOCKER_HUB_LEGACY;
/// The namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = OFFICIAL_NAMESPACE;
/// The tag an untagged, undigested reference means.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository path, in bytes; the domain does not count.
pub const MAX_PATH_LEN: usize = 255;
/// The longest tag, in bytes.
const MAX_TAG_LEN: usize = 128;
/// How many characters of an input an error message quotes.
const QUOTE_LIMIT: usize = 128;

const NON_ASCII: &str = "image references are ASCII only";
const NAME_MISSING: &str = "the repository name is missing";
const BAD_NAME: &str = "the repository path must be lowercase letters and digits, joined by \
                        '.', '_', '__' or '-' within a component and by '/' between components";
const BAD_HOST: &str = "the registry must be a host name, an IPv4 address or an [IPv6] \
                        address, with an optional numeric port";
const BAD_TAG: &str = "the tag must be 1 to 128 letters, digits, '_', '.' or '-', \
                       and must not start with '.' or '-'";
const BAD_DIGEST: &str = "the digest must be <algorithm>:<hex> with at least 32 hex digits";
const IMAGE_ID_DIGEST: &str = "a bare digest is the ID of an image already on a node, not an \
                               image name; write the image as <name>@<digest>";
const IMAGE_ID: &str = "a 64-character hexadecimal string is an image ID, not a repository \
                        name (cannot specify 64-byte hexadecimal strings)";

/// A parsed image reference: a repository name, and a tag and/or a digest if given.
///
/// Built by [`Reference::parse`] (normalized: the domain is never empty) or
/// [`Reference::parse_exact`] (as written: the domain may be empty). Two references are
/// equal when their canonical strings ([`fmt::Display`]) are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `domain/path`, or `path` alone when there is no domain.
    name: String,
    /// The length of the domain at the start of `name`; 0 when there is none.
    domain_len: usize,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses like distribution's `ParseNormalizedNamed`: what a Pod's `image:` field means.
    ///
    /// A name without a registry is on Docker Hub (`busybox` is `docker.io/library/busybox`,
    /// `index.docker.io` is `docker.io`). The first component is the registry when it has a
    /// `.` or `:`, has an upper-case letter, or is `localhost`. A bare 64-hex image ID is
    /// refused (see [`AnyReference`] to accept it).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        parse_normalized(input).map_err(|problem| problem.at(input))
    }

    /// Parses a Pod's `image:` field for enforcement: like [`Reference::parse`], but a bare
    /// digest (`sha256:<hex>`) is refused, since a runtime takes it for the ID of an image
    /// already on the node: it names no registry, so no signature could be looked up for it,
    /// and reading it as the image `docker.io/library/sha256` would check the wrong image.
    pub fn parse_image(input: &str) -> Result<Self, ReferenceError> {
        match AnyReference::parse(input)? {
            AnyReference::Named(reference) => Ok(reference),
            AnyReference::Digest(_) => Err(Problem::Format(IMAGE_ID_DIGEST).at(input)),
        }
    }

    /// Parses as written, like distribution's `Parse`: no default registry or namespace.
    ///
    /// The first component is the domain whenever it is a valid host, so `foo/bar` has the
    /// domain `foo`; a single-component name has an empty domain.
    pub fn parse_exact(input: &str) -> Result<Self, ReferenceError> {
        parse_as_written(input).map_err(|problem| problem.at(input))
    }

    /// Parses like [`Reference::parse`] but accepts only input already in canonical form
    /// (distribution's `ParseNamed`): `docker.io/library/busybox`, not `busybox`.
    pub fn parse_canonical(input: &str) -> Result<Self, ReferenceError> {
        let reference = Self::parse(input)?;
        let canonical = reference.to_string();
        if canonical != input {
            return Err(Problem::NotCanonical(canonical).at(input));
        }
        Ok(reference)
    }

    /// Parses like distribution's `ParseDockerRef`, what container runtimes pull: normalized,
    /// the tag `latest` when neither tag nor digest is given, and the tag dropped when a
    /// digest is given (the digest alone decides what is pulled).
    pub fn parse_docker_ref(input: &str) -> Result<Self, ReferenceError> {
        let mut reference = Self::parse(input)?;
        if reference.digest.is_some() {
            reference.tag = None;
            return Ok(reference);
        }
        Ok(reference.with_default_tag())
    }

    /// The registry host, with its port if any: `docker.io`, `localhost:5000`,
    /// `[::1]:5000`. Empty only after [`Reference::parse_exact`] of a name without one.
    pub fn domain(&self) -> &str {
        self.name.get(..self.domain_len).unwrap_or_default()
    }

    /// The repository path within the registry: `library/busybox`.
    pub fn path(&self) -> &str {
        if self.domain_len == 0 {
            return &self.name;
        }
        self.name.get(self.domain_len + 1..).unwrap_or_default()
    }

    /// The repository name: the domain, `/` and the path (`docker.io/library/busybox`), or
    /// the path alone when there is no domain.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag, if given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if given: `sha256:` and 64 lowercase hex digits (or sha384/sha512).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The short name people write, as distribution's `FamiliarName`: `busybox`, `user/app`,
    /// `gcr.io/x/y`.
    ///
    /// For display only: it is ambiguous (`docker.io/localhost/x` shortens to `localhost/x`,
    /// which parses as a name on the registry `localhost`), so never match policy on it
    /// alone.
    pub fn familiar_name(&self) -> &str {
        if self.domain() != DEFAULT_DOMAIN {
            return &self.name;
        }
        let path = self.path();
        match path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(official) if !official.contains('/') => official,
            _ => path,
        }
    }

    /// The familiar name with the tag and digest: `busybox:1.36@sha256:…`.
    pub fn familiar_string(&self) -> String {
        let mut out = self.familiar_name().to_owned();
        push_tag_and_digest(&mut out, self.tag(), self.digest());
        out
    }

    /// The reference with the tag `latest` if it has neither tag nor digest (distribution's
    /// `TagNameOnly`); otherwise unchanged.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// The reference with `tag` in place of its tag; the digest is kept.
    pub fn with_tag(self, tag: &str) -> Result<Self, ReferenceError> {
        let candidate = Self {
            tag: Some(tag.to_owned()),
            ..self
        };
        if !is_valid_tag(tag) {
            return Err(Problem::Format(BAD_TAG).at(&candidate.to_string()));
        }
        Ok(candidate)
    }

    /// The reference with `digest` in place of its digest (to pin a resolved tag); the tag is
    /// kept. The digest must be a supported algorithm with the right number of hex digits.
    pub fn with_digest(self, digest: &str) -> Result<Self, ReferenceError> {
        let candidate = Self {
            digest: Some(digest.to_owned()),
            ..self
        };
        let checked = if is_digest_shape(digest) {
            check_digest(digest)
        } else {
            Err(Problem::Format(BAD_DIGEST))
        };
        match checked {
            Ok(()) => Ok(candidate),
            Err(problem) => Err(problem.at(&candidate.to_string())),
        }
    }

    fn from_parts(parts: &Parts<'_>) -> Self {
        let name = if parts.domain.is_empty() {
            parts.path.to_owned()
        } else {
            format!("{}/{}", parts.domain, parts.path)
        };
        Self {
            name,
            domain_len: parts.domain.len(),
            tag: parts.tag.map(str::to_owned),
            digest: parts.digest.map(str::to_owned),
        }
    }
}

impl fmt::Display for Reference {
    /// The canonical string: `name[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// What a container runtime may accept in an `image:` field: a name, or a bare image digest.
///
/// Runtimes (distribution's `ParseAnyReference`) read a bare 64-hex string or a bare
/// `sha256:<hex>` as the ID of an image already on the node, with no repository at all; a
/// policy that matches names must see such a value for what it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnyReference {
    /// A repository name, normalized as by [`Reference::parse`].
    Named(Reference),
    /// A digest with no name: `sha256:<hex>` (a bare 64-hex input gets the `sha256:`).
    Digest(String),
}

impl AnyReference {
    /// Parses like distribution's `ParseAnyReference`.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if is_identifier(input) {
            return Ok(Self::Digest(format!("sha256:{input}")));
        }
        if check_digest(input).is_ok() {
            return Ok(Self::Digest(input.to_owned()));
        }
        Reference::parse(input).map(Self::Named)
    }
}

impl fmt::Display for AnyReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(reference) => reference.fmt(f),
            Self::Digest(digest) => f.write_str(digest),
        }
    }
}

/// Why an input is not an image reference.
///
/// Each message quotes the input (escaped, and cut after 128 characters) and says what is
/// wrong; [`ReferenceError::kind`] names the case as distribution does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input is empty.
    #[error("invalid image reference \"\": the reference is empty")]
    Empty,
    /// The input does not follow the reference grammar.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidFormat {
        /// The input, cut to 128 characters.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The repository path has upper-case letters.
    #[error("invalid image reference {input:?}: repository name must be lowercase")]
    NameContainsUppercase {
        /// The input, cut to 128 characters.
        input: String,
    },
    /// The repository path is longer than [`MAX_PATH_LEN`].
    #[error(
        "invalid image reference {input:?}: repository path is {length} characters long, \
         the limit is 255"
    )]
    NameTooLong {
        /// The input, cut to 128 characters.
        input: String,
        /// The length of the path.
        length: usize,
    },
    /// The input is valid but not written in canonical form.
    #[error("invalid image reference {input:?}: not in canonical form, write {canonical:?}")]
    NameNotCanonical {
        /// The input, cut to 128 characters.
        input: String,
        /// The canonical form, cut to 128 characters.
        canonical: String,
    },
    /// The digest's algorithm is supported but its hex is not lowercase, or the digest is
    /// malformed in a way the grammar alone does not catch.
    #[error("invalid image reference {input:?}: the digest must be <algorithm>:<lowercase hex>")]
    DigestInvalidFormat {
        /// The input, cut to 128 characters.
        input: String,
    },
    /// The digest's algorithm is not one of sha256, sha384, sha512.
    #[error(
        "invalid image reference {input:?}: digest algorithm {algorithm:?} is not supported \
         (use sha256, sha384 or sha512)"
    )]
    DigestUnsupported {
        /// The input, cut to 128 characters.
        input: String,
        /// The algorithm named, cut to 128 characters.
        algorithm: String,
    },
    /// The digest has the wrong number of hex digits for its algorithm.
    #[error(
        "invalid image reference {input:?}: a {algorithm} digest has {expected} hex digits, \
         this one has {actual}"
    )]
    DigestInvalidLength {
        /// The input, cut to 128 characters.
        input: String,
        /// The digest's algorithm.
        algorithm: &'static str,
        /// The number of hex digits the algorithm has.
        expected: usize,
        /// The number of hex digits given.
        actual: usize,
    },
}

impl ReferenceError {
    /// The name of this case in distribution (`ErrNameEmpty`, `ErrReferenceInvalidFormat`,
    /// `digest.ErrDigestUnsupported`, …): a fixed label for metrics and reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "ErrNameEmpty",
            Self::InvalidFormat { .. } => "ErrReferenceInvalidFormat",
            Self::NameContainsUppercase { .. } => "ErrNameContainsUppercase",
            Self::NameTooLong { .. } => "ErrNameTooLong",
            Self::NameNotCanonical { .. } => "ErrNameNotCanonical",
            Self::DigestInvalidFormat { .. } => "digest.ErrDigestInvalidFormat",
            Self::DigestUnsupported { .. } => "digest.ErrDigestUnsupported",
            Self::DigestInvalidLength { .. } => "digest.ErrDigestInvalidLength",
        }
    }
}

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
struct Parts<'a> {
    domain: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Why parsing failed, before the input is attached.
enum Problem {
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

impl Problem {
    fn at(self, input: &str) -> ReferenceError {
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
fn parse_normalized(input: &str) -> Result<Reference, Problem> {
    if input.is_empty() {
        return Err(Problem::Empty);
    }
    if is_identifier(input) {
        return Err(Problem::Format(IMAGE_ID));
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
        return Err(Problem::Uppercase);
    }
    let reference = parse_as_written(&format!("{domain}/{remainder}"))?;
    if reference.domain_len == 0 {
        // `domain` was taken as the registry but is no valid host (`foo_bar.com/x`).
        return Err(Problem::Format(BAD_HOST));
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

/// Whether a first component can only be a registry: a path never has these.
fn must_be_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// distribution's `Parse`.
fn parse_as_written(input: &str) -> Result<Reference, Problem> {
    if input.is_empty() {
        return Err(Problem::Empty);
    }
    let parts = match match_reference(input) {
        Ok(parts) => parts,
        Err(reason) => {
            // Say "lowercase" only when that is the one thing wrong.
            let only_case = input.bytes().any(|b| b.is_ascii_uppercase())
                && match_reference(&input.to_ascii_lowercase()).is_ok();
            return Err(if only_case {
                Problem::Uppercase
            } else {
                Problem::Format(reason)
            });
        }
    };
    if parts.path.len() > MAX_PATH_LEN {
        return Err(Problem::TooLong(parts.path.len()));
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
fn match_reference(s: &str) -> Result<Parts<'_>, &'static str> {
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
fn is_digest_shape(s: &str) -> bool {
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
fn check_digest(s: &str) -> Result<(), Problem> {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return Err(Problem::DigestFormat);
    };
    if algorithm.is_empty() || encoded.is_empty() {
        return Err(Problem::DigestFormat);
    }
    let (algorithm, expected) = match algorithm {
        "sha256" => ("sha256", 64),
        "sha384" => ("sha384", 96),
        "sha512" => ("sha512", 128),
        other if is_go_digest(algorithm, encoded) => {
            return Err(Problem::DigestUnsupported(other.to_owned()));
        }
        _ => return Err(Problem::DigestFormat),
    };
    if encoded.len() != expected {
        return Err(Problem::DigestLength {
            algorithm,
            expected,
            actual: encoded.len(),
        });
    }
    if !encoded.bytes().all(is_lower_hex) {
        return Err(Problem::DigestFormat);
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

fn push_tag_and_digest(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

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
        assert!(
            message(&long).ends_with("repository path is 302 characters long, the limit is 255")
        );
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
        '/', '/', ':', ':', '@', '.', '.', '_', '_', '-', '-', '[', ']', 'a', 'b', 'c', 'f', 'z',
        '0', '1', '9', 'A', 'F', 'Z', 'é', '\u{212a}', '\0', ' ', '%', '+', '\n',
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
}
