//! Public keys of a policy: PEM in, a checked verifier out.
//!
//! Parsing and the signature check itself are sigstore's (`CosignVerificationKey`); this
//! module adds what a policy author needs on top: exactly one `PUBLIC KEY` block, a key that
//! is valid for its algorithm (a point on the curve, RSA of at least 2048 bits) at the time
//! the policy is applied rather than at the first admission, and an error that says what
//! was found instead.

use std::fmt;

use aws_lc_rs::signature::{self as lc, ParsedPublicKey};
use sigstore::crypto::{CosignVerificationKey, Signature};

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A policy's public key, ready to verify signatures.
#[derive(Clone)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    fingerprint: String,
    verifier: CosignVerificationKey,
    /// The SubjectPublicKeyInfo DER, for Sigstore bundles.
    spki: std::sync::Arc<[u8]>,
}

impl PublicKey {
    /// Parses one PEM `PUBLIC KEY` block (SubjectPublicKeyInfo).
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        if pem_text.trim().is_empty() {
            return Err(KeyError::Empty);
        }
        let blocks = pem::parse_many(pem_text).map_err(|e| KeyError::NotPem(e.to_string()))?;
        let block = match blocks.as_slice() {
            [] => return Err(KeyError::NotPem("no PEM block found".into())),
            [one] => one,
            many => return Err(KeyError::SeveralBlocks(many.len())),
        };
        check_label(block.tag())?;
        let der = block.contents();
        let verifier = CosignVerificationKey::try_from_der(der)
            .map_err(|e| KeyError::Unsupported(e.to_string()))?;
        let algorithm = KeyAlgorithm::of(&verifier, der)?;
        algorithm.validate(der)?;
        Ok(PublicKey {
            algorithm,
            fingerprint: sha256_hex(der),
            verifier,
            spki: der.into(),
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The SHA-256 of the key's DER encoding, lowercase hex: the key's identity.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The key's SubjectPublicKeyInfo, DER-encoded (the PEM block's contents).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Whether `signature_b64` (the base64 of a cosign signature) verifies over `payload`.
    pub fn verifies(&self, payload: &[u8], signature_b64: &str) -> bool {
        self.verifier
            .verify_signature(Signature::Base64Encoded(signature_b64.as_bytes()), payload)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for PublicKey {}

/// The algorithms a policy key may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (cosign's default).
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// ECDSA on NIST P-521 with SHA-512 (cosign's KMS keys may be of this kind).
    EcdsaP521,
    /// RSA with PKCS#1 v1.5 padding and SHA-256, as cosign signs with RSA keys.
    Rsa {
        /// The modulus size.
        bits: usize,
    },
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    fn of(verifier: &CosignVerificationKey, der: &[u8]) -> Result<Self, KeyError> {
        Ok(match verifier {
            CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_) => KeyAlgorithm::EcdsaP256,
            CosignVerificationKey::ECDSA_P384_SHA384_ASN1(_) => KeyAlgorithm::EcdsaP384,
            CosignVerificationKey::ECDSA_P521_SHA512_ASN1(_) => KeyAlgorithm::EcdsaP521,
            CosignVerificationKey::ED25519(_) => KeyAlgorithm::Ed25519,
            CosignVerificationKey::RSA_PKCS1_SHA256(_)
            | CosignVerificationKey::RSA_PSS_SHA256(_) => {
                let key = aws_lc_rs::rsa::PublicEncryptingKey::from_der(der).map_err(|e| {
                    // aws-lc refuses keys below 2048 bits before telling their size.
                    if e.description_() == "TooSmall" {
                        KeyError::RsaTooSmall { bits: None }
                    } else {
                        KeyError::Invalid {
                            algorithm: "RSA",
                            detail: e.to_string(),
                        }
                    }
                })?;
                KeyAlgorithm::Rsa {
                    bits: key.key_size_bits(),
                }
            }
        })
    }

    /// Parses the key with the algorithm it claims, so that an EC point off its curve or a
    /// malformed modulus is refused when the policy is applied.
    fn validate(self, der: &[u8]) -> Result<(), KeyError> {
        let algorithm: &'static dyn lc::VerificationAlgorithm = match self {
            KeyAlgorithm::EcdsaP256 => &lc::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::EcdsaP384 => &lc::ECDSA_P384_SHA384_ASN1,
            KeyAlgorithm::EcdsaP521 => &lc::ECDSA_P521_SHA512_ASN1,
            KeyAlgorithm::Ed25519 => &lc::ED25519,
            KeyAlgorithm::Rsa { bits } if bits < MIN_RSA_BITS => {
                return Err(KeyError::RsaTooSmall { bits: Some(bits) });
            }
            KeyAlgorithm::Rsa { .. } => &lc::RSA_PKCS1_2048_8192_SHA256,
        };
        ParsedPublicKey::new(algorithm, der)
            .map(drop)
            .map_err(|e| KeyError::Invalid {
                algorithm: self.name(),
                detail: e.to_string(),
            })
    }

