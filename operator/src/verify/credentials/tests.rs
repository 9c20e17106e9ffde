use super::key::{compile_glob, glob_matches};
use super::*;
use base64::Engine as _;

const SECRET: &str = "s3cr3t-P4ss";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn config(auths: &[(&str, &str, &str)]) -> DockerConfig {
    let auths: Map<String, Value> = auths
        .iter()
        .map(|(key, user, pass)| {
            let entry = serde_json::json!({ "username": user, "password": pass });
            ((*key).to_owned(), entry)
        })
        .collect();
    let json = serde_json::json!({ "auths": auths }).to_string();
    DockerConfig::from_json(json.as_bytes()).unwrap()
}

fn users(config: &DockerConfig, host: &str, repository: &str) -> Vec<String> {
    config
        .lookup(host, repository)
        .into_iter()
        .map(|credential| credential.username.clone())
        .collect()
}

fn secret(secret_type: &str, key: &str, json: &str) -> Result<DockerConfig, CredentialError> {
    let data = BTreeMap::from([(key.to_owned(), json.as_bytes().to_vec())]);
    DockerConfig::from_secret(secret_type, &data)
}

#[test]
fn matching_table() {
    // (config key, image host, image repository, covered)
    let cases: &[(&str, &str, &str, bool)] = &[
        // exact host
        ("ghcr.io", "ghcr.io", "org/app", true),
        ("ghcr.io", "quay.io", "org/app", false),
        ("ghcr.io", "sub.ghcr.io", "org/app", false),
        // ports: exact, and a missing port is a value of its own
        ("reg.local:5000", "reg.local:5000", "app", true),
        ("reg.local:5000", "reg.local:5001", "app", false),
        ("reg.local:5000", "reg.local", "app", false),
        ("reg.local", "reg.local:5000", "app", false),
        ("reg.local:", "reg.local", "app", true),
        ("localhost:5000", "localhost:5000", "app", true),
        ("[fd00::1]:5000", "[fd00::1]:5000", "app", true),
        ("[fd00::1]:5000", "[fd00::1]", "app", false),
        ("[FD00::1]", "[fd00::1]", "app", true),
        // globs, label by label, same number of labels
        ("*.example.com", "a.example.com", "app", true),
        ("*.example.com", "a.b.example.com", "app", false),
        ("*.example.com", "example.com", "app", false),
        ("*.example.com", "a.example.org", "app", false),
        ("*.*.example.com", "a.b.example.com", "app", true),
        ("reg-[0-9].example.com", "reg-7.example.com", "app", true),
        ("reg-[0-9].example.com", "reg-x.example.com", "app", false),
        // `?` starts a URL query, as in Go's url.Parse: the key is the host `reg-`
        ("reg-?.example.com", "reg-1.example.com", "app", false),
        ("reg-?.example.com", "reg-", "app", true),
        // Go's url.Parse rejects `^` and `\` in a host: the key is skipped
        ("reg-[^0-9].example.com", "reg-x.example.com", "app", false),
        ("reg-\\x.example.com", "reg-x.example.com", "app", false),
        ("*-reg.example.com", "eu-reg.example.com", "app", true),
        ("*.example.com:443", "a.example.com:443", "app", true),
        ("*.example.com:443", "a.example.com", "app", false),
        ("*", "localhost", "app", true),
        ("*", "a.b", "app", false),
        ("reg[.example.com", "reg[.example.com", "app", false),
        // path prefixes on `/` boundaries
        ("reg.example.org/team", "reg.example.org", "team/app", true),
        ("reg.example.org/team", "reg.example.org", "team", true),
        (
            "reg.example.org/team",
            "reg.example.org",
            "team/sub/app",
            true,
        ),
        (
            "reg.example.org/team",
            "reg.example.org",
            "teamx/app",
            false,
        ),
        (
            "reg.example.org/team",
            "reg.example.org",
            "other/team",
            false,
        ),
        ("reg.example.org/team/", "reg.example.org", "team/app", true),
        ("reg.example.org/team/app", "reg.example.org", "team", false),
        ("*.example.org/team", "eu.example.org", "team/app", true),
        // Docker Hub: one registry under four names
        ("docker.io", "docker.io", "library/busybox", true),
        ("index.docker.io", "docker.io", "library/busybox", true),
        (
            "https://index.docker.io/v1/",
            "docker.io",
            "library/busybox",
            true,
        ),
        ("registry-1.docker.io", "docker.io", "library/busybox", true),
        ("docker.io", "index.docker.io", "library/busybox", true),
        ("docker.io", "registry-1.docker.io", "library/busybox", true),
        (
            "https://index.docker.io/v1/",
            "docker.io:443",
            "library/busybox",
            false,
        ),
        ("docker.io/myorg", "docker.io", "myorg/app", true),
        ("docker.io/myorg", "docker.io", "library/busybox", false),
        ("*.docker.io", "docker.io", "library/busybox", false),
        // URL forms
        ("https://ghcr.io", "ghcr.io", "org/app", true),
        ("http://ghcr.io/", "ghcr.io", "org/app", true),
        ("HTTPS://ghcr.io/v2/", "ghcr.io", "org/app", true),
        ("https://ghcr.io/v1/org", "ghcr.io", "org/app", true),
        ("https://ghcr.io/v2/org/", "ghcr.io", "orgx/app", false),
        ("https://ghcr.io/v2", "ghcr.io", "org/app", false),
        ("https://ghcr.io/v2", "ghcr.io", "v2/app", true),
        ("https://user@ghcr.io/org?x=1#f", "ghcr.io", "org/app", true),
        ("  ghcr.io  ", "ghcr.io", "org/app", true),
        // case: hosts fold, paths do not
        ("GHCR.io", "ghcr.IO", "org/app", true),
        ("*.Example.COM", "A.example.com", "app", true),
        ("ghcr.io/Org", "ghcr.io", "org/app", false),
        // keys that are no registry match nothing
        ("", "ghcr.io", "org/app", false),
        ("ghcr.io:abc", "ghcr.io", "org/app", false),
        ("https:///org", "ghcr.io", "org/app", false),
    ];
    for (key, host, repository, covered) in cases {
        let config = config(&[(key, "user", "pass")]);
        assert_eq!(
            !config.lookup(host, repository).is_empty(),
            *covered,
            "key {key:?}, image {host:?} {repository:?}"
        );
    }
}

