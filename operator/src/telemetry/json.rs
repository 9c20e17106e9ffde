//! JSON text for the log lines, written straight into a reused buffer: strings escaped
//! exactly as serde_json escapes them, the fields of an event recorded as JSON values, and the
//! `ts` of a line, whose seconds are formatted once per second.
//!
//! A decision's line is written once per admission, so it must cost little beside the
//! decision: no map of values, no `String` per field and no calendar arithmetic per line.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};
use tracing::field::{Field, Visit};

/// The fields of an event (and of the spans around it), each value already JSON text, in the
/// order they were recorded until [`Fields::sort`].
#[derive(Debug, Default)]
pub(super) struct Fields {
    /// The JSON text of every value, one after another.
    values: String,
    /// Each field's name and where its value is in `values`.
    entries: Vec<(Cow<'static, str>, Range<usize>)>,
}

impl Fields {
    /// Forgets every field, keeping the memory for the next line.
    pub(super) fn clear(&mut self) {
        self.values.clear();
        self.entries.clear();
    }

    /// Adds the fields of a JSON object that [`Fields::write_object`] wrote (the stored
    /// fields of a span); nothing if `object` is not one.
    pub(super) fn extend_from_object(&mut self, object: &str) {
        if let Ok(map) = serde_json::from_str::<Map<String, Value>>(object) {
            for (key, value) in map {
                self.push(Cow::Owned(key), |out| {
                    // A `Value` displays as its compact JSON text.
                    let _ = write!(out, "{value}");
                });
            }
        }
    }

    /// Sorts the fields by name; of fields with the same name only the one recorded last
    /// stays (an event's field over its span's, an inner span's over an outer one's).
    pub(super) fn sort(&mut self) {
        // Reversed, the stable sort puts the last recorded first among equals, and `dedup`
        // keeps the first.
        self.entries.reverse();
        // Byte by byte, as `str` orders: names mostly differ in their first byte.
        self.entries
            .sort_by(|(a, _), (b, _)| a.bytes().cmp(b.bytes()));
        self.entries.dedup_by(|(a, _), (b, _)| a == b);
    }

    /// The JSON text of the field `name`, if recorded.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, range)| self.values.get(range.clone()))
    }

    /// Each field's name and JSON text, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter_map(|(key, range)| {
            let value = self.values.get(range.clone())?;
            Some((key.as_ref(), value))
        })
    }

    /// Writes the fields as one JSON object, for a span to store.
    pub(super) fn write_object(&self, out: &mut String) {
        out.push('{');
        for (index, (key, value)) in self.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_string(out, key);
            out.push(':');
            out.push_str(value);
        }
        out.push('}');
    }

    /// Records the field `key` with the JSON text that `write` appends.
    fn push(&mut self, key: Cow<'static, str>, write: impl FnOnce(&mut String)) {
        let start = self.values.len();
        write(&mut self.values);
        self.entries.push((key, start..self.values.len()));
    }

    /// Records `value` as a JSON string of its `Display` text (`Debug` where `tracing` gives
    /// only that), escaped as it is formatted.
    fn push_text(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.push(Cow::Borrowed(field.name()), |out| {
            out.push('"');
            // Only a `Debug` or `Display` impl that fails can fail; what it wrote stays.
            let _ = Escaping(out).write_fmt(value);
            out.push('"');
        });
    }
}

