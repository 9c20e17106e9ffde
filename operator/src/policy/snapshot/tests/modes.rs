//! `spec.verification.mode` and `images[].mode`: the default, the override both ways, and the
//! mode of an image that several entries match (docs/contract.md §2).

use image_policy_crd::Mode;

use super::*;

fn with_modes(policy: Option<&str>, entries: &[Option<&str>]) -> Snapshot {
    let images = entries
        .iter()
        .enumerate()
        .map(|(i, mode)| ImageEntry {
            mode: mode.map(str::to_owned),
            ..entry(&format!("r.example/e{i}/*"), &["k"])
        })
        .collect();
    let mut spec = spec(vec![key("k", "p256.pub")], images);
    spec.verification.mode = policy.map(str::to_owned);
    Snapshot::compile_spec(&spec).unwrap_or_else(|p| panic!("{p}"))
}

fn entry_modes(snapshot: &Snapshot) -> Vec<Mode> {
    snapshot.entries().iter().map(|e| e.mode).collect()
}

#[test]
fn a_policy_without_a_mode_enforces_as_the_original_did() {
    let snapshot = with_modes(None, &[None, None]);
    assert_eq!(snapshot.mode(), Mode::Enforce);
    assert_eq!(entry_modes(&snapshot), [Mode::Enforce, Mode::Enforce]);
    assert_eq!(snapshot.mode_of(&[]), Mode::Enforce);
    let spelled_out = with_modes(Some("Enforce"), &[Some("Enforce")]);
    assert_eq!(spelled_out.mode(), Mode::Enforce);
    assert_eq!(entry_modes(&spelled_out), [Mode::Enforce]);
}

#[test]
fn an_entry_inherits_the_policy_mode_unless_it_sets_its_own() {
    let warn = with_modes(Some("Warn"), &[None, Some("Enforce"), Some("Warn")]);
    assert_eq!(warn.mode(), Mode::Warn);
    assert_eq!(entry_modes(&warn), [Mode::Warn, Mode::Enforce, Mode::Warn]);
    let enforce = with_modes(Some("Enforce"), &[None, Some("Warn")]);
    assert_eq!(enforce.mode(), Mode::Enforce);
    assert_eq!(entry_modes(&enforce), [Mode::Enforce, Mode::Warn]);
    let default = with_modes(None, &[Some("Warn"), None]);
    assert_eq!(default.mode(), Mode::Enforce);
    assert_eq!(entry_modes(&default), [Mode::Warn, Mode::Enforce]);
}

#[test]
fn an_image_is_in_warn_only_when_every_entry_it_matches_is() {
    // e0 Warn (inherited), e1 Enforce, e2 Warn; `*` (e3) inherits Warn.
    let mut spec = spec(
        vec![key("k", "p256.pub")],
        vec![
            entry("r.example/a/*", &["k"]),
            ImageEntry {
                mode: Some("Enforce".into()),
                ..entry("r.example/a/strict/*", &["k"])
            },
            ImageEntry {
                mode: Some("Warn".into()),
                ..entry("r.example/b/*", &["k"])
            },
            entry("r.example/*", &["k"]),
        ],
    );
    spec.verification.mode = Some("Warn".into());
    let snapshot = Snapshot::compile_spec(&spec).expect("compiles");
    let mode = |image: &str| {
        let image = ImageName::parse(image).expect("image");
        snapshot.mode_of(&snapshot.matching(&image))
    };
    assert_eq!(
        mode("r.example/a/app:1"),
        Mode::Warn,
        "e0 and e3, both Warn"
    );
    assert_eq!(mode("r.example/b/app:1"), Mode::Warn, "e2 and e3");
    assert_eq!(
        mode("r.example/a/strict/app:1"),
        Mode::Enforce,
        "e1 in Enforce wins over e0 and e3 in Warn: fail closed"
    );
    assert_eq!(
        mode("other.example/app:1"),
        Mode::Warn,
        "no entry: the policy's"
    );
}

#[test]
fn an_entry_in_warn_under_an_enforced_broad_pattern_is_enforced() {
    let mut spec = spec(
        vec![key("k", "p256.pub")],
        vec![
            entry("r.example/*", &["k"]),
            ImageEntry {
                mode: Some("Warn".into()),
                ..entry("r.example/new/*", &["k"])
            },
        ],
    );
    spec.verification.mode = None;
    let snapshot = Snapshot::compile_spec(&spec).expect("compiles");
    let new = ImageName::parse("r.example/new/app:1").expect("image");
    assert_eq!(snapshot.mode_of(&snapshot.matching(&new)), Mode::Enforce);
    assert_eq!(snapshot.mode_of(&[&snapshot.entries()[1]]), Mode::Warn);
}

#[test]
fn every_unknown_mode_is_reported_with_its_path() {
    let mut spec = spec(
        vec![key("k", "p256.pub")],
        vec![ImageEntry {
            mode: Some("Audit".into()),
            ..entry("r.example/*", &["k"])
        }],
    );
    spec.verification.mode = Some("Dryrun".into());
    let problems = Snapshot::compile_spec(&spec).expect_err("invalid");
    assert_eq!(
        reasons_and_paths(&problems),
        [
            (Reason::InvalidMode, "spec.verification.mode"),
            (Reason::InvalidMode, "spec.verification.images[0].mode"),
        ]
    );
}
