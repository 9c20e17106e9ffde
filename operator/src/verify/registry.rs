//! A minimal, bounded OCI distribution client: the three requests verification needs.
//!
//! Why not `oci_client::Client` for the requests (its manifest types are used): it probes
//! `/v2/` before every request on a registry that issues no token (a cold tag would cost 6
//! requests instead of 3), it keeps the first credential stored for a registry (so a refused
//! credential cannot be replaced by the next source), and it reads whole bodies into
//! memory. Here every body is read against a limit, every answer is classified (absent,
//! refused, unreachable, lying), and credentials are per request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;
use reqwest::{Method, StatusCode, header};

mod auth;
mod error;
pub mod redirect;

pub use self::error::{ClientError, RegistryError, RegistryOutcome};
use self::error::{bad, transport, unauthorized};
use self::redirect::RedirectRules;

use super::Cache as CacheKind;
use super::credentials::Credential;
use crate::policy::hosts::{PlainHttp, api_host};

/// Manifest media types accepted when resolving a tag: an index is what `cosign sign` signs
/// for a multi-arch image, so it must come back as itself, not as a platform's manifest.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Limits and trust for registry connections.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// PEM CA certificates trusted in addition to the system roots.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// Registries (`host` or `host:port`) reached over plain HTTP, by explicit opt-in.
    pub insecure_registries: PlainHttp,
    /// The bound on one HTTP exchange, connection included.
    pub request_timeout: Duration,
    /// The largest manifest read (distribution refuses manifests over 4 MiB).
    pub max_manifest_bytes: usize,
    /// The largest signature payload read.
    pub max_payload_bytes: usize,
    /// Whether a registry may redirect to a loopback, unspecified or the Pod's own address.
    pub allow_redirects_to_loopback: bool,
    /// The Pod's own addresses, which a redirect may not reach unless the flag above is set.
    pub own_addresses: Vec<std::net::IpAddr>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            extra_roots_pem: Vec::new(),
            insecure_registries: PlainHttp::default(),
            request_timeout: Duration::from_secs(5),
            max_manifest_bytes: 4 << 20,
            max_payload_bytes: 1 << 20,
            allow_redirects_to_loopback: false,
            own_addresses: Vec::new(),
        }
    }
}

/// A repository in a registry, with the host name the registry's API answers on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// `host[:port]` of the API; Docker Hub's is `registry-1.docker.io`.
    pub host: String,
    /// The repository path: `library/busybox`.
    pub path: String,
}

impl Repository {
    /// The API location of an image reference's repository.
    pub fn of(domain: &str, path: &str) -> Self {
        Repository {
            host: api_host(domain),
            path: path.to_owned(),
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.path)
    }
}

/// What the verifier reports as it works, for metrics. Labels come from closed sets.
pub trait Observer: Send + Sync {
    /// One cache lookup.
    fn cache(&self, cache: CacheKind, hit: bool);
    /// One HTTP exchange with a registry, by outcome.
    fn registry_request(&self, outcome: RegistryOutcome);
}

/// Reports nothing.
pub(crate) struct Unobserved;

impl Observer for Unobserved {
    fn cache(&self, _: CacheKind, _: bool) {}
    fn registry_request(&self, _: RegistryOutcome) {}
}

/// The registry client, shared by every verification.
#[derive(Clone)]
pub struct Registry {
    http: reqwest::Client,
    observer: Arc<dyn Observer>,
    config: Arc<RegistryConfig>,
    /// `Authorization` values that worked, by (host, repository, credential identity):
    /// bearer tokens, or the basic header for registries that asked for basic auth. A hit
    /// saves the 401 round trip.
    authorizations: Cache<(String, String, String), Arc<str>>,
    /// Registry hosts that answered the referrers API with anything but an index.
    no_referrers_api: Cache<String, ()>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the referrers API of a registry answered.
#[derive(Debug, Clone)]
pub enum Referrers {
    /// An OCI index of the referrers, raw.
    Index(Bytes),
    /// The registry has no referrers API: the tag schema is where referrers are.
    Unsupported,
}

/// The media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest fetched by tag or digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The raw bytes, as signed and hashed.
    pub bytes: Bytes,
    /// The `Docker-Content-Digest` the registry sent, if any.
    pub digest_header: Option<String>,
}

