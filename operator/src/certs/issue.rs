//! Making the webhook's certificates (rcgen) and reading back the ones found in the Secret
//! (x509-cert).
//!
//! Each renewal makes a new CA and one serving certificate signed by it, and then drops the
//! CA's private key: it is never stored, so a leaked Secret holds no key that can sign for
//! anything else, and nothing but this one certificate can ever chain to that CA.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// The common name of every CA this operator makes, followed by its creation time and a
/// random suffix so that each CA has a subject of its own.
pub const CA_COMMON_NAME: &str = "image-policy-webhook-ca";

/// A new CA's certificate, and a serving certificate and key signed by it (PEM).
#[derive(Debug, Clone)]
pub struct Issued {
    /// The CA's certificate.
    pub ca: String,
    /// The serving certificate.
    pub cert: String,
    /// The serving certificate's private key (PKCS#8).
    pub key: String,
    /// What the CA's certificate says.
    pub ca_info: CertInfo,
    /// What the serving certificate says.
    pub cert_info: CertInfo,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// A name is neither an IP address nor a valid DNS name.
    #[error("{0:?} cannot be a certificate's name: {1}")]
    Name(String, rcgen::Error),
    /// There is no name to issue for.
    #[error("no name to issue the serving certificate for")]
    NoName,
    /// rcgen or the key generator failed.
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A time that cannot be written in a certificate.
    #[error("{0:?} cannot be written as a certificate's validity")]
    Time(SystemTime),
    /// What was made cannot be read back.
    #[error("cannot read back the certificate just made: {0}")]
    Unreadable(String),
}

/// A new CA and a serving certificate for `names`, both valid from `not_before` to
/// `not_after`. ECDSA P-256, which every API server accepts.
pub fn issue(
    names: &BTreeSet<String>,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<Issued, IssueError> {
    let first = names.iter().next().ok_or(IssueError::NoName)?;
    let (from, until) = (offset(not_before)?, offset(not_after)?);

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = common_name(&format!(
        "{CA_COMMON_NAME} {}-{:08x}",
        seconds(not_before),
        random_u32()
    ));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = from;
    ca.not_after = until;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = common_name(first);
    leaf.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| IssueError::Name(name.clone(), e)),
        })
        .collect::<Result<_, _>>()?;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = from;
    leaf.not_after = until;
    let cert = leaf.signed_by(&key, &issuer)?;
    let read_back = |der: &[u8]| read_der(der).map_err(|e| IssueError::Unreadable(e.to_string()));
    Ok(Issued {
        ca_info: read_back(ca_cert.der())?,
        cert_info: read_back(cert.der())?,
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn offset(t: SystemTime) -> Result<time::OffsetDateTime, IssueError> {
    let secs = i64::try_from(seconds(t)).map_err(|_| IssueError::Time(t))?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| IssueError::Time(t))
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // On failure the suffix is 0: the subject still carries the creation time.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u32::from_be_bytes(bytes)
}

/// What the operator needs to know of a certificate it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, DER-encoded.
    pub subject: Vec<u8>,
    /// The issuer, DER-encoded.
    pub issuer: Vec<u8>,
    /// The start of its validity.
    pub not_before: SystemTime,
    /// The end of its validity.
    pub not_after: SystemTime,
    /// Its DNS names and IP addresses (subjectAltName).
    pub names: BTreeSet<String>,
}

/// Why a certificate cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The text is not PEM.
    #[error("not PEM: {0}")]
    Pem(String),
    /// A block is not a DER certificate.
    #[error("not an X.509 certificate: {0}")]
    Der(String),
}

/// Reads every certificate of a PEM text, in order. An error says what is wrong.
pub fn read_pem(pem: &str) -> Result<Vec<CertInfo>, ReadError> {
    let blocks = ::pem::parse_many(pem.as_bytes()).map_err(|e| ReadError::Pem(e.to_string()))?;
    blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| read_der(b.contents()))
        .collect()
}

