//! Answering a registry's `WWW-Authenticate` challenge: HTTP basic auth, or a bearer token
//! from the token realm (the distribution token protocol), for one repository and one
//! credential.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::{StatusCode, header};

use super::{Registry, RegistryError, Repository, bad, transport, unauthorized};
use crate::verify::credentials::Credential;

impl Registry {
    /// Answers a `WWW-Authenticate` challenge: the basic header, or a bearer token fetched
    /// from the realm. `None` when there is nothing to answer with.
    pub(super) async fn authorize(
        &self,
        challenge: Option<&str>,
        repo: &Repository,
        credential: Option<&Credential>,
    ) -> Result<Option<Arc<str>>, RegistryError> {
        let Some(challenge) = challenge.and_then(Challenge::parse) else {
            return Ok(None);
        };
        match challenge {
            Challenge::Basic => Ok(credential.map(|c| Arc::from(basic_header(c)))),
            Challenge::Bearer { realm, service } => {
                let realm_url = reqwest::Url::parse(&realm)
                    .map_err(|_| bad(repo, "a token realm that is not a URL"))?;
                let realm_host = realm_url.host_str().unwrap_or_default();
                let plain_ok = self.config.insecure_registries.has_name(realm_host);
                if realm_url.scheme() != "https" && !plain_ok {
                    return Err(bad(repo, "a token realm over plain HTTP"));
                }
                let scope = format!("repository:{}:pull", repo.path);
                let mut query = vec![("scope", scope.as_str())];
                if let Some(service) = service.as_deref() {
                    query.push(("service", service));
                }
                let mut request = self.http.get(realm_url).query(&query);
                if let Some(c) = credential {
                    request = request.header(header::AUTHORIZATION, basic_header(c));
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| transport(repo, &e, &self.config))?;
                match response.status() {
                    s if s.is_success() => {}
                    s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                        return Err(unauthorized(repo, s));
                    }
                    s => {
                        return Err(bad(
                            repo,
                            format!("token endpoint answered HTTP {}", s.as_u16()),
                        ));
                    }
                }
                let body = self.read_limited(response, MAX_TOKEN_BYTES, repo).await?;
                let token: TokenResponse = serde_json::from_slice(&body)
                    .map_err(|_| bad(repo, "a token response that is not JSON"))?;
                let token = token.token.or(token.access_token).filter(|t| !t.is_empty());
                let token = token.ok_or_else(|| bad(repo, "a token response without a token"))?;
                Ok(Some(Arc::from(format!("Bearer {token}"))))
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

/// The largest token response read (a JSON object of a token or two).
pub const MAX_TOKEN_BYTES: usize = 64 << 10;
/// The part of a `WWW-Authenticate` header that matters here.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    pub(super) fn parse(header: &str) -> Option<Self> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut realm = None;
        let mut service = None;
        for (name, value) in auth_params(params) {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "service" => service = Some(value),
                _ => {}
            }
        }
        Some(Challenge::Bearer {
            realm: realm?,
            service,
        })
    }
}

/// `name="value", name=value` pairs; commas inside quotes are kept.
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (
                    quoted.get(..end).unwrap_or_default(),
                    quoted.get(end + 1..).unwrap_or_default(),
                ),
                None => (quoted, ""),
            },
            None => match after.find(',') {
                Some(end) => (
                    after.get(..end).unwrap_or_default(),
                    after.get(end..).unwrap_or_default(),
                ),
                None => (after, ""),
            },
        };
        out.push((name, value.to_owned()));
        rest = remainder;
    }
    out
}

pub(super) fn basic_header(credential: &Credential) -> String {
    let pair = format!("{}:{}", credential.username, credential.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}
