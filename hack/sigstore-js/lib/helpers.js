'use strict';
// Small helpers around @sigstore/sign for producing test bundles.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { bundleToJSON, BUNDLE_V03_MEDIA_TYPE } = require('@sigstore/bundle');

// A @sigstore/sign `Signer` backed by a local ECDSA P-256 key (PEM: PKCS#8
// "PRIVATE KEY" or SEC1 "EC PRIVATE KEY"; encrypted PEM needs `passphrase`).
// sign() must return { signature: Buffer, key: KeyMaterial }.  For a key
// (not a cert) KeyMaterial is { $case: 'publicKey', publicKey: <SPKI PEM>, hint }.
// `hint` ends up in verificationMaterial.publicKey.hint AND as the DSSE
// signature's keyid.  Signature = DER-encoded ECDSA over SHA-256 (what cosign,
// sigstore-go, sigstore-rs expect for PKIX_ECDSA_P256_SHA_256).
class LocalKeySigner {
  constructor(privateKeyPem, { passphrase, hint } = {}) {
    this.privateKey = crypto.createPrivateKey({ key: privateKeyPem, passphrase });
    this.publicKeyPem = crypto.createPublicKey(this.privateKey).export({ type: 'spki', format: 'pem' }).toString();
    const spkiDer = crypto.createPublicKey(this.privateKey).export({ type: 'spki', format: 'der' });
    // Default hint: hex sha256 of the SPKI DER (any string is fine; '' = none).
    this.hint = hint ?? crypto.createHash('sha256').update(spkiDer).digest('hex');
  }
  async sign(data) {
    return {
      signature: crypto.sign('sha256', data, this.privateKey),
      key: { $case: 'publicKey', publicKey: this.publicKeyPem, hint: this.hint },
    };
  }
}

// Generate (or load) an ECDSA P-256 keypair as PEM files.
function ensureKeyPair(dir, name = 'signing') {
  fs.mkdirSync(dir, { recursive: true });
  const keyPath = path.join(dir, `${name}.key.pem`);
  const pubPath = path.join(dir, `${name}.pub.pem`);
  if (!fs.existsSync(keyPath)) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fs.writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    fs.writeFileSync(pubPath, publicKey.export({ type: 'spki', format: 'pem' }));
  }
  return { keyPath, pubPath, privateKeyPem: fs.readFileSync(keyPath, 'utf8'), publicKeyPem: fs.readFileSync(pubPath, 'utf8') };
}

// Unsigned JWT the mock Fulcio accepts (it only jose.decodeJwt()s it; the
// signature is never checked).  @sigstore/sign's FulcioSigner requires
// either {email, email_verified: true} or {sub}; it signs that value as the
// proof-of-possession challenge (the mock doesn't check it either).
function unsignedJWT(claims) {
  const b64u = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return [b64u({ alg: 'none', typ: 'JWT' }), b64u({ aud: 'sigstore', iat: now, exp: now + 600, ...claims }), 'c2ln'].join('.');
}

// IdentityProvider = { getToken(): Promise<string> }
const staticIdentity = (token) => ({ getToken: async () => token });

// in-toto v1 statement, as cosign attest / sign --new-bundle-format produce.
function intotoStatement({ name, sha256, predicateType = 'https://sigstore.dev/cosign/sign/v1', predicate = {} }) {
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name, digest: { sha256 } }],
    predicateType,
    predicate,
  };
}

// MessageSignatureBundleBuilder hard-codes certificateChain:true, i.e. it
// always emits media type v0.2 (+ x509CertificateChain for keyless).  Convert
// to v0.3 (single `certificate`).  DSSE builder already emits v0.3 by default.
function toV03(bundle) {
  const b = { ...bundle, mediaType: BUNDLE_V03_MEDIA_TYPE, verificationMaterial: { ...bundle.verificationMaterial } };
  const c = b.verificationMaterial.content;
  if (c.$case === 'x509CertificateChain') {
    b.verificationMaterial.content = { $case: 'certificate', certificate: c.x509CertificateChain.certificates[0] };
  }
  return b;
}

// bundleToJSON() emits proto3 JSON, which OMITS default values: no
// "tlogEntries" key when there is no tlog entry, and (with the mock Rekor)
// no inclusionProof.logIndex ("0") / "hashes" ([]).  Strict (serde) parsers
// may require them, so by default re-add them (still valid proto3 JSON).
function explicitDefaults(json) {
  const vm = json.verificationMaterial;
  vm.tlogEntries = vm.tlogEntries || [];
  for (const e of vm.tlogEntries) {
    if (e.inclusionProof) {
      e.inclusionProof = { logIndex: '0', hashes: [], ...e.inclusionProof };
    }
  }
  vm.timestampVerificationData = vm.timestampVerificationData || {};
  vm.timestampVerificationData.rfc3161Timestamps = vm.timestampVerificationData.rfc3161Timestamps || [];
  return json;
}

function serializeBundle(bundle, { defaults = process.env.EXPLICIT_DEFAULTS !== '0' } = {}) {
  const json = bundleToJSON(bundle);
  return defaults ? explicitDefaults(json) : json;
}

function writeBundle(file, bundle, opts) {
  const json = serializeBundle(bundle, opts);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  return json;
}

module.exports = { LocalKeySigner, ensureKeyPair, unsignedJWT, staticIdentity, intotoStatement, toV03, serializeBundle, explicitDefaults, writeBundle };
