'use strict';
// Real HTTP servers on 127.0.0.1 wrapping @sigstore/mock's handler functions
// (@sigstore/mock itself only installs *nock* interceptors via mockFulcio()/
// mockRekor()/mockTSA(); it never listens on a socket).  We build the same
// CA / CT log / transparency log / TSA objects the helpers build, keep hold of
// them so their key material can be exported, and serve the handlers over
// plain HTTP.  A protobuf-specs TrustedRoot JSON is produced from the objects.
//
// Usage (library):  const m = await startMocks({ outDir }); ... await m.close();
// Usage (CLI):      node lib/mock-servers.js [outDir]   (runs until SIGINT/SIGTERM)
//   env: MOCK_HOST (127.0.0.1), FULCIO_PORT / REKOR_PORT / TSA_PORT (0 = random),
//        MOCK_REKOR_RAW=1          store the proposed entry verbatim (mock default;
//                                  NOT what real Rekor stores for dsse/intoto),
//        MOCK_TSA_CERTS=1          force the TSA to embed its signing cert in tokens,
//        FULCIO_SUBJECT_CLAIM=sub  JWT claim copied into the (URI) SAN,
//        MOCK_REKOR_SKEW_S=N       the Rekor's clock N seconds off (negative: behind).
const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const {
  initializeCA,
  initializeCTLog,
  fulcioHandler,
  initializeTLog,
  rekorHandler,
  initializeTSA,
  tsaHandler,
} = require('@sigstore/mock');
const { TrustedRoot, HashAlgorithm, PublicKeyDetails } = require('@sigstore/protobuf-specs');

const TRUSTED_ROOT_MEDIA_TYPE = 'application/vnd.dev.sigstore.trustedroot+json;version=0.1';

