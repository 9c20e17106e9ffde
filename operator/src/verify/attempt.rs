//! Credentials tried in order (docs/contract.md §4): each given one, then anonymous access,
//! moving on when the registry refuses one.

use std::future::Future;

use super::credentials::Credential;
use super::registry::{RegistryError, Repository};

/// `exchange`'s first answer that is not a refusal, trying each of `credentials` in order and
/// anonymous access last; the last refusal when every one is refused.
pub async fn each_credential<'c, T, F, Fut>(
    repo: &Repository,
    credentials: &'c [Credential],
    mut exchange: F,
) -> Result<T, RegistryError>
where
    F: FnMut(Option<&'c Credential>) -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut refused = None;
    for credential in credentials.iter().map(Some).chain([None]) {
        match exchange(credential).await {
            Err(e @ RegistryError::Unauthorized { .. }) => refused = Some(e),
            other => return other,
        }
    }
    Err(refused.unwrap_or_else(|| RegistryError::Unauthorized {
        host: repo.host.clone(),
        status: 401,
    }))
}
