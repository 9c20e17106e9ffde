use std::time::{Duration, Instant};

use super::*;

fn statement(predicate: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": "ab".repeat(32)}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": predicate,
    })
}

fn variables(predicate: serde_json::Value) -> Variables {
    let now = chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
        .unwrap()
        .to_utc();
    Variables::new(
        &statement(predicate),
        ("r.example/app:1", "sha256:abab"),
        &SignerFacts::Keyless {
            name: "github-actions".into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            subject: "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main".into(),
        },
        now,
    )
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn eval(expression: &str, predicate: serde_json::Value) -> Result<bool, EvaluationError> {
    let condition = Condition::compile(expression, None).expect("compiles");
    condition.evaluate(&variables(predicate), Limits::ADMISSION, later())
}

#[test]
fn every_variable_reads_the_statement_the_image_and_the_signer() {
    let predicate = serde_json::json!({
        "buildDefinition": {"externalParameters": {"workflow": {"repository": "https://github.com/acme/app"}}},
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
        "count": 3,
    });
    for expression in [
        r#"predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app""#,
        r#"predicate.runDetails.builder.id.endsWith("/github-hosted")"#,
        r#"predicateType == "https://slsa.dev/provenance/v1""#,
        r#"subject.exists(s, "sha256:" + s.digest.sha256 != image.digest)"#,
        r#"size(subject) == 1 && subject[0].name == "app""#,
        r#"image.reference == "r.example/app:1" && image.digest == "sha256:abab""#,
        r#"signer.name == "github-actions" && signer.issuer.startsWith("https://token.actions")"#,
        r#"signer.subject.matches("^https://github.com/acme/app/")"#,
        r#"now == timestamp("2026-06-01T12:00:00Z")"#,
        "predicate.count == 3 && has(predicate.runDetails) && !has(predicate.other)",
        "type(predicate.count) == int && type(predicateType) == string",
    ] {
        assert_eq!(
            eval(expression, predicate.clone()),
            Ok(true),
            "{expression}"
        );
    }
    assert_eq!(
        eval(
            r#"predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/other""#,
            predicate
        ),
        Ok(false)
    );
}

#[test]
fn freshness_is_a_comparison_with_now() {
    let fresh = r#"timestamp(predicate.metadata.scanFinishedOn) > now - duration("168h")"#;
    let scanned = |at: &str| serde_json::json!({"metadata": {"scanFinishedOn": at}});
    assert_eq!(eval(fresh, scanned("2026-05-30T08:00:00Z")), Ok(true));
    assert_eq!(eval(fresh, scanned("2026-05-01T08:00:00Z")), Ok(false));
    assert!(matches!(
        eval(fresh, scanned("yesterday")),
        Err(EvaluationError::Failed(_))
    ));
}

#[test]
fn an_error_at_evaluation_is_never_true() {
    let missing = eval("predicate.nothing.here == 1", serde_json::json!({}));
    assert!(
        matches!(&missing, Err(EvaluationError::Failed(why)) if why.contains("nothing")),
        "{missing:?}"
    );
    assert_eq!(
        eval("predicate.count", serde_json::json!({"count": 1})),
        Err(EvaluationError::NotABool("int".into()))
    );
    assert!(matches!(
        eval(
            "predicate.count + 'a' == 'b'",
            serde_json::json!({"count": 1})
        ),
        Err(EvaluationError::Failed(_))
    ));
    assert!(matches!(
        eval("nosuchfunction(predicate) == 1", serde_json::json!({})),
        Err(EvaluationError::Failed(_))
    ));
}

#[test]
fn what_cannot_be_known_without_input_is_refused_when_compiled() {
    let refused = |expression: &str| Condition::compile(expression, None).err();
    assert_eq!(refused(""), Some(CompileError::Empty));
    assert_eq!(refused("  "), Some(CompileError::Empty));
    assert!(matches!(
        refused("predicate.a =="),
        Some(CompileError::Syntax(_))
    ));
    assert!(matches!(
        refused("predicate.a = 1"),
        Some(CompileError::Syntax(_))
    ));
    assert_eq!(
        refused("predicat.a == 1"),
        Some(CompileError::UnknownVariable("predicat".into()))
    );
    assert_eq!(
        refused("subject.all(s, s.name == t)"),
        Some(CompileError::UnknownVariable("t".into()))
    );
    // A macro's variable is bound inside it only.
    assert_eq!(
        refused("subject.all(s, s.name != '') && s.name == ''"),
        Some(CompileError::UnknownVariable("s".into()))
    );
    assert_eq!(refused("subject.all(s, subject.exists(t, s == t))"), None);
    let words = refused("predicat.a == 1").unwrap().to_string();
    assert!(
        words.contains("\"predicat\"") && words.contains("predicate, predicateType"),
        "{words}"
    );
    let syntax = refused("predicate.a ==").unwrap().to_string();
    assert!(!syntax.contains('\n'), "{syntax}");
}

#[test]
fn an_expression_is_refused_past_its_length_and_nesting() {
    let at_limit = format!(
        "predicateType == '{}'",
        "a".repeat(MAX_EXPRESSION_BYTES - 19)
    );
    assert_eq!(at_limit.len(), MAX_EXPRESSION_BYTES);
    assert!(Condition::compile(&at_limit, None).is_ok());
    let past = format!("{at_limit} ");
    assert_eq!(
        Condition::compile(&past, None).err(),
        Some(CompileError::TooLong(MAX_EXPRESSION_BYTES + 1))
    );
    let nested = |depth: usize| format!("{}true{}", "(".repeat(depth), ")".repeat(depth));
    let deepest = (1..200)
        .take_while(|&d| Condition::compile(&nested(d), None).is_ok())
        .last()
        .unwrap_or(0);
    assert!(
        (8..=usize::from(MAX_NESTING)).contains(&deepest),
        "nesting accepted up to {deepest}"
    );
    assert!(matches!(
        Condition::compile(&nested(usize::from(MAX_NESTING) + 1), None),
        Err(CompileError::Syntax(why)) if why.contains("Recursion limit")
    ));
    // Hostile input of the parser's own tests: refused, not a crash or a hang.
    let hostile = "ma[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\x0c\0[[[[putTo?[[[ep";
    assert!(Condition::compile(hostile, None).is_err());
    let many = "[".repeat(MAX_EXPRESSION_BYTES);
    assert!(Condition::compile(&many, None).is_err());
}

#[test]
fn every_comprehension_step_counts_and_the_limit_stops_it() {
    let items = |n: usize| serde_json::json!({"items": vec![1; n]});
    let limits = Limits {
        steps: 10,
        time: Duration::from_secs(60),
    };
    let run = |expression: &str, n: usize| {
        Condition::compile(expression, None)
            .expect("compiles")
            .evaluate(&variables(items(n)), limits, later())
    };
    // Each macro, at the limit and one past it.
    for expression in [
        "predicate.items.all(x, x == 1)",
        "predicate.items.exists(x, x == 2) == false",
        "predicate.items.exists_one(x, x == 1) == false",
        "size(predicate.items.map(x, x + 1)) > 0",
        "size(predicate.items.map(x, x > 0, x + 1)) > 0",
        "size(predicate.items.filter(x, x == 1)) > 0",
    ] {
        assert!(run(expression, 10).is_ok(), "{expression}: at the limit");
        assert_eq!(
            run(expression, 11),
            Err(EvaluationError::TooManySteps(10)),
            "{expression}: past it"
        );
    }
    // Nested comprehensions count every inner step: 3 × 3 + 3 = 12 > 10.
    assert_eq!(
        run("predicate.items.all(x, predicate.items.all(y, x == y))", 3),
        Err(EvaluationError::TooManySteps(10))
    );
    assert!(run("predicate.items.all(x, predicate.items.all(y, x == y))", 2).is_ok());
}

#[test]
fn the_deadline_stops_an_evaluation() {
    let condition = Condition::compile("predicate.items.all(x, x == 1)", None).unwrap();
    let input = variables(serde_json::json!({"items": [1, 1, 1]}));
    let past = Instant::now() - Duration::from_millis(1);
    assert_eq!(
        condition.evaluate(&input, Limits::ADMISSION, past),
        Err(EvaluationError::TimedOut)
    );
    let none = Limits {
        time: Duration::ZERO,
        ..Limits::ADMISSION
    };
    assert_eq!(
        condition.evaluate(&input, none, later()),
        Err(EvaluationError::TimedOut)
    );
    assert_eq!(
        condition.evaluate(&input, Limits::ADMISSION, later()),
        Ok(true)
    );
}

#[test]
fn json_numbers_read_as_kubernetes_reads_them() {
    let predicate = serde_json::json!({"i": 3, "u": u64::MAX, "f": 1.5, "n": null});
    assert_eq!(
        eval("type(predicate.i) == int", predicate.clone()),
        Ok(true)
    );
    assert_eq!(
        eval("type(predicate.u) == uint", predicate.clone()),
        Ok(true)
    );
    assert_eq!(
        eval("type(predicate.f) == double", predicate.clone()),
        Ok(true)
    );
    assert_eq!(eval("predicate.n == null", predicate), Ok(true));
}

#[test]
fn the_deepest_expression_evaluates_on_its_thread() {
    let depth = usize::from(MAX_NESTING) - 4;
    let nested = format!(
        "{}predicate.items.all(x, x == 1){}",
        "(true && ".repeat(depth),
        ")".repeat(depth)
    );
    let evaluated = on_large_stack(|| eval(&nested, serde_json::json!({"items": [1]})));
    assert_eq!(evaluated, Ok(Ok(true)));
    // As many comprehensions, one in another, as the parser accepts.
    let mut macros = "x == 1".to_owned();
    loop {
        let deeper = format!("predicate.items.all(x, {macros})");
        if Condition::compile(&deeper, None).is_err() {
            break;
        }
        macros = deeper;
    }
    assert!(macros.matches(".all(").count() >= 8, "{macros}");
    let evaluated = on_large_stack(|| eval(&macros, serde_json::json!({"items": [1]})));
    assert_eq!(evaluated, Ok(Ok(true)));
}