const genKey = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
function loadOrCreateKeys(dir) {
  const keys = {};
  for (const name of ['ca', 'ctlog', 'rekor', 'tsa']) {
    const f = dir && path.join(dir, `${name}.key.pem`);
    if (f && fs.existsSync(f)) {
      const privateKey = crypto.createPrivateKey(fs.readFileSync(f));
      keys[name] = { privateKey, publicKey: crypto.createPublicKey(privateKey) };
    } else {
      keys[name] = genKey();
      if (f) {
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(f, keys[name].privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      }
    }
  }
  return keys;
}
const toBuf = (v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const pem = (label, der) =>
  `-----BEGIN ${label}-----\n${toBuf(der).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;

// --- Make the mock Rekor store what real Rekor stores -----------------------
// Real Rekor never logs the proposed entry verbatim: for `dsse` v0.0.1 it logs
// {envelopeHash, payloadHash, signatures:[{signature, verifier}]}; for `intoto`
// v0.0.2 it drops envelope.payload.  Verifiers (sigstore-js/-go/-rs) parse the
// canonical form, so a verbatim `dsse` body FAILS verification
// ("signature count mismatch").  hashedrekord is stored as proposed.
// Real Rekor also re-encodes every key/cert it stores via CanonicalValue()
// (Go pem.Encode: 64-column base64 lines).  The mock Fulcio returns
// single-line PEM, which @sigstore/sign forwards verbatim; verifiers that
// compare the logged verifier byte-for-byte (sigstore-python, and anything
// following the sigstore client spec) then fail with "log entry signatures do
// not match bundle".  Input/output: base64 of PEM text.
function canonicalPemB64(b64) {
  const text = Buffer.from(b64, 'base64').toString('utf8');
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
  if (blocks.length === 0) return b64;
  const out = blocks.map(([, label, body]) => pem(label, Buffer.from(body.replace(/\s+/g, ''), 'base64'))).join('');
  return Buffer.from(out).toString('base64');
}

function canonicalizeProposedEntry(entry) {
  if (entry.kind === 'dsse' && entry.spec?.proposedContent) {
    const envStr = entry.spec.proposedContent.envelope;
    const env = JSON.parse(envStr);
    const verifiers = entry.spec.proposedContent.verifiers || [];
    const sigs = env.signatures
      .map((s, i) => ({ signature: s.sig, verifier: canonicalPemB64(verifiers[i] ?? verifiers[0]) }))
      .sort((a, b) => (a.signature < b.signature ? -1 : 1));
    return {
      apiVersion: entry.apiVersion,
      kind: 'dsse',
      spec: {
        envelopeHash: { algorithm: 'sha256', value: sha256(Buffer.from(envStr)).toString('hex') },
        payloadHash: {
          algorithm: 'sha256',
          value: sha256(Buffer.from(env.payload, 'base64')).toString('hex'),
        },
        signatures: sigs,
      },
    };
  }
  if (entry.kind === 'intoto' && entry.spec?.content?.envelope) {
    const copy = JSON.parse(JSON.stringify(entry));
    delete copy.spec.content.envelope.payload;
    for (const sig of copy.spec.content.envelope.signatures || []) {
      // (intoto double-base64-encodes sig and payload, but publicKey is base64(PEM))
      if (sig.publicKey) sig.publicKey = canonicalPemB64(sig.publicKey);
    }
    return copy;
  }
  if (entry.kind === 'hashedrekord' && entry.spec?.signature?.publicKey?.content) {
    const copy = JSON.parse(JSON.stringify(entry));
    copy.spec.signature.publicKey.content = canonicalPemB64(copy.spec.signature.publicKey.content);
    return copy;
  }
  return entry;
}

// A Date stand-in that always reads "now", truncated to whole seconds.
function wholeSecondClock() {
  return new Proxy(new Date(), {
    get(_t, prop) {
      const d = new Date(Math.floor(Date.now() / 1000) * 1000);
      const v = d[prop];
      return typeof v === 'function' ? v.bind(d) : v;
    },
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// routes: { 'POST /path': async (bodyString) => {statusCode, response, contentType} }
function serve(host, port, routes, name, log) {
  const server = http.createServer(async (req, res) => {
    const key = `${req.method} ${new URL(req.url, 'http://x').pathname}`;
    const route = routes[key];
    try {
      const body = await readBody(req);
      if (!route) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${key}\n`);
        return;
      }
      const { statusCode, response, contentType } = await route(body, req);
      const payload = typeof response === 'string' ? response : toBuf(response);
      res.writeHead(statusCode, { 'Content-Type': contentType || 'text/plain' }).end(payload);
      log(`${name}: ${key} -> ${statusCode}`);
    } catch (e) {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(e && e.stack));
      log(`${name}: ${key} -> 500 ${e}`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

async function startMocks(opts = {}) {
  const host = opts.host || process.env.MOCK_HOST || '127.0.0.1';
  const log = opts.log || (process.env.MOCK_QUIET ? () => {} : (m) => console.error(`[mock] ${m}`));
  const rawRekor = opts.rawRekor ?? process.env.MOCK_REKOR_RAW === '1';
  const tsaCerts = opts.tsaCerts ?? process.env.MOCK_TSA_CERTS === '1';
  const subjectClaim = opts.subjectClaim || process.env.FULCIO_SUBJECT_CLAIM || 'sub';
  const ports = {
    fulcio: Number(opts.fulcioPort ?? process.env.FULCIO_PORT ?? 0),
    rekor: Number(opts.rekorPort ?? process.env.REKOR_PORT ?? 0),
    tsa: Number(opts.tsaPort ?? process.env.TSA_PORT ?? 0),
  };
  // MOCK_REKOR_SKEW_S (or opts.rekorSkewSeconds): the Rekor's clock runs this
  // many seconds off (negative: behind), so that its integrated times fall
  // outside the 10-minute validity of the Fulcio certificates it logs.
  const rekorSkewMs = 1000 * Number(opts.rekorSkewSeconds ?? process.env.MOCK_REKOR_SKEW_S ?? 0);
  // Backdate validFor.start a little so verifiers with clock skew tolerance
  // checks don't trip; the mock CA/TSA certs' notBefore is "now" anyway. A
  // skewed Rekor's times stay inside the root's validity windows.
  const startedAt = new Date(Date.now() - 60_000 - Math.abs(rekorSkewMs));
  startedAt.setMilliseconds(0);

  // Distinct keys per service (mockFulcio() would reuse one key for CA+CTlog).
  // MOCK_KEYS_DIR (or opts.keysDir): load/save the four keypairs as PEM so the
  // Rekor / CT log key ids stay stable across restarts (the CA and TSA
  // certificates are still re-issued, with notBefore = start time).
  const keys = opts.keys || loadOrCreateKeys(opts.keysDir || process.env.MOCK_KEYS_DIR);

  // Rekor's URL host goes into the checkpoint origin ("<host> - <treeID>") and
  // the signature line, so the port must be known before initializeTLog().
  // Listen first with a placeholder router, then fill it in.
  const routes = { fulcio: {}, rekor: {}, tsa: {} };
  const servers = {};
  for (const name of ['fulcio', 'rekor', 'tsa']) {
    servers[name] = await serve(host, ports[name], routes[name], name, log);
  }
  const url = (name) => `http://${host}:${servers[name].address().port}`;
  const urls = { fulcio: url('fulcio'), rekor: url('rekor'), tsa: url('tsa') };

  const ctlog = await initializeCTLog(keys.ctlog);
  const ca = await initializeCA(keys.ca, ctlog);
  const rekorClock = rekorSkewMs ? { getTime: () => Math.floor((Date.now() + rekorSkewMs) / 1000) * 1000 } : undefined;
  const tlog = await initializeTLog(urls.rekor, keys.rekor, rekorClock);
  // The mock TSA stamps genTime with milliseconds, DER-trimmed (".18Z",
  // ".1Z"), which @sigstore/core rejects ("invalid time") ~10% of the time and
  // which many DER parsers (e.g. RustCrypto `der` GeneralizedTime) reject
  // always.  Real sigstore TSA emits whole seconds.  Pass a live clock that
  // truncates to whole seconds (initializeTSA's 2nd arg is a Date it reads
  // via getUTC*()).  MOCK_TSA_MS=1 keeps the mock's original behaviour.
  const keepMs = opts.tsaMillis ?? process.env.MOCK_TSA_MS === '1';
  const tsa = await initializeTSA(keys.tsa, keepMs ? undefined : wholeSecondClock());

  const fh = fulcioHandler(ca, { strict: true, subjectClaim });
  const rh = rekorHandler(tlog, { strict: true });
  const th = tsaHandler(tsa, { strict: true });

  // /api/v2/signingCert. The real Fulcio also takes the identity token as a bearer
  // token, which is where sigstore-go (so cosign) sends it, and answers 200, which is what
  // sigstore-go accepts; the mock reads only the body's credentials and answers 201. For such
  // a request the header's token is moved into the body and the answer is the real one's.
  routes.fulcio[`POST ${fh.path}`] = async (body, req) => {
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization || '');
    if (!bearer) return fh.fn(body);
    const json = JSON.parse(body);
    if (!json.credentials) json.credentials = { oidcIdentityToken: bearer[1] };
    const out = await fh.fn(JSON.stringify(json));
    return out.statusCode === 201 ? { ...out, statusCode: 200 } : out;
  };
  routes.rekor[`POST ${rh.path}`] = (body) => // /api/v1/log/entries
    rh.fn(rawRekor ? body : JSON.stringify(canonicalizeProposedEntry(JSON.parse(body))));
  // Not served: rekorV2Handler (/api/v2/log/entries). Its "canonicalizedBody"
  // is a JSON dump of the JS request object (Buffers as {data:[...]}), not a
  // Rekor v2 entry; @sigstore/verify crashes on it. Use Rekor v1 only.
  routes.tsa[`POST ${th.path}`] = (body) => { // /api/v1/timestamp
    if (!tsaCerts) return th.fn(body);
    return th.fn(JSON.stringify({ ...JSON.parse(body), certificates: true }));
  };
  // Convenience GET endpoints (same paths as the real services).
  const caRootDer = toBuf(ca.rootCertificate);
  const tsaChain = [toBuf(tsa.intCertificate), toBuf(tsa.rootCertificate)];
  const rekorSpki = Buffer.from(tlog.publicKey);
  const ctlogSpki = Buffer.from(ctlog.publicKey);
  const ok = (response, contentType = 'application/x-pem-file') => async () => ({ statusCode: 200, response, contentType });
  routes.fulcio['GET /api/v1/rootCert'] = ok(pem('CERTIFICATE', caRootDer));
  routes.fulcio['GET /healthz'] = ok('ok\n', 'text/plain');
  routes.rekor['GET /api/v1/log/publicKey'] = ok(pem('PUBLIC KEY', rekorSpki));
  routes.rekor['GET /healthz'] = ok('ok\n', 'text/plain');
  routes.tsa['GET /api/v1/timestamp/certchain'] = ok(tsaChain.map((c) => pem('CERTIFICATE', c)).join(''));
  routes.tsa['GET /healthz'] = ok('ok\n', 'text/plain');

  const pubKey = (spki, start) => ({
    rawBytes: spki,
    keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
    validFor: { start },
  });
  const trustedRootObj = {
    mediaType: TRUSTED_ROOT_MEDIA_TYPE,
    tlogs: [
      {
        baseUrl: urls.rekor,
        hashAlgorithm: HashAlgorithm.SHA2_256,
        publicKey: pubKey(rekorSpki, startedAt),
        logId: { keyId: sha256(rekorSpki) },
      },
    ],
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: urls.fulcio,
        certChain: { certificates: [{ rawBytes: caRootDer }] },
        validFor: { start: startedAt },
      },
    ],
    ctlogs: [
      {
        // The mock CT log is in-process only (no HTTP API); baseUrl is informational.
        baseUrl: `${urls.fulcio}/ct`,
        hashAlgorithm: HashAlgorithm.SHA2_256,
        publicKey: pubKey(ctlogSpki, startedAt),
        logId: { keyId: toBuf(ctlog.logID) }, // == sha256(ctlog SPKI DER)
      },
    ],
    timestampAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'tsa' },
        uri: urls.tsa,
        certChain: { certificates: tsaChain.map((rawBytes) => ({ rawBytes })) }, // [leaf/int, root]
        validFor: { start: startedAt },
      },
    ],
  };
  const trustedRoot = TrustedRoot.toJSON(trustedRootObj);

  const endpoints = { ...urls, startedAt: startedAt.toISOString(), pid: process.pid };
  if (opts.outDir) {
    fs.mkdirSync(opts.outDir, { recursive: true });
    fs.writeFileSync(path.join(opts.outDir, 'trusted_root.json'), JSON.stringify(trustedRoot, null, 2) + '\n');
    fs.writeFileSync(path.join(opts.outDir, 'mock-endpoints.json'), JSON.stringify(endpoints, null, 2) + '\n');
    fs.writeFileSync(path.join(opts.outDir, 'fulcio-root.pem'), pem('CERTIFICATE', caRootDer));
    fs.writeFileSync(path.join(opts.outDir, 'rekor-pub.pem'), pem('PUBLIC KEY', rekorSpki));
    fs.writeFileSync(path.join(opts.outDir, 'ctlog-pub.pem'), pem('PUBLIC KEY', ctlogSpki));
    fs.writeFileSync(path.join(opts.outDir, 'tsa-chain.pem'), tsaChain.map((c) => pem('CERTIFICATE', c)).join(''));
  }

  const close = () =>
    Promise.all(Object.values(servers).map((s) => new Promise((r) => { s.closeAllConnections?.(); s.close(() => r()); })));

  return { urls, endpoints, trustedRoot, trustedRootObj, keys, ca, ctlog, tlog, tsa, close };
}

module.exports = { startMocks, canonicalizeProposedEntry, TRUSTED_ROOT_MEDIA_TYPE };

if (require.main === module) {
  const outDir = path.resolve(process.argv[2] || path.join(__dirname, '..', 'out'));
  startMocks({ outDir }).then((m) => {
    console.log(JSON.stringify(m.endpoints));
    console.error(`[mock] wrote ${outDir}/trusted_root.json and mock-endpoints.json; Ctrl-C to stop`);
    const stop = () => m.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  }, (e) => { console.error(e); process.exit(1); });
}
