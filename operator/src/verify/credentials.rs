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
//! - hosts compare case-insensitively (the kubelet's `filepath.Match` does not), and a key's
//!   host is written as an image's registry is (`policy::hosts`): an IP address in any of its
//!   spellings (`[0:0::1]`, `[::FFFF:7F00:1]`, `127.1`) is that address, and a port its
//!   number whatever its leading zeros, so that a key covers the images of its registry
//!   however either is written (the kubelet compares the text);
//! - `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry, and all their
//!   keys are ordered with the others (the kubelet matches `index.docker.io` keys only as a
//!   fallback when no other key matched, and `registry-1.docker.io` keys never);
//! - [`DockerConfig::lookup`] orders by path length, then literal hosts before globs, then
//!   the kubelet's reverse lexicographic order (which gives the same order whenever the keys
//!   differ in path only), and returns identical credentials once;
//! - an unsupported secret type or a missing data entry is an error (the kubelet skips the
//!   secret), and `identitytoken` is kept (the kubelet drops it).

mod document;
mod key;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use self::document::{parse_document, parse_entry, registries_of_auths, registries_of_dockercfg};
use self::key::{Host, RegistryKey, quote_key};

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
pub(crate) const MAX_QUOTED_KEY: usize = 128;

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
        /// The entry's key in `auths` (a registry host, maybe with a path), as written.
        registry: String,
    },
    /// An entry's `auth` decodes to bytes that are not UTF-8.
    #[error("{document}: the auth field of registry {registry:?} does not decode to UTF-8 text")]
    AuthNotUtf8 {
        /// `.dockerconfigjson`, `.dockercfg` or `docker config.json`.
        document: &'static str,
        /// The entry's key in `auths` (a registry host, maybe with a path), as written.
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
        /// The entry's key in `auths` (a registry host, maybe with a path), as written.
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

#[cfg(test)]
mod tests;
