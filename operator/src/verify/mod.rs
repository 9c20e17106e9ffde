//! Deciding whether an image carries a cosign signature that a policy key verifies.
//!
//! [`Verifier::verify`] resolves a tag to its digest (none needed for a digest), reads the
//! signatures of that digest, and checks them with the keys of the image's matched entries.
//! Credentials are tried in the order given, anonymous access last, moving on when the
//! registry refuses one (SPEC §4). Tag resolutions and verdicts are cached, concurrent misses
//! for one key share one registry round, transport failures are never cached, and the whole
//! verification runs under a deadline.

pub mod args;
pub mod cosign;
pub mod credentials;
pub mod registry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

pub use self::cosign::Signatures;
pub use self::credentials::{Credential, CredentialError, DockerConfig};
pub use self::registry::{Observer, Registry, RegistryConfig, RegistryError, Repository};
use crate::policy::{ImageName, NamedKey};

/// Tuning of the verifier; the defaults are documented in the README.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Registry trust and limits.
    pub registry: RegistryConfig,
    /// The bound on one image's verification, below the webhook's 10 s timeout.
    pub budget: Duration,
    /// How long a tag's digest is reused.
    pub digest_ttl: Duration,
    /// How long a verified signature is reused.
    pub verified_ttl: Duration,
    /// How long "not signed" or "does not verify" is reused.
    pub rejected_ttl: Duration,
    /// Entries per cache.
    pub cache_capacity: u64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            registry: RegistryConfig::default(),
            budget: Duration::from_secs(8),
            digest_ttl: Duration::from_secs(30),
            verified_ttl: Duration::from_secs(600),
            rejected_ttl: Duration::from_secs(30),
            cache_capacity: 10_000,
        }
    }
}

/// The answer for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A signature of `digest` verifies with `key`.
    Verified {
        /// The digest verified.
        digest: String,
        /// The policy key that verified it.
        key: String,
    },
    /// Not admitted, and why.
    Denied(Failure),
}

/// Why an image is not admitted. Each kind has its own label and explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The image string is not a reference to an image in a registry.
    InvalidReference(String),
    /// The registry has no such tag or repository.
    ImageNotFound,
    /// No signature is stored for the image's digest.
    NotSigned {
        /// The digest looked up.
        digest: String,
    },
    /// Signatures exist, none verifies with the keys.
    SignatureMismatch {
        /// Whether every signature found was for another digest (copied from another image).
        only_other_digests: bool,
    },
    /// Every credential, anonymous access included, was refused.
    Unauthorized {
        /// The registry.
        host: String,
    },
    /// The registry could not be reached, or answered badly.
    Unreachable(RegistryError),
    /// The verification did not finish within its budget.
    TimedOut {
        /// The budget.
        budget: Duration,
    },
}

impl Failure {
    /// The fixed label, for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::InvalidReference(_) => "InvalidReference",
            Failure::ImageNotFound => "ImageNotFound",
            Failure::NotSigned { .. } => "NotSigned",
            Failure::SignatureMismatch { .. } => "SignatureMismatch",
            Failure::Unauthorized { .. } => "Unauthorized",
            Failure::Unreachable(e) => e.label(),
            Failure::TimedOut { .. } => "Timeout",
        }
    }

    /// The sentence that follows `The image: <image> is not signed.`, if any.
    ///
    /// A signature that does not verify with the keys has none: that is the original's case
    /// in its documentation, whose words users match exactly.
    pub fn explanation(&self) -> Option<String> {
        Some(match self {
            Failure::InvalidReference(e) => format!("{}.", e.trim_end_matches('.')),
            Failure::ImageNotFound => "The image was not found in its registry.".into(),
            Failure::NotSigned { digest } => format!("No signature was found for {digest}."),
            Failure::SignatureMismatch {
                only_other_digests: true,
            } => "Its signatures are for other images, not for its digest.".into(),
            Failure::SignatureMismatch {
                only_other_digests: false,
            } => return None,
            Failure::Unauthorized { host } => {
                format!("The registry {host} refused the credentials.")
            }
            Failure::Unreachable(e) => {
                let mut text = e.to_string();
                if let Some(first) = text.get(..1) {
                    text = first.to_uppercase() + text.get(1..).unwrap_or_default();
                }
                format!("{}.", text.trim_end_matches('.'))
            }
            Failure::TimedOut { budget } => {
                format!("Verification timed out after {}s.", budget.as_secs_f32())
            }
        })
    }
}

