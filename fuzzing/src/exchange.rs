//! What a registry answers, through a real exchange: a scripted registry on 127.0.0.1 serves
//! the input's answers to the verifier (`Verifier::verify`), which reaches the readers that
//! are not pure functions: the `WWW-Authenticate` challenge, the token response, the legacy
//! tag's signature manifest and its layers, the referrers API's and the tag schema's indexes,
//! each referrer's manifest and bundle, redirects.
//!
//! Input: NUL-separated parts (see [`Part`]). The script fixes what no mutation could find
//! (the digests that bind a manifest to its blobs), so that a mutation reaches the reader
//! behind the check; everything else is served as the input says.
//!
//! Properties: an answer within its time budget (no hang); a verdict `Verified` only for the
//! signature the seed carries (the made-with-sigstore-js bundle, the connaisseur layer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use image_policy::policy::{ImageName, NamedKey, PublicKey};
use image_policy::verify::{Credential, RegistryConfig, Verdict, Verifier, VerifyConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The parts of an input, in order.
#[derive(Clone, Copy)]
enum Part {
    /// Bytes that choose: [0] the image (by digest or by tag), [1] how the registry
    /// authenticates (none, basic, bearer), [2] whether the referrers API exists, [3] whether
    /// blobs are redirected, [4] the credential.
    Flags,
    /// The `WWW-Authenticate` header of a 401 (`{realm}` is the token endpoint's URL).
    Challenge,
    /// The token endpoint's answer.
    Token,
    /// The manifest the tag names.
    TagManifest,
    /// The legacy tag's signature manifest (its layers' digests are set to the payload's).
    SignatureManifest,
    /// The payload of each legacy layer.
    Payload,
    /// The referrers index (its entries' digests are set to the referrer manifest's).
    Referrers,
    /// The referrer's manifest (its layer's digest is set to the bundle's).
    ReferrerManifest,
    /// The bundle.
    Bundle,
    /// Where blobs are redirected to (`{host}` is the registry).
    Location,
}

/// One answer of the scripted registry.
#[derive(Clone, Default)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// What the scripted registry serves: by path, with and without an `Authorization` header.
#[derive(Default)]
struct Script {
    open: HashMap<String, Reply>,
    guarded: HashMap<String, Reply>,
    challenge: Option<Reply>,
}

/// The scripted registry, its runtime and the verifier that talks to it.
struct Harness {
    runtime: tokio::runtime::Runtime,
    host: String,
    script: Arc<Mutex<Script>>,
    key: NamedKey,
    connaisseur: NamedKey,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let script = Arc::new(Mutex::new(Script::default()));
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let host = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let served = script.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, served.clone()));
            }
        });
        let pem = |text: &str| PublicKey::from_pem(text).unwrap_or_else(|e| panic!("key: {e}"));
        Harness {
            runtime,
            host,
            script,
            key: NamedKey::new(
                "signer",
                pem(include_str!(
                    "../../operator/tests/data/bundles/made-with-sigstore-js/signer.pub.pem"
                )),
            ),
            connaisseur: NamedKey::new(
                "alice",
                pem(include_str!(
                    "../../operator/tests/data/signatures/keys/connaisseur-alice.pub"
                )),
            ),
        }
    })
}

/// The image digests the seeds' signatures sign.
const DIGESTS: [&str; 2] = [
    include_str!("../../operator/tests/data/bundles/made-with-sigstore-js/digest"),
    "sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81",
];

/// The target.
pub fn run(data: &[u8]) {
    let _ = verdict(data);
}

