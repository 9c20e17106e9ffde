//! Registry credentials from Kubernetes pull secrets, matched to an image the way the kubelet
//! matches them (`pkg/credentialprovider`: `config.go` reads the entries, `keyring.go`'s
//! `BasicDockerKeyring` indexes and looks them up).
//!
//! Pure: the caller reads the Secret and passes its `type` and its decoded `data`. No
//! `Display` or `Debug` output of this module carries a username, password, token, `auth`
//! value or any JSON text of the secret.
//!
//! A key is read as the kubelet reads it, as a URL (`url.Parse("https://" + key)`): the scheme,
//! user info, query (from a `?`) and fragment are dropped, and a leading `/v1/` or `/v2/` is
//! dropped from the path, so `https://index.docker.io/v1/` is the bare host. A key whose host
//! Go would reject (empty, a non-numeric port, a character such as `^` or `\`) is skipped.
//! It covers an image `host[:port]/repository` when:
//! - its host has as many DNS labels as the image's and each label matches as a glob (Go's
//!   `path.Match`: `*`, `[a-z]`): `*.example.com` covers `a.example.com`, not `a.b.example.com`
//!   nor `example.com`;
//! - its port equals the image's, a missing port being a value of its own: `host` never covers
//!   `host:5000`, and `host:5000` never covers `host` (`URLsMatch` compares the ports of
//!   `net.SplitHostPort` as strings);
//! - its path is empty, the repository itself, or a parent of it: `host/team` covers
//!   `host/team/app`, not `host/teamx/app`.
//!
//! Where this differs from the kubelet, on purpose:
//! - paths match on `/` boundaries (the kubelet's `strings.HasPrefix` lets `host/team` cover
//!   `host/teamx`);
//! - hosts compare case-insensitively (the kubelet's `filepath.Match` does not);
//! - `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry, and all their
//!   keys are ordered with the others (the kubelet matches `index.docker.io` keys only as a
//!   fallback when no other key matched, and `registry-1.docker.io` keys never);
//! - [`DockerConfig::lookup`] orders by path length, then literal hosts before globs, then
//!   the kubelet's reverse lexicographic order (which gives the same order whenever the keys
//!   differ in path only), and returns identical credentials once;
//! - an unsupported secret type or a missing data entry is an error (the kubelet skips the
//!   secret), and `identitytoken` is kept (the kubelet drops it).

use std::collections::BTreeMap;
use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use crate::policy::hosts::{DOCKER_HUB, is_docker_hub};

/// The Secret type of a `.dockerconfigjson` pull secret.
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The data key of a [`DOCKER_CONFIG_JSON_TYPE`] secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// The Secret type of a legacy `.dockercfg` pull secret.
pub const DOCKERCFG_TYPE: &str = "kubernetes.io/dockercfg";
/// The data key of a [`DOCKERCFG_TYPE`] secret.
pub const DOCKERCFG_KEY: &str = ".dockercfg";

/// The name given to the document of [`DockerConfig::from_json`] in errors.
const CONFIG_JSON: &str = "docker config.json";

/// How much of a registry key an error quotes.
const MAX_QUOTED_KEY: usize = 128;

/// Go's `base64.StdEncoding` or `RawStdEncoding` as the kubelet picks them: padding optional,
/// trailing bits not checked.
const AUTH_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// One username and password (and optional identity token) for one registry key of a docker
/// config.
///
/// `Debug` shows the registry key only; [`Credential::identity`] names it in logs and cache keys.
/// Username and password may both be empty when the entry holds neither (the kubelet then
/// pulls anonymously).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The username (`<token>` or a fixed GUID for some token logins).
    pub username: String,
    /// The password or access token.
    pub password: String,
    /// The entry's `identitytoken`: an OAuth2 refresh token to exchange at the registry's
    /// token endpoint instead of a password (written by `az acr login`, `docker login` with
    /// some credential helpers). The kubelet ignores it.
    pub identity_token: Option<String>,
    /// The normalized registry key this credential came from: `host[:port][/path]`.
    registry: String,
}

impl Credential {
    /// A credential for `registry` (a docker config key, normalized as a config's keys are).
    pub fn new(registry: &str, username: impl Into<String>, password: impl Into<String>) -> Self {
        let registry =
            RegistryKey::parse(registry).map_or_else(|| quote_key(registry), |key| key.text);
        Self {
            username: username.into(),
            password: password.into(),
            identity_token: None,
            registry,
        }
    }

    /// The normalized registry key the credential is for: `docker.io`, `ghcr.io/team`,
    /// `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// An identity that holds no secret, stable within this process, for cache keys and
    /// logs: `hmac:` and the first 16 hex digits of HMAC-SHA-256, under a random key of the
    /// process, over the registry key, username and password (and identity token, if any)
    /// joined by NUL bytes.
    pub fn identity(&self) -> String {
        let mut input =
            Vec::with_capacity(self.registry.len() + self.username.len() + self.password.len() + 2);
        for (i, part) in [&self.registry, &self.username, &self.password]
            .into_iter()
            .chain(self.identity_token.as_ref())
            .enumerate()
        {
            if i > 0 {
                input.push(0);
            }
            input.extend_from_slice(part.as_bytes());
        }
        // Keyed with a secret of this process, so that an identity in a log line cannot be
        // tested against guessed passwords offline.
        let digest = aws_lc_rs::hmac::sign(identity_key(), &input);
        let hex: String = digest
            .as_ref()
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("hmac:{hex}")
    }
}

