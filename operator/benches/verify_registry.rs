//! Verification latency against the real local registry (Debian's docker-registry over TLS on
//! 127.0.0.1), printed as a table:
//!
//! - cold: caches cleared before each verification, connections kept (the first admission of
//!   an image);
//! - warm: the same verification again (a cached verdict);
//! - bare: the three HTTP exchanges a cold tag needs (HEAD manifest, GET signature manifest,
//!   GET payload), made with the verifier's own client and nothing else, the floor that cold
//!   verification is compared with;
//! - bundle: an image signed as cosign v3 signs (a Sigstore bundle made by npm's
//!   `@sigstore/sign`, attached by `@sigstore/oci` under the referrers tag, in a registry
//!   without the referrers API, over plain HTTP as `@sigstore/oci` needs), verified cold by
//!   digest in a running verifier (4 requests: the legacy tag, the referrers tag, the
//!   referrer's manifest, the bundle), beside those 4 bare exchanges;
//! - keyless: the same layout signed keyless (a certificate of `@sigstore/mock`'s Fulcio,
//!   logged in its Rekor), verified cold against the mocks' trusted root (the certificate
//!   chain, the SCT, the signed entry timestamp and the inclusion proof are checked), round by
//!   round beside the cold key-based bundle, and warm (a cached verdict).
//!
//! Run with `cargo bench -p image-policy --bench verify_registry` (needs `hack/registry.sh
//! install` and `hack/sigstore-js/install.sh`). Ratios are taken within one run, since the
//! machines are noisy.

#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use std::sync::Arc;

use image_policy::policy::{Identity, ImageName, Matcher, NamedKey, PublicKey, TrustRoot};
use image_policy::verify::{RegistryConfig, Repository, Verdict, Verifier, VerifyConfig};
use image_policy_testsupport::cosign::{Pusher, public_key_pem};
use image_policy_testsupport::registry::{Registry, RegistryOptions};
use image_policy_testsupport::sigstore_js::{self, Key, Layout, Mocks};
use sigstore::crypto::SigningScheme;

const ROUNDS: usize = 200;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

async fn measure<F, Fut>(mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..10 {
        f().await;
    }
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed());
    }
    samples
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let registry = Registry::start(RegistryOptions::default());
    let pusher = Pusher::new(&registry);
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .expect("signer");
    let pem = public_key_pem(&signer);
    let key = NamedKey::new("k", PublicKey::from_pem(&pem).expect("key"));
    let digest = pusher.push_image("bench/app", "v1").await;
    pusher.sign("bench/app", &digest, &signer).await;

    let config = VerifyConfig {
        registry: RegistryConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    };
    let verifier = Verifier::new(config).expect("verifier");
    let host = registry.host();
    let by_tag = ImageName::parse(&format!("{host}/bench/app:v1")).expect("image");
    let by_digest = ImageName::parse(&format!("{host}/bench/app@{digest}")).expect("image");
    let keys = [&key];
    let check =
        |verdict: Verdict| assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");

    let client = verifier.registry();
    let repo = Repository::of(&host, "bench/app");
    let sig_tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    let manifest = client
        .manifest(&repo, &sig_tag, None)
        .await
        .expect("sig")
        .expect("present");
    let sig: serde_json::Value = serde_json::from_slice(&manifest.bytes).expect("json");
    let layer = sig["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .to_owned();
    let bare_round = || async {
        client
            .resolve_tag(&repo, "v1", None)
            .await
            .expect("head")
            .expect("present");
        client
            .manifest(&repo, &sig_tag, None)
            .await
            .expect("sig")
            .expect("present");
        client
            .blob(&repo, &layer, None)
            .await
            .expect("blob")
            .expect("present");
    };

    let (cold_tag, bare) = alternate(
        || async {
            verifier.clear_caches();
            check(verifier.verify(&by_tag, &keys, &[]).await);
        },
        &bare_round,
    )
    .await;
    let cold_digest = measure(|| async {
        verifier.clear_caches();
        check(verifier.verify(&by_digest, &keys, &[]).await);
    })
    .await;
    let warm_tag = measure(|| async { check(verifier.verify(&by_tag, &keys, &[]).await) }).await;
    let warm_digest =
        measure(|| async { check(verifier.verify(&by_digest, &keys, &[]).await) }).await;

    let bundles = bundle_rows().await;

    let rows = [
        ("cold, by tag (3 requests)", cold_tag),
        ("cold, by digest (2 requests)", cold_digest),
        ("warm, by tag (cached)", warm_tag),
        ("warm, by digest (cached)", warm_digest),
        ("bare 3 requests, same client", bare),
        ("cold bundle, by digest (4 req.)", bundles.cold),
        ("bare 4 requests, same client", bundles.bare),
        ("cold keyless bundle (4 req.)", bundles.cold_keyless),
        ("cold key bundle, paired with it", bundles.cold_paired),
        ("warm keyless (cached)", bundles.warm_keyless),
    ];
    println!("{ROUNDS} rounds each, after 10 warm-up rounds\n");
    println!("{:<32} {:>10} {:>10} {:>10}", "", "p50", "p90", "p99");
    let mut medians = Vec::new();
    for (name, mut samples) in rows {
        let (p50, p90, p99) = (
            percentile(&mut samples, 0.5),
            percentile(&mut samples, 0.9),
            percentile(&mut samples, 0.99),
        );
        medians.push(p50);
        println!("{name:<32} {:>10.1?} {:>10.1?} {:>10.1?}", p50, p90, p99);
    }
    let ratio = |a: usize, b: usize| medians[a].as_secs_f64() / medians[b].as_secs_f64();
    println!();
    println!(
        "cold tag verification / bare 3 requests (p50): {:.2}x (goal: at most 1.20x)",
        ratio(0, 4)
    );
    println!(
        "cold bundle verification / bare 4 requests (p50): {:.2}x (goal: at most 1.20x)",
        ratio(5, 6)
    );
    println!(
        "cold keyless / cold key bundle verification (p50): {:.2}x",
        ratio(7, 8)
    );
}

