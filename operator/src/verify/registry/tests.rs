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
