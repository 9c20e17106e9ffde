//! Image name patterns (docs/contract.md §2) and the spellings of an image that they are matched against.
//!
//! A pattern is `NAME[:TAG][@DIGEST]` where `*` in NAME or TAG matches any run of
//! characters, `/` and `.` included. Without a tag and digest it matches any tag and any
//! digest (`my-image` is `my-image:*`). The tag is what follows the last `:` after the last
//! `/`, so a registry port is never a tag.
//!
//! Security: an image matches when the pattern matches *any spelling* of it. `busybox`,
//! `library/busybox`, `docker.io/busybox` and `index.docker.io/library/busybox` are one image,
//! and every spelling is tried, so writing an image differently never escapes enforcement.
//! Registry host names are compared without regard to case, as DNS compares them.

use std::fmt;

use memchr::memmem::Finder;

use super::hosts::{
    DOCKER_HUB, DOCKER_HUB_HOSTS, OFFICIAL_NAMESPACE, PlainHttp, canonical_host,
    canonical_pattern_host, has_port, is_docker_hub,
};
use super::reference::{Reference, ReferenceError, must_be_domain};

/// A compiled `namePattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    text: String,
    name: Glob,
    tag: Option<Glob>,
    digest: Option<String>,
}

impl NamePattern {
    /// Compiles a pattern as written in a policy.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Some((at, c)) = text.char_indices().find(|&(_, c)| !is_pattern_char(c)) {
            return Err(PatternError::Character {
                character: c,
                position: at,
            });
        }
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest)?)),
            None => (text, None),
        };
        let (name, tag) = split_tag(name_and_tag);
        if name.is_empty() {
            return Err(PatternError::EmptyName);
        }
        if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
            return Err(PatternError::EmptyComponent);
        }
        if name.contains('@') {
            return Err(PatternError::Character {
                character: '@',
                position: name.len(),
            });
        }
        let tag = match tag {
            Some("") => return Err(PatternError::EmptyTag),
            Some(t) if !t.chars().all(is_tag_char) => {
                return Err(PatternError::TagCharacter(t.chars().take(64).collect()));
            }
            // `:*` and no tag at all are the same pattern (docs/contract.md §2).
            Some(t) if t.chars().all(|c| c == '*') => None,
            Some(t) => Some(Glob::new(t)),
            None => None,
        };
        // The registry host is compared as images are spelled (see `hosts`): lowercase, and a
        // literal port without leading zeros or the default `:443`.
        let name = match name.split_once('/') {
            Some((first, rest)) => format!("{}/{rest}", canonical_pattern_host(first)),
            None => name.to_ascii_lowercase(),
        };
        Ok(NamePattern {
            text: text.to_owned(),
            name: Glob::new(&name),
            tag,
            digest,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches any spelling of `image`.
    pub fn matches(&self, image: &ImageName) -> bool {
        self.matches_version(image) && image.names.iter().any(|n| self.name.matches(n))
    }

    /// The tag and digest half of a match, the same for every spelling.
    fn matches_version(&self, image: &ImageName) -> bool {
        let tag_ok = match &self.tag {
            None => true,
            Some(glob) => image.tag.as_deref().is_some_and(|t| glob.matches(t)),
        };
        let digest_ok = match &self.digest {
            None => true,
            Some(d) => image.digest.as_deref() == Some(d.as_str()),
        };
        tag_ok && digest_ok
    }

    /// The text before the first `/` that every name this pattern matches must start
    /// with, when the pattern fixes it: the key of the snapshot's index.
    pub(crate) fn fixed_first_component(&self) -> Option<&str> {
        self.name
            .fixed_prefix()
            .and_then(|p| p.split_once('/'))
            .map(|(first, _)| first)
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An image as written in a pod spec, with every spelling a pattern may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    written: String,
    reference: Reference,
    /// The registry, written one way ([`canonical_host`]); `docker.io` for Docker Hub.
    registry: String,
    /// The repository path; `library/<name>` for an official Docker Hub image.
    repository: String,
    /// Every name of the repository (`registry/path` under each spelling of the registry, and
    /// the bare paths of Docker Hub), no tag or digest. The same for every spelling of the
    /// image, so that each one matches the same patterns.
    names: Vec<String>,
    /// The tag, with `latest` when neither tag nor digest is written.
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageName {
    /// Parses an image string from a pod spec, for registries all reached over HTTPS.
    pub fn parse(written: &str) -> Result<Self, ReferenceError> {
        Self::parse_with(written, &PlainHttp::default())
    }

    /// Parses an image string from a pod spec; the registries in `plain` are reached over
    /// plain HTTP, which decides their default port.
    pub fn parse_with(written: &str, plain: &PlainHttp) -> Result<Self, ReferenceError> {
        let reference = Reference::parse_image(written)?;
        let host = canonical_host(reference.domain(), plain);
        let path = reference.path();
        // Parsing folds only the exact lowercase `index.docker.io`; a host is a host in any
        // case and under any of its names, so fold the rest here.
        let (registry, repository, names) = if is_docker_hub(&host) {
            let repository = if path.contains('/') {
                path.to_owned()
            } else {
                format!("{OFFICIAL_NAMESPACE}{path}")
            };
            let names = docker_hub_spellings(&repository);
            (DOCKER_HUB.to_owned(), repository, names)
        } else {
            let mut names = vec![format!("{host}/{path}")];
            // The same server under the other spelling a pattern may write: a plain-HTTP
            // registry's default port, or port 443 left out (as patterns are written).
            if let Some(bare) = host.strip_suffix(":443") {
                names.push(format!("{bare}/{path}"));
            } else if !has_port(&host) && plain.contains(&host) {
                names.push(format!("{host}:80/{path}"));
            }
            (host, path.to_owned(), names)
        };
        let tag = match (reference.tag(), reference.digest()) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        let digest = reference.digest().map(str::to_owned);
        Ok(ImageName {
            written: written.to_owned(),
            reference,
            registry,
            repository,
            names,
            tag,
            digest,
        })
    }

    /// The image string exactly as written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The parsed reference (normalized: `docker.io/library/busybox`).
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The registry, written one way: what verification reaches, caches by and looks up
    /// credentials for. `docker.io` for every name of Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path in [`ImageName::registry`]: `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The fully qualified form, written one way: `docker.io/library/busybox:latest`. It reads
    /// back as the same image: a registry of one label without a port, which an image names
    /// only in upper case (`LOCALDOMAIN/app`; in lower case it is a path on Docker Hub), is
    /// written in upper case.
    pub fn canonical(&self) -> String {
        let mut out = if must_be_domain(&self.registry) {
            format!("{}/{}", self.registry, self.repository)
        } else {
            format!("{}/{}", self.registry.to_ascii_uppercase(), self.repository)
        };
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// Every name spelling this image answers to (without tag or digest).
    pub fn spellings(&self) -> &[String] {
        &self.names
    }

    /// The first `/`-separated component of each spelling, for the snapshot's index.
    pub(crate) fn first_components(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .filter_map(|n| n.split_once('/').map(|(first, _)| first))
    }
}

fn docker_hub_spellings(path: &str) -> Vec<String> {
    let mut paths = vec![path.to_owned()];
    if let Some(short) = path
        .strip_prefix(OFFICIAL_NAMESPACE)
        .filter(|s| !s.contains('/'))
    {
        paths.push(short.to_owned());
    }
    let mut names = Vec::with_capacity(paths.len() * (1 + DOCKER_HUB_HOSTS.len()));
    for p in &paths {
        names.push(p.clone());
        names.extend(DOCKER_HUB_HOSTS.iter().map(|host| format!("{host}/{p}")));
    }
    names
}

/// Why a `namePattern` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The empty string would match nothing (or, read generously, everything).
    #[error("the pattern is empty; use \"*\" to match every image")]
    Empty,
    /// Only a tag or digest.
    #[error("the pattern has no image name before its tag or digest")]
    EmptyName,
    /// `name:` with nothing after the colon.
    #[error("the tag after ':' is empty; leave the tag out to match any tag")]
    EmptyTag,
    /// A leading, trailing or doubled `/`.
    #[error("the pattern has an empty path component (a leading, trailing or doubled '/')")]
    EmptyComponent,
    /// A character no image reference can contain.
    #[error("character {character:?} at byte {position} cannot appear in an image reference")]
    Character {
        /// The character.
        character: char,
        /// Its byte offset in the pattern.
        position: usize,
    },
    /// A tag with characters outside `[A-Za-z0-9_.-]` (and `*`).
    #[error("the tag {0:?} may contain only letters, digits, '_', '.', '-' and '*'")]
    TagCharacter(String),
    /// A malformed digest.
    #[error("the digest {0:?} is not of the form sha256:<64 hex digits> (or sha384/sha512)")]
    Digest(String),
}

/// A `*`-only glob, kept as the literal runs between stars.
#[derive(Debug, Clone)]
struct Glob {
    /// The literal runs; `parts.len() == 1` means no star.
    parts: Vec<String>,
    /// A searcher for each run between the first and the last, built once: building one per
    /// search would cost more than the search itself.
    middle: Vec<Finder<'static>>,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for Glob {}

impl Glob {
    fn new(text: &str) -> Self {
        let parts: Vec<String> = text.split('*').map(str::to_owned).collect();
        let inner = parts
            .get(1..parts.len().saturating_sub(1))
            .unwrap_or_default();
        let middle = inner
            .iter()
            .map(|p| Finder::new(p.as_bytes()).into_owned())
            .collect();
        Glob { parts, middle }
    }

    /// The literal text before the first star, when it is the whole of a fixed prefix
    /// (that is, the glob does not start with a star).
    fn fixed_prefix(&self) -> Option<&str> {
        self.parts
            .first()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
    }

    /// Leftmost-greedy matching of the literal runs: linear in the input for each run,
    /// and correct for `*`-only globs since a run matched earlier never blocks a later one.
    fn matches(&self, input: &str) -> bool {
        let Some((first, rest)) = self.parts.split_first() else {
            return input.is_empty();
        };
        let Some((last, middle)) = rest.split_last() else {
            return input == first;
        };
        if input.len() < first.len() + last.len()
            || !input.starts_with(first.as_str())
            || !input.ends_with(last.as_str())
        {
            return false;
        }
        let mut window = input
            .as_bytes()
            .get(first.len()..input.len() - last.len())
            .unwrap_or_default();
        for (part, finder) in middle.iter().zip(&self.middle) {
            match finder.find(window) {
                Some(at) => window = window.get(at + part.len()..).unwrap_or_default(),
                None => return false,
            }
        }
        true
    }
}

fn is_pattern_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '*' | '[' | ']')
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*')
}

/// Splits `name[:tag]` at the last `:` that follows the last `/`.
fn split_tag(text: &str) -> (&str, Option<&str>) {
    let last_slash = text.rfind('/').map_or(0, |i| i + 1);
    match text.get(last_slash..).and_then(|tail| tail.rfind(':')) {
        Some(colon) => {
            let at = last_slash + colon;
            (text.get(..at).unwrap_or_default(), text.get(at + 1..))
        }
        None => (text, None),
    }
}

fn parse_digest(text: &str) -> Result<String, PatternError> {
    let bad = || PatternError::Digest(text.chars().take(80).collect());
    let (algorithm, hex) = text.split_once(':').ok_or_else(bad)?;
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    let hex_ok = hex.len() == length && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if hex_ok {
        Ok(text.to_owned())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests;