/// The samples of the bundle rows.
struct Bundles {
    cold: Vec<Duration>,
    bare: Vec<Duration>,
    cold_keyless: Vec<Duration>,
    cold_paired: Vec<Duration>,
    warm_keyless: Vec<Duration>,
}

/// Runs `cold` and `bare` alternately, round by round, so that the load of a noisy machine
/// falls on both alike; their samples apart.
async fn alternate<C, CF, B, BF>(cold: C, bare: &B) -> (Vec<Duration>, Vec<Duration>)
where
    C: Fn() -> CF,
    CF: std::future::Future<Output = ()>,
    B: Fn() -> BF,
    BF: std::future::Future<Output = ()>,
{
    let mut toggle = false;
    let (cold, bare) = (&cold, bare);
    let paired = measure(|| {
        toggle = !toggle;
        let first = toggle;
        async move {
            if first {
                cold().await;
            } else {
                bare().await;
            }
        }
    })
    .await;
    paired.chunks(2).map(|pair| (pair[0], pair[1])).unzip()
}

/// The cold bundle verification by digest and the 4 bare exchanges it needs; a keyless one
/// beside a key-based one, and the keyless one warm.
async fn bundle_rows() -> Bundles {
    let registry = Registry::start(RegistryOptions {
        plain_http: true,
        ..RegistryOptions::default()
    });
    let host = registry.host();
    let digest = Pusher::new(&registry).push_image("bench/v3", "v1").await;
    let signer = Key::new();
    let bundle = sigstore_js::sign(&["--digest", &digest, "--key", signer.path()]);
    sigstore_js::attach(&format!("{host}/bench/v3"), &digest, &bundle, &[]);
    let key = NamedKey::new("v3", PublicKey::from_pem(&signer.public_pem).expect("key"));
    let verifier = Verifier::new(VerifyConfig {
        registry: RegistryConfig {
            insecure_registries: [host.clone()].into(),
            ..RegistryConfig::default()
        },
        ..VerifyConfig::default()
    })
    .expect("verifier");
    let image = ImageName::parse(&format!("{host}/bench/v3@{digest}")).expect("image");
    let keys = [&key];
    // The first verification learns that this registry has no referrers API, as a running
    // webhook has.
    let first = verifier.verify(&image, &keys, &[]).await;
    assert!(matches!(first, Verdict::Verified { .. }), "{first:?}");

    let client = verifier.registry();
    let repo = Repository::of(&host, "bench/v3");
    let hex = digest.trim_start_matches("sha256:");
    let index = client
        .manifest(&repo, &format!("sha256-{hex}"), None)
        .await
        .expect("index")
        .expect("present");
    let index: serde_json::Value = serde_json::from_slice(&index.bytes).expect("json");
    let referrer = index["manifests"][0]["digest"]
        .as_str()
        .expect("referrer")
        .to_owned();
    let manifest = client
        .manifest(&repo, &referrer, None)
        .await
        .expect("referrer")
        .expect("present");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.bytes).expect("json");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .to_owned();
    let (sig_tag, index_tag) = (format!("sha256-{hex}.sig"), format!("sha256-{hex}"));
    let bare = || async {
        let absent = client.manifest(&repo, &sig_tag, None).await.expect("sig");
        assert!(absent.is_none());
        client
            .manifest(&repo, &index_tag, None)
            .await
            .expect("index")
            .expect("present");
        client
            .manifest(&repo, &referrer, None)
            .await
            .expect("referrer")
            .expect("present");
        client
            .blob(&repo, &layer, None)
            .await
            .expect("bundle")
            .expect("present");
    };
    let cold_key = || async {
        verifier.clear_caches();
        let verdict = verifier.verify(&image, &keys, &[]).await;
        assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    };
    let (cold, bare) = alternate(cold_key, &bare).await;

    let mocks = Mocks::start();
    let workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1";
    let issuer = "https://token.actions.githubusercontent.com";
    let pusher = Pusher::new(&registry);
    let keyless_digest = pusher.push_image("bench/keyless", "v1").await;
    sigstore_js::sign_keyless(
        &pusher,
        "bench/keyless",
        &keyless_digest,
        &mocks,
        (workflow, issuer),
        Layout::Bundle,
        |_| {},
    )
    .await;
    let identity = NamedKey::keyless(
        "release",
        Identity::new(
            Matcher::exact(workflow),
            Matcher::exact(issuer),
            Arc::new(TrustRoot::parse("mock", &mocks.trusted_root())),
        ),
    );
    let keyless_image =
        ImageName::parse(&format!("{host}/bench/keyless@{keyless_digest}")).expect("image");
    let identities = [&identity];
    let keyless_check = |verdict: Verdict| {
        assert!(matches!(verdict, Verdict::Verified { .. }), "{verdict:?}");
    };
    let (cold_keyless, cold_paired) = alternate(
        || async {
            verifier.clear_caches();
            keyless_check(verifier.verify(&keyless_image, &identities, &[]).await);
        },
        &cold_key,
    )
    .await;
    let warm_keyless = measure(|| async {
        keyless_check(verifier.verify(&keyless_image, &identities, &[]).await);
    })
    .await;
    Bundles {
        cold,
        bare,
        cold_keyless,
        cold_paired,
        warm_keyless,
    }
}