/// Reads one DER certificate.
pub fn read_der(der: &[u8]) -> Result<CertInfo, ReadError> {
    let cert = Certificate::from_der(der).map_err(|e| ReadError::Der(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    let encode =
        |name: &x509_cert::name::Name| name.to_der().map_err(|e| ReadError::Der(e.to_string()));
    let mut names = BTreeSet::new();
    if let Ok(Some((_, san))) = tbs.get_extension::<SubjectAltName>() {
        for name in san.0 {
            match name {
                GeneralName::DnsName(dns) => {
                    names.insert(dns.to_string());
                }
                GeneralName::IpAddress(ip) => {
                    let bytes = ip.as_bytes();
                    let ip = <[u8; 4]>::try_from(bytes)
                        .map(IpAddr::from)
                        .or_else(|_| <[u8; 16]>::try_from(bytes).map(IpAddr::from));
                    if let Ok(ip) = ip {
                        names.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: encode(tbs.subject())?,
        issuer: encode(tbs.issuer())?,
        not_before: tbs.validity().not_before.to_system_time(),
        not_after: tbs.validity().not_after.to_system_time(),
        names,
    })
}

/// How long before `not_after` a renewal is due: `renew_before`, but never more than two
/// thirds of the validity (so that short test lifetimes still serve a while).
pub fn renewal_due(info: &CertInfo, renew_before: Duration) -> SystemTime {
    let validity = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or_default();
    let lead = renew_before.min(validity.mul_f64(2.0 / 3.0));
    info.not_after.checked_sub(lead).unwrap_or(info.not_before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_issued_pair_chains_to_its_own_ca_and_names_its_hosts() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let until = now + Duration::from_secs(3600);
        let wanted = names(&["127.0.0.1", "svc.ns.svc", "::1"]);
        let issued = issue(&wanted, now, until).unwrap();
        let ca = &read_pem(&issued.ca).unwrap()[0];
        let leaf = &read_pem(&issued.cert).unwrap()[0];
        assert_eq!((ca, leaf), (&issued.ca_info, &issued.cert_info));
        assert_eq!(leaf.issuer, ca.subject);
        assert_eq!(ca.issuer, ca.subject, "self-signed");
        assert_eq!(leaf.names, wanted);
        assert_eq!((leaf.not_before, leaf.not_after), (now, until));
        assert_eq!((ca.not_before, ca.not_after), (now, until));

        // Each CA is a subject of its own.
        let again = issue(&wanted, now, until).unwrap();
        assert_ne!(read_pem(&again.ca).unwrap()[0].subject, ca.subject);

        // rustls takes the pair as a server's.
        let provided = crate::server::ProvidedCert::new();
        assert!(
            provided
                .set_pem(issued.cert.as_bytes(), issued.key.as_bytes(), "t")
                .unwrap()
        );
    }

    #[test]
    fn the_pair_is_trusted_by_a_client_that_trusts_the_ca_only() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let now = SystemTime::now();
        let issued = issue(
            &names(&["127.0.0.1"]),
            now - Duration::from_secs(60),
            now + Duration::from_secs(3600),
        )
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(issued.ca.as_bytes()).unwrap())
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(issued.cert.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from("127.0.0.1").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap();
        let wrong = verifier.verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from("other.example").unwrap(),
            &[],
            UnixTime::now(),
        );
        assert!(wrong.is_err(), "a name the certificate does not hold");
    }

    #[test]
    fn bad_names_and_pem_are_errors() {
        let now = SystemTime::now();
        assert!(matches!(
            issue(&BTreeSet::new(), now, now),
            Err(IssueError::NoName)
        ));
        assert!(matches!(
            issue(
                &names(&["b\u{e4}d.example"]),
                now,
                now + Duration::from_secs(1)
            ),
            Err(IssueError::Name(..))
        ));
        assert!(
            read_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
        assert_eq!(read_pem("").unwrap(), vec![]);
    }

    #[test]
    fn renewal_is_due_before_expiry_but_not_before_a_third_of_the_validity() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let info = |days: u64| CertInfo {
            subject: vec![],
            issuer: vec![],
            not_before: t0,
            not_after: t0 + Duration::from_secs(days * 86_400),
            names: BTreeSet::new(),
        };
        let day = Duration::from_secs(86_400);
        assert_eq!(renewal_due(&info(365), 30 * day), t0 + 335 * day);
        assert_eq!(renewal_due(&info(30), 30 * day), t0 + 10 * day);
    }
}
