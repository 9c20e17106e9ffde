//! How an exchange with a registry failed, and its outcome label: the error types of the
//! registry client, and the functions that turn an HTTP status or a transport error into
//! them. Nothing here carries a credential.

use reqwest::StatusCode;

use super::redirect::RedirectRefusal;
use super::{RegistryConfig, Repository};
use crate::verify::FailureKind;

/// How a failed exchange failed. Never carries a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the credential (or its absence): 401 or 403.
    #[error("the registry {host} refused the credentials (HTTP {status})")]
    Unauthorized {
        /// The registry's API host, `host[:port]` (Docker Hub's is `registry-1.docker.io`).
        host: String,
        /// 401 or 403.
        status: u16,
    },
    /// No answer: connection refused, TLS failure, DNS.
    #[error("the registry {host} is unreachable: {detail}")]
    Unreachable {
        /// The registry's API host, `host[:port]` (Docker Hub's is `registry-1.docker.io`).
        host: String,
        /// What failed, as the transport says it (never a credential).
        detail: String,
    },
    /// An answer, but a wrong one: 5xx, a body over its limit, malformed JSON, a blob
    /// whose content is not its digest.
    #[error("the registry {host} answered badly: {detail}")]
    BadResponse {
        /// The registry's API host, `host[:port]` (Docker Hub's is `registry-1.docker.io`).
        host: String,
        /// What was wrong.
        detail: String,
    },
    /// A redirect that is not followed (docs/contract.md §3): to plain HTTP, a link-local,
    /// metadata or local address, or too many.
    #[error("the registry {host} sent {detail}")]
    Redirected {
        /// The API host, `host[:port]`, of the registry that redirected.
        host: String,
        /// Where to, and why it is refused.
        detail: String,
    },
    /// No answer within the per-request bound.
    #[error("the registry {host} did not answer within {seconds}s")]
    TimedOut {
        /// The registry's API host, `host[:port]` (Docker Hub's is `registry-1.docker.io`).
        host: String,
        /// The per-request bound, in whole seconds (`--registry-timeout`).
        seconds: u64,
    },
}

impl RegistryError {
    /// The fixed label of this failure, for metrics and reasons.
    pub fn kind(&self) -> FailureKind {
        match self {
            RegistryError::Unauthorized { .. } => FailureKind::Unauthorized,
            RegistryError::Unreachable { .. } => FailureKind::Unreachable,
            RegistryError::BadResponse { .. } | RegistryError::Redirected { .. } => {
                FailureKind::BadResponse
            }
            RegistryError::TimedOut { .. } => FailureKind::Timeout,
        }
    }

    /// The outcome of the exchange that failed so.
    pub(super) fn outcome(&self) -> RegistryOutcome {
        match self {
            RegistryError::Unauthorized { .. } => RegistryOutcome::Unauthorized,
            RegistryError::Unreachable { .. } => RegistryOutcome::Unreachable,
            RegistryError::BadResponse { .. } => RegistryOutcome::BadResponse,
            RegistryError::Redirected { .. } => RegistryOutcome::RefusedRedirect,
            RegistryError::TimedOut { .. } => RegistryOutcome::Timeout,
        }
    }
}

/// Why the registry client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A custom CA that is not PEM certificates.
    #[error("custom CA: {0}")]
    CustomCa(String),
    /// A custom CA file without a certificate.
    #[error("custom CA: no certificate in the PEM data")]
    EmptyCustomCa,
    /// The HTTP client refused its configuration.
    #[error("registry client: {0}")]
    Http(String),
}

/// How one HTTP exchange with a registry ended: the closed label set of
/// `image_policy_registry_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistryOutcome {
    /// 2xx.
    Ok,
    /// 404.
    NotFound,
    /// 401 or 403.
    Unauthorized,
    /// Any other status, or a body that is wrong.
    BadResponse,
    /// No answer.
    Unreachable,
    /// No answer in time.
    Timeout,
    /// A redirect that is not followed.
    RefusedRedirect,
}

impl RegistryOutcome {
    /// The label value: `ok`, `not_found`, `unauthorized`, `bad_response`, `unreachable`,
    /// `timeout`, `refused_redirect`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryOutcome::Ok => "ok",
            RegistryOutcome::NotFound => "not_found",
            RegistryOutcome::Unauthorized => "unauthorized",
            RegistryOutcome::BadResponse => "bad_response",
            RegistryOutcome::Unreachable => "unreachable",
            RegistryOutcome::Timeout => "timeout",
            RegistryOutcome::RefusedRedirect => "refused_redirect",
        }
    }
}

pub(super) fn unauthorized(repo: &Repository, status: StatusCode) -> RegistryError {
    RegistryError::Unauthorized {
        host: repo.host.clone(),
        status: status.as_u16(),
    }
}

pub(super) fn bad(repo: &Repository, detail: impl Into<String>) -> RegistryError {
    RegistryError::BadResponse {
        host: repo.host.clone(),
        detail: detail.into(),
    }
}

/// The redirect rule (or the resolver's) that stopped a request, if one did.
fn refused(error: &reqwest::Error) -> Option<&RedirectRefusal> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<RedirectRefusal>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

pub(super) fn transport(
    repo: &Repository,
    error: &reqwest::Error,
    config: &RegistryConfig,
) -> RegistryError {
    let host = repo.host.clone();
    if error.is_timeout() {
        return RegistryError::TimedOut {
            host,
            seconds: config.request_timeout.as_secs().max(1),
        };
    }
    if let Some(refused) = refused(error) {
        return RegistryError::Redirected {
            host,
            detail: refused.to_string(),
        };
    }
    if error.is_redirect() {
        return RegistryError::Redirected {
            host,
            detail: RedirectRefusal::TooMany.to_string(),
        };
    }
    if error.is_body() || error.is_decode() {
        return RegistryError::BadResponse {
            host,
            detail: "the body broke off".into(),
        };
    }
    // reqwest's message may carry the URL, never a header; the source chain says why.
    let mut detail = String::from("connection failed");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    RegistryError::Unreachable { host, detail }
}