/// The verifier's verdict on the input's registry; `None` when the input names no image.
fn verdict(data: &[u8]) -> Option<Verdict> {
    let parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let part = |p: Part| parts.get(p as usize).copied().unwrap_or_default();
    let flags = part(Part::Flags);
    let flag = |i: usize| flags.get(i).copied().unwrap_or(0);
    let harness = harness();
    let host = harness.host.as_str();
    // A repository per input: the client's caches of tokens and of registries without the
    // referrers API are keyed by it, and must not carry one input's answers to the next.
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let repository = format!("r{}", COUNT.fetch_add(1, Ordering::Relaxed));
    let digest = DIGESTS
        .get(usize::from(flag(0) % 2))
        .map_or("", |d| d.trim());
    let by_tag = flag(0) & 2 != 0;

    let mut script = Script::default();
    let route = |script: &mut Script, path: String, reply: Reply| match flag(1) % 3 {
        0 => {
            script.open.insert(path, reply);
        }
        _ => {
            script.guarded.insert(path, reply);
        }
    };
    let base = format!("/v2/{repository}");
    // The tag, or the digest.
    let tag_manifest = part(Part::TagManifest).to_vec();
    let tag_digest = sha256(&tag_manifest);
    let manifest = Reply::ok(&tag_manifest, Some(&tag_digest));
    route(
        &mut script,
        format!("{base}/manifests/v1"),
        manifest.clone(),
    );
    route(
        &mut script,
        format!("{base}/manifests/{tag_digest}"),
        manifest,
    );
    let signed = if by_tag {
        tag_digest
    } else {
        digest.to_owned()
    };
    let hex = signed.strip_prefix("sha256:").unwrap_or_default();
    // The legacy tag and its layers.
    let payload = part(Part::Payload);
    let signature_manifest = bind_layers(part(Part::SignatureManifest), payload);
    route(
        &mut script,
        format!("{base}/manifests/sha256-{hex}.sig"),
        Reply::ok(&signature_manifest, None),
    );
    let redirect = flag(3) % 2 == 1;
    let blob = |script: &mut Script, body: &[u8]| {
        let path = format!("{base}/blobs/{}", sha256(body));
        let reply = if redirect {
            let location = String::from_utf8_lossy(part(Part::Location)).replace("{host}", host);
            script
                .open
                .insert("/elsewhere".to_owned(), Reply::ok(body, None));
            Reply {
                status: 307,
                headers: vec![("location".into(), location)],
                body: Vec::new(),
            }
        } else {
            Reply::ok(body, None)
        };
        route(script, path, reply);
    };
    blob(&mut script, payload);
    // The referrers: by the API, or by the tag schema.
    let bundle = part(Part::Bundle);
    blob(&mut script, bundle);
    let referrer = bind_layers(part(Part::ReferrerManifest), bundle);
    let referrer_digest = sha256(&referrer);
    route(
        &mut script,
        format!("{base}/manifests/{referrer_digest}"),
        Reply::ok(&referrer, Some(&referrer_digest)),
    );
    let index = bind_manifests(part(Part::Referrers), &referrer_digest, referrer.len());
    if flag(2) % 2 == 0 {
        route(
            &mut script,
            format!("{base}/referrers/{signed}"),
            Reply::ok(&index, None),
        );
    } else {
        route(
            &mut script,
            format!("{base}/manifests/sha256-{hex}"),
            Reply::ok(&index, None),
        );
    }
    // Authentication: a 401 with the input's challenge, and a token endpoint.
    if flag(1) % 3 != 0 {
        let challenge = String::from_utf8_lossy(part(Part::Challenge))
            .replace("{realm}", &format!("http://{host}/token"));
        script.challenge = Some(Reply {
            status: 401,
            headers: vec![("www-authenticate".into(), challenge)],
            body: Vec::new(),
        });
        script
            .open
            .insert("/token".to_owned(), Reply::ok(part(Part::Token), None));
    }
    if let Ok(mut served) = harness.script.lock() {
        *served = script;
    }

    let written = if by_tag {
        format!("{host}/{repository}:v1")
    } else {
        format!("{host}/{repository}@{digest}")
    };
    let image = ImageName::parse(&written).ok()?;
    let credentials = match flag(4) % 2 {
        0 => vec![Credential::new(host, "user", "secret")],
        _ => Vec::new(),
    };
    let verdict = harness.runtime.block_on(async {
        let verifier = verifier(host);
        let keys = [&harness.key, &harness.connaisseur];
        // The verifier's budget is 600 ms; well past it is a hang.
        tokio::time::timeout(
            Duration::from_secs(2),
            verifier.verify(&image, &keys, &credentials),
        )
        .await
    });
    let Ok(verdict) = verdict else {
        panic!("no answer within the budget");
    };
    if let Verdict::Verified { .. } = &verdict {
        let real_payload: &[u8] = include_bytes!(
            "../../operator/tests/data/signatures/connaisseur-071bf7a986f1-layer0/payload.json"
        );
        assert!(
            payload == real_payload || crate::bundle::is_made_signature(bundle),
            "another signature verified"
        );
    }
    Some(verdict)
}

