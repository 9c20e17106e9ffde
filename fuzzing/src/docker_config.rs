//! Docker config files (`~/.docker/config.json`) and pull secrets (`.dockerconfigjson`,
//! legacy `.dockercfg`), and the credentials they give for an image.
//!
//! Input: a mode byte (which format), then NUL-separated parts: the document, then image
//! hosts and repositories to look up, in pairs.
//!
//! Properties: a lookup gives each credential once, gives the same for a host in any case,
//! and gives nothing for a host that is no host.

use std::collections::BTreeMap;

use image_policy::verify::DockerConfig;

/// The target.
pub fn run(data: &[u8]) {
    let (mode, rest) = crate::mode(data);
    let parts = crate::parts(rest);
    let Some((document, lookups)) = parts.split_first() else {
        return;
    };
    let config = match mode % 4 {
        0 => DockerConfig::from_json(document.as_bytes()),
        1 => secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            document,
        ),
        2 => secret("kubernetes.io/dockercfg", ".dockercfg", document),
        _ => secret("kubernetes.io/dockerconfigjson", ".dockercfg", document),
    };
    let Ok(config) = config else {
        return;
    };
    for pair in lookups.chunks(2) {
        let [host, repository] = pair else {
            continue;
        };
        let found = config.lookup(host, repository);
        for (i, credential) in found.iter().enumerate() {
            assert!(
                !found.iter().skip(i + 1).any(|other| other == credential),
                "{host} {repository}: a credential twice"
            );
            let _ = (credential.registry(), credential.identity());
        }
        let upper = config.lookup(&host.to_ascii_uppercase(), repository);
        assert_eq!(found, upper, "{host} in upper case");
        if host.is_empty() {
            assert!(found.is_empty(), "an empty host has credentials");
        }
    }
}

/// A pull secret of `secret_type` holding `document` under `key`.
fn secret(
    secret_type: &str,
    key: &str,
    document: &str,
) -> Result<DockerConfig, image_policy::verify::CredentialError> {
    let data = BTreeMap::from([(key.to_owned(), document.as_bytes().to_vec())]);
    DockerConfig::from_secret(secret_type, &data)
}