/// The per-process key of [`Credential::identity`].
fn identity_key() -> &'static aws_lc_rs::hmac::Key {
    static KEY: std::sync::OnceLock<aws_lc_rs::hmac::Key> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut secret = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut secret).is_err() {
            // The system RNG does not fail on Linux; should it, identities stay distinct,
            // only guessable.
            secret = [0x5a; 32];
        }
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret)
    })
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// A parsed docker config: the `auths` of a `.dockerconfigjson` (or `config.json`), or the
/// top-level map of a legacy `.dockercfg`, ordered most specific key first.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    entries: Vec<(RegistryKey, Credential)>,
}

impl DockerConfig {
    /// Reads a pull secret from its `type` and its decoded `data`.
    ///
    /// `kubernetes.io/dockerconfigjson` reads `data[".dockerconfigjson"]` (`{"auths": {...}}`);
    /// `kubernetes.io/dockercfg` reads `data[".dockercfg"]` (the map of registries itself).
    /// Any other type is [`CredentialError::UnsupportedType`]; an absent or empty data entry
    /// is [`CredentialError::MissingData`] (the kubelet skips both silently).
    pub fn from_secret(
        secret_type: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, CredentialError> {
        let (key, legacy) = match secret_type {
            DOCKER_CONFIG_JSON_TYPE => (DOCKER_CONFIG_JSON_KEY, false),
            DOCKERCFG_TYPE => (DOCKERCFG_KEY, true),
            other => {
                return Err(CredentialError::UnsupportedType {
                    secret_type: other.chars().take(MAX_QUOTED_KEY).collect(),
                });
            }
        };
        let bytes = data
            .get(key)
            .filter(|bytes| !bytes.is_empty())
            .ok_or(CredentialError::MissingData { key })?;
        let document = parse_document(bytes, key)?;
        if legacy {
            Self::from_registries(registries_of_dockercfg(&document, key)?, key, "")
        } else {
            Self::from_registries(registries_of_auths(&document, key)?, key, "auths")
        }
    }

    /// Reads a `~/.docker/config.json` (its `auths`; credential helpers and stores are not
    /// consulted).
    pub fn from_json(json: &[u8]) -> Result<Self, CredentialError> {
        let document = parse_document(json, CONFIG_JSON)?;
        Self::from_registries(
            registries_of_auths(&document, CONFIG_JSON)?,
            CONFIG_JSON,
            "auths",
        )
    }

    /// The credentials whose key covers the image `host` (`host[:port]`, as in the image
    /// reference) and `repository` (its path, `library/busybox`): most specific key first, so
    /// the caller can try the next one when the registry refuses one (401/403). Identical
    /// credentials are returned once.
    pub fn lookup(&self, host: &str, repository: &str) -> Vec<&Credential> {
        let Some(image) = Host::parse(host) else {
            return Vec::new();
        };
        let repository = repository.trim_matches('/');
        let mut found: Vec<&Credential> = Vec::new();
        for (key, credential) in &self.entries {
            if key.covers(&image, repository) && !found.contains(&credential) {
                found.push(credential);
            }
        }
        found
    }

    /// The number of usable entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the config holds no usable entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn from_registries(
        registries: Option<&Map<String, Value>>,
        document: &'static str,
        parent: &str,
    ) -> Result<Self, CredentialError> {
        let mut entries = Vec::new();
        for (raw, value) in registries.into_iter().flatten() {
            let credential = parse_entry(value, raw, document, parent)?;
            // As the kubelet does: an entry whose key is no registry is skipped, not an error.
            if let Some(key) = RegistryKey::parse(raw) {
                entries.push((raw.as_str(), key, credential));
            }
        }
        entries.sort_by(|(raw_a, a, _), (raw_b, b, _)| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then(a.has_glob().cmp(&b.has_glob()))
                .then(b.text.cmp(&a.text))
                .then(raw_a.cmp(raw_b))
        });
        let entries = entries
            .into_iter()
            .map(|(_, key, (username, password, identity_token))| {
                let credential = Credential {
                    username,
                    password,
                    identity_token,
                    registry: key.text.clone(),
                };
                (key, credential)
            })
            .collect();
        Ok(Self { entries })
    }
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field(
                "registries",
                &self
                    .entries
                    .iter()
                    .map(|(key, _)| key.text.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why a pull secret or docker config cannot be read.
///
/// No message quotes a value or any JSON text of the config: they hold secrets. Registry keys
/// are quoted without user info, query or fragment, cut to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The Secret's type is not one that holds registry credentials.
    #[error(
        "secret type {secret_type:?} holds no registry credentials: use \
         kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg"
    )]
    UnsupportedType {
        /// The type, cut to 128 characters.
        secret_type: String,
    },
    /// The Secret lacks the data entry its type requires, or it is empty.
    #[error("the secret has no data entry {key:?}, or it is empty: the docker config goes there")]
    MissingData {
        /// `.dockerconfigjson` or `.dockercfg`.
        key: &'static str,
    },
    /// The config is not JSON.
    #[error("{document} is not JSON: {problem} at line {line}, column {column}")]
    InvalidJson {
        /// `.dockerconfigjson`, `.dockercfg` or `docker config.json`.
        document: &'static str,
        /// What kind of error, without the text: `syntax error` or `unexpected end of input`.
        problem: &'static str,
        /// The 1-based line of the error.
        line: usize,
        /// The 1-based column of the error.
        column: usize,
    },
    /// The config is JSON but a part of it has the wrong type.
    #[error("{document}: {location} must be {expected}")]
    UnexpectedShape {
        /// `.dockerconfigjson`, `.dockercfg` or `docker config.json`.
        document: &'static str,
        /// Where: `auths`, `auths["ghcr.io"]`, `auths["ghcr.io"].password`.
        location: String,
        /// What it must be: `an object`, `a string`.
        expected: &'static str,
    },
    /// An entry's `auth` is not base64.
    #[error(
        "{document}: the auth field of registry {registry:?} is not base64 of \
         \"username:password\""
    )]
    AuthNotBase64 {
        /// `.dockerconfigjson`, `.dockercfg` or `docker config.json`.
        document: &'static str,
        /// The registry key.
        registry: String,
    },
    /// An entry's `auth` decodes to bytes that are not UTF-8.
    #[error("{document}: the auth field of registry {registry:?} does not decode to UTF-8 text")]
    AuthNotUtf8 {
        /// `.dockerconfigjson`, `.dockercfg` or `docker config.json`.
        document: &'static str,
        /// The registry key.
        registry: String,
    },
    /// An entry's `auth` decodes to text without the `:` between username and password.
    #[error(
        "{document}: the auth field of registry {registry:?} must be base64 of \
         \"username:password\", it has no ':'"
    )]
    AuthWithoutColon {
        /// `.dockerconfigjson`, `.dockercfg` or `docker config.json`.
        document: &'static str,
        /// The registry key.
        registry: String,
    },
}

