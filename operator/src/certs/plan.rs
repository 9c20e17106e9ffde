//! What the certificate manager does next, decided from what the Secret and the webhook
//! configuration hold: a pure function, so that every step of a rotation is tested without a
//! cluster or a clock.
//!
//! The Secret (`kubernetes.io/tls`) holds:
//! - `tls.crt`, `tls.key`: the certificate every replica serves;
//! - `ca.crt`: the CA bundle the API server must trust (the webhook's `caBundle`);
//! - `next.crt`, `next.key`: during a rotation, the renewed certificate, not served until the
//!   API server trusts its CA.
//!
//! A rotation without downtime is then four steps, one write each, every step safe to stop
//! after (the next pass picks up where the last one stopped, whichever replica runs it):
//! 1. [`Step::Issue`]: a new CA and a certificate signed by it go into `ca.crt` (next to the
//!    CA of the served certificate) and `next.*`; the served certificate does not change.
//! 2. [`Step::Publish`]: the webhook configuration's `caBundle` becomes `ca.crt`: the API
//!    server now trusts both the served certificate and the next one.
//! 3. [`Step::Switch`], at a later pass than the publication, so that the API server has seen
//!    the new bundle: `next.*` becomes `tls.*`, and every replica serves it once it reads the
//!    Secret again.
//! 4. [`Step::Tidy`]: a CA is dropped from the bundle once it has expired (then published).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::issue::{CertInfo, Issued, read_pem, renewal_due};
use crate::server::check_pair;

/// A certificate and its key as found in the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The certificate (PEM).
    pub cert: String,
    /// Its key (PEM).
    pub key: String,
    /// What the certificate says.
    pub info: CertInfo,
}

/// One CA of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ca {
    /// Its certificate alone (PEM).
    pub pem: String,
    /// What it says.
    pub info: CertInfo,
}

/// What the Secret holds, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// `ca.crt`, one entry per certificate.
    pub bundle: Vec<Ca>,
    /// `tls.crt` and `tls.key`.
    pub serving: Option<Pair>,
    /// `next.crt` and `next.key`.
    pub next: Option<Pair>,
}

/// The Secret's keys.
pub mod keys {
    /// The served certificate.
    pub const CERT: &str = "tls.crt";
    /// Its key.
    pub const KEY: &str = "tls.key";
    /// The CA bundle.
    pub const CA: &str = "ca.crt";
    /// The renewed certificate, during a rotation.
    pub const NEXT_CERT: &str = "next.crt";
    /// Its key.
    pub const NEXT_KEY: &str = "next.key";
}

impl Stored {
    /// Reads the Secret's data (`key` → bytes). What cannot be read counts as absent, and is
    /// described in the returned problems; the plan then replaces it.
    pub fn read(get: impl Fn(&str) -> Option<Vec<u8>>) -> (Stored, Vec<String>) {
        let mut problems = Vec::new();
        let text = |key: &str| {
            get(key)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .filter(|t| !t.trim().is_empty())
        };
        let mut pair = |cert_key: &str, key_key: &str| {
            let (cert, key) = (text(cert_key)?, text(key_key));
            let Some(key) = key else {
                problems.push(format!("{cert_key} has no {key_key}"));
                return None;
            };
            // A key that cannot serve the certificate is as good as none: replaced.
            if let Err(e) = check_pair(cert.as_bytes(), key.as_bytes(), cert_key) {
                problems.push(e.to_string());
                return None;
            }
            match read_pem(&cert) {
                Ok(infos) => match infos.into_iter().next() {
                    Some(info) => Some(Pair { cert, key, info }),
                    None => {
                        problems.push(format!("{cert_key} holds no certificate"));
                        None
                    }
                },
                Err(e) => {
                    problems.push(format!("{cert_key}: {e}"));
                    None
                }
            }
        };
        let serving = pair(keys::CERT, keys::KEY);
        let next = pair(keys::NEXT_CERT, keys::NEXT_KEY);
        let mut bundle = Vec::new();
        if let Some(text) = text(keys::CA) {
            match ::pem::parse_many(text.as_bytes()) {
                Ok(blocks) => {
                    for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
                        let pem = ::pem::encode_config(
                            block,
                            ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
                        );
                        match read_pem(&pem).map(|mut infos| infos.pop()) {
                            Ok(Some(info)) => bundle.push(Ca { pem, info }),
                            Ok(None) => {}
                            Err(e) => problems.push(format!("{}: {e}", keys::CA)),
                        }
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", keys::CA)),
            }
        }
        (
            Stored {
                bundle,
                serving,
                next,
            },
            problems,
        )
    }

    /// The bundle as the text of `ca.crt` and of the webhook's `caBundle`.
    pub fn bundle_pem(&self) -> String {
        self.bundle.iter().map(|ca| ca.pem.as_str()).collect()
    }

    /// The Secret's data for this state.
    pub fn data(&self) -> Vec<(&'static str, String)> {
        let pair = |p: &Option<Pair>| {
            p.as_ref()
                .map(|p| (p.cert.clone(), p.key.clone()))
                .unwrap_or_default()
        };
        let (cert, key) = pair(&self.serving);
        let mut data = vec![
            (keys::CERT, cert),
            (keys::KEY, key),
            (keys::CA, self.bundle_pem()),
        ];
        if self.next.is_some() {
            let (cert, key) = pair(&self.next);
            data.extend([(keys::NEXT_CERT, cert), (keys::NEXT_KEY, key)]);
        }
        data
    }
}

impl Issued {
    /// The CA and the pair, as the plan sees them.
    pub fn into_parts(self) -> (Ca, Pair) {
        (
            Ca {
                pem: self.ca,
                info: self.ca_info,
            },
            Pair {
                cert: self.cert,
                key: self.key,
                info: self.cert_info,
            },
        )
    }
}

/// How long certificates live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// From issue to expiry.
    pub validity: Duration,
    /// How long before expiry a certificate is renewed (at most two thirds of the validity).
    pub renew_before: Duration,
}

