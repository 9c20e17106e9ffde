//! JSON log lines (docs/contract.md §6): one object per line with `level`, `ts`, `logger` and `msg` first,
//! then every structured field of the event and of the spans around it (`object`, `error`,
//! `uid`, `namespace`, ...) at the top level.
//!
//! ```text
//! {"level":"info","ts":"2025-05-01T12:00:00.123Z","logger":"image-policy.webhook","msg":"Denied","object":"default/pod/bb","uid":"abc"}
//! ```
//!
//! Fields are recorded with their JSON type where `tracing` gives one (strings, integers,
//! floats, booleans); `%value` and `?value` become strings; an error passed as
//! `&dyn Error` is written with its chain of causes. Records of the `log` crate (from
//! dependencies) keep their own target as `logger`.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::TelemetryError;

/// The keys every line starts with; a field of the same name is written as `fields.<name>`.
const RESERVED: [&str; 4] = ["level", "ts", "logger", "msg"];

/// Fields that `tracing-log` adds to records of the `log` crate; `log.target` becomes `logger`.
const LOG_TARGET: &str = "log.target";
const LOG_NOISE: [&str; 3] = ["log.module_path", "log.file", "log.line"];

/// The level used when neither the argument nor `RUST_LOG` says one.
const DEFAULT_LEVEL: &str = "info";

/// Installs the JSON logger on stderr as the process-wide `tracing` subscriber (and as the
/// `log` crate's logger, so that dependencies using `log` are formatted the same way).
///
/// `level` is a level (`"info"`, `"debug"`) or an `EnvFilter` directive
/// (`"info,image-policy=debug"`); see [`env_filter`] for how `RUST_LOG` is used when it is
/// empty. A write to stderr that fails is dropped silently: logging never panics and never
/// stops the process.
pub fn init_logging(level: &str) -> Result<(), TelemetryError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = env_filter(level, rust_log.as_deref())?;
    tracing_subscriber::registry()
        .with(filter)
        .with(json_layer(io::stderr))
        .try_init()
        .map_err(|error| TelemetryError::AlreadyInitialized(error.to_string()))
}

/// The filter for `level`: `level` itself when it is not blank, else `rust_log` (the value of
/// `RUST_LOG`) when that is not blank, else `info`.
pub fn env_filter(level: &str, rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let directive = [Some(level), rust_log]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|directive| !directive.is_empty())
        .unwrap_or(DEFAULT_LEVEL);
    EnvFilter::builder()
        .parse(directive)
        .map_err(|source| TelemetryError::Filter {
            directive: directive.to_owned(),
            source,
        })
}

/// A `tracing-subscriber` fmt layer that writes [`JsonFormat`] lines to `make_writer`.
///
/// [`init_logging`] uses it with stderr; tests give it a buffer. Errors of the writer are not
/// reported (reporting them would write to stderr again, and `eprintln!` panics when stderr
/// is gone).
pub fn json_layer<S, W>(
    make_writer: W,
) -> tracing_subscriber::fmt::Layer<S, JsonFields, JsonFormat, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields)
        .event_format(JsonFormat)
        .with_writer(make_writer)
        .log_internal_errors(false)
}

/// Formats an event as one JSON line: `level`, `ts` (RFC 3339, UTC, milliseconds), `logger`
/// (the target), `msg`, then the fields of the enclosing spans (outermost first) and of the
/// event itself, sorted by name; an event field wins over a span field of the same name.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFormat;

impl<S> FormatEvent<S, JsonFields> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(formatted) = span.extensions().get::<FormattedFields<JsonFields>>() {
                    fields.extend(parse_object(&formatted.fields));
                }
            }
        }
        let mut visitor = JsonVisitor { fields };
        event.record(&mut visitor);
        let mut fields = visitor.fields;

        let message = match fields.remove("message") {
            Some(Value::String(message)) => message,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let logger = match fields.remove(LOG_TARGET) {
            Some(Value::String(target)) => target,
            _ => event.metadata().target().to_owned(),
        };
        for noise in LOG_NOISE {
            fields.remove(noise);
        }

        let ts =
            DateTime::<Utc>::from(SystemTime::now()).to_rfc3339_opts(SecondsFormat::Millis, true);
        let head = [
            ("level", level_name(event.metadata().level())),
            ("ts", ts.as_str()),
            ("logger", logger.as_str()),
            ("msg", message.as_str()),
        ];
        writer.write_char('{')?;
        for (index, (key, value)) in head.iter().enumerate() {
            if index > 0 {
                writer.write_char(',')?;
            }
            write_json(&mut writer, &key)?;
            writer.write_char(':')?;
            write_json(&mut writer, value)?;
        }
        for (key, value) in &fields {
            writer.write_char(',')?;
            if RESERVED.contains(&key.as_str()) {
                write_json(&mut writer, &format!("fields.{key}"))?;
            } else {
                write_json(&mut writer, key)?;
            }
            writer.write_char(':')?;
            write_json(&mut writer, value)?;
        }
        writer.write_str("}\n")
    }
}

