//! What registries answer, through the pure functions that read it: referrer indexes (the
//! referrers API's and the tag schema's, one format), redirects, the tags derived from a
//! digest, and the evidence of a legacy signature layer (its payload, signature and
//! annotations, against the real signatures' keys).
//!
//! Input: a mode byte, then the mode's NUL-separated parts.
//!
//! Not reachable as pure functions (they are read inside the async exchange with a
//! registry), and fuzzed through a scripted registry by [`crate::exchange`] instead: the
//! `WWW-Authenticate` challenge (`verify/registry/auth.rs`, `Challenge::parse` is
//! `pub(super)`), the token response (read inline in `Registry::authorize`), the signature
//! manifest of the legacy tag and each referrer's manifest (read inline in
//! `layout/legacy.rs` and `layout/referrers.rs`), and the simple-signing payload check
//! (`names_digest`, private).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use image_policy::policy::hosts::PlainHttp;
use image_policy::policy::reference::is_valid_tag;
use image_policy::policy::{NamedKey, PublicKey};
use image_policy::verify::bundle::{check_legacy, legacy};
use image_policy::verify::layout::digest_tag;
use image_policy::verify::layout::legacy::signature_tag;
use image_policy::verify::layout::referrers::{MAX_REFERRERS, candidates};
use image_policy::verify::registry::is_sha256_digest;
use image_policy::verify::registry::redirect::RedirectRules;
use reqwest::Url;

use crate::edits::lenient_base64;

/// The real cosign signatures of operator/tests/data/signatures: payload, signature, key.
const SIGNATURES: [(&[u8], &str, &str); 3] = [
    (
        include_bytes!(
            "../../operator/tests/data/signatures/connaisseur-071bf7a986f1-layer0/payload.json"
        ),
        include_str!(
            "../../operator/tests/data/signatures/connaisseur-071bf7a986f1-layer0/signature.b64"
        ),
        include_str!("../../operator/tests/data/signatures/keys/connaisseur-alice.pub"),
    ),
    (
        include_bytes!(
            "../../operator/tests/data/signatures/sigstore-rs-busybox-ecdsa/payload.json"
        ),
        include_str!(
            "../../operator/tests/data/signatures/sigstore-rs-busybox-ecdsa/signature.b64"
        ),
        include_str!("../../operator/tests/data/signatures/keys/sigstore-rs-test-ecdsa.pub"),
    ),
    (
        include_bytes!(
            "../../operator/tests/data/signatures/sigstore-rs-suse-toolbox-rsa/payload.json"
        ),
        include_str!(
            "../../operator/tests/data/signatures/sigstore-rs-suse-toolbox-rsa/signature.b64"
        ),
        include_str!("../../operator/tests/data/signatures/keys/sigstore-rs-suse-rsa.pub"),
    ),
];

/// The target.
pub fn run(data: &[u8]) {
    let (mode, rest) = crate::mode(data);
    match mode % 5 {
        0 => referrers(rest),
        1 => redirect(&crate::parts(rest)),
        2 => tags(&String::from_utf8_lossy(rest)),
        3 => legacy_layer(&crate::parts(rest)),
        _ => {
            let parts = crate::parts(rest);
            if let [payload, signature, annotations] = parts.as_slice() {
                let _ = legacy::bundle(
                    payload.as_bytes(),
                    signature,
                    &read_annotations(annotations),
                );
            }
        }
    }
}

/// A referrer index: what it lists is at most [`MAX_REFERRERS`] digests safe in a URL.
fn referrers(index: &[u8]) {
    if let Ok(found) = candidates(index) {
        assert!(found.len() <= MAX_REFERRERS, "{} referrers", found.len());
        assert!(found.iter().all(|d| is_sha256_digest(d)), "{found:?}");
    }
}

/// The tags derived from a digest are tags, or nothing.
fn tags(digest: &str) {
    for tag in [signature_tag(digest), digest_tag(digest)]
        .into_iter()
        .flatten()
    {
        assert!(is_valid_tag(&tag), "{digest:?} gives the tag {tag:?}");
        assert!(is_sha256_digest(digest), "{digest:?} gives a tag");
    }
}

