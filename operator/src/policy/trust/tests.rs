use base64::Engine as _;
use serde_json::Value;

use super::*;

/// The trusted root `@sigstore/mock` made for the sigstore-js bundles of the tests.
const MOCK: &str =
    include_str!("../../../tests/data/bundles/made-with-sigstore-js/trusted_root.json");

/// The mock root, edited.
fn edited(edit: impl Fn(&mut Value)) -> TrustRoot {
    let mut root: Value = serde_json::from_str(MOCK).expect("root");
    edit(&mut root);
    TrustRoot::parse("edited", &root.to_string())
}

/// The root with the first of `list` repeated `n` times (logs under distinct IDs, which
/// Sigstore's verifier requires).
fn repeated(list: &str, n: usize) -> TrustRoot {
    edited(|root| {
        let one = root[list][0].clone();
        let copies = (0..n).map(|i| {
            let mut copy = one.clone();
            if copy.get("logId").is_some() {
                let id = base64::engine::general_purpose::STANDARD.encode([i as u8; 32]);
                copy["logId"]["keyId"] = Value::String(id);
            }
            copy
        });
        root[list] = Value::Array(copies.collect());
    })
}

#[test]
fn a_root_lists_at_most_32_authorities_of_each_kind() {
    assert!(TrustRoot::public_good().verifier().is_ok());
    for (list, what) in [
        ("certificateAuthorities", "certificate authorities"),
        ("timestampAuthorities", "timestamp authorities"),
        ("tlogs", "transparency logs"),
        ("ctlogs", "CT logs"),
    ] {
        let at = repeated(list, MAX_AUTHORITIES);
        assert!(at.verifier().is_ok(), "{list}: {:?}", at.verifier().err());
        let past = repeated(list, MAX_AUTHORITIES + 1);
        let error = past.verifier().err().map(ToString::to_string);
        assert_eq!(
            error.as_deref().unwrap_or_default(),
            format!("it lists 33 {what}, more than 32, the limit of a trusted root")
        );
    }
}

#[test]
fn an_authority_chain_holds_at_most_8_certificates() {
    for (list, what) in [
        ("certificateAuthorities", "certificate authority"),
        ("timestampAuthorities", "timestamp authority"),
    ] {
        let chain = |n: usize| {
            edited(move |root| {
                let certificates = &mut root[list][0]["certChain"]["certificates"];
                let one = certificates[0].clone();
                *certificates = Value::Array(vec![one; n]);
            })
        };
        let at = chain(MAX_CHAIN);
        assert!(at.verifier().is_ok(), "{list}: {:?}", at.verifier().err());
        let error = chain(MAX_CHAIN + 1)
            .verifier()
            .err()
            .map(ToString::to_string);
        assert_eq!(
            error.as_deref().unwrap_or_default(),
            format!(
                "it lists 9 certificates in the chain of {what} 1, more than 8, the limit of a \
                 trusted root"
            )
        );
    }
}

#[test]
fn a_root_document_is_at_most_1_mib() {
    let padded = |size: usize| format!("{MOCK}{}", " ".repeat(size - MOCK.len()));
    let at = TrustRoot::parse("at", &padded(MAX_DOCUMENT_BYTES));
    assert!(at.verifier().is_ok(), "{:?}", at.verifier().err());
    let past = TrustRoot::parse("past", &padded(MAX_DOCUMENT_BYTES + 1));
    assert!(matches!(past.verifier(), Err(RootError::TooLarge)));
}

/// A trusted_root.json is read into Sigstore's types: what they do not know is skipped without
/// recursion, so nesting costs no more than the document's size (at most 1 MiB).
#[test]
fn a_deeply_nested_document_is_read_in_its_size() {
    let deep = format!("{{\"x\": {}{}}}", "[".repeat(500_000), "]".repeat(500_000));
    let root = TrustRoot::parse("deep", &deep);
    let why = root.verifier().err().map(ToString::to_string);
    assert!(
        why.as_deref().is_some_and(|e| e.contains("missing field")),
        "{why:?}"
    );
}
