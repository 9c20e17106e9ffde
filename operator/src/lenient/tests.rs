use serde_json::Value;

use super::*;

/// A string field `a` and a bool field `b` of an object, as `Value` reads them.
#[derive(Debug, PartialEq, Eq)]
struct Ab {
    a: Option<String>,
    b: Option<bool>,
}

impl<'a> Lenient<'a> for Ab {
    fn other() -> Self {
        Ab { a: None, b: None }
    }

    fn map(reader: &mut Reader<'a>) -> Result<Self, JsonError> {
        let mut out = Ab::other();
        reader.object(|reader, key| {
            match key {
                b"a" => out.a = read::<Text>(reader)?.into_owned(),
                b"b" => out.b = read::<Flag>(reader)?.0,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

fn by_value(json: &[u8]) -> Result<Ab, serde_json::Error> {
    let value: Value = serde_json::from_slice(json)?;
    Ok(Ab {
        a: value.get("a").and_then(Value::as_str).map(str::to_owned),
        b: value.get("b").and_then(Value::as_bool),
    })
}

fn lenient(json: &[u8]) -> Result<Ab, JsonError> {
    read_body(json)
}

#[test]
fn the_values_read_are_read_as_a_value_reads_them() {
    for json in [
        r#"{"a": "x", "b": true}"#,
        r#"{"a": 5, "b": "true"}"#,
        r#"{"a": "x", "a": null, "b": false, "b": true}"#,
        r#"{"a": null, "a": "last"}"#,
        r#"{"\u0061": "escaped key", "z": {"a": "nested, not ours"}}"#,
        r#"{"a": "\ud83d\ude00\n\t\"\\\/\b\f\r\u00e9\u0000", "n": [1, -2, 3.5e10, 0.5E-3, 123456789012345678901234567890]}"#,
        r#" { "a" : "spaced" , "b" : true } "#,
        "{\"a\":\n\t\"x\"\r\n}",
        r#"{}"#,
        r#"[{"a": "x"}]"#,
        r#""a""#,
        "null",
        "true",
        "-0",
        r#"{"a": ["x"], "b": {"b": true}}"#,
    ] {
        assert_eq!(
            lenient(json.as_bytes()).ok(),
            Some(by_value(json.as_bytes()).expect(json)),
            "{json}"
        );
    }
}

#[test]
fn a_string_read_is_refused_where_a_value_refuses_it() {
    for (json, what) in [
        (&br#"{"a": "\ud800", "b": true}"#[..], "lone surrogate"),
        (br#"{"a": "\udc00"}"#, "lone surrogate"),
        (br#"{"b": "x", "a": "\ud83d\u0041"}"#, "lone surrogate"),
        (br#"{"a": "\ud83d"}"#, "lone surrogate"),
        (br#"{"a": "\q"}"#, "invalid escape"),
        (br#"{"a": "\u12g4"}"#, "invalid escape"),
        (b"{\"a\": \"x\xff\"}", "invalid UTF-8"),
        (b"{\"a\": \"\xed\xa0\x80\"}", "invalid UTF-8"),
        (b"{\"a\": \"a\tb\"}", "control character"),
    ] {
        let text = String::from_utf8_lossy(json);
        assert!(by_value(json).is_err(), "a Value refuses it: {text}");
        let error = lenient(json).expect_err(&text);
        assert!(error.to_string().starts_with(what), "{text}: {error}");
    }
}

#[test]
fn a_body_that_is_not_json_in_its_structure_is_refused_wherever_it_is_broken() {
    // Each broken in a value that no field reads (`z`), and so skipped.
    for json in [
        r#"{"a": "x", "z": {"k": [1, 2}}"#,
        r#"{"a": "x", "z": {"k": [1, 2]}"#,
        r#"{"a": "x", "z": [1, 2]]}"#,
        r#"{"a": "x", "z": {"k": 1,}}"#,
        r#"{"a": "x", "z": [1, 2,]}"#,
        r#"{"a": "x", "z": [,]}"#,
        r#"{"a": "x", "z": {"k" 1}}"#,
        r#"{"a": "x", "z": {"k": 1 "l": 2}}"#,
        r#"{"a": "x", "z": {1: 2}}"#,
        r#"{"a": "x", "z": [1 2]}"#,
        r#"{"a": "x", "z": tru}"#,
        r#"{"a": "x", "z": nul}"#,
        r#"{"a": "x", "z": True}"#,
        r#"{"a": "x", "z": undefined}"#,
        r#"{"a": "x", "z": 01}"#,
        r#"{"a": "x", "z": 1.}"#,
        r#"{"a": "x", "z": .5}"#,
        r#"{"a": "x", "z": -}"#,
        r#"{"a": "x", "z": 1e}"#,
        r#"{"a": "x", "z": 1e+}"#,
        r#"{"a": "x", "z": +1}"#,
        r#"{"a": "x", "z": 0x1}"#,
        r#"{"a": "x", "z": "\q"}"#,
        r#"{"a": "x", "z": "\u12g4"}"#,
        r#"{"a": "x", "z": "\u12"}"#,
        r#"{"a": "x", "z": {"\x": 1}}"#,
        "{\"a\": \"x\", \"z\": \"a\tb\"}",
        "{\"a\": \"x\", \"z\": \"a\u{1}b\"}",
        "{\"a\": \"x\", \"z\": {\"k\u{1f}\": 1}}",
        r#"{"a": "x", "z": "unterminated}"#,
        r#"{"a": "x", "z": {"k": "v"#,
        r#"{"a": "x", "z": "\"#,
        r#"{"a": "x", "z": "#,
        r#"{"a": "x", "z" "#,
        r#"{"a": "x"} trailing"#,
        r#"{"a": "x"} {}"#,
        r#"{"a": "x"}]"#,
        r#"{"a": "x", }"#,
        r#"{"a": "x",, "z": 1}"#,
        r#"{"a" "x"}"#,
        r#"{"a": "x" "b": true}"#,
        r#"{"a": }"#,
        "",
        " ",
        "{",
        "[",
        "]",
        "}",
        "\u{feff}{}",
    ] {
        let json = json.as_bytes();
        let text = String::from_utf8_lossy(json);
        assert!(lenient(json).is_err(), "{text}");
        assert!(
            by_value(json).is_err(),
            "not JSON for a Value either: {text}"
        );
    }
}

#[test]
fn what_only_a_value_refuses_is_not_looked_for_where_nothing_reads() {
    for json in [
        &br#"{"a": "x", "z": 1e400}"#[..],
        br#"{"a": "x", "z": [-1e400, 123456789012345678901234567890e300]}"#,
        br#"{"a": "x", "z": "\ud800"}"#,
        br#"{"a": "x", "z": {"k": "\udc00\ud800"}}"#,
        br#"{"a": "x", "z": {"\ud800": 1}}"#,
        // A field read whose value is not of its type is absent, and skipped as a whole.
        br#"{"b": [1e400, "\ud800"], "a": "x"}"#,
        br#"{"b": "\ud800", "a": "x"}"#,
        br#"{"b": 1e400, "a": "x"}"#,
    ] {
        let text = String::from_utf8_lossy(json);
        assert!(by_value(json).is_err(), "a Value refuses it: {text}");
        assert_eq!(
            lenient(json),
            Ok(Ab {
                a: Some("x".into()),
                b: None
            }),
            "{text}"
        );
    }
}

#[test]
fn bytes_that_are_not_utf8_are_refused_wherever_they_are() {
    // RFC 8259 §8.1: JSON text is UTF-8. Checked once for the whole body, so that every
    // string read is a slice of it; a string skipped is refused as one read.
    for (json, at) in [
        (&b"{\"a\": \"x\xff\"}"[..], 8),
        (b"{\"a\": \"x\", \"z\": \"\xff\xfe\"}", 17),
        (b"{\"a\": \"x\", \"z\": {\"k\xc3\": 1}}", 19),
        (b"{\"a\": \"x\", \"z\": \"\xed\xa0\x80\"}", 17),
        (b"{\"a\": \"x\"}\xff", 10),
    ] {
        let text = String::from_utf8_lossy(json);
        assert!(by_value(json).is_err(), "a Value refuses it: {text}");
        let error = lenient(json).expect_err(&text);
        assert_eq!((error.what, error.at), ("invalid UTF-8", at), "{text}");
    }
}

/// `depth` arrays, one in another, as the value of `z`.
fn nested(depth: usize) -> Vec<u8> {
    format!(
        "{{\"a\": \"x\", \"z\": {}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

#[test]
fn nesting_is_bounded_as_serde_json_bounds_it_skipped_or_read() {
    // serde_json's limit, for the values it reads: 127 levels, the 128th refused. Its
    // skipping (`IgnoredAny`) has none: it skips without recursion.
    assert!(by_value(&nested(NESTING_LIMIT - 1)).is_ok());
    assert!(by_value(&nested(NESTING_LIMIT)).is_err());
    let ignored = serde_json::from_slice::<serde::de::IgnoredAny>(&nested(100_000));
    assert!(ignored.is_ok(), "serde_json skips at any depth");
    // Here: the same limit, skipped as read, refused where the level too deep opens.
    assert!(lenient(&nested(NESTING_LIMIT - 1)).is_ok());
    let first = "{\"a\": \"x\", \"z\": ".len();
    for depth in [NESTING_LIMIT, 100_000] {
        let error = lenient(&nested(depth)).expect_err("too deep");
        assert_eq!(error.at, first + NESTING_LIMIT - 1, "{depth}");
        assert!(
            error.to_string().contains("nested deeper than 127"),
            "{error}"
        );
    }
    // In objects as in arrays, and in a value read as in one skipped.
    let objects = format!("{}{}", r#"{"a":"#.repeat(200), "}".repeat(200));
    assert!(by_value(objects.as_bytes()).is_err());
    let error = lenient(objects.as_bytes()).expect_err("too deep");
    assert_eq!(error.at, 5 * NESTING_LIMIT);
    let read_deep = format!(r#"{{"a": {}"x"{}}}"#, "[".repeat(200), "]".repeat(200));
    assert!(lenient(read_deep.as_bytes()).is_err());
    // Deep and unbalanced, or deep in a string: no more than its bytes.
    assert!(lenient(&"[".repeat(1_000_000).into_bytes()).is_err());
    let quoted = format!(r#"{{"a": "{}"}}"#, "[".repeat(1000));
    assert_eq!(
        lenient(quoted.as_bytes()).map(|ab| ab.a.map(|a| a.len())),
        Ok(Some(1000))
    );
}

#[test]
fn a_long_string_is_read_whole_wherever_its_quote_falls() {
    // The scan reads eight bytes at a time: each length, with the quote or an escape at
    // each place of a word.
    for len in 0..40 {
        let plain = "x".repeat(len);
        let json = format!(r#"{{"a": "{plain}", "z": "{plain}"}}"#);
        assert_eq!(
            lenient(json.as_bytes()).unwrap().a.as_deref(),
            Some(plain.as_str())
        );
        let escaped = format!(r#"{{"a": "{plain}\n{plain}"}}"#);
        let read = lenient(escaped.as_bytes()).unwrap().a.unwrap();
        assert_eq!(read, format!("{plain}\n{plain}"));
        let control = format!("{{\"a\": \"x\", \"z\": \"{plain}\u{1}{plain}\"}}");
        let error = lenient(control.as_bytes()).expect_err("control");
        assert_eq!(error.at, r#"{"a": "x", "z": ""#.len() + len);
    }
}