/// The spellings of one registry's IP address (and port) that Go's `url.Parse`, which the
/// kubelet reads keys and images with, accepts: a key in any of them covers an image in any
/// of them, as the image's registry is written by `policy::hosts`, and no other address.
#[test]
fn a_key_for_an_ip_address_covers_the_image_in_every_spelling() {
    let loopback_v6 = ["[::1]", "[0:0::1]", "[0:0:0:0:0:0:0:1]", "[0000::0001]"];
    let loopback_v4 = [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "2130706433",
        "[::ffff:127.0.0.1]",
        "[::FFFF:7F00:1]",
        "[0:0:0:0:0:ffff:7f00:0001]",
    ];
    let documentation = [
        "[2001:db8::a]",
        "[2001:DB8:0:0:0:0:0:A]",
        "[2001:0db8::000a]",
    ];
    let groups: [&[&str]; 3] = [&loopback_v6, &loopback_v4, &documentation];
    for (g, group) in groups.iter().enumerate() {
        for key in group.iter() {
            for port in ["5000", "05000"] {
                let config = config(&[(&format!("{key}:{port}/team"), "user", "pass")]);
                for (h, hosts) in groups.iter().enumerate() {
                    for host in hosts.iter() {
                        // As the webhook looks up an image (by its registry), and as
                        // written; the reference grammar refuses `[::ffff:127.0.0.1]` in an
                        // image, which a key may still write.
                        let written = format!("{host}:5000/team/app:v1");
                        let parsed = crate::policy::ImageName::parse(&written);
                        let registry = parsed.as_ref().map(|i| i.registry().to_owned());
                        for host in registry.into_iter().chain([format!("{host}:005000")]) {
                            assert_eq!(
                                !config.lookup(&host, "team/app").is_empty(),
                                g == h,
                                "key {key}:{port}, image {written} (looked up as {host})"
                            );
                        }
                        let other_port = format!("{host}:5001");
                        assert!(config.lookup(&other_port, "team/app").is_empty());
                    }
                }
            }
        }
    }
    assert_eq!(
        Credential::new("[::FFFF:7F00:1]:05000/team", "u", "p").registry(),
        "127.0.0.1:5000/team"
    );
    assert_eq!(
        Credential::new("[2001:DB8:0::A]", "u", "p").registry(),
        "[2001:db8::a]"
    );
}