impl CredentialError {
    /// A fixed CamelCase name of the case, for condition reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedType { .. } => "UnsupportedSecretType",
            Self::MissingData { .. } => "MissingSecretData",
            Self::InvalidJson { .. } => "InvalidDockerConfigJson",
            Self::UnexpectedShape { .. } => "InvalidDockerConfig",
            Self::AuthNotBase64 { .. }
            | Self::AuthNotUtf8 { .. }
            | Self::AuthWithoutColon { .. } => "InvalidDockerConfigAuth",
        }
    }
}

/// A registry key of a docker config, normalized for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RegistryKey {
    /// One glob per DNS label of the lowercase host; `None` for a malformed glob, which
    /// matches nothing (Go's `path.Match` returns `ErrBadPattern`).
    labels: Vec<Option<Vec<Token>>>,
    port: Option<String>,
    /// Without leading or trailing `/`; empty for the whole registry.
    path: String,
    /// `host[:port][/path]`, lowercase host: the key as [`Credential::registry`] shows it.
    text: String,
}

impl RegistryKey {
    fn parse(raw: &str) -> Option<Self> {
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

    fn has_glob(&self) -> bool {
        self.labels
            .iter()
            .flatten()
            .flatten()
            .any(|token| !matches!(token, Token::Char(_)))
    }

    fn covers(&self, image: &Host, repository: &str) -> bool {
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

/// A registry host: lowercase, without brackets, Docker Hub's aliases read as `docker.io`.
#[derive(Debug, PartialEq, Eq)]
struct Host {
    name: String,
    port: Option<String>,
}

impl Host {
    /// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when empty or the port is not
    /// numeric (Go's `url.Parse` rejects it). `host:` is `host`, as in Go.
    fn parse(authority: &str) -> Option<Self> {
        let (name, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (name, rest) = bracketed.split_once(']')?;
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
        let mut name = name.to_ascii_lowercase();
        if is_docker_hub(&name) {
            DOCKER_HUB.clone_into(&mut name);
        }
        let port = (!port.is_empty()).then(|| port.to_owned());
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
fn split_url(raw: &str) -> (&str, &str) {
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
fn quote_key(raw: &str) -> String {
    let (authority, path) = split_url(raw);
    authority
        .chars()
        .chain(path.chars())
        .take(MAX_QUOTED_KEY)
        .collect()
}

/// One element of a glob, as Go's `path.Match` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
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
fn compile_glob(pattern: &str) -> Option<Vec<Token>> {
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
fn glob_matches(glob: &[Token], name: &str) -> bool {
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

fn parse_document(bytes: &[u8], document: &'static str) -> Result<Value, CredentialError> {
    // serde_json's own message is not used: only its category and position, never text.
    serde_json::from_slice(bytes).map_err(|error| CredentialError::InvalidJson {
        document,
        problem: match error.classify() {
            serde_json::error::Category::Eof => "unexpected end of input",
            _ => "syntax error",
        },
        line: error.line(),
        column: error.column(),
    })
}

/// The `auths` object of a `.dockerconfigjson` or `config.json`; `None` when absent or null.
fn registries_of_auths<'a>(
    document: &'a Value,
    name: &'static str,
) -> Result<Option<&'a Map<String, Value>>, CredentialError> {
    let top = match document {
        Value::Null => return Ok(None),
        Value::Object(top) => top,
        _ => return Err(shape(name, "the document".to_owned(), "an object")),
    };
    match field(top, "auths") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(auths)) => Ok(Some(auths)),
        Some(_) => Err(shape(name, "auths".to_owned(), "an object")),
    }
}

/// The top-level map of a legacy `.dockercfg`; `None` when null.
fn registries_of_dockercfg<'a>(
    document: &'a Value,
    name: &'static str,
) -> Result<Option<&'a Map<String, Value>>, CredentialError> {
    match document {
        Value::Null => Ok(None),
        Value::Object(registries) => Ok(Some(registries)),
        _ => Err(shape(name, "the document".to_owned(), "an object")),
    }
}

type Secrets = (String, String, Option<String>);

/// Reads one entry as `config.go`'s `DockerConfigEntry.UnmarshalJSON` does: field names match
/// case-insensitively, null is absent, a non-empty `auth` replaces username and password.
fn parse_entry(
    value: &Value,
    raw_key: &str,
    document: &'static str,
    parent: &str,
) -> Result<Secrets, CredentialError> {
    let registry = quote_key(raw_key);
    let location = || {
        if parent.is_empty() {
            format!("{registry:?}")
        } else {
            format!("{parent}[{registry:?}]")
        }
    };
    let entry = match value {
        Value::Null => return Ok(Secrets::default()),
        Value::Object(entry) => entry,
        _ => return Err(shape(document, location(), "an object")),
    };
    let string = |name: &str| match field(entry, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(shape(
            document,
            format!("{}.{name}", location()),
            "a string",
        )),
    };
    let mut username = string("username")?.unwrap_or_default().to_owned();
    let mut password = string("password")?.unwrap_or_default().to_owned();
    let identity_token = string("identitytoken")?
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    if let Some(auth) = string("auth")?.filter(|auth| !auth.is_empty()) {
        (username, password) = decode_auth(auth, document, &registry)?;
    }
    Ok((username, password, identity_token))
}

/// `config.go`'s `decodeDockerConfigFieldAuth`: base64 (padded or not; Go skips CR and LF) of
/// `username:password`, split at the first `:`.
fn decode_auth(
    auth: &str,
    document: &'static str,
    registry: &str,
) -> Result<(String, String), CredentialError> {
    let registry = || registry.to_owned();
    let cleaned: String = auth.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let decoded = AUTH_BASE64
        .decode(cleaned)
        .map_err(|_| CredentialError::AuthNotBase64 {
            document,
            registry: registry(),
        })?;
    let decoded = String::from_utf8(decoded).map_err(|_| CredentialError::AuthNotUtf8 {
        document,
        registry: registry(),
    })?;
    let (username, password) =
        decoded
            .split_once(':')
            .ok_or_else(|| CredentialError::AuthWithoutColon {
                document,
                registry: registry(),
            })?;
    Ok((username.to_owned(), password.to_owned()))
}

/// A field by exact name, else by ASCII case-insensitive name (Go's `encoding/json`).
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

fn shape(document: &'static str, location: String, expected: &'static str) -> CredentialError {
    CredentialError::UnexpectedShape {
        document,
        location,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-P4ss";

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn config(auths: &[(&str, &str, &str)]) -> DockerConfig {
        let auths: Map<String, Value> = auths
            .iter()
            .map(|(key, user, pass)| {
                let entry = serde_json::json!({ "username": user, "password": pass });
                ((*key).to_owned(), entry)
            })
            .collect();
        let json = serde_json::json!({ "auths": auths }).to_string();
        DockerConfig::from_json(json.as_bytes()).unwrap()
    }

    fn users(config: &DockerConfig, host: &str, repository: &str) -> Vec<String> {
        config
            .lookup(host, repository)
            .into_iter()
            .map(|credential| credential.username.clone())
            .collect()
    }

    fn secret(secret_type: &str, key: &str, json: &str) -> Result<DockerConfig, CredentialError> {
        let data = BTreeMap::from([(key.to_owned(), json.as_bytes().to_vec())]);
        DockerConfig::from_secret(secret_type, &data)
    }

    #[test]
    fn matching_table() {
        // (config key, image host, image repository, covered)
        let cases: &[(&str, &str, &str, bool)] = &[
            // exact host
            ("ghcr.io", "ghcr.io", "org/app", true),
            ("ghcr.io", "quay.io", "org/app", false),
            ("ghcr.io", "sub.ghcr.io", "org/app", false),
            // ports: exact, and a missing port is a value of its own
            ("reg.local:5000", "reg.local:5000", "app", true),
            ("reg.local:5000", "reg.local:5001", "app", false),
            ("reg.local:5000", "reg.local", "app", false),
            ("reg.local", "reg.local:5000", "app", false),
            ("reg.local:", "reg.local", "app", true),
            ("localhost:5000", "localhost:5000", "app", true),
            ("[fd00::1]:5000", "[fd00::1]:5000", "app", true),
            ("[fd00::1]:5000", "[fd00::1]", "app", false),
            ("[FD00::1]", "[fd00::1]", "app", true),
            // globs, label by label, same number of labels
            ("*.example.com", "a.example.com", "app", true),
            ("*.example.com", "a.b.example.com", "app", false),
            ("*.example.com", "example.com", "app", false),
            ("*.example.com", "a.example.org", "app", false),
            ("*.*.example.com", "a.b.example.com", "app", true),
            ("reg-[0-9].example.com", "reg-7.example.com", "app", true),
            ("reg-[0-9].example.com", "reg-x.example.com", "app", false),
            // `?` starts a URL query, as in Go's url.Parse: the key is the host `reg-`
            ("reg-?.example.com", "reg-1.example.com", "app", false),
            ("reg-?.example.com", "reg-", "app", true),
            // Go's url.Parse rejects `^` and `\` in a host: the key is skipped
            ("reg-[^0-9].example.com", "reg-x.example.com", "app", false),
            ("reg-\\x.example.com", "reg-x.example.com", "app", false),
            ("*-reg.example.com", "eu-reg.example.com", "app", true),
            ("*.example.com:443", "a.example.com:443", "app", true),
            ("*.example.com:443", "a.example.com", "app", false),
            ("*", "localhost", "app", true),
            ("*", "a.b", "app", false),
            ("reg[.example.com", "reg[.example.com", "app", false),
            // path prefixes on `/` boundaries
            ("reg.example.org/team", "reg.example.org", "team/app", true),
            ("reg.example.org/team", "reg.example.org", "team", true),
            (
                "reg.example.org/team",
                "reg.example.org",
                "team/sub/app",
                true,
            ),
            (
                "reg.example.org/team",
                "reg.example.org",
                "teamx/app",
                false,
            ),
            (
                "reg.example.org/team",
                "reg.example.org",
                "other/team",
                false,
            ),
            ("reg.example.org/team/", "reg.example.org", "team/app", true),
            ("reg.example.org/team/app", "reg.example.org", "team", false),
            ("*.example.org/team", "eu.example.org", "team/app", true),
            // Docker Hub: one registry under four names
            ("docker.io", "docker.io", "library/busybox", true),
            ("index.docker.io", "docker.io", "library/busybox", true),
            (
                "https://index.docker.io/v1/",
                "docker.io",
                "library/busybox",
                true,
            ),
            ("registry-1.docker.io", "docker.io", "library/busybox", true),
            ("docker.io", "index.docker.io", "library/busybox", true),
            ("docker.io", "registry-1.docker.io", "library/busybox", true),
            (
                "https://index.docker.io/v1/",
                "docker.io:443",
                "library/busybox",
                false,
            ),
            ("docker.io/myorg", "docker.io", "myorg/app", true),
            ("docker.io/myorg", "docker.io", "library/busybox", false),
            ("*.docker.io", "docker.io", "library/busybox", false),
            // URL forms
            ("https://ghcr.io", "ghcr.io", "org/app", true),
            ("http://ghcr.io/", "ghcr.io", "org/app", true),
            ("HTTPS://ghcr.io/v2/", "ghcr.io", "org/app", true),
            ("https://ghcr.io/v1/org", "ghcr.io", "org/app", true),
            ("https://ghcr.io/v2/org/", "ghcr.io", "orgx/app", false),
            ("https://ghcr.io/v2", "ghcr.io", "org/app", false),
            ("https://ghcr.io/v2", "ghcr.io", "v2/app", true),
            ("https://user@ghcr.io/org?x=1#f", "ghcr.io", "org/app", true),
            ("  ghcr.io  ", "ghcr.io", "org/app", true),
            // case: hosts fold, paths do not
            ("GHCR.io", "ghcr.IO", "org/app", true),
            ("*.Example.COM", "A.example.com", "app", true),
            ("ghcr.io/Org", "ghcr.io", "org/app", false),
            // keys that are no registry match nothing
            ("", "ghcr.io", "org/app", false),
            ("ghcr.io:abc", "ghcr.io", "org/app", false),
            ("https:///org", "ghcr.io", "org/app", false),
        ];
        for (key, host, repository, covered) in cases {
            let config = config(&[(key, "user", "pass")]);
            assert_eq!(
                !config.lookup(host, repository).is_empty(),
                *covered,
                "key {key:?}, image {host:?} {repository:?}"
            );
        }
    }

    #[test]
    fn image_host_that_is_no_registry_matches_nothing() {
        let config = config(&[("*", "u", "p"), ("ghcr.io", "u", "p")]);
        for host in ["", "ghcr.io:x", "[fd00::1", "a:b:c"] {
            assert!(config.lookup(host, "app").is_empty(), "{host:?}");
        }
    }

    #[test]
    fn most_specific_key_first() {
        let config = config(&[
            ("reg.example.org", "host", "p"),
            ("reg.example.org/team/app", "app", "p"),
            ("*.example.org/team", "glob-team", "p"),
            ("reg.example.org/team", "team", "p"),
            ("*.example.org", "glob", "p"),
            ("other.example.org", "other", "p"),
        ]);
        assert_eq!(
            users(&config, "reg.example.org", "team/app"),
            ["app", "team", "glob-team", "host", "glob"]
        );
        assert_eq!(
            users(&config, "reg.example.org", "team/other"),
            ["team", "glob-team", "host", "glob"]
        );
        assert_eq!(users(&config, "other.example.org", "x"), ["other", "glob"]);
    }

    #[test]
    fn docker_hub_aliases_are_one_registry_in_a_stable_order() {
        let config = config(&[
            ("https://index.docker.io/v1/", "legacy", "p"),
            ("docker.io", "short", "p"),
            ("registry-1.docker.io", "registry", "p"),
            ("docker.io/myorg", "org", "p"),
        ]);
        assert_eq!(
            users(&config, "docker.io", "myorg/app"),
            ["org", "short", "legacy", "registry"]
        );
        let [first, ..] = config.lookup("index.docker.io", "library/busybox")[..] else {
            panic!("no credential for Docker Hub");
        };
        assert_eq!(first.registry(), "docker.io");
    }

    #[test]
    fn identical_credentials_are_returned_once() {
        let config = config(&[("docker.io", "u", "p"), ("index.docker.io", "u", "p")]);
        assert_eq!(config.lookup("docker.io", "library/busybox").len(), 1);
        assert_eq!(config.len(), 2);
    }

    #[test]
    fn dockerconfigjson_secret() {
        let json = format!(
            r#"{{"auths": {{
                "ghcr.io": {{"username": "u1", "password": "p1"}},
                "https://quay.io/v1/": {{"auth": "{}", "email": "x@example.com"}},
                "acr.example.io": {{"auth": "{}", "identitytoken": "refresh"}}
            }}}}"#,
            b64("u2:p2:with:colons"),
            b64("00000000-0000-0000-0000-000000000000:"),
        );
        let config = secret(DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY, &json).unwrap();
        let ghcr = config.lookup("ghcr.io", "org/app");
        assert_eq!(
            (ghcr[0].username.as_str(), ghcr[0].password.as_str()),
            ("u1", "p1")
        );
        let quay = config.lookup("quay.io", "org/app");
        assert_eq!(
            (quay[0].username.as_str(), quay[0].password.as_str()),
            ("u2", "p2:with:colons")
        );
        assert_eq!(quay[0].registry(), "quay.io");
        let acr = config.lookup("acr.example.io", "app");
        assert_eq!(acr[0].identity_token.as_deref(), Some("refresh"));
        assert_eq!(acr[0].password, "");
    }

