#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into DIR/<target>/ (default fuzz/seeds/),
from the project's test data (operator/tests/data/, itself copied with attribution from the
public conformance data: see the README of each of its folders) and a few hand-written
cases. `make fuzz-cmin` minimises seeds and findings into the committed fuzz/corpus/.

Multi-part inputs separate their parts with a NUL byte; a leading byte picks a mode where a
target has modes (see fuzzing/src/<target>.rs)."""

import hashlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "operator" / "tests" / "data"
OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "seeds"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = OUT / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def joined(*parts, mode=None):
    body = b"\0".join(p.encode() if isinstance(p, str) else p for p in parts)
    return (bytes([mode]) + body) if mode is not None else body


# review: every AdmissionReview of the test data.
for path in sorted((DATA / "admission").rglob("*.json")):
    if path.name != "index.json":
        write("review", path.read_bytes())

# names: the distribution conformance inputs, and images with patterns written each way.
for line in (DATA / "reference" / "distribution_reference_cases.jsonl").read_text().splitlines():
    if line.strip():
        row = json.loads(line)
        write("names", joined(*(x for x in (row["input"], row.get("pattern")) if x)))
for image, patterns in [
    ("busybox", ["docker.io/library/*", "busybox", "index.docker.io:443/library/busybox:*"]),
    ("[0:0::1]:05000/app:v1", ["[::1]:5000/*", "[::1]:*/app", "127.0.0.1:5000/*"]),
    ("[::ffff:7f00:1]:5000/app@sha256:" + "a" * 64, ["127.0.0.1:5000/*", "127.1:5000/app"]),
    ("0x7f.1:5000/x/y:1", ["127.0.0.1:*/*", "*/x/y"]),
    ("Registry.Example.ORG:0443/myproject/my-image:mytag",
     ["registry.example.org/myproject/*", "*.example.org/*", "registry.example.org/*/my-image:mytag"]),
    ("localhost:5000/a/b", ["localhost:5000/a/*", "localhost/*"]),
]:
    write("names", joined(image, *patterns))

# policy: the policies of the test data, and ones with identities, trusted roots and modes.
for path in sorted((DATA / "policies").glob("*.yaml")):
    write("policy", path.read_bytes())
mock_root = (DATA / "bundles" / "made-with-sigstore-js" / "trusted_root.json").read_text()
key = (DATA / "keys" / "p256.pub").read_text()
policy = {
    "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
    "kind": "ClusterImagePolicy",
    "metadata": {"name": "image-policy"},
    "spec": {"verification": {
        "mode": "Warn",
        "exclude": {"resources": {"namespaces": ["kube-system"]}},
        "trustedRoots": [{"name": "corp", "configMapRef": {"name": "corp-root"}}],
        "keys": [
            {"name": "k", "publicKey": key, "transparencyLog": "Required", "trustedRoot": "corp"},
            {"name": "ci", "keyless": {"issuer": "https://token.actions.githubusercontent.com",
                                       "subjectRegExp": "https://github\\.com/org/.*"}},
            {"name": "corp-ci", "trustedRoot": "corp", "transparencyLog": "Optional",
             "keyless": {"issuerRegExp": "https://issuer\\.corp/.*", "subject": "ci@corp"}},
        ],
        "images": [
            {"namePattern": "ghcr.io/org/*", "keys": [{"name": "ci"}], "mode": "Enforce"},
            {"namePattern": "[::1]:5000/*", "keys": [{"name": "k"}, {"name": "corp-ci"}],
             "secretRef": {"name": "pull", "namespace": "default"}},
            {"namePattern": "*", "keys": [{"name": "k"}]},
        ],
    }},
}
write("policy", joined(json.dumps(policy), mock_root))
write("policy", joined(json.dumps(policy, indent=1), "{}"))
write("policy", json.dumps(policy))

# manifest: the objects of the AdmissionReviews of the test data, as YAML-ish JSON and as
# lists, and hand-written merge keys, aliases and lists.
objects = []
for path in sorted((DATA / "admission").rglob("*.json")):
    if path.name != "index.json":
        review = json.loads(path.read_text())
        request = review.get("request") if isinstance(review, dict) else None
        obj = request.get("object") if isinstance(request, dict) else None
        if isinstance(obj, dict) and obj.get("kind"):
            objects.append(obj)
for obj in objects[:12]:
    write("manifest", json.dumps(obj, indent=1))
write("manifest", json.dumps({"apiVersion": "v1", "kind": "List", "items": objects[:4]}))
write("manifest", "\n---\n".join(json.dumps(o) for o in objects[:3]))
for text in [
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nx-base: &base\n  initContainers: [{name: i, image: evil}]\n"
    "spec:\n  <<: *base\n  containers: [{name: c, image: good}]\n",
    "kind: PodList\napiVersion: v1\nitems:\n- metadata: {name: a}\n  spec: {containers: [{name: c, image: one}]}\n"
    "- {kind: List, items: [{kind: Pod, metadata: {name: n}, spec: {containers: [{name: c, image: two}]}}]}\n",
    "x: &c [{name: c, image: &i busybox}]\n---\nkind: Deployment\nmetadata: {name: d}\n"
    "spec: {template: {spec: {containers: *c, initContainers: [{name: i, image: *i}]}}}\n",
    "kind: Pod\nspec:\n  <<: [{containers: [{image: a}]}, {containers: [{image: b}], volumes: [{name: v, image: {reference: c}}]}]\n",
    "[&a [x, x], *a, *a]\n",
]:
    write("manifest", text)

# identity: expressions and values, valid and not.
for expression, *values in [
    ("https://github\\.com/org/.*", "https://github.com/org/x", "https://github.com/org"),
    (".*@example\\.com", "me@example.com", "me@example.com.evil.org"),
    ("https://github.com/other/x)|(.*", "anything"),
    ("(?x) a b # comment\n", "ab"),
    ("(?m)^a$|b", "a\nb", "b"),
    ("[\\w.-]+@(?:corp|example)\\.com", "a.b@corp.com"),
    ("a{2,5}|\\b", "aaa", ""),
    ("((a)", "a"),
]:
    write("identity", joined(expression, *values))

# registry: referrer indexes, redirects, digests, legacy layers.
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha256:" + "ab" * 32, "size": 700,
                        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"},
                       {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": "sha512:" + "ab" * 64, "size": 1,
                        "artifactType": "application/vnd.oci.empty.v1+json"}]}
write("registry", joined(json.dumps(index), mode=0))
for origin, location in [
    ("https://registry.example.org/v2/x/blobs/sha256:1", "https://cdn.example.net/blob?sig=1"),
    ("https://registry.example.org/v2/", "http://registry.local:5000/v2/"),
    ("https://registry.example.org/v2/", "http://[::ffff:a9fe:a9fe]/latest/meta-data"),
    ("https://registry.example.org/v2/", "https://0251.0376.0251.0376/"),
    ("http://registry.local:5000/v2/", "//metadata.google.internal./x"),
    ("https://registry.example.org/v2/", "file:///etc/passwd"),
]:
    write("registry", joined(origin, location, mode=1))
write("registry", joined("sha256:" + "ab" * 32, mode=2))
signatures = DATA / "signatures"
for which, case in enumerate(["connaisseur-071bf7a986f1-layer0", "sigstore-rs-busybox-ecdsa",
                              "sigstore-rs-suse-toolbox-rsa"]):
    payload = (signatures / case / "payload.json").read_bytes()
    signature = (signatures / case / "signature.b64").read_text().strip()
    write("registry", joined(bytes([which]), payload, signature, "{}", mode=3))
manifest = json.loads(next((signatures / "connaisseur-manifests").glob("*.json")).read_text())
for layer in manifest["layers"]:
    annotations = dict(layer.get("annotations", {}))
    signature = annotations.pop("dev.cosignproject.cosign/signature", "")
    write("registry", joined("{}", signature, json.dumps(annotations), mode=4))

# exchange: a registry's answers (see fuzzing/src/exchange.rs for the parts and flags; no
# flag byte may be 0, the separator).
oci = "application/vnd.oci.image.manifest.v1+json"
made_digest = (DATA / "bundles" / "made-with-sigstore-js" / "digest").read_text().strip()
referrer_manifest = json.dumps({
    "schemaVersion": 2, "mediaType": oci, "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
               "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
    "layers": [{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "size": 1,
                "digest": "sha256:" + "0" * 64}],
    "subject": {"mediaType": oci, "size": 1, "digest": made_digest},
})
tag_manifest = json.dumps({"schemaVersion": 2, "mediaType": oci, "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": "sha256:" + "1" * 64},
    "layers": []})
connaisseur_manifest = next((signatures / "connaisseur-manifests").glob("*.json")).read_text()
connaisseur_payload = (signatures / "connaisseur-071bf7a986f1-layer0" / "payload.json").read_bytes()
made_bundle = (DATA / "bundles" / "made-with-sigstore-js" / "dsse-key.sigstore.json").read_bytes()
for flags, challenge in [
    (bytes([4, 3, 2, 2, 2]), ""),
    (bytes([4, 2, 1, 1, 2]), 'Bearer realm="{realm}",service="registry",scope="repository:r:pull"'),
    (bytes([1, 1, 2, 2, 2]), 'Basic realm="registry"'),
    (bytes([1, 2, 2, 2, 1]), 'Bearer realm="{realm}"'),
    (bytes([2, 3, 2, 2, 2]), ""),
]:
    write("exchange", joined(flags, challenge, '{"token": "t0k3n", "expires_in": 60}', tag_manifest,
                             connaisseur_manifest, connaisseur_payload, json.dumps(index),
                             referrer_manifest, made_bundle, "http://{host}/elsewhere"))

# bundle: each case's bundle as bytes, and as a (short) program of edits.
bundles = DATA / "bundles"
for which, path in enumerate(["made-with-sigstore-js/dsse-key.sigstore.json",
                              "made-with-sigstore-js/dsse-key-rekor.sigstore.json",
                              "kubewarden-controller-v1.34.0-keyless/bundle.sigstore.json",
                              "made-with-sigstore-js/attestation-key.sigstore.json"]):
    write("bundle", bytes([which, 0]) + (bundles / path).read_bytes())
    for program in [b"", bytes([1, 0, 5, 4, 0, 0, 7, 3]), bytes([3, 0, 3, 5, 0, 9, 0, 0, 40]),
                    bytes([2, 0, 12, 4, 0, 0, 3, 1]), bytes([4, 0, 4, 2, 4, 0])]:
        write("bundle", bytes([which, 1]) + program)

# docker_config: config files and pull secrets, with lookups.
for mode, document in [
    (0, '{"auths": {"ghcr.io": {"auth": "dTpwdw=="}, "https://index.docker.io/v1/": {"username": "u", "password": "p"}}}'),
    (1, '{"auths": {"*.example.org/team": {"auth": "dTpwdw=="}, "[::1]:5000": {"auth": "dTpwdw=="}}}'),
    (2, '{"quay.io": {"auth": "dTpwdw==", "email": "x"}}'),
]:
    write("docker_config", joined(document, "ghcr.io", "org/app", "registry.example.org", "team/app",
                                  "docker.io", "library/busybox", "[::1]:5000", "x", mode=mode))