#[test]
fn image_host_that_is_no_registry_matches_nothing() {
    let config = config(&[("*", "u", "p"), ("ghcr.io", "u", "p")]);
    for host in ["", "ghcr.io:x", "[fd00::1", "a:b:c"] {
        assert!(config.lookup(host, "app").is_empty(), "{host:?}");
    }
}

#[test]
fn most_specific_key_first() {
    let config = config(&[
        ("reg.example.org", "host", "p"),
        ("reg.example.org/team/app", "app", "p"),
        ("*.example.org/team", "glob-team", "p"),
        ("reg.example.org/team", "team", "p"),
        ("*.example.org", "glob", "p"),
        ("other.example.org", "other", "p"),
    ]);
    assert_eq!(
        users(&config, "reg.example.org", "team/app"),
        ["app", "team", "glob-team", "host", "glob"]
    );
    assert_eq!(
        users(&config, "reg.example.org", "team/other"),
        ["team", "glob-team", "host", "glob"]
    );
    assert_eq!(users(&config, "other.example.org", "x"), ["other", "glob"]);
}

#[test]
fn docker_hub_aliases_are_one_registry_in_a_stable_order() {
    let config = config(&[
        ("https://index.docker.io/v1/", "legacy", "p"),
        ("docker.io", "short", "p"),
        ("registry-1.docker.io", "registry", "p"),
        ("docker.io/myorg", "org", "p"),
    ]);
    assert_eq!(
        users(&config, "docker.io", "myorg/app"),
        ["org", "short", "legacy", "registry"]
    );
    let [first, ..] = config.lookup("index.docker.io", "library/busybox")[..] else {
        panic!("no credential for Docker Hub");
    };
    assert_eq!(first.registry(), "docker.io");
}

#[test]
fn identical_credentials_are_returned_once() {
    let config = config(&[("docker.io", "u", "p"), ("index.docker.io", "u", "p")]);
    assert_eq!(config.lookup("docker.io", "library/busybox").len(), 1);
    assert_eq!(config.len(), 2);
}

#[test]
fn dockerconfigjson_secret() {
    let json = format!(
        r#"{{"auths": {{
            "ghcr.io": {{"username": "u1", "password": "p1"}},
            "https://quay.io/v1/": {{"auth": "{}", "email": "x@example.com"}},
            "acr.example.io": {{"auth": "{}", "identitytoken": "refresh"}}
        }}}}"#,
        b64("u2:p2:with:colons"),
        b64("00000000-0000-0000-0000-000000000000:"),
    );
    let config = secret(DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY, &json).unwrap();
    let ghcr = config.lookup("ghcr.io", "org/app");
    assert_eq!(
        (ghcr[0].username.as_str(), ghcr[0].password.as_str()),
        ("u1", "p1")
    );
    let quay = config.lookup("quay.io", "org/app");
    assert_eq!(
        (quay[0].username.as_str(), quay[0].password.as_str()),
        ("u2", "p2:with:colons")
    );
    assert_eq!(quay[0].registry(), "quay.io");
    let acr = config.lookup("acr.example.io", "app");
    assert_eq!(acr[0].identity_token.as_deref(), Some("refresh"));
    assert_eq!(acr[0].password, "");
}

#[test]
fn dockercfg_secret_is_the_legacy_top_level_map() {
    let json = format!(
        r#"{{"https://index.docker.io/v1/": {{"auth": "{}", "email": "a@b.c"}},
             "reg.local:5000": {{"username": "u", "password": "p"}}}}"#,
        b64("hub:pw")
    );
    let config = secret(DOCKERCFG_TYPE, DOCKERCFG_KEY, &json).unwrap();
    assert_eq!(users(&config, "docker.io", "library/busybox"), ["hub"]);
    assert_eq!(users(&config, "reg.local:5000", "app"), ["u"]);
    // The same document read as .dockerconfigjson has no `auths`: no credentials.
    let other = secret(DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY, &json).unwrap();
    assert!(other.is_empty());
}

#[test]
fn auth_replaces_username_and_password() {
    let json = format!(
        r#"{{"auths": {{"ghcr.io": {{"username": "ignored", "password": "ignored", "auth": "{}"}}}}}}"#,
        b64("real:pw")
    );
    let config = DockerConfig::from_json(json.as_bytes()).unwrap();
    let found = config.lookup("ghcr.io", "a");
    assert_eq!(
        (found[0].username.as_str(), found[0].password.as_str()),
        ("real", "pw")
    );
}

