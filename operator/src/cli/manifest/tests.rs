use super::*;

/// Each workload of `text` (written to a file) with its images, as `check -f` reads them.
fn read(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, text).expect("write");
    workloads(&file)
        .map(|found| {
            found
                .into_iter()
                .map(|(workload, images)| (workload, images.into_iter().map(|i| i.image).collect()))
                .collect()
        })
        .map_err(|e| e.to_string())
}

fn found(pairs: &[(&str, &[&str])]) -> Result<Vec<(String, Vec<String>)>, String> {
    Ok(pairs
        .iter()
        .map(|(workload, images)| {
            (
                (*workload).to_owned(),
                images.iter().map(|i| (*i).to_owned()).collect(),
            )
        })
        .collect())
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";

/// A merge key that brings in an init container, a container list or a whole pod spec: the
/// images kubectl would create are all read.
#[test]
fn merge_keys_bring_their_containers() {
    let cases = [
        // An init container merged in beside the containers.
        "x-base: &base\n  initContainers: [{name: i, image: evil}]\nspec:\n  <<: *base\n  containers: [{name: c, image: good}]\n",
        // The container list itself, merged from a sequence of mappings (the first wins).
        "spec:\n  <<: [{initContainers: [{name: i, image: evil}]}, {initContainers: []}]\n  containers: [{name: c, image: good}]\n",
        // A whole pod spec merged, one list replaced after the merge.
        "x: &spec {initContainers: [{name: i, image: evil}], containers: [{name: c, image: bad}]}\nspec:\n  <<: *spec\n  containers: [{name: c, image: good}]\n",
    ];
    for case in cases {
        assert_eq!(
            read(&format!("{POD}{case}")),
            found(&[("Pod/p", &["evil", "good"])]),
            "{case}"
        );
    }
    // A merge before the key it sets: go-yaml lets the merge replace it.
    let before = "spec:\n  containers: [{name: c, image: good}]\n  <<: {containers: [{name: c, image: evil}]}\n";
    assert_eq!(
        read(&format!("{POD}{before}")),
        found(&[("Pod/p", &["evil"])])
    );
}

const DEPLOYMENT: &str = "{kind: Deployment, apiVersion: apps/v1, metadata: {name: d}, spec: {template: {spec: {containers: [{name: c, image: dep}]}}}}";

/// Lists of every kind kubectl flattens stand for their items, nested lists included, in
/// kubectl's order; an item without a kind gets its list's.
#[test]
fn lists_stand_for_their_items() {
    let pod = |name: &str, image: &str| {
        format!(
            "{{metadata: {{name: {name}}}, spec: {{containers: [{{name: c, image: {image}}}]}}}}"
        )
    };
    let cases = [
        (
            format!("kind: List\napiVersion: v1\nitems: [{DEPLOYMENT}]\n"),
            found(&[("Deployment/d", &["dep"])]),
        ),
        (
            format!(
                "kind: PodList\napiVersion: v1\nitems: [{}, {}]\n",
                pod("a", "one"),
                pod("b", "two")
            ),
            found(&[("Pod/a", &["one"]), ("Pod/b", &["two"])]),
        ),
        (
            format!(
                "kind: List\napiVersion: v1\nitems:\n- {{kind: List, items: [{{kind: Pod, metadata: {{name: n}}, spec: {{containers: [{{name: c, image: nested}}]}}}}]}}\n- {DEPLOYMENT}\n"
            ),
            found(&[("Deployment/d", &["dep"]), ("Pod/n", &["nested"])]),
        ),
        // Any kind with items is a list to kubectl's decoder.
        (
            format!(
                "kind: DeploymentList\napiVersion: apps/v1\nitems: [{DEPLOYMENT}]\n---\nkind: List\nitems: null\n---\n{POD}spec: {{containers: [{{name: c, image: after}}]}}\n"
            ),
            found(&[("Deployment/d", &["dep"]), ("Pod/p", &["after"])]),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(read(&text), expected, "{text}");
    }
}

/// What kubectl refuses is refused, naming where.
#[test]
fn what_kubectl_cannot_read_is_refused() {
    for (text, error) in [
        ("[a, b]", "document 1 is not an object"),
        (
            "kind: Pod\nmetadata: {name: a}\n---\nmetadata: {name: x}\n",
            "document 2 has no kind, which kubectl refuses",
        ),
        (
            "kind: List\nitems: {a: 1}\n",
            "document 1: its items are not a list",
        ),
        (
            "kind: List\nitems: [1]\n",
            "document 1: item 0 is not an object",
        ),
        (
            "kind: List\nitems: [{kind: List, items: [{metadata: {}}]}]\n",
            "document 1: item 0: item 0 has no kind, which kubectl refuses",
        ),
        (
            "kind: Pod\n<<: 1\n",
            "a merge key (<<) takes a mapping or a sequence of mappings",
        ),
    ] {
        let refused = read(text).expect_err(text);
        assert!(refused.contains(error), "{text}: {refused}");
    }
}

/// A JSON stream and a multi-document YAML stream with empty documents read the same.
#[test]
fn json_and_yaml_streams() {
    let yaml = format!(
        "---\n{DEPLOYMENT}\n---\n---\n{POD}spec: {{containers: [{{name: c, image: x}}]}}\n...\n"
    );
    let json = format!(
        "{}\n{}",
        serde_json::to_string(&serde_yaml::from_str::<Value>(DEPLOYMENT).unwrap()).unwrap(),
        r#"{"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}"#
    );
    let expected = found(&[("Deployment/d", &["dep"]), ("Pod/p", &["x"])]);
    assert_eq!(read(&yaml), expected);
    assert_eq!(read(&json), expected);
}

/// A manifest nested past the limit is refused at once, naming the limit.
#[test]
fn a_deep_manifest_is_refused_by_its_limit() {
    let text = format!(
        "{POD}spec: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let refused = read(&text).expect_err("deep");
    assert!(
        refused.contains("collections nest deeper than 128 levels, the limit of a YAML or JSON file (at line 4, column 135)"),
        "{refused}"
    );
}
