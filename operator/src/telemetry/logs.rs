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
//!
//! Every admission writes a line, so a line costs little beside the decision (about 1.5 µs,
//! `cargo bench -p image-policy --bench webhook_load`): the values are escaped straight into
//! a buffer kept per thread (`telemetry::json`), without a map of values or a `String`
//! per field, and the seconds of `ts` are formatted once per second. The line then goes to
//! the writer whole, in one write: to stderr, unbuffered and under its lock, so lines never
//! interleave and each appears as soon as it is logged; nothing is held back to lose when
//! the process stops.

use std::cell::Cell;
use std::fmt;
use std::io;

use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::TelemetryError;
use super::json::{self, Clock, Fields};

/// The keys every line starts with; a field of the same name is written as `fields.<name>`.
const RESERVED: [&str; 4] = ["level", "ts", "logger", "msg"];

/// The field that holds an event's message, written as `msg`.
const MESSAGE: &str = "message";

/// Fields that `tracing-log` adds to records of the `log` crate; `log.target` becomes `logger`.
const LOG_TARGET: &str = "log.target";
const LOG_NOISE: [&str; 3] = ["log.module_path", "log.file", "log.line"];

/// The most memory a thread keeps for formatting its next line.
const KEPT_CAPACITY: usize = 64 * 1024;

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
/// (the target), `msg`, then the fields of the enclosing spans and of the event itself,
/// sorted by name; an event field wins over a span field of the same name, an inner span's
/// over an outer one's.
///
/// The line is built in a buffer kept per thread and handed to the writer whole, so that it
/// reaches the writer in one write.
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
        thread_local! {
            static SCRATCH: Cell<Scratch> = Cell::default();
        }
        // Taken out while in use: a field whose `Debug` logs formats its line in a fresh one.
        let mut scratch = SCRATCH.try_with(Cell::take).unwrap_or_default();
        scratch.format(ctx, event);
        let written = writer.write_str(&scratch.line);
        // An exceptionally long line does not keep its memory for the lines after it.
        if scratch.line.capacity() <= KEPT_CAPACITY {
            let _ = SCRATCH.try_with(|cell| cell.set(scratch));
        }
        written
    }
}

/// What formatting a line needs, kept from one line to the next (per thread).
#[derive(Debug, Default)]
struct Scratch {
    fields: Fields,
    clock: Clock,
    line: String,
}

impl Scratch {
    /// Writes the line of `event` into `self.line`.
    fn format<S>(&mut self, ctx: &FmtContext<'_, S, JsonFields>, event: &Event<'_>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let fields = &mut self.fields;
        fields.clear();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(formatted) = span.extensions().get::<FormattedFields<JsonFields>>() {
                    fields.extend_from_object(&formatted.fields);
                }
            }
        }
        event.record(fields);
        fields.sort();

        let line = &mut self.line;
        line.clear();
        line.push_str("{\"level\":\"");
        line.push_str(level_name(event.metadata().level()));
        line.push_str("\",\"ts\":\"");
        self.clock.push_now(line);
        line.push_str("\",\"logger\":");
        match fields.get(LOG_TARGET) {
            Some(target) if is_string(target) => line.push_str(target),
            _ => json::push_string(line, event.metadata().target()),
        }
        line.push_str(",\"msg\":");
        match fields.get(MESSAGE) {
            Some(message) if is_string(message) => line.push_str(message),
            // A message that is not text (`message = 5`) is written as its JSON text.
            Some(other) => json::push_string(line, other),
            None => line.push_str("\"\""),
        }
        for (key, value) in fields.iter() {
            if key == MESSAGE || key == LOG_TARGET || LOG_NOISE.contains(&key) {
                continue;
            }
            line.push(',');
            if RESERVED.contains(&key) {
                line.push_str("\"fields.");
                line.push_str(key);
                line.push('"');
            } else {
                json::push_string(line, key);
            }
            line.push(':');
            line.push_str(value);
        }
        line.push_str("}\n");
    }
}

