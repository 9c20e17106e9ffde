//! Registry keys of a docker config and the image hosts they are matched to, as the kubelet
//! reads them (`url.Parse("https://" + key)`), and the globs of their host labels (Go's
//! `path.Match`).

use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

use super::MAX_QUOTED_KEY;
use crate::policy::hosts::{DOCKER_HUB, canonical_name, canonical_port, is_docker_hub};

/// A registry key of a docker config, normalized for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RegistryKey {
    /// One glob per DNS label of the lowercase host; `None` for a malformed glob, which
    /// matches nothing (Go's `path.Match` returns `ErrBadPattern`).
    labels: Vec<Option<Vec<Token>>>,
    port: Option<String>,
    /// Without leading or trailing `/`; empty for the whole registry.
    pub(super) path: String,
    /// `host[:port][/path]`, lowercase host: the key as [`super::Credential::registry`]
    /// shows it.
    pub(super) text: String,
}

impl RegistryKey {
    pub(super) fn parse(raw: &str) -> Option<Self> {
        let (authority, path) = split_url(raw);
        let host = Host::parse(authority)?;
        // keyring.go: "It also considers /v2/ and /v1/ equivalent to the hostname".
        let path = if path.starts_with("/v1/") || path.starts_with("/v2/") {
            path.get(3..).unwrap_or_default()
        } else {
            path
        };
        let path = path.trim_matches('/').to_owned();
        let mut text = host.to_string();
        if !path.is_empty() {
            text.push('/');
            text.push_str(&path);
        }
        Some(Self {
            labels: host.name.split('.').map(compile_glob).collect(),
            port: host.port,
            path,
            text,
        })
    }

    pub(super) fn has_glob(&self) -> bool {
        self.labels
            .iter()
            .flatten()
            .flatten()
            .any(|token| !matches!(token, Token::Char(_)))
    }

    pub(super) fn covers(&self, image: &Host, repository: &str) -> bool {
        self.port == image.port
            && self.labels.len() == image.name.split('.').count()
            && self
                .labels
                .iter()
                .zip(image.name.split('.'))
                .all(|(glob, label)| {
                    glob.as_deref()
                        .is_some_and(|glob| glob_matches(glob, label))
                })
            && (self.path.is_empty()
                || repository
                    .strip_prefix(self.path.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }
}

/// A registry host: its name as an image's registry writes it ([`canonical_name`]: lowercase,
/// an IP address in one form) without brackets, Docker Hub's aliases read as `docker.io`, and
/// its port without leading zeros.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Host {
    name: String,
    port: Option<String>,
}

impl Host {
    /// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when empty or the port is not
    /// numeric (Go's `url.Parse` rejects it). `host:` is `host`, as in Go.
    pub(super) fn parse(authority: &str) -> Option<Self> {
        let bracketed = authority.starts_with('[');
        let (name, port) = match authority.strip_prefix('[') {
            Some(inner) => {
                let (name, rest) = inner.split_once(']')?;
                match rest {
                    "" => (name, ""),
                    rest => (name, rest.strip_prefix(':')?),
                }
            }
            None => authority.split_once(':').unwrap_or((authority, "")),
        };
        if name.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Go's url.Parse (which the kubelet runs on keys and images) rejects these in a host.
        let allowed = |c: char| {
            !c.is_ascii()
                || c.is_ascii_alphanumeric()
                || "-._~!$&'()*+,;=[]<>\"".contains(c)
                || (c == ':' && name.contains(':'))
        };
        if !name.chars().all(allowed) {
            return None;
        }
        // Written as an image's registry is (`policy::hosts`), so that a key covers the
        // images of its registry in whichever spelling either is written: an IP address in
        // any of its forms, a port with leading zeros.
        let mut name = if bracketed {
            let canonical = canonical_name(&format!("[{name}]"));
            match canonical
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
            {
                Some(inner) => inner.to_owned(),
                None => canonical,
            }
        } else {
            canonical_name(name)
        };
        if is_docker_hub(&name) {
            DOCKER_HUB.clone_into(&mut name);
        }
        let port = (!port.is_empty()).then(|| canonical_port(port).to_owned());
        Some(Self { name, port })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.contains(':') {
            write!(f, "[{}]", self.name)?;
        } else {
            f.write_str(&self.name)?;
        }
        match &self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Splits a key read as a URL into its authority (without user info) and its path (empty or
/// starting with `/`), dropping the scheme, query and fragment.
pub(super) fn split_url(raw: &str) -> (&str, &str) {
    let raw = raw.trim();
    let raw = ["https://", "http://"]
        .iter()
        .find_map(|scheme| {
            raw.get(..scheme.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
                .and_then(|_| raw.get(scheme.len()..))
        })
        .unwrap_or(raw);
    let raw = raw.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match raw.find('/') {
        Some(slash) => raw.split_at_checked(slash).unwrap_or((raw, "")),
        None => (raw, ""),
    };
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    (authority, path)
}

/// A registry key as errors quote it: without scheme, user info, query or fragment, cut.
pub(super) fn quote_key(raw: &str) -> String {
    let (authority, path) = split_url(raw);
    authority
        .chars()
        .chain(path.chars())
        .take(MAX_QUOTED_KEY)
        .collect()
}

/// One element of a glob, as Go's `path.Match` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Token {
    Star,
    AnyChar,
    Char(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Self::Star | Self::AnyChar => true,
            Self::Char(expected) => *expected == c,
            Self::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

/// Compiles a glob; `None` when malformed (unclosed class, trailing `\`, empty class).
pub(super) fn compile_glob(pattern: &str) -> Option<Vec<Token>> {
    let mut chars = pattern.chars().peekable();
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Star,
            '?' => Token::AnyChar,
            '\\' => Token::Char(chars.next()?),
            '[' => compile_class(&mut chars)?,
            c => Token::Char(c),
        });
    }
    Some(tokens)
}

fn compile_class(chars: &mut Peekable<Chars<'_>>) -> Option<Token> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    loop {
        if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
            return Some(Token::Class { negated, ranges });
        }
        let lo = class_char(chars)?;
        let hi = match chars.next_if_eq(&'-') {
            Some(_) => class_char(chars)?,
            None => lo,
        };
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &mut Peekable<Chars<'_>>) -> Option<char> {
    match chars.next()? {
        '-' | ']' => None,
        '\\' => chars.next(),
        c => Some(c),
    }
}

/// Whether `name` matches the glob: linear backtracking on the last `*`, so no pattern takes
/// exponential time.
pub(super) fn glob_matches(glob: &[Token], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut g, mut n) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while let Some(&c) = name.get(n) {
        match glob.get(g) {
            Some(Token::Star) => {
                last_star = Some((g + 1, n));
                g += 1;
                continue;
            }
            Some(token) if token.matches(c) => {
                g += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match last_star {
            Some((after_star, star_end)) => {
                // The star takes one more character and the rest is tried again.
                g = after_star;
                n = star_end + 1;
                last_star = Some((after_star, star_end + 1));
            }
            None => return false,
        }
    }
    glob.get(g..)
        .is_some_and(|rest| rest.iter().all(|token| *token == Token::Star))
}