/// The denial message for an image (SPEC §2), with the explanation when there is one.
pub fn denial_message(image: &str, failure: &Failure) -> String {
    match failure.explanation() {
        Some(why) => format!("The image: {image} is not signed. {why}"),
        None => format!("The image: {image} is not signed."),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VerdictKey {
    repo: Repository,
    digest: String,
    keys: Arc<str>,
    credentials: Arc<str>,
}

/// Verified verdicts live longer than rejections.
struct VerdictExpiry {
    verified: Duration,
    rejected: Duration,
}

impl Expiry<VerdictKey, Signatures> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _: &VerdictKey,
        value: &Signatures,
        _: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Signatures::Verified { .. } => self.verified,
            _ => self.rejected,
        })
    }
}

/// The verifier: one per process, shared by every admission.
#[derive(Clone)]
pub struct Verifier {
    registry: Registry,
    observer: Arc<dyn Observer>,
    budget: Duration,
    digests: Cache<(Repository, String), Option<String>>,
    verdicts: Cache<VerdictKey, Signatures>,
}

impl Verifier {
    /// A verifier with its registry client and empty caches.
    pub fn new(config: VerifyConfig) -> Result<Self, String> {
        let registry = Registry::new(config.registry)?;
        let digests = Cache::builder()
            .max_capacity(config.cache_capacity)
            .time_to_live(config.digest_ttl)
            .build();
        let verdicts = Cache::builder()
            .max_capacity(config.cache_capacity)
            .expire_after(VerdictExpiry {
                verified: config.verified_ttl,
                rejected: config.rejected_ttl,
            })
            .build();
        Ok(Verifier {
            registry,
            observer: Arc::new(registry::Unobserved),
            budget: config.budget,
            digests,
            verdicts,
        })
    }

    /// Forgets every cached digest and verdict (the registry connections stay open): after a
    /// key is revoked, and for measuring cold verification.
    pub fn clear_caches(&self) {
        self.digests.invalidate_all();
        self.verdicts.invalidate_all();
    }

