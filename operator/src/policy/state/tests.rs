use kube::runtime::watcher::Event;

use super::*;

fn policy(key: &str, uid: &str, generation: i64) -> ClusterImagePolicy {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "signing.apps.tanzu.vmware.com/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "image-policy", "uid": uid, "generation": generation},
        "spec": {"verification": {"keys": [{"name": "k", "publicKey": key}],
            "images": [{"namePattern": "registry.example.org/*", "keys": [{"name": "k"}]}]}}
    }))
    .expect("policy")
}

const GOOD: &str = include_str!("../../../tests/data/keys/p256.pub");

#[test]
fn an_invalid_policy_keeps_the_last_valid_one_and_fails_closed_without_one() {
    let mut publisher = Publisher::default();
    let PolicyState::Invalid(first) = publisher.next(Some(&policy("broken", "u", 1))) else {
        panic!("invalid")
    };
    assert!(
        first.problems.to_string().contains("publicKey"),
        "{first:?}"
    );
    assert!(first.enforced.is_none());
    let PolicyState::Active(enforced) = publisher.next(Some(&policy(GOOD, "u", 2))) else {
        panic!("valid")
    };
    let PolicyState::Invalid(kept) = publisher.next(Some(&policy("broken", "u", 3))) else {
        panic!("invalid")
    };
    let kept_snapshot = kept.enforced.clone().expect("the last valid one is kept");
    assert!(Arc::ptr_eq(&enforced, &kept_snapshot));
    assert_eq!(kept.version.generation, Some(3));
    assert!(matches!(publisher.next(None), PolicyState::Absent));
    let PolicyState::Invalid(forgotten) = publisher.next(Some(&policy("broken", "u", 4))) else {
        panic!("invalid")
    };
    assert!(forgotten.enforced.is_none(), "deletion forgets");
}

#[test]
fn a_list_is_published_once_it_is_done() {
    let mut publisher = Publisher::default();
    assert!(publisher.step(Event::Init).is_none());
    assert!(
        publisher
            .step(Event::InitApply(policy(GOOD, "u", 1)))
            .is_none()
    );
    let state = publisher.step(Event::InitDone).expect("published");
    assert!(matches!(state, PolicyState::Active(_)), "{state:?}");
    // An empty relist publishes that there is no policy, once it is done.
    assert!(publisher.step(Event::Init).is_none());
    let state = publisher.step(Event::InitDone).expect("published");
    assert!(matches!(state, PolicyState::Absent), "{state:?}");
}

#[test]
fn a_version_already_published_is_skipped() {
    let mut publisher = Publisher::default();
    assert!(publisher.step(Event::Apply(policy(GOOD, "u", 1))).is_some());
    // A status write: same uid and generation.
    assert!(publisher.step(Event::Apply(policy(GOOD, "u", 1))).is_none());
    // A relist that finds the same version publishes nothing either.
    publisher.step(Event::Init);
    publisher.step(Event::InitApply(policy(GOOD, "u", 1)));
    assert!(publisher.step(Event::InitDone).is_none());
    // A new generation, or a new object of the same name, is published.
    let next = publisher.step(Event::Apply(policy(GOOD, "u", 2)));
    assert!(matches!(&next, Some(PolicyState::Active(s)) if s.generation() == Some(2)));
    let recreated = publisher.step(Event::Apply(policy(GOOD, "v", 2)));
    assert!(
        matches!(&recreated, Some(PolicyState::Active(s)) if s.version().uid.as_deref() == Some("v"))
    );
}

#[test]
fn deletion_is_published_and_forgets_the_last_valid_version() {
    let mut publisher = Publisher::default();
    publisher.step(Event::Apply(policy(GOOD, "u", 1)));
    let gone = publisher.step(Event::Delete(policy(GOOD, "u", 1)));
    assert!(matches!(gone, Some(PolicyState::Absent)), "{gone:?}");
    let state = publisher.step(Event::Apply(policy("broken", "w", 1)));
    let Some(PolicyState::Invalid(rejected)) = state else {
        panic!("{state:?}")
    };
    assert!(rejected.enforced.is_none());
}

#[test]
fn the_state_says_what_is_enforced_and_of_which_version() {
    let mut publisher = Publisher::default();
    let active = publisher.next(Some(&policy(GOOD, "u", 1)));
    assert!(active.enforced().is_some());
    assert_eq!(
        active.version().and_then(|v| v.generation),
        Some(1),
        "{active:?}"
    );
    let kept = publisher.next(Some(&policy("broken", "u", 2)));
    assert!(kept.enforced().is_some());
    assert_eq!(kept.version().and_then(|v| v.generation), Some(2));
    assert!(PolicyState::Loading.enforced().is_none());
    assert!(PolicyState::Absent.version().is_none());
    assert_eq!(kept.label(), "Invalid");
}

#[test]
fn a_changed_trusted_root_is_published_when_the_policy_reads_it() {
    let mut with_root = policy(GOOD, "u", 1);
    with_root.spec.verification.keys[0].transparency_log =
        Some(image_policy_crd::TransparencyLog::Required);
    with_root.spec.verification.keys[0].trusted_root = Some("private".into());
    with_root.spec.verification.trusted_roots = vec![image_policy_crd::TrustedRoot {
        name: "private".into(),
        config_map_ref: image_policy_crd::ConfigMapKeyRef {
            name: "roots".into(),
            key: None,
        },
    }];
    let mut publisher = Publisher::default();
    let Some(PolicyState::Active(first)) = publisher.step(Event::Apply(with_root)) else {
        panic!("active")
    };
    assert_eq!(first.unavailable_roots().len(), 1, "no ConfigMap yet");
    let document = sigstore_verify::trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT;
    let documents = crate::policy::Documents::from([(
        "roots".to_owned(),
        [("trusted_root.json".to_owned(), document.to_owned())].into(),
    )]);
    let Some(PolicyState::Active(second)) = publisher.documents(documents.clone()) else {
        panic!("republished")
    };
    assert!(second.unavailable_roots().is_empty());
    assert!(publisher.documents(documents).is_none(), "nothing changed");
    // A policy that reads no root is not published again for a ConfigMap.
    let mut plain = Publisher::default();
    plain.step(Event::Apply(policy(GOOD, "v", 1)));
    assert!(
        plain
            .documents(crate::policy::Documents::from([(
                "x".to_owned(),
                Default::default()
            )]))
            .is_none()
    );
}