    /// A short human name: `ECDSA P-256`, `RSA`, `Ed25519`.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256",
            KeyAlgorithm::EcdsaP384 => "ECDSA P-384",
            KeyAlgorithm::EcdsaP521 => "ECDSA P-521",
            KeyAlgorithm::Rsa { .. } => "RSA",
            KeyAlgorithm::Ed25519 => "Ed25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Rsa { bits } => write!(f, "RSA-{bits}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Why a `publicKey` is not usable. The messages say what to put there instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing but whitespace.
    #[error("the public key is empty; paste a PEM \"PUBLIC KEY\" block")]
    Empty,
    /// The text holds no parseable PEM block.
    #[error("not a PEM public key ({0}); paste a PEM \"PUBLIC KEY\" block")]
    NotPem(String),
    /// More than one PEM block: which one is meant would be a guess.
    #[error("{0} PEM blocks found; put exactly one public key in each key entry")]
    SeveralBlocks(usize),
    /// A private key was pasted where the public one belongs.
    #[error(
        "this is a private key (\"{0}\"): never put a private key in a policy; use the public key (cosign public-key --key <file>)"
    )]
    PrivateKey(String),
    /// An X.509 certificate instead of a bare key.
    #[error(
        "this is a certificate, not a public key; extract its key with `openssl x509 -pubkey -noout`"
    )]
    Certificate,
    /// PKCS#1 `RSA PUBLIC KEY` rather than SubjectPublicKeyInfo.
    #[error(
        "this is a PKCS#1 \"RSA PUBLIC KEY\" block; convert it with `openssl rsa -RSAPublicKey_in -pubout`"
    )]
    Pkcs1Rsa,
    /// Some other PEM label.
    #[error("a PEM \"{0}\" block is not a public key; a \"PUBLIC KEY\" block is expected")]
    UnexpectedBlock(String),
    /// The key's algorithm is not one a cosign signature can be checked with.
    #[error(
        "unsupported key ({0}); use ECDSA P-256, P-384 or P-521, RSA of at least 2048 bits, or Ed25519"
    )]
    Unsupported(String),
    /// An RSA key below [`MIN_RSA_BITS`].
    #[error("the RSA key is too weak{}; at least 2048 bits are required", bits.map(|b| format!(" ({b} bits)")).unwrap_or_default())]
    RsaTooSmall {
        /// The key's modulus size, when the crypto library told it.
        bits: Option<usize>,
    },
    /// The key claims an algorithm but is not a valid key of it.
    #[error("not a valid {algorithm} public key ({detail})")]
    Invalid {
        /// The algorithm the key claims.
        algorithm: &'static str,
        /// What the crypto library said.
        detail: String,
    },
}

