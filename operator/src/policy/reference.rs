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
//! - a registry in brackets must be an IPv6 address (Go takes any hex digits and colons:
//!   `[fd00123]`, `[1:2]`), since no other registry can be named by a policy;
//! - case rules are ASCII only; any non-ASCII character makes the input invalid;
//! - [`Reference::with_digest`] checks the digest fully, not only its shape.
//!
//! [`AnyReference`] also reads what a runtime takes for an image ID (a bare digest), so a
//! policy can refuse it instead of mistaking `sha256:<hex>` for the image `sha256`.

use std::fmt;

mod grammar;

use self::grammar::{
    Flaw, Parts, check_digest, is_digest_shape, parse_as_written, parse_normalized,
    push_tag_and_digest,
};
pub use self::grammar::{
    is_identifier, is_valid_digest, is_valid_domain, is_valid_tag, must_be_domain, split_name,
};
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
            AnyReference::Digest(_) => Err(Flaw::Format(IMAGE_ID_DIGEST).at(input)),
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
            return Err(Flaw::NotCanonical(canonical).at(input));
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
            return Err(Flaw::Format(BAD_TAG).at(&candidate.to_string()));
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
            Err(Flaw::Format(BAD_DIGEST))
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

#[cfg(test)]
mod tests;