#[test]
fn auth_padding_is_optional_and_line_breaks_are_skipped() {
    // "u:pw" is dTpwdw== padded.
    for auth in ["dTpwdw==", "dTpwdw", "dTpw\\r\\ndw==", "dTpwdx=="] {
        let json = format!(r#"{{"auths": {{"ghcr.io": {{"auth": "{auth}"}}}}}}"#);
        let config = DockerConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(users(&config, "ghcr.io", "a"), ["u"], "{auth}");
    }
}

#[test]
fn empty_and_null_parts_are_absent() {
    let json = r#"{"auths": {"ghcr.io": {"auth": "", "username": null, "Password": "p"},
                             "quay.io": null}}"#;
    let config = DockerConfig::from_json(json.as_bytes()).unwrap();
    let ghcr = config.lookup("ghcr.io", "a");
    assert_eq!(
        (ghcr[0].username.as_str(), ghcr[0].password.as_str()),
        ("", "p")
    );
    let quay = config.lookup("quay.io", "a");
    assert_eq!(
        (quay[0].username.as_str(), quay[0].password.as_str()),
        ("", "")
    );
    for json in ["null", "{}", r#"{"auths": null}"#, r#"{"auths": {}}"#] {
        assert!(
            DockerConfig::from_json(json.as_bytes()).unwrap().is_empty(),
            "{json}"
        );
    }
}

#[test]
fn field_names_match_case_insensitively_as_in_go() {
    let json = r#"{"AUTHS": {"ghcr.io": {"UserName": "u", "PASSWORD": "p"}}}"#;
    let config = DockerConfig::from_json(json.as_bytes()).unwrap();
    assert_eq!(users(&config, "ghcr.io", "a"), ["u"]);
}

#[test]
fn secret_types_and_data_keys() {
    let json = r#"{"auths": {}}"#;
    assert_eq!(
        secret("Opaque", DOCKER_CONFIG_JSON_KEY, json).unwrap_err(),
        CredentialError::UnsupportedType {
            secret_type: "Opaque".to_owned()
        }
    );
    assert_eq!(
        secret(DOCKER_CONFIG_JSON_TYPE, DOCKERCFG_KEY, json).unwrap_err(),
        CredentialError::MissingData {
            key: DOCKER_CONFIG_JSON_KEY
        }
    );
    assert_eq!(
        secret(DOCKERCFG_TYPE, DOCKERCFG_KEY, "").unwrap_err(),
        CredentialError::MissingData { key: DOCKERCFG_KEY }
    );
}