    #[test]
    fn dockercfg_secret_is_the_legacy_top_level_map() {
        let json = format!(
            r#"{{"https://index.docker.io/v1/": {{"auth": "{}", "email": "a@b.c"}},
                 "reg.local:5000": {{"username": "u", "password": "p"}}}}"#,
            b64("hub:pw")
        );
        let config = secret(DOCKERCFG_TYPE, DOCKERCFG_KEY, &json).unwrap();
        assert_eq!(users(&config, "docker.io", "library/busybox"), ["hub"]);
        assert_eq!(users(&config, "reg.local:5000", "app"), ["u"]);
        // The same document read as .dockerconfigjson has no `auths`: no credentials.
        let other = secret(DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY, &json).unwrap();
        assert!(other.is_empty());
    }

    #[test]
    fn auth_replaces_username_and_password() {
        let json = format!(
            r#"{{"auths": {{"ghcr.io": {{"username": "ignored", "password": "ignored", "auth": "{}"}}}}}}"#,
            b64("real:pw")
        );
        let config = DockerConfig::from_json(json.as_bytes()).unwrap();
        let found = config.lookup("ghcr.io", "a");
        assert_eq!(
            (found[0].username.as_str(), found[0].password.as_str()),
            ("real", "pw")
        );
    }

    #[test]
    fn auth_padding_is_optional_and_line_breaks_are_skipped() {
        // "u:pw" is dTpwdw== padded.
        for auth in ["dTpwdw==", "dTpwdw", "dTpw\\r\\ndw==", "dTpwdx=="] {
            let json = format!(r#"{{"auths": {{"ghcr.io": {{"auth": "{auth}"}}}}}}"#);
            let config = DockerConfig::from_json(json.as_bytes()).unwrap();
            assert_eq!(users(&config, "ghcr.io", "a"), ["u"], "{auth}");
        }
    }

    #[test]
    fn empty_and_null_parts_are_absent() {
        let json = r#"{"auths": {"ghcr.io": {"auth": "", "username": null, "Password": "p"},
                                 "quay.io": null}}"#;
        let config = DockerConfig::from_json(json.as_bytes()).unwrap();
        let ghcr = config.lookup("ghcr.io", "a");
        assert_eq!(
            (ghcr[0].username.as_str(), ghcr[0].password.as_str()),
            ("", "p")
        );
        let quay = config.lookup("quay.io", "a");
        assert_eq!(
            (quay[0].username.as_str(), quay[0].password.as_str()),
            ("", "")
        );
        for json in ["null", "{}", r#"{"auths": null}"#, r#"{"auths": {}}"#] {
            assert!(
                DockerConfig::from_json(json.as_bytes()).unwrap().is_empty(),
                "{json}"
            );
        }
    }

    #[test]
    fn field_names_match_case_insensitively_as_in_go() {
        let json = r#"{"AUTHS": {"ghcr.io": {"UserName": "u", "PASSWORD": "p"}}}"#;
        let config = DockerConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(users(&config, "ghcr.io", "a"), ["u"]);
    }

    #[test]
    fn secret_types_and_data_keys() {
        let json = r#"{"auths": {}}"#;
        assert_eq!(
            secret("Opaque", DOCKER_CONFIG_JSON_KEY, json).unwrap_err(),
            CredentialError::UnsupportedType {
                secret_type: "Opaque".to_owned()
            }
        );
        assert_eq!(
            secret(DOCKER_CONFIG_JSON_TYPE, DOCKERCFG_KEY, json).unwrap_err(),
            CredentialError::MissingData {
                key: DOCKER_CONFIG_JSON_KEY
            }
        );
        assert_eq!(
            secret(DOCKERCFG_TYPE, DOCKERCFG_KEY, "").unwrap_err(),
            CredentialError::MissingData { key: DOCKERCFG_KEY }
        );
    }

    #[test]
    fn malformed_inputs() {
        let cases: &[(&str, &str)] = &[
            (
                "{\"auths\": {\n  \"ghcr.io\": {\"username\": }}}",
                "InvalidDockerConfigJson",
            ),
            ("[]", "InvalidDockerConfig"),
            (r#"{"auths": []}"#, "InvalidDockerConfig"),
            (r#"{"auths": {"ghcr.io": "x"}}"#, "InvalidDockerConfig"),
            (
                r#"{"auths": {"ghcr.io": {"password": 1}}}"#,
                "InvalidDockerConfig",
            ),
            (
                r#"{"auths": {"ghcr.io": {"auth": "!!!"}}}"#,
                "InvalidDockerConfigAuth",
            ),
            (
                r#"{"auths": {"ghcr.io": {"auth": "dXNlcg=="}}}"#,
                "InvalidDockerConfigAuth",
            ),
            (
                r#"{"auths": {"ghcr.io": {"auth": "/w=="}}}"#,
                "InvalidDockerConfigAuth",
            ),
            (
                r#"{"auths": {"ghcr.io": {"auth": " dTpwdw=="}}}"#,
                "InvalidDockerConfigAuth",
            ),
            (r#"{"auths": {} } x"#, "InvalidDockerConfigJson"),
        ];
        for (json, reason) in cases {
            let error = DockerConfig::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(error.reason(), *reason, "{json}: {error}");
        }
        assert_eq!(
            DockerConfig::from_json(b"{\"auths\": {\n  \"ghcr.io\": {\"username\": }}}")
                .unwrap_err(),
            CredentialError::InvalidJson {
                document: CONFIG_JSON,
                problem: "syntax error",
                line: 2,
                column: 27
            }
        );
        assert_eq!(
            DockerConfig::from_json(br#"{"auths": {"https://ghcr.io/v2/": {"auth": "dXNlcg=="}}}"#)
                .unwrap_err()
                .to_string(),
            "docker config.json: the auth field of registry \"ghcr.io/v2/\" must be base64 of \
             \"username:password\", it has no ':'"
        );
        // A bad auth fails the whole config even when its key is no registry (as in the kubelet).
        assert!(DockerConfig::from_json(br#"{"auths": {"": {"auth": "!"}}}"#).is_err());
    }

    #[test]
    fn debug_and_identity_hold_no_secret() {
        let config = config(&[("ghcr.io/org", "alice", SECRET)]);
        let credential = config.lookup("ghcr.io", "org/app")[0];
        assert_eq!(
            format!("{credential:?}"),
            "Credential { registry: \"ghcr.io/org\", .. }"
        );
        assert_eq!(
            format!("{config:?}"),
            "DockerConfig { registries: [\"ghcr.io/org\"] }"
        );
        let identity = credential.identity();
        assert!(
            identity.starts_with("hmac:") && identity.len() == 5 + 16,
            "{identity}"
        );
        assert_eq!(identity, credential.clone().identity());
        let mut other = credential.clone();
        other.password.push('x');
        assert_ne!(identity, other.identity());
        other = credential.clone();
        other.identity_token = Some(String::new());
        assert_ne!(identity, other.identity());
        // Keyed per process: the plain hash of the secret must not be what is shown.
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            b"ghcr.io/org\0alice\0s3cr3t-P4ss",
        );
        let unkeyed: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!identity.contains(&unkeyed), "{identity}");
    }

    #[test]
    fn credential_new_normalizes_its_registry() {
        let credential = Credential::new("https://index.docker.io/v1/", "u", "p");
        assert_eq!(credential.registry(), "docker.io");
        assert_eq!(
            Credential::new("GHCR.io:443/Org/", "u", "p").registry(),
            "ghcr.io:443/Org"
        );
    }

    /// Every error and every `Debug` built from a config holding the secret must not show it.
    #[test]
    fn no_secret_in_any_output() {
        let auth = b64(&format!("alice:{SECRET}"));
        let forbidden = [
            SECRET.to_owned(),
            auth.clone(),
            b64(SECRET),
            auth.trim_end_matches('=').to_owned(),
            "alice".to_owned(),
        ];
        let key = format!("https://alice:{SECRET}@ghcr.io/org?token={SECRET}#{SECRET}");
        let documents = [
            format!(
                r#"{{"auths": {{"{key}": {{"username": "alice", "password": "{SECRET}", "auth": "{auth}", "identitytoken": "{SECRET}"}}}}}}"#
            ),
            format!(r#"{{"auths": {{"{key}": {{"auth": "{SECRET}"}}}}}}"#),
            format!(r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#, b64(SECRET)),
            format!(
                r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#,
                b64(&format!("alice{SECRET}"))
            ),
            format!(r#"{{"auths": {{"{key}": {{"password": ["{SECRET}"]}}}}}}"#),
            format!(r#"{{"auths": {{"{key}": {{"password": {SECRET}}}}}}}"#),
            format!(r#"{{"auths": {{"{key}": "alice:{SECRET}"}}}}"#),
            format!(r#"{{"auths": ["alice", "{SECRET}"]}}"#),
            format!(r#"["{SECRET}"]"#),
            format!(r#"{{"auths": {{"{key}": {{"password": "{SECRET}""#),
            format!(r#"{{"auths": {{"{key}": {{"password": "{SECRET}\u0001"}}}}}}"#),
            format!(r#"{{"auths": {{"{key}": {{"password": "{SECRET}"}}}}}} {SECRET}"#),
        ];
        let mut outputs = Vec::new();
        for document in &documents {
            for (secret_type, data_key) in [
                (DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY),
                (DOCKERCFG_TYPE, DOCKERCFG_KEY),
            ] {
                outputs.push(describe(&secret(secret_type, data_key, document)));
            }
            outputs.push(describe(&DockerConfig::from_json(document.as_bytes())));
        }
        let config = DockerConfig::from_json(documents[0].as_bytes()).unwrap();
        for credential in config.lookup("ghcr.io", "org/app") {
            outputs.push(format!("{credential:?} {}", credential.identity()));
        }
        outputs.push(format!("{:?}", Credential::new(&key, "alice", SECRET)));
        assert!(outputs.iter().any(|output| output.contains("ghcr.io")));
        for output in &outputs {
            for forbidden in &forbidden {
                assert!(
                    !output.contains(forbidden.as_str()),
                    "{forbidden:?} in {output}"
                );
            }
        }
    }

    fn describe(result: &Result<DockerConfig, CredentialError>) -> String {
        match result {
            Ok(config) => format!("{config:?}"),
            Err(error) => format!("{error} {error:?} {}", error.reason()),
        }
    }

    #[test]
    fn globs_as_go_path_match() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "ab", false),
            ("*", "", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[\\]]", "]", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("**b", "aab", true),
            ("*a*a*a*a*a*a*a*a*a*a*b", &"a".repeat(200), false),
        ];
        for (pattern, name, expected) in cases {
            let glob = compile_glob(pattern).unwrap();
            assert_eq!(glob_matches(&glob, name), *expected, "{pattern} {name}");
        }
        for bad in ["[", "[]", "[a", "a\\", "[a-]", "[]a]", "[-a]", "[^"] {
            assert_eq!(compile_glob(bad), None, "{bad}");
        }
    }

    /// Mutated configs never panic, and never leak the secret in an error.
    #[test]
    fn mutated_inputs_never_panic() {
        let seed = format!(
            r#"{{"auths": {{"https://*.Example.com:5000/v2/team/": {{"username": "u", "password": "{SECRET}", "auth": "{}"}}, "[fd00::1]": {{"identitytoken": "t"}}, "docker.io": null}}}}"#,
            b64(&format!("u:{SECRET}"))
        );
        let interesting = b"{}[]\":,\\/*?-^@=#.\x00\xff0123456789 \n";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut input = seed.clone().into_bytes();
            for _ in 0..=next() % 4 {
                let at = (next() as usize) % (input.len() + 1);
                let byte = interesting[(next() as usize) % interesting.len()];
                match next() % 4 {
                    0 if at < input.len() => input[at] = byte,
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    2 => input.insert(at, byte),
                    _ => input.truncate(at),
                }
            }
            let data = BTreeMap::from([
                (DOCKER_CONFIG_JSON_KEY.to_owned(), input.clone()),
                (DOCKERCFG_KEY.to_owned(), input.clone()),
            ]);
            for result in [
                DockerConfig::from_json(&input),
                DockerConfig::from_secret(DOCKER_CONFIG_JSON_TYPE, &data),
                DockerConfig::from_secret(DOCKERCFG_TYPE, &data),
            ] {
                match result {
                    Ok(config) => {
                        for (host, repository) in [
                            ("a.example.com:5000", "team/app"),
                            ("[fd00::1]", "x"),
                            ("docker.io", "library/busybox"),
                            ("", ""),
                        ] {
                            for credential in config.lookup(host, repository) {
                                assert!(!format!("{credential:?}").contains(SECRET));
                            }
                        }
                    }
                    Err(error) => {
                        let text = format!("{error} {error:?}");
                        assert!(!text.contains(SECRET), "{text}");
                    }
                }
            }
        }
    }
}