    /// Reports cache lookups and registry exchanges to `observer` from now on.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.registry.set_observer(observer.clone());
        self.observer = observer;
        self
    }

    /// A cache entry's value, reporting whether it was there (a fresh entry was a miss).
    fn observed<K, V>(&self, cache: &'static str, entry: moka::Entry<K, V>) -> V {
        self.observer.cache(cache, !entry.is_fresh());
        entry.into_value()
    }

    /// The registry client the verifier uses.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether any of `keys` verifies a signature of `image`, trying `credentials` in order
    /// and anonymous access last.
    ///
    /// The steady state is a cached digest and a cached verdict: each is looked up first with
    /// a plain `get`, and only a miss builds the registry exchange (boxed: its future is
    /// large, and would otherwise be built and moved on every call) and goes through the
    /// cache's entry, which makes concurrent misses for one key share one exchange. The whole
    /// verification is bounded by the budget, cached answers included.
    pub async fn verify(
        &self,
        image: &ImageName,
        keys: &[&NamedKey],
        credentials: &[Credential],
    ) -> Verdict {
        let deadline = tokio::time::Instant::now() + self.budget;
        let timed_out = || {
            Verdict::Denied(Failure::TimedOut {
                budget: self.budget,
            })
        };
        let reference = image.reference();
        let repo = Repository::of(reference.domain(), reference.path());
        let (repo, digest) = match reference.digest() {
            Some(digest) => (repo, digest.to_owned()),
            None => {
                let key = (repo, reference.tag().unwrap_or("latest").to_owned());
                let cached = self.digests.get(&key).await;
                let resolved = match cached {
                    Some(digest) => {
                        self.observer.cache("digest", true);
                        Ok(digest)
                    }
                    None => {
                        let resolve = Box::pin(self.resolve(&key, credentials));
                        match tokio::time::timeout_at(deadline, resolve).await {
                            Ok(resolved) => resolved,
                            Err(_) => return timed_out(),
                        }
                    }
                };
                match resolved {
                    Ok(Some(digest)) => (key.0, digest),
                    Ok(None) => return Verdict::Denied(Failure::ImageNotFound),
                    Err(e) => return Verdict::Denied(failure_of(&e)),
                }
            }
        };
        let key = VerdictKey {
            repo,
            digest,
            keys: fingerprint(keys.iter().map(|k| k.key.fingerprint())),
            credentials: fingerprint(credentials.iter().map(Credential::identity)),
        };
        let checked = match self.verdicts.get(&key).await {
            Some(signatures) => {
                self.observer.cache("verdict", true);
                Ok(signatures)
            }
            None => {
                let check = Box::pin(self.check(&key, keys, credentials));
                match tokio::time::timeout_at(deadline, check).await {
                    Ok(checked) => checked,
                    Err(_) => return timed_out(),
                }
            }
        };
        let digest = key.digest;
        match checked {
            Ok(Signatures::Verified { key }) => Verdict::Verified { digest, key },
            Ok(Signatures::NotSigned) => Verdict::Denied(Failure::NotSigned { digest }),
            Ok(Signatures::NoneVerify {
                other_digest,
                bad_signature,
            }) => Verdict::Denied(Failure::SignatureMismatch {
                only_other_digests: other_digest > 0 && bad_signature == 0,
            }),
            Err(e) => Verdict::Denied(failure_of(&e)),
        }
    }

    /// The digest of a tag through the cache's entry: a miss asks the registry.
    async fn resolve(
        &self,
        key: &(Repository, String),
        credentials: &[Credential],
    ) -> Result<Option<String>, RegistryError> {
        let auths = with_anonymous(credentials);
        let resolve = self.resolve_with_any(&key.0, &key.1, &auths);
        self.through_entry("digest", &self.digests, key, resolve)
            .await
    }

    /// The verdict of a digest through the cache's entry: a miss reads its signatures.
    async fn check(
        &self,
        key: &VerdictKey,
        keys: &[&NamedKey],
        credentials: &[Credential],
    ) -> Result<Signatures, RegistryError> {
        let auths = with_anonymous(credentials);
        let check = self.check_with_any(&key.repo, &key.digest, keys, &auths);
        self.through_entry("verdict", &self.verdicts, key, check)
            .await
    }

    /// `key`'s value in `cache`, or `init`'s when it has none: concurrent misses for one key
    /// share one `init`, an error is not cached, and the lookup is reported as a hit or a miss.
    async fn through_entry<K, V>(
        &self,
        name: &'static str,
        cache: &Cache<K, V>,
        key: &K,
        init: impl Future<Output = Result<V, RegistryError>>,
    ) -> Result<V, RegistryError>
    where
        K: Clone + std::hash::Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let entry = cache.entry(key.clone()).or_try_insert_with(init).await;
        entry
            .map(|e| self.observed(name, e))
            .map_err(|e| (*e).clone())
    }

    async fn resolve_with_any(
        &self,
        repo: &Repository,
        tag: &str,
        auths: &[Option<&Credential>],
    ) -> Result<Option<String>, RegistryError> {
        let mut refused = None;
        for auth in auths {
            match self.registry.resolve_tag(repo, tag, *auth).await {
                Err(e @ RegistryError::Unauthorized { .. }) => refused = Some(e),
                other => return other,
            }
        }
        Err(refused.unwrap_or_else(|| RegistryError::Unauthorized {
            host: repo.host.clone(),
            status: 401,
        }))
    }

    async fn check_with_any(
        &self,
        repo: &Repository,
        digest: &str,
        keys: &[&NamedKey],
        auths: &[Option<&Credential>],
    ) -> Result<Signatures, RegistryError> {
        let mut refused = None;
        for auth in auths {
            match cosign::check(&self.registry, repo, digest, keys, *auth).await {
                Err(e @ RegistryError::Unauthorized { .. }) => refused = Some(e),
                other => return other,
            }
        }
        Err(refused.unwrap_or_else(|| RegistryError::Unauthorized {
            host: repo.host.clone(),
            status: 401,
        }))
    }
}

/// The credentials to try in order: each given one, then anonymous access.
fn with_anonymous(credentials: &[Credential]) -> Vec<Option<&Credential>> {
    credentials.iter().map(Some).chain([None]).collect()
}

fn failure_of(error: &RegistryError) -> Failure {
    match error {
        RegistryError::Unauthorized { host, .. } => Failure::Unauthorized { host: host.clone() },
        other => Failure::Unreachable(other.clone()),
    }
}

/// An order-independent identity of a set of strings.
fn fingerprint<S: AsRef<str> + Ord>(parts: impl Iterator<Item = S>) -> Arc<str> {
    let mut parts: Vec<S> = parts.collect();
    parts.sort_unstable();
    let mut joined = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            joined.push(',');
        }
        joined.push_str(part.as_ref());
    }
    Arc::from(joined)
}
