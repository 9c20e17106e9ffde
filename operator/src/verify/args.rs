//! The verifier's command-line settings, shared by `image-policy run` and `image-policy check`.

use std::path::PathBuf;
use std::time::Duration;

use super::{RegistryConfig, VerifyConfig};

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
    pub fn config(&self) -> Result<VerifyConfig, String> {
        let mut registry = RegistryConfig {
            request_timeout: self.registry_timeout,
            ..RegistryConfig::default()
        };
        for path in &self.ca_files {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            registry.extra_roots_pem.push(pem);
        }
        registry.insecure_registries = self
            .insecure_registries
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
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

/// `500ms`, `8s`, `10m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 8s, 10m or 1h"))?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    // Ten years is beyond any timeout, TTL or certificate here; moka refuses TTLs over 1000
    // years with a panic, and certificate dates stop at 9999.
    const MAX_MILLIS: u64 = 10 * 365 * 24 * 3_600_000;
    match millis {
        Some(ms) if ms <= MAX_MILLIS => Ok(Duration::from_millis(ms)),
        Some(_) => Err(format!("{text:?} is longer than 10 years (87600h)")),
        None => Err(format!(
            "{text:?} is not a duration like 500ms, 8s, 10m or 1h"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("8s"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("87600h"),
            Ok(Duration::from_secs(87600 * 3600))
        );
        assert!(parse_duration("9000000h").unwrap_err().contains("10 years"));
        for bad in ["", "s", "8", "8x", "-1s", "99999999999999999999h", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