/// The verifier, with a short budget: the scripted registry answers at once.
fn verifier(host: &str) -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        Verifier::new(VerifyConfig {
            registry: RegistryConfig {
                insecure_registries: [host.to_owned()].into(),
                request_timeout: Duration::from_millis(300),
                allow_redirects_to_loopback: true,
                ..RegistryConfig::default()
            },
            budget: Duration::from_millis(600),
            ..VerifyConfig::default()
        })
        .unwrap_or_else(|e| panic!("verifier: {e}"))
    });
    verifier.clear_caches();
    verifier
}

impl Reply {
    fn ok(body: &[u8], digest: Option<&str>) -> Reply {
        let mut headers = vec![("content-type".to_owned(), content_type(body))];
        if let Some(digest) = digest {
            headers.push(("docker-content-digest".to_owned(), digest.to_owned()));
        }
        Reply {
            status: 200,
            headers,
            body: body.to_vec(),
        }
    }
}

/// The media type a JSON body names, as a registry would send it.
fn content_type(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "application/octet-stream".to_owned())
}

/// `sha256:<hex>` of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    image_policy::verify::registry::sha256_digest(bytes)
}

/// A manifest whose layers name `blob` by its digest and size, when it is a JSON manifest.
fn bind_layers(manifest: &[u8], blob: &[u8]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(manifest) else {
        return manifest.to_vec();
    };
    if let Some(layers) = value.get_mut("layers").and_then(Value::as_array_mut) {
        for layer in layers.iter_mut().filter(|l| l.is_object()) {
            layer["digest"] = Value::from(sha256(blob));
            layer["size"] = Value::from(blob.len());
        }
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

/// An index whose entries name the manifest `digest` of `size` bytes, when it is one.
fn bind_manifests(index: &[u8], digest: &str, size: usize) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(index) else {
        return index.to_vec();
    };
    if let Some(entries) = value.get_mut("manifests").and_then(Value::as_array_mut) {
        for entry in entries.iter_mut().filter(|e| e.is_object()) {
            entry["digest"] = Value::from(digest);
            entry["size"] = Value::from(size);
        }
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Answers the requests of one connection from the script, kept alive as registries do (a
/// connection per request would run out of local ports within minutes).
async fn answer(mut stream: tokio::net::TcpStream, script: Arc<Mutex<Script>>) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if pending.len() > 65536 {
                return;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        };
        let head: Vec<u8> = pending.drain(..end).collect();
        let reply = reply(
            &String::from_utf8_lossy(&head).to_ascii_lowercase(),
            &script,
        );
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// The bytes that answer one request (requests here have no body).
fn reply(head: &str, script: &Mutex<Script>) -> Vec<u8> {
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or_default();
    let target = words.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let authorized = head.contains("\r\nauthorization:");
    let reply = script.lock().ok().and_then(|script| {
        script.open.get(path).cloned().or_else(|| {
            let guarded = script.guarded.get(path)?;
            if authorized {
                Some(guarded.clone())
            } else {
                script.challenge.clone()
            }
        })
    });
    let reply = reply.unwrap_or(Reply {
        status: 404,
        ..Reply::default()
    });
    let mut out = format!("HTTP/1.1 {} Scripted\r\n", reply.status);
    for (name, value) in &reply.headers {
        // A header value the input made may hold a line break: cut it there, as a server
        // that writes headers would have to.
        let value = value.split(['\r', '\n']).next().unwrap_or_default();
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
    let mut bytes = out.into_bytes();
    if method != "head" {
        bytes.extend_from_slice(&reply.body);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds reach the end of each path: a signature found and verified, by the legacy
    /// tag and by the referrers (API and tag schema), anonymously, with basic auth, with a
    /// bearer token.
    #[test]
    fn the_seeds_verify() {
        let seeds =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/exchange");
        let mut verified = 0;
        for entry in std::fs::read_dir(seeds).into_iter().flatten().flatten() {
            let data = std::fs::read(entry.path()).unwrap_or_default();
            if let Some(Verdict::Verified { .. }) = verdict(&data) {
                verified += 1;
            }
        }
        assert!(verified >= 4, "{verified} seeds verify");
    }
}
