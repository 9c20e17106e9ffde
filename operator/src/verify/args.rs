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
        /// The file.
        path: PathBuf,
        /// Why.
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