#[test]
fn malformed_inputs() {
    let cases: &[(&str, &str)] = &[
        (
            "{\"auths\": {\n  \"ghcr.io\": {\"username\": }}}",
            "InvalidDockerConfigJson",
        ),
        ("[]", "InvalidDockerConfig"),
        (r#"{"auths": []}"#, "InvalidDockerConfig"),
        (r#"{"auths": {"ghcr.io": "x"}}"#, "InvalidDockerConfig"),
        (
            r#"{"auths": {"ghcr.io": {"password": 1}}}"#,
            "InvalidDockerConfig",
        ),
        (
            r#"{"auths": {"ghcr.io": {"auth": "!!!"}}}"#,
            "InvalidDockerConfigAuth",
        ),
        (
            r#"{"auths": {"ghcr.io": {"auth": "dXNlcg=="}}}"#,
            "InvalidDockerConfigAuth",
        ),
        (
            r#"{"auths": {"ghcr.io": {"auth": "/w=="}}}"#,
            "InvalidDockerConfigAuth",
        ),
        (
            r#"{"auths": {"ghcr.io": {"auth": " dTpwdw=="}}}"#,
            "InvalidDockerConfigAuth",
        ),
        (r#"{"auths": {} } x"#, "InvalidDockerConfigJson"),
    ];
    for (json, reason) in cases {
        let error = DockerConfig::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(error.reason(), *reason, "{json}: {error}");
    }
    assert_eq!(
        DockerConfig::from_json(b"{\"auths\": {\n  \"ghcr.io\": {\"username\": }}}").unwrap_err(),
        CredentialError::InvalidJson {
            document: CONFIG_JSON,
            problem: "syntax error",
            line: 2,
            column: 27
        }
    );
    assert_eq!(
        DockerConfig::from_json(br#"{"auths": {"https://ghcr.io/v2/": {"auth": "dXNlcg=="}}}"#)
            .unwrap_err()
            .to_string(),
        "docker config.json: the auth field of registry \"ghcr.io/v2/\" must be base64 of \
         \"username:password\", it has no ':'"
    );
    // A bad auth fails the whole config even when its key is no registry (as in the kubelet).
    assert!(DockerConfig::from_json(br#"{"auths": {"": {"auth": "!"}}}"#).is_err());
}

#[test]
fn debug_and_identity_hold_no_secret() {
    let config = config(&[("ghcr.io/org", "alice", SECRET)]);
    let credential = config.lookup("ghcr.io", "org/app")[0];
    assert_eq!(
        format!("{credential:?}"),
        "Credential { registry: \"ghcr.io/org\", .. }"
    );
    assert_eq!(
        format!("{config:?}"),
        "DockerConfig { registries: [\"ghcr.io/org\"] }"
    );
    let identity = credential.identity();
    assert!(
        identity.starts_with("hmac:") && identity.len() == 5 + 16,
        "{identity}"
    );
    assert_eq!(identity, credential.clone().identity());
    let mut other = credential.clone();
    other.password.push('x');
    assert_ne!(identity, other.identity());
    other = credential.clone();
    other.identity_token = Some(String::new());
    assert_ne!(identity, other.identity());
    // Keyed per process: the plain hash of the secret must not be what is shown.
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        b"ghcr.io/org\0alice\0s3cr3t-P4ss",
    );
    let unkeyed: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!identity.contains(&unkeyed), "{identity}");
}

#[test]
fn credential_new_normalizes_its_registry() {
    let credential = Credential::new("https://index.docker.io/v1/", "u", "p");
    assert_eq!(credential.registry(), "docker.io");
    assert_eq!(
        Credential::new("GHCR.io:443/Org/", "u", "p").registry(),
        "ghcr.io:443/Org"
    );
}

/// Every error and every `Debug` built from a config holding the secret must not show it.
#[test]
fn no_secret_in_any_output() {
    let auth = b64(&format!("alice:{SECRET}"));
    let forbidden = [
        SECRET.to_owned(),
        auth.clone(),
        b64(SECRET),
        auth.trim_end_matches('=').to_owned(),
        "alice".to_owned(),
    ];
    let key = format!("https://alice:{SECRET}@ghcr.io/org?token={SECRET}#{SECRET}");
    let documents = [
        format!(
            r#"{{"auths": {{"{key}": {{"username": "alice", "password": "{SECRET}", "auth": "{auth}", "identitytoken": "{SECRET}"}}}}}}"#
        ),
        format!(r#"{{"auths": {{"{key}": {{"auth": "{SECRET}"}}}}}}"#),
        format!(r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#, b64(SECRET)),
        format!(
            r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#,
            b64(&format!("alice{SECRET}"))
        ),
        format!(r#"{{"auths": {{"{key}": {{"password": ["{SECRET}"]}}}}}}"#),
        format!(r#"{{"auths": {{"{key}": {{"password": {SECRET}}}}}}}"#),
        format!(r#"{{"auths": {{"{key}": "alice:{SECRET}"}}}}"#),
        format!(r#"{{"auths": ["alice", "{SECRET}"]}}"#),
        format!(r#"["{SECRET}"]"#),
        format!(r#"{{"auths": {{"{key}": {{"password": "{SECRET}""#),
        format!(r#"{{"auths": {{"{key}": {{"password": "{SECRET}\u0001"}}}}}}"#),
        format!(r#"{{"auths": {{"{key}": {{"password": "{SECRET}"}}}}}} {SECRET}"#),
    ];
    let mut outputs = Vec::new();
    for document in &documents {
        for (secret_type, data_key) in [
            (DOCKER_CONFIG_JSON_TYPE, DOCKER_CONFIG_JSON_KEY),
            (DOCKERCFG_TYPE, DOCKERCFG_KEY),
        ] {
            outputs.push(describe(&secret(secret_type, data_key, document)));
        }
        outputs.push(describe(&DockerConfig::from_json(document.as_bytes())));
    }
    let config = DockerConfig::from_json(documents[0].as_bytes()).unwrap();
    for credential in config.lookup("ghcr.io", "org/app") {
        outputs.push(format!("{credential:?} {}", credential.identity()));
    }
    outputs.push(format!("{:?}", Credential::new(&key, "alice", SECRET)));
    assert!(outputs.iter().any(|output| output.contains("ghcr.io")));
    for output in &outputs {
        for forbidden in &forbidden {
            assert!(
                !output.contains(forbidden.as_str()),
                "{forbidden:?} in {output}"
            );
        }
    }
}

fn describe(result: &Result<DockerConfig, CredentialError>) -> String {
    match result {
        Ok(config) => format!("{config:?}"),
        Err(error) => format!("{error} {error:?} {}", error.reason()),
    }
}

#[test]
fn globs_as_go_path_match() {
    let cases: &[(&str, &str, bool)] = &[
        ("abc", "abc", true),
        ("a*c", "abbbc", true),
        ("a*c", "ab", false),
        ("*", "", true),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("[a-c]x", "bx", true),
        ("[^a-c]x", "bx", false),
        ("[\\]]", "]", true),
        ("a\\*", "a*", true),
        ("a\\*", "ab", false),
        ("**b", "aab", true),
        ("*a*a*a*a*a*a*a*a*a*a*b", &"a".repeat(200), false),
    ];
    for (pattern, name, expected) in cases {
        let glob = compile_glob(pattern).unwrap();
        assert_eq!(glob_matches(&glob, name), *expected, "{pattern} {name}");
    }
    for bad in ["[", "[]", "[a", "a\\", "[a-]", "[]a]", "[-a]", "[^"] {
        assert_eq!(compile_glob(bad), None, "{bad}");
    }
}

/// Mutated configs never panic, and never leak the secret in an error.
#[test]
fn mutated_inputs_never_panic() {
    let seed = format!(
        r#"{{"auths": {{"https://*.Example.com:5000/v2/team/": {{"username": "u", "password": "{SECRET}", "auth": "{}"}}, "[fd00::1]": {{"identitytoken": "t"}}, "docker.io": null}}}}"#,
        b64(&format!("u:{SECRET}"))
    );
    let interesting = b"{}[]\":,\\/*?-^@=#.\x00\xff0123456789 \n";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut input = seed.clone().into_bytes();
        for _ in 0..=next() % 4 {
            let at = (next() as usize) % (input.len() + 1);
            let byte = interesting[(next() as usize) % interesting.len()];
            match next() % 4 {
                0 if at < input.len() => input[at] = byte,
                1 if at < input.len() => {
                    input.remove(at);
                }
                2 => input.insert(at, byte),
                _ => input.truncate(at),
            }
        }
        let data = BTreeMap::from([
            (DOCKER_CONFIG_JSON_KEY.to_owned(), input.clone()),
            (DOCKERCFG_KEY.to_owned(), input.clone()),
        ]);
        for result in [
            DockerConfig::from_json(&input),
            DockerConfig::from_secret(DOCKER_CONFIG_JSON_TYPE, &data),
            DockerConfig::from_secret(DOCKERCFG_TYPE, &data),
        ] {
            match result {
                Ok(config) => {
                    for (host, repository) in [
                        ("a.example.com:5000", "team/app"),
                        ("[fd00::1]", "x"),
                        ("docker.io", "library/busybox"),
                        ("", ""),
                    ] {
                        for credential in config.lookup(host, repository) {
                            assert!(!format!("{credential:?}").contains(SECRET));
                        }
                    }
                }
                Err(error) => {
                    let text = format!("{error} {error:?}");
                    assert!(!text.contains(SECRET), "{text}");
                }
            }
        }
    }
}

/// A docker config nests at most 127 levels (serde_json's limit, checked as it reads).
#[test]
fn a_docker_config_nests_at_most_127_deep() {
    let nested = |levels: usize| {
        format!(
            "{{\"auths\": {{}}, \"x\": {}{}}}",
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    assert!(DockerConfig::from_json(nested(127).as_bytes()).is_ok());
    let error = DockerConfig::from_json(nested(128).as_bytes()).expect_err("past");
    assert_eq!(
        error.to_string(),
        "docker config.json is not JSON: nesting deeper than 127 levels, the limit of JSON at \
         line 1, column 146"
    );
}