/// A redirect from the first URL (or the registry) to the second (resolved against the
/// first, as a `Location` is): followed only to HTTP(S), never from HTTPS to plain HTTP but
/// to an opted-in registry, never to a link-local, metadata or local address.
fn redirect(parts: &[String]) {
    let [from, to, ..] = parts else {
        return;
    };
    let Ok(from) = Url::parse(from) else {
        return;
    };
    let Ok(to) = from.join(to) else {
        return;
    };
    let rules = RedirectRules {
        plain_http: PlainHttp::new(["registry.local:5000", "[fd00::1]:5000"]),
        allow_loopback: false,
        own_addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))],
    };
    for origin in [Some(&from), None] {
        if rules.check(origin, &to).is_err() {
            continue;
        }
        let shown = to.as_str();
        assert!(matches!(to.scheme(), "http" | "https"), "{shown}");
        if to.scheme() == "http" && origin.is_none_or(|f| f.scheme() == "https") {
            let host = match (to.host_str(), to.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => String::new(),
            };
            assert!(
                ["registry.local:5000", "[fd00::1]:5000"].contains(&host.as_str()),
                "{shown} from {origin:?}"
            );
        }
        let address = match to.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                // The metadata services' names, not every name that begins as one does
                // (`metadata.google.internp` is somebody else's).
                assert!(
                    !matches!(name.as_str(), "metadata.google.internal" | "metadata.goog")
                        && name != "localhost"
                        && !name.ends_with(".localhost"),
                    "{shown}"
                );
                None
            }
            None => panic!("{shown} has no host"),
        };
        if let Some(address) = address {
            assert!(!forbidden(address), "{shown}");
        }
    }
}

/// Where no redirect goes, decided here independently of the product: link-local, the
/// metadata addresses, loopback, unspecified, this Pod's own, also mapped into IPv6.
fn forbidden(address: IpAddr) -> bool {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match address {
        IpAddr::V4(v4) => {
            v4.octets().starts_with(&[169, 254])
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
                || v4.octets().first() == Some(&127)
                || v4.is_unspecified()
                || v4 == Ipv4Addr::new(10, 0, 0, 5)
        }
        IpAddr::V6(v6) => {
            v6.segments().first().is_some_and(|s| s & 0xffc0 == 0xfe80)
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6.is_loopback()
                || v6.is_unspecified()
        }
    }
}

/// The keys of the real signatures, parsed once.
fn keys() -> &'static [NamedKey; 3] {
    static KEYS: OnceLock<[NamedKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        SIGNATURES.map(|(_, _, pem)| {
            let key = PublicKey::from_pem(pem).unwrap_or_else(|e| panic!("test key: {e}"));
            NamedKey::new("real", key)
        })
    })
}

/// A legacy signature layer (payload, signature annotation, other annotations as a JSON
/// object) against the key of one real signature: it verifies only with that signature's
/// exact payload and signature bytes.
fn legacy_layer(parts: &[String]) {
    let [which, payload, signature, annotations] = parts else {
        return;
    };
    let index = usize::from(which.bytes().next().unwrap_or(0)) % SIGNATURES.len();
    let (Some((real_payload, real_signature, _)), Some(key)) =
        (SIGNATURES.get(index), keys().get(index))
    else {
        return;
    };
    let annotations = read_annotations(annotations);
    let verdict = check_legacy(payload.as_bytes(), signature, &annotations, &[key]);
    if verdict.is_ok() {
        assert_eq!(
            payload.as_bytes(),
            *real_payload,
            "another payload verified"
        );
        let given = lenient_base64(signature.trim());
        let real = lenient_base64(real_signature.trim());
        assert!(
            given.is_some() && given == real,
            "another signature verified: {signature:?}"
        );
    }
}

/// Annotations from a JSON object of strings; none when it is not one.
fn read_annotations(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn the_real_signatures_verify_with_their_keys() {
        for (index, (payload, signature, _)) in SIGNATURES.iter().enumerate() {
            let key = keys().get(index).expect("key");
            let verdict = check_legacy(payload, signature.trim(), &BTreeMap::new(), &[key]);
            assert!(verdict.is_ok(), "{index}: {verdict:?}");
            assert!(
                base64::engine::general_purpose::STANDARD
                    .decode(signature.trim())
                    .is_ok()
            );
        }
    }
}
