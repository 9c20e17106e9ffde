//! The verifier's command-line settings, shared by `image-policy run` and `image-policy check`.

use std::path::PathBuf;
use std::time::Duration;

use super::{RegistryConfig, VerifyConfig};
use crate::duration::parse_duration;
use crate::policy::hosts::PlainHttp;

/// Why the verifier's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// A `--ca-file` could not be read.
    #[error("{}: {source}", path.display())]
    CaFile {
        /// The CA file given.
        path: PathBuf,
        /// What the operating system said when it was read.
        source: std::io::Error,
    },
}

/// Registry trust, limits and cache settings.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifierArgs {
    /// A PEM CA certificate to trust for registries, in addition to the system roots
    /// (repeatable).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,
    /// A registry (`host` or `host:port`) to reach over plain HTTP (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// The bound on one image's verification.
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = parse_duration)]
    pub verify_timeout: Duration,
    /// The bound on one registry exchange.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub registry_timeout: Duration,
    /// How long a tag's digest is reused.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub digest_cache_ttl: Duration,
    /// How long a verified signature is reused.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub verified_cache_ttl: Duration,
    /// How long "not signed" or "does not verify" is reused.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub rejected_cache_ttl: Duration,
    /// Entries per cache.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub cache_size: u64,
    /// Follow a registry's redirect to a loopback address, an unspecified one or the Pod's own
    /// (POD_IP, POD_IPS): for a registry on the same host, in development. Redirects to
    /// link-local and metadata addresses, and from HTTPS to plain HTTP, are never followed.
    #[arg(long)]
    pub allow_redirects_to_loopback: bool,
}

/// The Pod's own addresses, from the downward API's `POD_IP` and `POD_IPS` (comma-separated);
/// what does not parse is ignored.
pub fn own_addresses(pod_ip: Option<&str>, pod_ips: Option<&str>) -> Vec<std::net::IpAddr> {
    let mut out: Vec<std::net::IpAddr> = Vec::new();
    for text in pod_ip
        .into_iter()
        .chain(pod_ips.into_iter().flat_map(|s| s.split(',')))
    {
        if let Ok(ip) = text.trim().parse()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

impl VerifierArgs {
    /// The verifier's configuration; reads the CA files.
    pub fn config(&self) -> Result<VerifyConfig, ArgsError> {
        let mut registry = RegistryConfig {
            request_timeout: self.registry_timeout,
            ..RegistryConfig::default()
        };
        for path in &self.ca_files {
            let pem = std::fs::read(path).map_err(|source| ArgsError::CaFile {
                path: path.clone(),
                source,
            })?;
            registry.extra_roots_pem.push(pem);
        }
        registry.insecure_registries = PlainHttp::new(&self.insecure_registries);
        registry.allow_redirects_to_loopback = self.allow_redirects_to_loopback;
        registry.own_addresses = own_addresses(
            std::env::var("POD_IP").ok().as_deref(),
            std::env::var("POD_IPS").ok().as_deref(),
        );
        Ok(VerifyConfig {
            registry,
            budget: self.verify_timeout,
            digest_ttl: self.digest_cache_ttl,
            verified_ttl: self.verified_cache_ttl,
            rejected_ttl: self.rejected_cache_ttl,
            cache_capacity: self.cache_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pods_addresses_come_from_the_downward_api() {
        let ips = own_addresses(Some("10.1.2.3"), Some("10.1.2.3,fd00::3, nope"));
        assert_eq!(
            ips,
            [
                "10.1.2.3".parse::<std::net::IpAddr>().unwrap(),
                "fd00::3".parse().unwrap()
            ]
        );
        assert!(own_addresses(None, None).is_empty());
    }
}
