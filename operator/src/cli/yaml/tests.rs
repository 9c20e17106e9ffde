use super::*;

fn one(text: &str) -> Value {
    let mut documents = documents(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(documents.len(), 1, "{text:?}");
    documents.remove(0)
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

/// go-yaml v2's merge keys, as kubectl applies them: in the order written, the first of a
/// sequence winning, a merged mapping's own merges first.
#[test]
fn merge_keys_are_merged_as_go_yaml_merges_them() {
    for (text, expected) in [
        ("{<<: {a: 1, b: 1}, b: 2}", "{a: 1, b: 2}"),
        // What a merge brings replaces the keys written before it.
        ("{b: 2, <<: {a: 1, b: 1}}", "{b: 1, a: 1}"),
        ("{<<: [{a: 1}, {a: 2, b: 2}]}", "{a: 1, b: 2}"),
        (
            "x: &x {a: 1, b: 1}\ny: &y {<<: *x, b: 2}\nz: {<<: *y, c: 3}\n",
            "{x: {a: 1, b: 1}, y: {a: 1, b: 2}, z: {a: 1, b: 2, c: 3}}",
        ),
        (
            "x: &x {a: 1}\ny: &y {b: 2}\nz: {<<: [*x, *y], c: 3}\n",
            "{x: {a: 1}, y: {b: 2}, z: {a: 1, b: 2, c: 3}}",
        ),
        // An init container merged into a pod spec, from an anchor in another document part.
        (
            "base: &base\n  initContainers: [{name: i, image: evil}]\nspec:\n  <<: *base\n  containers: [{name: c, image: good}]\n",
            "{base: {initContainers: [{name: i, image: evil}]}, spec: {initContainers: [{name: i, image: evil}], containers: [{name: c, image: good}]}}",
        ),
    ] {
        assert_eq!(one(text), yaml(expected), "{text}");
    }
}

#[test]
fn a_merge_of_anything_but_mappings_is_refused() {
    for text in ["{<<: 1}", "{<<: [a]}", "{<<: [{a: 1}, [b]]}", "{<<: }"] {
        let error = documents(text).expect_err(text).to_string();
        assert!(
            error.contains("a merge key (<<) takes a mapping or a sequence of mappings"),
            "{text}: {error}"
        );
    }
}

#[test]
fn keys_are_read_as_kubectl_writes_them_into_json() {
    assert_eq!(one("{a: 1, a: 2}"), yaml("{a: 2}"));
    assert_eq!(
        one("{1: a, true: b, 1.5: c}"),
        yaml("{'1': a, 'true': b, '1.5': c}")
    );
    for text in ["{~: a}", "{[a]: b}", "{{a: 1}: b}"] {
        let error = documents(text).expect_err(text).to_string();
        assert!(
            error.contains("a mapping key must be a string"),
            "{text}: {error}"
        );
    }
}

#[test]
fn tags_are_read_as_the_nodes_they_tag() {
    assert_eq!(one("!custom {a: !x [b], !k c: d}"), yaml("{a: [b], c: d}"));
}

/// A file that starts with `{` is a stream of JSON values, as kubectl reads it; JSON keys are
/// never merge keys.
#[test]
fn json_streams_are_json() {
    let documents = documents("{\"a\": 1}\n{\"<<\": {\"b\": 2}}").unwrap();
    assert_eq!(documents, vec![yaml("{a: 1}"), yaml("{'<<': {b: 2}}")]);
    // Not a JSON stream: read as YAML, where a flow mapping may be followed by a document.
    let documents = super::documents("{a: 1}\n---\nb: 2\n").unwrap();
    assert_eq!(documents, vec![yaml("{a: 1}"), yaml("{b: 2}")]);
}

fn nested(open: &str, close: &str, levels: usize) -> String {
    format!("{}1{}", open.repeat(levels), close.repeat(levels))
}

fn block(levels: usize) -> String {
    (0..levels)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect::<String>()
        + &" ".repeat(levels)
        + "1\n"
}

/// The depth limit is the same for YAML flow and block collections and JSON, refused with a
/// message that names it, at once however deep the text goes.
#[test]
fn collections_nest_at_most_128_deep() {
    type Shape = fn(usize) -> String;
    let shapes: [(&str, Shape); 4] = [
        ("flow sequences", |n| nested("[", "]", n)),
        ("flow mappings", |n| nested("{a: ", "}", n)),
        ("json", |n| nested("{\"a\": ", "}", n)),
        ("block mappings", |n| block(n)),
    ];
    for (shape, text) in shapes {
        assert!(documents(&text(128)).is_ok(), "{shape} at the limit");
        let error = documents(&text(129)).expect_err(shape);
        assert!(
            matches!(error, YamlError::TooDeep { .. }),
            "{shape}: {error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("collections nest deeper than 128 levels, the limit of a YAML or JSON file (at line "),
            "{shape}: {error}"
        );
    }
    for deep in [
        nested("[", "]", 100_000),
        nested("{a: ", "}", 40_000),
        "- ".repeat(100_000),
    ] {
        let error = documents(&deep).expect_err("deep");
        assert!(matches!(error, YamlError::TooDeep { .. }), "{error:?}");
    }
}

/// `[&a [x × 999], *a × 998, y × extra]`: 1 + 999 × 1000 + extra values.
fn expanding(extra: usize) -> String {
    let copy = vec!["x"; 999].join(", ");
    format!(
        "[&a [{copy}], {}, {}]",
        vec!["*a"; 998].join(", "),
        vec!["y"; extra].join(", ")
    )
}

#[test]
fn a_document_expands_to_at_most_a_million_values() {
    let at = one(&expanding(999));
    assert_eq!(at.as_sequence().map(Vec::len), Some(999 + 999));
    let error = documents(&expanding(1000)).expect_err("past the limit");
    assert_eq!(error, YamlError::TooManyValues { document: 1 });
    assert_eq!(
        error.to_string(),
        "document 1 expands to more than 1000000 values with its aliases, the limit of a YAML \
         document"
    );
}

/// Billion laughs, and a large anchor repeated many times: refused before they are built.
#[test]
fn aliases_that_expand_past_the_limits_are_refused() {
    let mut laughs = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let j = i - 1;
        laughs.push_str(&format!(
            "a{i}: &a{i} [*a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}, *a{j}]\n"
        ));
    }
    let error = documents(&laughs).expect_err("laughs");
    assert!(
        matches!(
            error,
            YamlError::TooManyAliases { .. } | YamlError::TooManyValues { .. }
        ),
        "{error:?}"
    );
    let wide = format!(
        "[&a [{}], {}]",
        vec!["x"; 10_000].join(","),
        vec!["*a"; 60_000].join(",")
    );
    assert_eq!(
        documents(&wide).expect_err("wide"),
        YamlError::TooManyValues { document: 1 }
    );
}

#[test]
fn documents_are_numbered_in_errors() {
    let error = documents("a: 1\n---\nb: [\n").expect_err("unclosed");
    assert!(
        matches!(error, YamlError::Unreadable { document: 2, .. }),
        "{error:?}"
    );
}
