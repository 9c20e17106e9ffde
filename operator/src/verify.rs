//! Deciding whether an image carries a signature that a policy key verifies, and the
//! attestations its policy requires.
//!
//! [`Verifier::verify_with`] resolves a tag to its digest (none needed for a digest), reads the
//! signatures of that digest in each [`Layout`], and checks them with the keys of the
//! image's matched entries; then it reads the attestations the entries require
//! ([`layout::attestations`]) and evaluates their conditions ([`attestation`]). Credentials
//! are tried in the order given, anonymous access last, moving on when the registry refuses
//! one ([`attempt`], docs/contract.md §4). Tag resolutions and verdicts are cached (a verdict
//! keeps the verified attestations, whose conditions are evaluated at each decision, so that
//! `now` is never frozen), concurrent misses for one key share one registry round, transport
//! failures are never cached, and the whole verification runs under a deadline.

pub mod args;
pub mod attempt;
pub mod attestation;
pub mod bundle;
pub mod credentials;
pub mod findings;
pub mod layout;
pub mod registry;
pub mod verdict;

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache as MokaCache;

use self::attempt::each_credential;
use self::attestation::{Found, Query};
pub use self::credentials::{Credential, CredentialError, DockerConfig};
pub use self::findings::{Findings, Seen};
use self::layout::Memo;
pub use self::layout::{Layout, Lookup};
pub use self::registry::{
    ClientError, Observer, Registry, RegistryConfig, RegistryError, RegistryOutcome, Repository,
};
pub use self::verdict::{
    FailedCondition, Failure, FailureKind, Format, MissingAttestation, Rejection, Verdict,
};
use crate::policy::{ImageName, NamedKey, Need};

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
    /// Entries per cache; in the verdict cache, an entry that keeps attestations weighs one
    /// more per 4 KiB of their statements.
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

/// Which verification cache a lookup went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cache {
    /// Tag to digest resolution.
    Digest,
    /// Digest, keys and credentials to verdict.
    Verdict,
}

impl Cache {
    /// The label value: `digest` or `verdict`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cache::Digest => "digest",
            Cache::Verdict => "verdict",
        }
    }
}

/// What a verdict is cached under: the repository and digest, and what the verdict depends
/// on besides (the keys tried, the attestations looked for with their signers, the
/// credentials offered), whatever layout its signature is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VerdictKey {
    repo: Repository,
    digest: String,
    keys: Arc<str>,
    attestations: Arc<str>,
    credentials: Arc<str>,
}

/// What was found for a digest: the value of the verdict cache. Conditions are not in it:
/// they are evaluated at each decision.
#[derive(Debug, Clone)]
struct Checked {
    /// Its signatures, when a signature is required.
    signature: Option<Findings>,
    /// What each query found, in order (nothing when the signature failed already).
    attestations: Arc<[Found]>,
}

impl Checked {
    /// Whether everything looked for was found: kept as long as a verified signature.
    fn complete(&self) -> bool {
        self.signature.as_ref().is_none_or(Findings::is_verified)
            && self.attestations.iter().all(|f| !f.attested.is_empty())
    }

    /// Its weight in the verdict cache: one, and one more per 4 KiB of statements kept.
    fn weight(&self) -> u32 {
        let bytes: usize = self.attestations.iter().map(Found::bytes).sum();
        u32::try_from(1 + bytes / 4096).unwrap_or(u32::MAX)
    }
}

/// Verified verdicts live longer than rejections.
struct VerdictExpiry {
    verified: Duration,
    rejected: Duration,
}

impl Expiry<VerdictKey, Checked> for VerdictExpiry {
    fn expire_after_create(&self, _: &VerdictKey, value: &Checked, _: Instant) -> Option<Duration> {
        Some(if value.complete() {
            self.verified
        } else {
            self.rejected
        })
    }
}

/// The verifier: one per process, shared by every admission.
#[derive(Clone)]
pub struct Verifier {
    registry: Registry,
    observer: Arc<dyn Observer>,
    budget: Duration,
    digests: MokaCache<(Repository, String), Option<String>>,
    verdicts: MokaCache<VerdictKey, Checked>,
}