/// Records each field with its JSON type where `tracing` gives one.
impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        match Number::from_f64(value) {
            Some(number) => self.push(Cow::Borrowed(field.name()), |out| {
                // serde_json's own shortest form, as `serde_json::to_string` writes it.
                let _ = write!(out, "{number}");
            }),
            // NaN and infinities have no JSON number.
            None => self.push_text(field, format_args!("{value}")),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(Cow::Borrowed(field.name()), |out| {
            let _ = write!(out, "{value}");
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(Cow::Borrowed(field.name()), |out| {
            let _ = write!(out, "{value}");
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(Cow::Borrowed(field.name()), |out| {
            out.push_str(if value { "true" } else { "false" });
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(Cow::Borrowed(field.name()), |out| push_string(out, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn StdError + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            // Errors that embed their source's text in their own would repeat it.
            if !text.ends_with(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        self.push(Cow::Borrowed(field.name()), |out| push_string(out, &text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push_text(field, format_args!("{value:?}"));
    }
}

/// Appends `text` as a JSON string, quotes included.
pub(super) fn push_string(out: &mut String, text: &str) {
    out.push('"');
    escape_into(out, text);
    out.push('"');
}

/// A `fmt::Write` that escapes what is written to it for the inside of a JSON string.
pub(super) struct Escaping<'a>(pub(super) &'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape_into(self.0, text);
        Ok(())
    }

    // `Debug` writes the quotes of each string one by one.
    fn write_char(&mut self, char: char) -> fmt::Result {
        match u8::try_from(char) {
            Ok(byte) if needs_escape(byte) => push_escape(self.0, byte),
            _ => self.0.push(char),
        }
        Ok(())
    }
}

/// Appends `text` escaped for the inside of a JSON string, as serde_json escapes it: `"`,
/// `\` and the control characters below U+0020, with the short forms where JSON has one;
/// everything else as it is.
fn escape_into(out: &mut String, text: &str) {
    // Most text (names, images, uids) has nothing to escape: one pass that the compiler can
    // vectorise, then one copy.
    if !text
        .bytes()
        .fold(false, |any, byte| any | needs_escape(byte))
    {
        out.push_str(text);
        return;
    }
    let mut plain_from = 0;
    for (at, byte) in text.bytes().enumerate() {
        if needs_escape(byte) {
            // `at` is an ASCII byte, so the text before it ends on a character boundary.
            out.push_str(text.get(plain_from..at).unwrap_or_default());
            push_escape(out, byte);
            plain_from = at + 1;
        }
    }
    out.push_str(text.get(plain_from..).unwrap_or_default());
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn push_escape(out: &mut String, byte: u8) {
    match byte {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        0x08 => out.push_str("\\b"),
        b'\t' => out.push_str("\\t"),
        b'\n' => out.push_str("\\n"),
        0x0c => out.push_str("\\f"),
        b'\r' => out.push_str("\\r"),
        // serde_json writes the other controls as `\u00XX` with lowercase hex digits.
        control => {
            let _ = write!(out, "\\u{control:04x}");
        }
    }
}

/// Writes `ts`: RFC 3339 in UTC with milliseconds (`2025-05-01T12:00:00.123Z`), as chrono's
/// `to_rfc3339_opts(SecondsFormat::Millis, true)` writes it. The part up to the seconds is
/// formatted by chrono once per second and kept; each line adds only its milliseconds.
#[derive(Debug, Default)]
pub(super) struct Clock {
    /// The second since the epoch that `prefix` shows.
    second: Option<u64>,
    /// `2025-05-01T12:00:00`, without fraction or zone.
    prefix: String,
}

impl Clock {
    /// Appends the time now.
    pub(super) fn push_now(&mut self, out: &mut String) {
        self.push_at(SystemTime::now(), out);
    }

    fn push_at(&mut self, time: SystemTime, out: &mut String) {
        let Ok(since_epoch) = time.duration_since(UNIX_EPOCH) else {
            // A clock before 1970: rare enough to format in full.
            let full = DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true);
            out.push_str(&full);
            return;
        };
        let second = since_epoch.as_secs();
        if self.second != Some(second) {
            let whole = DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true);
            self.prefix.clear();
            self.prefix.push_str(whole.trim_end_matches('Z'));
            self.second = Some(second);
        }
        out.push_str(&self.prefix);
        out.push('.');
        let millis = since_epoch.subsec_millis();
        for divisor in [100, 10, 1] {
            out.push(char::from_digit(millis / divisor % 10, 10).unwrap_or('0'));
        }
        out.push('Z');
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, text);
        out
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        for code in (0..0x80).chain([0xa0, 0x2028, 0x2029, 0xfeff, 0x1f600]) {
            let text = format!("a{}b", char::from_u32(code).unwrap());
            assert_eq!(
                escaped(&text),
                serde_json::to_string(&text).unwrap(),
                "{code:#x}"
            );
        }
        let mixed = "\"quoted\"\n\\path\\ \u{1b}[31m é 日本 \u{7f}\t";
        assert_eq!(escaped(mixed), serde_json::to_string(mixed).unwrap());
        assert_eq!(escaped(""), "\"\"");
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_escaped_as_serde_json_escapes_it(text in "(?s).{0,40}") {
            proptest::prop_assert_eq!(escaped(&text), serde_json::to_string(&text).unwrap());
        }
    }

    #[test]
    fn formatted_text_is_escaped_across_its_pieces() {
        let mut out = String::new();
        write!(Escaping(&mut out), "{:?}", ["a\"1", "b\n"]).unwrap();
        assert_eq!(out, r#"[\"a\\\"1\", \"b\\n\"]"#);
        out.clear();
        for char in ['"', '\n', '\u{1}', 'é', 'a'] {
            Escaping(&mut out).write_char(char).unwrap();
        }
        assert_eq!(out, r#"\"\n\u0001éa"#);
    }

    #[test]
    fn ts_matches_chrono_at_every_millisecond_boundary() {
        let mut clock = Clock::default();
        let base = UNIX_EPOCH + Duration::from_secs(1_746_100_799);
        for nanos in [
            0,
            999_999,
            1_000_000,
            123_456_789,
            999_000_000,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            61_500_000_000,
            86_400_000_000_000,
        ] {
            let time = base + Duration::from_nanos(nanos);
            let mut out = String::new();
            clock.push_at(time, &mut out);
            let expected = DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true);
            assert_eq!(out, expected);
        }
        let mut out = String::new();
        let before_epoch = UNIX_EPOCH - Duration::from_millis(1500);
        clock.push_at(before_epoch, &mut out);
        assert_eq!(out, "1969-12-31T23:59:58.500Z");
    }

    #[test]
    fn later_fields_win_and_names_sort_bytewise() {
        let mut fields = Fields::default();
        fields.extend_from_object(r#"{"b":1,"a":"outer"}"#);
        fields.extend_from_object(r#"{"a":"inner","Z":true}"#);
        fields.push(Cow::Borrowed("a"), |out| out.push_str("\"event\""));
        fields.push(Cow::Borrowed("c"), |out| out.push_str("null"));
        fields.sort();
        let sorted: Vec<_> = fields.iter().collect();
        assert_eq!(
            sorted,
            [("Z", "true"), ("a", "\"event\""), ("b", "1"), ("c", "null")]
        );
        assert_eq!(fields.get("b"), Some("1"));
        assert_eq!(fields.get("d"), None);
        let mut object = String::new();
        fields.write_object(&mut object);
        assert_eq!(object, r#"{"Z":true,"a":"event","b":1,"c":null}"#);
    }
}