/// Stores the fields of a span as a JSON object, for [`JsonFormat`] to merge into each line
/// logged inside the span.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = JsonVisitor::default();
        fields.record(&mut visitor);
        write_json(&mut writer, &visitor.fields)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = JsonVisitor {
            fields: parse_object(&current.fields),
        };
        fields.record(&mut visitor);
        current.fields = serde_json::to_string(&visitor.fields).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

/// Collects fields into a JSON object, keeping the JSON type where `tracing` gives one.
#[derive(Debug, Default)]
struct JsonVisitor {
    fields: Map<String, Value>,
}

impl JsonVisitor {
    fn insert(&mut self, field: &Field, value: Value) {
        self.fields.insert(field.name().to_owned(), value);
    }
}

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number.
        let value =
            Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.insert(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::String(value.to_owned()));
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
        self.insert(field, Value::String(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::String(format!("{value:?}")));
    }
}

/// The lowercase name of a level, as docs/contract.md §6 writes it.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Writes `value` as JSON; serde_json does the escaping.
fn write_json<T: serde::Serialize + ?Sized>(writer: &mut Writer<'_>, value: &T) -> fmt::Result {
    let text = serde_json::to_string(value).map_err(|_| fmt::Error)?;
    writer.write_str(&text)
}

/// The object that [`JsonFields`] stored; empty if it is not one (it always is).
fn parse_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    /// Runs `body` with the JSON layer writing to a buffer and returns the lines it logged.
    fn capture(body: impl FnOnce()) -> Vec<String> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("trace"))
            .with(json_layer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, body);
        buffer.lines()
    }

    fn parse(line: &str) -> Map<String, Value> {
        match serde_json::from_str(line).unwrap() {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Checks `ts` is RFC 3339 in UTC with milliseconds, then removes it.
    fn take_ts(map: &mut Map<String, Value>) {
        let ts = map.remove("ts").unwrap();
        let ts = ts.as_str().unwrap();
        assert_eq!(ts.len(), "2025-01-01T00:00:00.000Z".len(), "{ts}");
        assert!(ts.ends_with('Z'), "{ts}");
        let parsed = DateTime::parse_from_rfc3339(ts).unwrap();
        let age = Utc::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() < 60, "{ts}");
    }

    #[test]
    fn info_line_has_exact_keys_and_values() {
        let lines = capture(|| {
            tracing::info!(target: "image-policy.webhook", uid = "abc", object = "default/pod/bb", "Denied");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(line.starts_with(r#"{"level":"info","ts":""#), "{line}");
        let mut map = parse(line);
        take_ts(&mut map);
        assert_eq!(
            Value::Object(map),
            serde_json::json!({
                "level": "info",
                "logger": "image-policy.webhook",
                "msg": "Denied",
                "object": "default/pod/bb",
                "uid": "abc",
            })
        );
    }

    #[test]
    fn error_line_carries_the_error() {
        let error = io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "registry \"r\" unreachable",
        );
        let lines = capture(|| {
            tracing::error!(target: "image-policy.controller", error = %error, object = "image-policy", "Reconcile failed");
        });
        let mut map = parse(&lines[0]);
        take_ts(&mut map);
        assert_eq!(
            Value::Object(map),
            serde_json::json!({
                "level": "error",
                "logger": "image-policy.controller",
                "msg": "Reconcile failed",
                "object": "image-policy",
                "error": "registry \"r\" unreachable",
            })
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("verification failed")]
    struct Outer(#[source] io::Error);

    #[test]
    fn dyn_error_is_written_with_its_causes() {
        let error = Outer(io::Error::other("connection reset"));
        let lines = capture(|| {
            tracing::warn!(error = &error as &(dyn StdError + 'static), "Retrying");
        });
        let map = parse(&lines[0]);
        assert_eq!(map["level"], "warn");
        assert_eq!(map["error"], "verification failed: connection reset");
        // Without a target the module path is the logger.
        assert_eq!(map["logger"], module_path!());
    }

    #[test]
    fn typed_fields_keep_their_json_type_and_text_is_escaped() {
        let lines = capture(|| {
            tracing::info!(
                count = 3u64,
                delta = -2i64,
                ratio = 0.5f64,
                nan = f64::NAN,
                dry_run = true,
                images = ?["a:1", "b\"2"],
                note = "line\nbreak \u{1} \\",
                "Decided {} of {}", 1, 2
            );
        });
        assert_eq!(
            lines.len(),
            1,
            "a newline inside a value must not split the line"
        );
        let map = parse(&lines[0]);
        assert_eq!(map["msg"], "Decided 1 of 2");
        assert_eq!(map["count"], 3);
        assert_eq!(map["delta"], -2);
        assert_eq!(map["ratio"], 0.5);
        assert_eq!(map["nan"], "NaN");
        assert_eq!(map["dry_run"], true);
        assert_eq!(map["images"], r#"["a:1", "b\"2"]"#);
        assert_eq!(map["note"], "line\nbreak \u{1} \\");
    }

    #[test]
    fn span_fields_are_flattened_and_event_fields_win() {
        let lines = capture(|| {
            let outer = tracing::info_span!(
                "review",
                uid = "u-1",
                namespace = "default",
                kind = tracing::field::Empty
            );
            let _outer = outer.enter();
            outer.record("kind", "Pod");
            let inner = tracing::info_span!("verify", namespace = "shadowed", image = "reg/app:1");
            let _inner = inner.enter();
            tracing::info!(target: "image-policy.webhook", verdict = "allowed", image = "reg/app@sha256:00", "Admitted");
        });
        let mut map = parse(&lines[0]);
        take_ts(&mut map);
        assert_eq!(
            Value::Object(map),
            serde_json::json!({
                "level": "info",
                "logger": "image-policy.webhook",
                "msg": "Admitted",
                "uid": "u-1",
                "namespace": "shadowed",
                "kind": "Pod",
                "image": "reg/app@sha256:00",
                "verdict": "allowed",
            })
        );
    }

    #[test]
    fn fields_named_like_the_head_do_not_replace_it() {
        let lines = capture(|| {
            tracing::info!(target: "image-policy.webhook", level = "spoofed", msg = "spoofed", "Real");
        });
        let map = parse(&lines[0]);
        assert_eq!(map["level"], "info");
        assert_eq!(map["msg"], "Real");
        assert_eq!(map["fields.level"], "spoofed");
        assert_eq!(map["fields.msg"], "spoofed");
    }

    #[test]
    fn head_keys_come_first_in_order() {
        let lines = capture(|| tracing::debug!(target: "image-policy.verify", "Cache miss"));
        let line = &lines[0];
        let positions: Vec<usize> = ["\"level\"", "\"ts\"", "\"logger\"", "\"msg\""]
            .iter()
            .map(|key| line.find(key).unwrap())
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{line}");
        assert!(line.ends_with('}'));
    }

    #[test]
    fn filter_prefers_the_argument_then_rust_log_then_info() {
        assert_eq!(
            env_filter("debug", Some("error")).unwrap().to_string(),
            "debug"
        );
        assert_eq!(env_filter(" ", Some("error")).unwrap().to_string(), "error");
        assert_eq!(env_filter("", None).unwrap().to_string(), "info");
        assert_eq!(env_filter("", Some("")).unwrap().to_string(), "info");
        let directive = env_filter("info,image-policy.webhook=debug", None)
            .unwrap()
            .to_string();
        assert!(
            directive.contains("image-policy.webhook=debug"),
            "{directive}"
        );
    }

    #[test]
    fn a_bad_filter_is_an_error_that_names_it() {
        let error = env_filter("info,=bogus[", None).unwrap_err();
        assert!(error.to_string().contains("info,=bogus["), "{error}");
    }

    #[test]
    fn a_failing_writer_neither_panics_nor_logs_elsewhere() {
        let subscriber = tracing_subscriber::registry().with(json_layer(|| FailingWriter));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("Nobody hears this");
        });
    }

    struct FailingWriter;

    impl io::Write for FailingWriter {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }
}