fn check_label(tag: &str) -> Result<(), KeyError> {
    match tag {
        "PUBLIC KEY" => Ok(()),
        "RSA PUBLIC KEY" => Err(KeyError::Pkcs1Rsa),
        "CERTIFICATE" => Err(KeyError::Certificate),
        t if t.contains("PRIVATE KEY") => Err(KeyError::PrivateKey(t.to_owned())),
        t => Err(KeyError::UnexpectedBlock(t.chars().take(64).collect())),
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use sigstore::crypto::SigningScheme;

    use super::*;

    const COSIGN_SEED_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhyQCx0E9wQWSFI9ULGwy3BuRklnt
IqozONbbdbqz11hlRJy9c7SG+hdcFl9jE9uE/dwtuwU2MqU9T/cN0YkWww==
-----END PUBLIC KEY-----
";

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/data/keys/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A key made by sigstore's own signer verifies what that signer signed, and only that.
    fn assert_round_trip(scheme: SigningScheme, expected: KeyAlgorithm) {
        let signer = scheme.create_signer().expect("signer");
        let pem = signer
            .to_sigstore_keypair()
            .expect("pair")
            .public_key_to_pem()
            .expect("pem");
        let key = PublicKey::from_pem(&pem).expect("parses");
        assert_eq!(key.algorithm(), expected);
        let payload = br#"{"critical":{"image":{"docker-manifest-digest":"sha256:00"}}}"#;
        let sig =
            base64::engine::general_purpose::STANDARD.encode(signer.sign(payload).expect("sign"));
        assert!(
            key.verifies(payload, &sig),
            "{expected} verifies its own signature"
        );
        assert!(
            !key.verifies(b"another payload", &sig),
            "{expected} rejects another payload"
        );
    }

    #[test]
    fn ecdsa_p256_parses_and_verifies() {
        assert_round_trip(
            SigningScheme::ECDSA_P256_SHA256_ASN1,
            KeyAlgorithm::EcdsaP256,
        );
    }

    #[test]
    fn ecdsa_p384_parses_and_verifies() {
        assert_round_trip(
            SigningScheme::ECDSA_P384_SHA384_ASN1,
            KeyAlgorithm::EcdsaP384,
        );
    }

    #[test]
    fn ed25519_parses_and_verifies() {
        assert_round_trip(SigningScheme::ED25519, KeyAlgorithm::Ed25519);
    }

    #[test]
    fn rsa_2048_parses_and_verifies() {
        assert_round_trip(
            SigningScheme::RSA_PKCS1_SHA256(2048),
            KeyAlgorithm::Rsa { bits: 2048 },
        );
    }

    #[test]
    fn the_seed_cosign_key_parses() {
        let key = PublicKey::from_pem(COSIGN_SEED_KEY).expect("seed key");
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
        assert_eq!(key.fingerprint().len(), 64);
    }

    #[test]
    fn openssl_made_keys_of_every_kind() {
        for (file, algorithm) in [
            ("p256.pub", KeyAlgorithm::EcdsaP256),
            ("p384.pub", KeyAlgorithm::EcdsaP384),
            ("rsa2048.pub", KeyAlgorithm::Rsa { bits: 2048 }),
            ("rsa4096.pub", KeyAlgorithm::Rsa { bits: 4096 }),
            ("ed25519.pub", KeyAlgorithm::Ed25519),
        ] {
            let key = PublicKey::from_pem(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(key.algorithm(), algorithm, "{file}");
        }
    }

    #[test]
    fn real_cosign_signatures_verify_with_their_key_only() {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/signatures");
        let read =
            |p: &str| std::fs::read(format!("{base}/{p}")).unwrap_or_else(|e| panic!("{p}: {e}"));
        let cases = [
            ("sigstore-rs-busybox-ecdsa", "sigstore-rs-test-ecdsa.pub"),
            ("sigstore-rs-suse-toolbox-rsa", "sigstore-rs-suse-rsa.pub"),
            ("connaisseur-071bf7a986f1-layer0", "connaisseur-alice.pub"),
        ];
        let keys = [
            "sigstore-rs-test-ecdsa.pub",
            "sigstore-rs-suse-rsa.pub",
            "connaisseur-alice.pub",
        ]
        .into_iter()
        .chain(["connaisseur-default.pub", "sigstore-rs-unrelated-ecdsa.pub"]);
        let keys: Vec<_> = keys
            .map(|k| {
                (
                    k,
                    PublicKey::from_pem(&String::from_utf8_lossy(&read(&format!("keys/{k}"))))
                        .expect(k),
                )
            })
            .collect();
        for (case, signer) in cases {
            let payload = read(&format!("{case}/payload.json"));
            let sig = String::from_utf8(read(&format!("{case}/signature.b64"))).expect("utf8");
            for (name, key) in &keys {
                assert_eq!(
                    key.verifies(&payload, sig.trim()),
                    *name == signer,
                    "{case} with {name}"
                );
            }
            let mut tampered = payload.clone();
            tampered.push(b' ');
            let own = keys
                .iter()
                .find(|(n, _)| *n == signer)
                .map(|(_, k)| k)
                .expect("own key");
            assert!(
                !own.verifies(&tampered, sig.trim()),
                "{case}: one more byte must not verify"
            );
        }
    }

    #[test]
    fn unsupported_and_weak_keys_are_refused_with_a_reason() {
        for (file, expected) in [
            ("rsa1024.pub", "the RSA key is too weak"),
            ("secp256k1.pub", "unsupported key"),
            ("dsa2048.pub", "unsupported key"),
            ("x25519.pub", "unsupported key"),
            ("p256.key", "this is a private key"),
            ("p256.crt", "this is a certificate"),
            ("rsa2048-pkcs1.pub", "PKCS#1"),
        ] {
            let err = PublicKey::from_pem(&fixture(file))
                .expect_err(file)
                .to_string();
            assert!(err.contains(expected), "{file}: {err}");
        }
    }

    #[test]
    fn broken_pem_is_refused() {
        let body: String = COSIGN_SEED_KEY
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let cases = [
            ("", KeyError::Empty),
            ("  \n", KeyError::Empty),
            (
                "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n",
                KeyError::NotPem(String::new()),
            ),
            ("not a key", KeyError::NotPem(String::new())),
            (&body, KeyError::NotPem(String::new())),
        ];
        for (input, expected) in cases {
            let err = PublicKey::from_pem(input).expect_err(input);
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&expected),
                "{input:?}: {err}"
            );
        }
        let two = format!("{COSIGN_SEED_KEY}{COSIGN_SEED_KEY}");
        assert_eq!(PublicKey::from_pem(&two), Err(KeyError::SeveralBlocks(2)));
        // A valid PEM frame around DER that is not a key.
        let garbage = "-----BEGIN PUBLIC KEY-----\nMAMCAQE=\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem(garbage),
            Err(KeyError::Unsupported(_))
        ));
    }

    #[test]
    fn an_ec_point_off_the_curve_is_refused() {
        let mut der = pem::parse(COSIGN_SEED_KEY).expect("pem").into_contents();
        if let Some(last) = der.last_mut() {
            *last ^= 0x01;
        }
        let bent = pem::encode(&pem::Pem::new("PUBLIC KEY", der));
        let err = PublicKey::from_pem(&bent).expect_err("off-curve point");
        assert!(
            matches!(
                err,
                KeyError::Invalid {
                    algorithm: "ECDSA P-256",
                    ..
                }
            ),
            "{err}"
        );
    }
}