/// The next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Make a new CA and certificate. `immediate`: nothing usable is served (a first
    /// install, an expired or wrongly named certificate), so there is no working state to
    /// keep and the new one is served at once; otherwise it becomes `next`.
    Issue {
        /// Serve it at once.
        immediate: bool,
    },
    /// Make the webhook configuration's `caBundle` the Secret's `ca.crt`.
    Publish,
    /// Serve `next`: its CA is published.
    Switch,
    /// Drop expired CAs and a `next` that is no longer good.
    Tidy,
    /// Nothing to do.
    Idle,
}

/// Decides the next step. `published` holds the `caBundle` of each webhook of the
/// configuration (at least one); `names` are the names the certificate must hold.
pub fn plan(
    stored: &Stored,
    published: &[String],
    names: &BTreeSet<String>,
    now: SystemTime,
    lifetimes: Lifetimes,
) -> Step {
    let trusted = |p: &Pair| {
        stored
            .bundle
            .iter()
            .any(|ca| ca.info.subject == p.info.issuer && now < ca.info.not_after)
    };
    let usable = |p: &Pair| p.info.names == *names && trusted(p) && now < p.info.not_after;
    let fresh = |p: &Pair| usable(p) && now < renewal_due(&p.info, lifetimes.renew_before);
    let serving_fresh = stored.serving.as_ref().is_some_and(fresh);
    let next_fresh = stored.next.as_ref().is_some_and(fresh);
    if !serving_fresh && !next_fresh {
        return Step::Issue {
            immediate: !stored.serving.as_ref().is_some_and(usable),
        };
    }
    let bundle = stored.bundle_pem();
    if published.iter().any(|p| *p != bundle) {
        return Step::Publish;
    }
    if next_fresh {
        return Step::Switch;
    }
    let stale_next = stored.next.is_some();
    let expired_ca = stored.bundle.iter().any(|ca| ca.info.not_after <= now);
    if stale_next || expired_ca {
        return Step::Tidy;
    }
    Step::Idle
}

/// The state after [`Step::Issue`] with a freshly made CA and certificate.
pub fn issued(stored: &Stored, immediate: bool, ca: Ca, pair: Pair) -> Stored {
    // Only the CA of what is served stays next to the new one: the bundle holds at most two.
    let mut bundle: Vec<Ca> = if immediate {
        Vec::new()
    } else {
        stored
            .bundle
            .iter()
            .filter(|c| {
                stored
                    .serving
                    .as_ref()
                    .is_some_and(|s| s.info.issuer == c.info.subject)
            })
            .cloned()
            .collect()
    };
    bundle.push(ca);
    if immediate {
        Stored {
            bundle,
            serving: Some(pair),
            next: None,
        }
    } else {
        Stored {
            bundle,
            serving: stored.serving.clone(),
            next: Some(pair),
        }
    }
}

/// The state after [`Step::Switch`].
pub fn switched(stored: &Stored) -> Stored {
    Stored {
        bundle: stored.bundle.clone(),
        serving: stored.next.clone().or_else(|| stored.serving.clone()),
        next: None,
    }
}

/// The state after [`Step::Tidy`].
pub fn tidied(stored: &Stored, now: SystemTime) -> Stored {
    Stored {
        bundle: stored
            .bundle
            .iter()
            .filter(|ca| now < ca.info.not_after)
            .cloned()
            .collect(),
        serving: stored.serving.clone(),
        next: None,
    }
}

#[cfg(test)]
mod tests;
