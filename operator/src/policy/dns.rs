//! The names Kubernetes gives its objects (RFC 1123, as the API server checks them): what a
//! policy may name as a namespace, a Secret or a ConfigMap.
//!
//! At the bottom of the engine, with [`super::problem`]: it imports nothing from `policy/`.

/// An RFC 1123 label, as Kubernetes requires of namespace names: lowercase letters, digits
/// and `-`, at most 63, starting and ending with a letter or digit.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// An RFC 1123 subdomain, as Kubernetes requires of Secret and ConfigMap names: labels
/// joined by `.`, at most 253 in all.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains_are_what_the_api_server_accepts() {
        for good in ["a", "kube-system", "a1", &"a".repeat(63)] {
            assert!(is_dns_label(good), "{good}");
            assert!(is_dns_subdomain(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
        assert!(is_dns_subdomain("pull.secret-1"));
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        for bad in ["", "a..b", ".a", "../secrets/x", "Pull", long.as_str()] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
        }
    }
}
