#!/usr/bin/env node
'use strict';
// Sigstore producers for image-policy's tests: bundles made by @sigstore/sign, attached to
// images by @sigstore/oci, logged by @sigstore/mock's Rekor (served by lib/mock-servers.js).
// Nobody here wrote these libraries; this file only drives them.
//
//   node sigstore.js mocks OUTDIR
//       Fulcio, Rekor and a timestamp authority on 127.0.0.1 until killed. Writes
//       OUTDIR/trusted_root.json and OUTDIR/mock-endpoints.json, then prints the endpoints as
//       one JSON line on stdout.
//   node sigstore.js key PATH
//       Makes the ECDSA P-256 key PATH.key.pem and PATH.pub.pem when missing; prints the
//       public key (PEM).
//   node sigstore.js sign --out FILE --digest sha256:HEX [options]
//       --key PATH          sign with the ECDSA P-256 key PATH.key.pem (made, with
//                           PATH.pub.pem, when missing); without it, keyless (--fulcio)
//       --kind dsse|message a DSSE in-toto statement (default), or a message signature over
//                           --artifact FILE (whose SHA-256 must be the digest)
//       --predicate-type T  the statement's predicate (default cosign's signature one)
//       --subject sha256:H  the statement's subject digest (default --digest)
//       --rekor URL         log the signature in that Rekor (with its SET and inclusion proof)
//       --tsa URL           add an RFC 3161 timestamp from that authority
//       --fulcio URL --identity SUB --issuer ISS   keyless, through that Fulcio
//   node sigstore.js attach --image HOST:PORT/REPO --digest sha256:HEX --bundle FILE
//       [--artifact-type T] [--predicate-type T]
//       The bundle as an OCI referrer of the image, as cosign v3 and GitHub's attestations push
//       it: the referrers API where the registry has one, else the referrers tag schema.
//       Plain HTTP when the host is 127.0.0.1 or localhost (@sigstore/oci's rule).
const fs = require('node:fs');
const path = require('node:path');
const { DSSEBundleBuilder, MessageSignatureBundleBuilder, FulcioSigner, RekorWitness, TSAWitness } =
  require('@sigstore/sign');
const { LocalKeySigner, ensureKeyPair, unsignedJWT, staticIdentity, intotoStatement, toV03, serializeBundle } =
  require('./lib/helpers');

const COSIGN_SIGN = 'https://sigstore.dev/cosign/sign/v1';
const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
// No retries, and a bound on every request: a dead mock must fail a test, not hang it.
const fetchOpts = { retry: 0, timeout: 10000 };

function options(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) usage(`bad argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

function usage(why) {
  console.error(`sigstore.js: ${why}; see the comment at the top of ${__filename}`);
  process.exit(2);
}

function signer(o) {
  if (o.key) {
    const dir = path.dirname(o.key);
    return new LocalKeySigner(ensureKeyPair(dir, path.basename(o.key)).privateKeyPem);
  }
  if (!o.fulcio || !o.identity || !o.issuer) usage('keyless signing needs --fulcio, --identity and --issuer');
  const token = unsignedJWT({ iss: o.issuer, sub: o.identity });
  return new FulcioSigner({ fulcioBaseURL: o.fulcio, identityProvider: staticIdentity(token), ...fetchOpts });
}

function witnesses(o) {
  const out = [];
  if (o.rekor) out.push(new RekorWitness({ rekorBaseURL: o.rekor, ...fetchOpts }));
  if (o.tsa) out.push(new TSAWitness({ tsaBaseURL: o.tsa, ...fetchOpts }));
  return out;
}

async function sign(o) {
  if (!o.out || !/^sha256:[0-9a-f]{64}$/.test(o.digest || '')) usage('sign needs --out and --digest sha256:<hex>');
  const kind = o.kind || 'dsse';
  let bundle;
  if (kind === 'dsse') {
    const subject = (o.subject || o.digest).slice('sha256:'.length);
    const statement = intotoStatement({ name: o.name || 'image', sha256: subject, predicateType: o['predicate-type'] || COSIGN_SIGN });
    const artifact = { type: 'application/vnd.in-toto+json', data: Buffer.from(JSON.stringify(statement)) };
    bundle = await new DSSEBundleBuilder({ signer: signer(o), witnesses: witnesses(o) }).create(artifact);
  } else if (kind === 'message') {
    if (!o.artifact) usage('a message signature needs --artifact');
    const data = fs.readFileSync(o.artifact);
    bundle = toV03(await new MessageSignatureBundleBuilder({ signer: signer(o), witnesses: witnesses(o) }).create({ data }));
  } else {
    usage(`unknown --kind ${kind}`);
  }
  fs.writeFileSync(o.out, JSON.stringify(serializeBundle(bundle)));
}

async function attach(o) {
  const { attachArtifactToImage } = require('@sigstore/oci');
  if (!o.image || !o.digest || !o.bundle) usage('attach needs --image, --digest and --bundle');
  const artifact = fs.readFileSync(o.bundle);
  const json = JSON.parse(artifact.toString('utf8'));
  const descriptor = await attachArtifactToImage({
    imageName: o.image,
    imageDigest: o.digest,
    artifact,
    mediaType: o['artifact-type'] || BUNDLE_MEDIA_TYPE,
    annotations: {
      'dev.sigstore.bundle.content': json.dsseEnvelope ? 'dsse-envelope' : 'message-signature',
      'dev.sigstore.bundle.predicateType': o['predicate-type'] || COSIGN_SIGN,
    },
    // An object, even empty, makes @sigstore/oci sign in: none for a registry without auth.
    credentials: process.env.REGISTRY_USER
      ? { username: process.env.REGISTRY_USER, password: process.env.REGISTRY_PASSWORD || '' }
      : undefined,
    fetchOpts,
  });
  console.log(JSON.stringify(descriptor));
}

async function mocks(outDir) {
  if (!outDir) usage('mocks needs OUTDIR');
  const { startMocks } = require('./lib/mock-servers');
  const m = await startMocks({ outDir: path.resolve(outDir), log: () => {} });
  console.log(JSON.stringify(m.endpoints));
  const stop = () => m.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

const [command, ...rest] = process.argv.slice(2);
async function key(prefix) {
  if (!prefix) usage('key needs PATH');
  process.stdout.write(ensureKeyPair(path.dirname(prefix), path.basename(prefix)).publicKeyPem);
}

const run = {
  key: () => key(rest[0]),
  sign: () => sign(options(rest)),
  attach: () => attach(options(rest)),
  mocks: () => mocks(rest[0]),
}[command];
if (!run) usage(`unknown command ${command}`);
run().catch((e) => {
  console.error(e && e.stack ? e.stack : e, e && e.cause ? e.cause : '');
  process.exit(1);
});