/// Whether the JSON text `value` is a string (the only JSON texts that start with a quote).
fn is_string(value: &str) -> bool {
    value.starts_with('"')
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
        let mut recorded = Fields::default();
        fields.record(&mut recorded);
        recorded.sort();
        let mut object = String::new();
        recorded.write_object(&mut object);
        writer.write_str(&object)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        let mut recorded = Fields::default();
        recorded.extend_from_object(&current.fields);
        fields.record(&mut recorded);
        recorded.sort();
        current.fields.clear();
        recorded.write_object(&mut current.fields);
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::error::Error as StdError;
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, Utc};
    use serde_json::{Map, Value};

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

    /// The line's object, its `ts` checked and removed.
    fn object_without_ts(line: &str) -> Value {
        let mut map = parse(line);
        take_ts(&mut map);
        Value::Object(map)
    }

    /// Checks `ts` is RFC 3339 in UTC with milliseconds, then removes it and returns it.
    fn take_ts(map: &mut Map<String, Value>) -> String {
        let ts = map.remove("ts").unwrap();
        let ts = ts.as_str().unwrap().to_owned();
        assert_eq!(ts.len(), "2025-01-01T00:00:00.000Z".len(), "{ts}");
        assert!(ts.ends_with('Z'), "{ts}");
        let parsed = DateTime::parse_from_rfc3339(&ts).unwrap();
        let age = Utc::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() < 60, "{ts}");
        ts
    }

    #[test]
    fn info_line_has_exact_keys_and_values() {
        let lines = capture(|| {
            tracing::info!(target: "image-policy.webhook", uid = "abc", object = "default/pod/bb", "Denied");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(line.starts_with(r#"{"level":"info","ts":""#), "{line}");
        assert_eq!(
            object_without_ts(line),
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
        assert_eq!(
            object_without_ts(&lines[0]),
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
        assert_eq!(
            object_without_ts(&lines[0]),
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

    /// The line with its `ts` value replaced by `TS`, after checking it.
    fn without_ts(line: &str) -> String {
        let ts = take_ts(&mut parse(line));
        line.replacen(&ts, "TS", 1)
    }

    #[test]
    fn a_decision_line_is_written_byte_for_byte() {
        let lines = capture(|| {
            let object = format_args!("{}/{}/{}", "default", "Pod", "bb");
            tracing::info!(
                target: "image-policy.webhook",
                uid = %"705ab4f5",
                object = %object,
                operation = %"CREATE",
                dry_run = false,
                images = ?["reg/app:v1", "reg/b@sha256:00"],
                reason = "Verified",
                error = None::<&str>,
                elapsed_ms = 0.25,
                "{}", "Admitted"
            );
        });
        assert_eq!(
            without_ts(&lines[0]),
            r#"{"level":"info","ts":"TS","logger":"image-policy.webhook","msg":"Admitted","dry_run":false,"elapsed_ms":0.25,"images":"[\"reg/app:v1\", \"reg/b@sha256:00\"]","object":"default/Pod/bb","operation":"CREATE","reason":"Verified","uid":"705ab4f5"}"#
        );
    }

    #[test]
    fn span_fields_and_reserved_names_are_written_byte_for_byte() {
        let lines = capture(|| {
            let span = tracing::info_span!("review", uid = "u-1", count = tracing::field::Empty);
            let _entered = span.enter();
            span.record("count", 2u64);
            tracing::warn!(target: "image-policy.webhook", ts = "spoofed", message_id = 1.0, "Look \"here\"");
        });
        assert_eq!(
            without_ts(&lines[0]),
            r#"{"level":"warn","ts":"TS","logger":"image-policy.webhook","msg":"Look \"here\"","count":2,"message_id":1.0,"fields.ts":"spoofed","uid":"u-1"}"#
        );
    }

    #[test]
    fn a_message_that_is_not_text_is_written_as_its_json() {
        let lines = capture(|| {
            tracing::info!(message = 5, "other" = true);
            tracing::info!(flag = true);
        });
        assert!(
            without_ts(&lines[0]).contains(r#""msg":"5","other":true}"#),
            "{}",
            lines[0]
        );
        assert!(
            without_ts(&lines[1]).contains(r#""msg":"","flag":true}"#),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn records_of_the_log_crate_keep_their_target() {
        // The fields `tracing-log` gives a record of the `log` crate.
        let lines = capture(|| {
            tracing::warn!(
                log.target = "hyper::proto",
                log.module_path = "hyper::proto::h1",
                log.file = "h1.rs",
                log.line = 7u64,
                "connection {}",
                "closed"
            );
        });
        assert_eq!(
            without_ts(&lines[0]),
            r#"{"level":"warn","ts":"TS","logger":"hyper::proto","msg":"connection closed"}"#
        );
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