impl Registry {
    /// A client with the system roots plus `config.extra_roots_pem`.
    pub fn new(config: RegistryConfig) -> Result<Self, ClientError> {
        let mut roots = Vec::new();
        for pem in &config.extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::CustomCa(e.to_string()))?;
            if certs.is_empty() {
                return Err(ClientError::EmptyCustomCa);
            }
            roots.extend(certs);
        }
        let http = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .redirect(
                RedirectRules {
                    plain_http: config.insecure_registries.clone(),
                    allow_loopback: config.allow_redirects_to_loopback,
                    own_addresses: config.own_addresses.clone(),
                }
                .policy(),
            )
            .dns_resolver(redirect::resolver())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .no_proxy()
            .user_agent(concat!("image-policy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let authorizations = Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(240))
            .build();
        // Looked at again after a while: a registry may be upgraded to one with the API.
        let no_referrers_api = Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(900))
            .build();
        Ok(Registry {
            http,
            observer: Arc::new(Unobserved),
            config: Arc::new(config),
            authorizations,
            no_referrers_api,
        })
    }

    /// The largest signature payload read.
    pub fn max_payload_bytes(&self) -> usize {
        self.config.max_payload_bytes
    }

    /// The registries reached over plain HTTP.
    pub fn plain_http(&self) -> &PlainHttp {
        &self.config.insecure_registries
    }

    /// Reports to `observer` from now on.
    pub fn set_observer(&mut self, observer: Arc<dyn Observer>) {
        self.observer = observer;
    }

    /// The digest a tag points at, by one HEAD request; `None` when the tag does not exist.
    pub async fn resolve_tag(
        &self,
        repo: &Repository,
        tag: &str,
        credential: Option<&Credential>,
    ) -> Result<Option<String>, RegistryError> {
        let url = self.url(repo, &format!("manifests/{tag}"));
        let response = self
            .send(Method::HEAD, &url, repo, credential, Some(MANIFEST_ACCEPT))
            .await?;
        let Some(response) = response else {
            return Ok(None);
        };
        match digest_header(&response) {
            Some(digest) => Ok(Some(digest)),
            // Registries that omit the header on HEAD: hash the manifest instead.
            None => {
                let manifest = self.manifest(repo, tag, credential).await?;
                Ok(manifest.map(|m| sha256_digest(&m.bytes)))
            }
        }
    }

    /// A manifest by tag or digest, read up to the manifest limit; `None` when absent.
    pub async fn manifest(
        &self,
        repo: &Repository,
        reference: &str,
        credential: Option<&Credential>,
    ) -> Result<Option<Manifest>, RegistryError> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let Some(response) = self
            .send(Method::GET, &url, repo, credential, Some(MANIFEST_ACCEPT))
            .await?
        else {
            return Ok(None);
        };
        let digest_header = digest_header(&response);
        let bytes = self
            .read_limited(response, self.config.max_manifest_bytes, repo)
            .await?;
        Ok(Some(Manifest {
            bytes,
            digest_header,
        }))
    }

    /// A blob, read up to the payload limit and checked against its digest; `None` when
    /// absent.
    pub async fn blob(
        &self,
        repo: &Repository,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<Option<Bytes>, RegistryError> {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let Some(response) = self.send(Method::GET, &url, repo, credential, None).await? else {
            return Ok(None);
        };
        let bytes = self
            .read_limited(response, self.config.max_payload_bytes, repo)
            .await?;
        if !digest.starts_with("sha256:") || sha256_digest(&bytes) != digest {
            return Err(bad(
                repo,
                format!("the blob {digest} does not have that digest"),
            ));
        }
        Ok(Some(bytes))
    }

    /// The OCI referrers of `repo@digest` (`GET /v2/<repo>/referrers/<digest>`): the index
    /// the registry answers with, or [`Referrers::Unsupported`] when it has no such API (any
    /// answer but a 200 with an OCI index). A registry without it is remembered for a while,
    /// so that it costs one request per process, not one per image.
    pub async fn referrers(
        &self,
        repo: &Repository,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<Referrers, RegistryError> {
        if self.no_referrers_api.contains_key(&repo.host) {
            return Ok(Referrers::Unsupported);
        }
        let url = self.url(repo, &format!("referrers/{digest}"));
        let response = self
            .exchange(Method::GET, &url, repo, credential, Some(OCI_INDEX))
            .await?;
        let is_index = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(OCI_INDEX));
        if response.status() != StatusCode::OK || !is_index {
            self.no_referrers_api.insert(repo.host.clone(), ()).await;
            return Ok(Referrers::Unsupported);
        }
        let bytes = self
            .read_limited(response, self.config.max_manifest_bytes, repo)
            .await?;
        Ok(Referrers::Index(bytes))
    }

    fn url(&self, repo: &Repository, rest: &str) -> String {
        let scheme = if self.config.insecure_registries.contains(&repo.host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}/{rest}", repo.host, repo.path)
    }

    /// One request, with at most one authentication round when the registry asks for it.
    /// `None` for 404.
    async fn send(
        &self,
        method: Method,
        url: &str,
        repo: &Repository,
        credential: Option<&Credential>,
        accept: Option<&str>,
    ) -> Result<Option<reqwest::Response>, RegistryError> {
        let response = self.exchange(method, url, repo, credential, accept).await?;
        match response.status() {
            s if s.is_success() => Ok(Some(response)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(bad(repo, format!("HTTP {}", s.as_u16()))),
        }
    }

    /// One request and its answer, whatever its status but a refusal: at most one
    /// authentication round when the registry asks for it; 401 and 403 are errors.
    async fn exchange(
        &self,
        method: Method,
        url: &str,
        repo: &Repository,
        credential: Option<&Credential>,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let identity = credential.map_or_else(|| "anonymous".to_owned(), Credential::identity);
        let key = (repo.host.clone(), repo.path.clone(), identity);
        let mut authorization = self.authorizations.get(&key).await;
        for attempt in 0..2 {
            let mut request = self.http.request(method.clone(), url);
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if let Some(value) = &authorization {
                request = request.header(header::AUTHORIZATION, value.as_ref());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    let error = transport(repo, &e, &self.config);
                    self.observer.registry_request(error.outcome());
                    return Err(error);
                }
            };
            let status = response.status();
            self.observer.registry_request(match status {
                s if s.is_success() => RegistryOutcome::Ok,
                StatusCode::NOT_FOUND => RegistryOutcome::NotFound,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryOutcome::Unauthorized,
                _ => RegistryOutcome::BadResponse,
            });
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok());
                match self.authorize(challenge, repo, credential).await? {
                    Some(value) => {
                        self.authorizations.insert(key.clone(), value.clone()).await;
                        authorization = Some(value);
                        continue;
                    }
                    None => return Err(unauthorized(repo, status)),
                }
            }
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                self.authorizations.invalidate(&key).await;
                return Err(unauthorized(repo, status));
            }
            return Ok(response);
        }
        Err(unauthorized(repo, StatusCode::UNAUTHORIZED))
    }

    /// Reads a body up to `limit` bytes; more is a bad response, and is not read.
    async fn read_limited(
        &self,
        mut response: reqwest::Response,
        limit: usize,
        repo: &Repository,
    ) -> Result<Bytes, RegistryError> {
        let too_big = || bad(repo, format!("a body over the {limit}-byte limit"));
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport(repo, &e, &self.config))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }
}

fn digest_header(response: &reqwest::Response) -> Option<String> {
    let value = response
        .headers()
        .get("docker-content-digest")?
        .to_str()
        .ok()?;
    is_sha256_digest(value).then(|| value.to_owned())
}

/// `sha256:` and 64 lowercase hex digits: a digest safe to put in a URL.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests;
