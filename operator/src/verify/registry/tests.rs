use super::auth::Challenge;
use super::*;

#[test]
fn challenges() {
    assert_eq!(
        Challenge::parse("Basic realm=\"Registry Realm\""),
        Some(Challenge::Basic)
    );
    assert_eq!(
        Challenge::parse(
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\""
        ),
        Some(Challenge::Bearer {
            realm: "https://auth.docker.io/token".into(),
            service: Some("registry.docker.io".into())
        })
    );
    assert_eq!(
        Challenge::parse("bearer realm=https://r/t, service=x"),
        Some(Challenge::Bearer {
            realm: "https://r/t".into(),
            service: Some("x".into())
        })
    );
    assert_eq!(
        Challenge::parse("Bearer service=\"x\""),
        None,
        "no realm, nothing to ask"
    );
    assert_eq!(Challenge::parse("Negotiate abc"), None);
    for junk in [
        "",
        "=",
        "Bearer =\"",
        "Bearer realm=\"unterminated",
        "Bearer ,,,=,=",
    ] {
        let _ = Challenge::parse(junk);
    }
}

#[test]
fn docker_hub_is_reached_on_its_api_host() {
    assert_eq!(
        Repository::of("docker.io", "library/busybox").host,
        "registry-1.docker.io"
    );
    assert_eq!(
        Repository::of("Index.Docker.io", "x/y").host,
        "registry-1.docker.io"
    );
    assert_eq!(
        Repository::of("127.0.0.1:5000", "x").to_string(),
        "127.0.0.1:5000/x"
    );
}

#[test]
fn digests_are_sha256_of_the_bytes() {
    assert_eq!(
        sha256_digest(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

/// A body of `len` bytes, as a registry's answer.
fn body(len: usize) -> reqwest::Response {
    reqwest::Response::from(http::Response::new(vec![b'{'; len]))
}

/// Every body read from a registry stops at its limit: the manifest's 4 MiB, the payload's
/// 1 MiB, the token response's 64 KiB, each read whole at the limit and refused one byte past.
#[tokio::test]
async fn a_body_is_read_up_to_its_limit_and_not_past_it() {
    let config = RegistryConfig::default();
    let registry = Registry::new(config.clone()).expect("client");
    let repo = Repository::of("registry.example.org", "app");
    for limit in [
        config.max_manifest_bytes,
        config.max_payload_bytes,
        auth::MAX_TOKEN_BYTES,
    ] {
        let at = registry.read_limited(body(limit), limit, &repo).await;
        assert_eq!(at.map(|b| b.len()).ok(), Some(limit), "{limit}");
        let past = registry.read_limited(body(limit + 1), limit, &repo).await;
        let error = past.expect_err("past the limit").to_string();
        assert!(
            error.contains(&format!("a body over the {limit}-byte limit")),
            "{error}"
        );
    }
    assert_eq!(
        (
            config.max_manifest_bytes,
            config.max_payload_bytes,
            auth::MAX_TOKEN_BYTES
        ),
        (4 << 20, 1 << 20, 64 << 10)
    );
}