impl Verifier {
    /// A verifier with its registry client and empty caches.
    pub fn new(config: VerifyConfig) -> Result<Self, ClientError> {
        let registry = Registry::new(config.registry)?;
        let digests = MokaCache::builder()
            .max_capacity(config.cache_capacity)
            .time_to_live(config.digest_ttl)
            .build();
        let verdicts = MokaCache::builder()
            .max_capacity(config.cache_capacity)
            .weigher(|_: &VerdictKey, checked: &Checked| checked.weight())
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

    /// The registry client the verifier uses.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether any of `keys` verifies a signature of `image`, trying `credentials` in order
    /// and anonymous access last: [`Verifier::verify_with`], with no attestation required.
    pub async fn verify(
        &self,
        image: &ImageName,
        keys: &[&NamedKey],
        credentials: &[Credential],
    ) -> Verdict {
        self.verify_with(image, keys, &[], credentials).await
    }

    /// Whether `image` carries a signature that any of `keys` verifies, and every attestation
    /// of `needs`, each signed by one of its signers and meeting its conditions, trying
    /// `credentials` in order and anonymous access last. A signature is required unless
    /// `keys` is empty and `needs` is not (an entry that requires attestations alone).
    ///
    /// The steady state is a cached digest and a cached verdict: each is looked up first with
    /// a plain `get`, and only a miss builds the registry exchange (boxed: its future is
    /// large, and would otherwise be built and moved on every call) and goes through the
    /// cache's entry, which makes concurrent misses for one key share one exchange. The whole
    /// verification is bounded by the budget, cached answers and conditions included.
    pub async fn verify_with(
        &self,
        image: &ImageName,
        keys: &[&NamedKey],
        needs: &[Need<'_>],
        credentials: &[Credential],
    ) -> Verdict {
        let deadline = tokio::time::Instant::now() + self.budget;
        let timed_out = || {
            Verdict::Denied(Failure::TimedOut {
                budget: self.budget,
            })
        };
        let (repo, digest) = match self.digest_of(image, credentials, deadline).await {
            Ok(Some(found)) => found,
            Ok(None) => return timed_out(),
            Err(failure) => return Verdict::Denied(failure),
        };
        let (queries, of_need) = attestation::queries(needs);
        let signature = !keys.is_empty() || needs.is_empty();
        let key = VerdictKey {
            repo,
            digest,
            keys: fingerprint(keys.iter().map(|k| k.identity())),
            attestations: if queries.is_empty() {
                nothing()
            } else {
                Arc::from(attestation::fingerprint(&queries))
            },
            credentials: fingerprint(credentials.iter().map(Credential::identity)),
        };
        let checked = match self.verdicts.get(&key).await {
            Some(checked) => {
                self.observer.cache(Cache::Verdict, true);
                Ok(checked)
            }
            None => {
                let check = Box::pin(self.check(&key, keys, signature, &queries, credentials));
                match tokio::time::timeout_at(deadline, check).await {
                    Ok(checked) => checked,
                    Err(_) => return timed_out(),
                }
            }
        };
        let digest = key.digest;
        let checked = match checked {
            Ok(checked) => checked,
            Err(e) => return Verdict::Denied(Failure::of_registry(&e)),
        };
        let signed_by = match checked.signature {
            None => None,
            Some(Findings::Verified { fingerprint }) => match keys {
                // The verdict's key holds the fingerprints of `keys`, so one of them has it:
                // the only one, when there is one.
                [only] => Some(only.name.clone()),
                _ => keys
                    .iter()
                    .find(|k| k.identity() == *fingerprint)
                    .map(|k| k.name.clone()),
            },
            Some(Findings::Unverified(seen)) => {
                return Verdict::Denied(Failure::of_seen(digest, seen));
            }
        };
        if needs.is_empty() {
            let key = signed_by.unwrap_or_default();
            return Verdict::Verified { digest, key };
        }
        let image_digest = (image.as_str(), digest.as_str());
        let judged = attestation::judge(
            needs,
            &checked.attestations,
            &of_need,
            image_digest,
            deadline.into_std(),
        );
        match tokio::time::timeout_at(deadline, judged).await {
            Err(_) => timed_out(),
            Ok(Err(failure)) => Verdict::Denied(failure),
            Ok(Ok(attested_by)) => Verdict::Verified {
                digest,
                key: signed_by.or(attested_by).unwrap_or_default(),
            },
        }
    }

    /// The repository and digest of `image`: written, or its tag's through the digest cache.
    /// `Ok(None)` when the deadline passed first.
    async fn digest_of(
        &self,
        image: &ImageName,
        credentials: &[Credential],
        deadline: tokio::time::Instant,
    ) -> Result<Option<(Repository, String)>, Failure> {
        let reference = image.reference();
        let repo = Repository::of(image.registry(), image.repository());
        if let Some(digest) = reference.digest() {
            return Ok(Some((repo, digest.to_owned())));
        }
        let key = (repo, reference.tag().unwrap_or("latest").to_owned());
        let resolved = match self.digests.get(&key).await {
            Some(digest) => {
                self.observer.cache(Cache::Digest, true);
                Ok(digest)
            }
            None => {
                let resolve = Box::pin(self.resolve(&key, credentials));
                match tokio::time::timeout_at(deadline, resolve).await {
                    Ok(resolved) => resolved,
                    Err(_) => return Ok(None),
                }
            }
        };
        match resolved {
            Ok(Some(digest)) => Ok(Some((key.0, digest))),
            Ok(None) => Err(Failure::ImageNotFound),
            Err(e) => Err(Failure::of_registry(&e)),
        }
    }

    /// The digest of a tag through the cache's entry: a miss asks the registry.
    async fn resolve(
        &self,
        key: &(Repository, String),
        credentials: &[Credential],
    ) -> Result<Option<String>, RegistryError> {
        let (repo, tag) = key;
        let resolve = each_credential(repo, credentials, |credential| {
            self.registry.resolve_tag(repo, tag, credential)
        });
        self.through_entry(Cache::Digest, &self.digests, key, resolve)
            .await
    }

    /// The verdict of a digest through the cache's entry: a miss reads its signatures in each
    /// layout, until one verifies, then, when it verifies (or none is required), the
    /// attestations of `queries`.
    async fn check(
        &self,
        key: &VerdictKey,
        keys: &[&NamedKey],
        signature: bool,
        queries: &[Query<'_>],
        credentials: &[Credential],
    ) -> Result<Checked, RegistryError> {
        let check = each_credential(&key.repo, credentials, |credential| async move {
            let memo = Memo::default();
            let lookup = Lookup {
                registry: &self.registry,
                repo: &key.repo,
                digest: &key.digest,
                keys,
                credential,
                memo: &memo,
            };
            let mut findings = Findings::not_signed();
            if signature {
                for layout in Layout::ALL {
                    let found = layout.check(lookup).await?;
                    findings = findings.and(found);
                    if findings.is_verified() {
                        break;
                    }
                }
            }
            let attestations = if !signature || findings.is_verified() {
                layout::attestations::find(lookup, queries).await?
            } else {
                Vec::new()
            };
            Ok(Checked {
                signature: signature.then_some(findings),
                attestations: attestations.into(),
            })
        });
        self.through_entry(Cache::Verdict, &self.verdicts, key, check)
            .await
    }

    /// `key`'s value in `cache`, or `init`'s when it has none: concurrent misses for one key
    /// share one `init`, an error is not cached, and the lookup is reported as a hit or a miss.
    async fn through_entry<K, V>(
        &self,
        name: Cache,
        cache: &MokaCache<K, V>,
        key: &K,
        init: impl Future<Output = Result<V, RegistryError>>,
    ) -> Result<V, RegistryError>
    where
        K: Clone + std::hash::Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let entry = cache.entry(key.clone()).or_try_insert_with(init).await;
        entry
            .map(|e| {
                self.observer.cache(name, !e.is_fresh());
                e.into_value()
            })
            .map_err(|e| (*e).clone())
    }
}

/// The identity of nothing: one shared empty string, made once.
fn nothing() -> Arc<str> {
    static NOTHING: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
    Arc::clone(&NOTHING)
}

/// An order-independent identity of a set of strings. Most sets on the path of an admission
/// are of none or one (one key, no credentials): those cost no list and no joining.
fn fingerprint<S: AsRef<str> + Ord>(mut parts: impl Iterator<Item = S>) -> Arc<str> {
    let Some(first) = parts.next() else {
        return nothing();
    };
    let Some(second) = parts.next() else {
        return Arc::from(first.as_ref());
    };
    let mut parts: Vec<S> = [first, second].into_iter().chain(parts).collect();
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
