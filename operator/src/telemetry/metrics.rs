//! Prometheus metrics, encoded in the OpenMetrics text format.
//!
//! Every label value is a `&'static str` or one of the small enums here, so a label can only
//! take a value written in the source: nothing a request carries can grow the number of
//! series. Names start with `image_policy_`:
//!
//! | metric | labels |
//! | --- | --- |
//! | `image_policy_admission_requests_total` (counter) | `kind`, `operation`, `decision` (allowed, denied, warned), `reason` |
//! | `image_policy_admission_duration_seconds` (histogram, 0.5 ms … 10 s) | `kind` |
//! | `image_policy_verification_cache_total` (counter) | `cache` (digest, verdict), `result` (hit, miss) |
//! | `image_policy_registry_requests_total` (counter) | `outcome` |
//! | `image_policy_pinned_images_total` (counter) | `kind` |
//! | `image_policy_events_dropped_total` (counter) | `cause` (queue_full, publish_failed) |
//! | `image_policy_policy_ready` (gauge) | 1 while a valid snapshot is enforced |
//! | `image_policy_policy_keys`, `image_policy_policy_patterns` (gauges) | size of that snapshot |
//! | `image_policy_running_workloads`, `image_policy_running_refused_workloads` (gauges) | the last check of what already runs, on the lease holder (-1 elsewhere and before one) |

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

use super::TelemetryError;
pub use crate::verify::Cache;
use crate::verify::RegistryOutcome;

/// The prefix of every metric name.
const PREFIX: &str = "image_policy";

/// Upper bounds of the admission latency buckets, in seconds: a cached verdict answers in well
/// under a millisecond, a cold verification against a slow registry in seconds, and the API
/// server gives up at 10 s at most.
pub const ADMISSION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `decision` label of an answered admission review: what the webhook answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionLabel {
    /// The object was admitted (with or without warnings).
    Allowed,
    /// The object was refused.
    Denied,
    /// The object was admitted only because its images' mode is Warn: in Enforce it would
    /// have been refused, for the `reason` recorded with it.
    Warned,
}

impl DecisionLabel {
    /// The label value: `allowed`, `denied` or `warned`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionLabel::Allowed => "allowed",
            DecisionLabel::Denied => "denied",
            DecisionLabel::Warned => "warned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AdmissionLabels {
    kind: &'static str,
    operation: &'static str,
    decision: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

/// Why a Kubernetes Event of an admission was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventDropped {
    /// The queue to the publisher was full (or, at shutdown, closed): admission never waits.
    QueueFull,
    /// The API server refused it or did not answer in time.
    PublishFailed,
}

impl EventDropped {
    /// The label value: `queue_full` or `publish_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventDropped::QueueFull => "queue_full",
            EventDropped::PublishFailed => "publish_failed",
        }
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The operator's metrics. Cloning is cheap (one `Arc`); every clone records into the same
/// registry, so one instance is made at start-up and handed to the webhook, the verifier, the
/// controller and the health server.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    admission_requests: Family<AdmissionLabels, Counter>,
    admission_duration: HistogramFamily<KindLabels>,
    verification_cache: Family<CacheLabels, Counter>,
    registry_requests: Family<OutcomeLabels, Counter>,
    pinned_images: Family<KindLabels, Counter>,
    events_dropped: Family<CauseLabels, Counter>,
    policy_ready: Gauge,
    policy_keys: Gauge,
    policy_patterns: Gauge,
    running_workloads: Gauge,
    running_refused_workloads: Gauge,
    serving_certificate_expiry: Gauge,
}

impl Metrics {
    /// A registry with every metric registered and no sample recorded yet.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let admission_duration: HistogramFamily<KindLabels> =
            Family::new_with_constructor(|| Histogram::new(ADMISSION_BUCKETS));
        registry.register_with_unit(
            "admission_duration",
            "Time from reading an admission review to writing its answer",
            Unit::Seconds,
            admission_duration.clone(),
        );
        let r = &mut registry;
        let admission_requests = registered(
            r,
            "admission_requests",
            "Admission reviews answered, by object kind, operation, decision and reason",
        );
        let verification_cache = registered(
            r,
            "verification_cache",
            "Lookups in the digest and verdict caches, by result",
        );
        let registry_requests = registered(
            r,
            "registry_requests",
            "Requests to container registries, by outcome",
        );
        let pinned_images = registered(
            r,
            "pinned_images",
            "Images rewritten to the digest their verification accepted, by object kind",
        );
        let events_dropped = registered(
            r,
            "events_dropped",
            "Kubernetes Events of admissions not published, by cause",
        );
        // Gauges: the name, what it says, and its value until something is recorded.
        let gauges = [
            ("policy_ready", "1 while a valid policy snapshot is enforced, else 0", 0),
            ("policy_keys", "Public keys in the enforced policy snapshot", 0),
            ("policy_patterns", "Image name patterns in the enforced policy snapshot", 0),
            (
                "running_workloads",
                "Workloads checked by the last check of what already runs (-1: none on this replica)",
                -1,
            ),
            (
                "running_refused_workloads",
                "Of those, the workloads running an image the policy would refuse now (-1: no check on this replica)",
                -1,
            ),
            (
                "serving_certificate_expiry_timestamp_seconds",
                "When the webhook's serving certificate expires (Unix time); alert well before it",
                0,
            ),
        ]
        .map(|(name, help, initial)| {
            let gauge: Gauge = registered(r, name, help);
            gauge.set(initial);
            gauge
        });
        let [ready, keys, patterns, running, refused, certificate_expiry] = gauges;
        Metrics {
            inner: Arc::new(Inner {
                registry,
                admission_requests,
                admission_duration,
                verification_cache,
                registry_requests,
                pinned_images,
                events_dropped,
                policy_ready: ready,
                policy_keys: keys,
                policy_patterns: patterns,
                running_workloads: running,
                running_refused_workloads: refused,
                serving_certificate_expiry: certificate_expiry,
            }),
        }
    }

    /// Records one answered admission review: `kind` (`Pod`, `Deployment`, ...),
    /// `operation` (`CREATE`, `UPDATE`, ...), the decision, its fixed `reason` label (such as
    /// `Outcome::label` of `decide`), and how long the answer took.
    pub fn admission(
        &self,
        kind: &'static str,
        operation: &'static str,
        decision: DecisionLabel,
        reason: &'static str,
        duration: Duration,
    ) {
        let labels = AdmissionLabels {
            kind,
            operation,
            decision: decision.as_str(),
            reason,
        };
        self.inner.admission_requests.get_or_create(&labels).inc();
        self.inner
            .admission_duration
            .get_or_create(&KindLabels { kind })
            .observe(duration.as_secs_f64());
    }

    /// Records one lookup in a verification cache.
    pub fn cache(&self, cache: Cache, hit: bool) {
        let labels = CacheLabels {
            cache: cache.as_str(),
            result: if hit { "hit" } else { "miss" },
        };
        self.inner.verification_cache.get_or_create(&labels).inc();
    }

    /// Counts `count` images of an object of `kind` pinned to their digest.
    pub fn pinned(&self, kind: &'static str, count: usize) {
        self.inner
            .pinned_images
            .get_or_create(&KindLabels { kind })
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// Counts one Kubernetes Event of an admission that was not published.
    pub fn event_dropped(&self, cause: EventDropped) {
        self.inner
            .events_dropped
            .get_or_create(&CauseLabels {
                cause: cause.as_str(),
            })
            .inc();
    }

    /// Records one request to a registry with its fixed outcome label (`ok`, `not_found`,
    /// `unauthorized`, `unreachable`, `bad_response`, `timeout`, ...).
    pub fn registry_request(&self, outcome: &'static str) {
        self.inner
            .registry_requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Records the policy now enforced: whether a valid snapshot is in force, and its number of
    /// keys and patterns (0 and 0 when there is none).
    pub fn policy(&self, ready: bool, keys: usize, patterns: usize) {
        self.inner.policy_ready.set(i64::from(ready));
        self.inner.policy_keys.set(saturating_i64(keys));
        self.inner.policy_patterns.set(saturating_i64(patterns));
    }

    /// Records the last check of what already runs: how many workloads, and how many refused.
    pub fn running(&self, workloads: usize, refused: usize) {
        self.inner.running_workloads.set(saturating_i64(workloads));
        self.inner
            .running_refused_workloads
            .set(saturating_i64(refused));
    }

    /// Records that this replica no longer checks what already runs (it lost the lease).
    pub fn running_unknown(&self) {
        self.inner.running_workloads.set(-1);
        self.inner.running_refused_workloads.set(-1);
    }

    /// Records the expiry of the serving certificate just loaded.
    pub fn serving_certificate(&self, not_after: std::time::SystemTime) {
        let seconds = not_after
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.inner
            .serving_certificate_expiry
            .set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    /// Every metric in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> Result<String, TelemetryError> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A new metric of type `M`, registered in `registry` as `name` with `help`. The registry
/// keeps a clone: a metric is a handle on values that every clone shares.
fn registered<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

fn saturating_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl crate::verify::Observer for Metrics {
    fn cache(&self, cache: Cache, hit: bool) {
        Metrics::cache(self, cache, hit);
    }

    fn registry_request(&self, outcome: RegistryOutcome) {
        Metrics::registry_request(self, outcome.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_starting(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_fresh_registry_has_the_gauges_and_ends_with_eof() {
        let text = Metrics::new().encode().unwrap();
        // A family without a series yet is left out of the exposition.
        assert!(!text.contains("admission_requests"), "{text}");
        assert!(text.contains("image_policy_policy_ready 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// Records a Pod created and admitted as verified, answered in `took`.
    fn pod_verified(metrics: &Metrics, took: Duration) {
        metrics.admission("Pod", "CREATE", DecisionLabel::Allowed, "Verified", took);
    }

    #[test]
    fn every_metric_is_described() {
        let metrics = Metrics::new();
        pod_verified(&metrics, Duration::ZERO);
        metrics.cache(Cache::Digest, true);
        metrics.registry_request("ok");
        let text = metrics.encode().unwrap();
        for (name, kind) in [
            ("admission_requests", "counter"),
            ("admission_duration_seconds", "histogram"),
            ("verification_cache", "counter"),
            ("registry_requests", "counter"),
            ("policy_ready", "gauge"),
            ("policy_keys", "gauge"),
            ("policy_patterns", "gauge"),
            ("running_workloads", "gauge"),
            ("running_refused_workloads", "gauge"),
            ("serving_certificate_expiry_timestamp_seconds", "gauge"),
        ] {
            let line = format!("# TYPE image_policy_{name} {kind}");
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        let unit = "# UNIT image_policy_admission_duration_seconds seconds";
        assert!(text.contains(unit), "{text}");
    }

    #[test]
    fn admission_counter_increments_per_label_set() {
        let metrics = Metrics::new();
        let clone = metrics.clone();
        let ms = Duration::from_millis(3);
        metrics.admission("Pod", "CREATE", DecisionLabel::Denied, "NotSigned", ms);
        clone.admission("Pod", "CREATE", DecisionLabel::Denied, "NotSigned", ms);
        metrics.admission(
            "Deployment",
            "UPDATE",
            DecisionLabel::Allowed,
            "Verified",
            ms,
        );
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(
                "image_policy_admission_requests_total{kind=\"Pod\",operation=\"CREATE\",decision=\"denied\",reason=\"NotSigned\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "image_policy_admission_requests_total{kind=\"Deployment\",operation=\"UPDATE\",decision=\"allowed\",reason=\"Verified\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn histogram_has_the_buckets_and_counts_observations() {
        let metrics = Metrics::new();
        pod_verified(&metrics, Duration::from_micros(300));
        pod_verified(&metrics, Duration::from_millis(20));
        let text = metrics.encode().unwrap();
        let buckets = lines_starting(&text, "image_policy_admission_duration_seconds_bucket{");
        let bounds: Vec<String> = buckets
            .iter()
            .map(|line| {
                let start = line.find("le=\"").unwrap() + 4;
                let end = start + line[start..].find('"').unwrap();
                line[start..end].to_owned()
            })
            .collect();
        assert_eq!(
            bounds,
            [
                "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"
            ],
            "{text}"
        );
        // Cumulative: 0.3 ms is in every bucket, 20 ms from le=0.025 on.
        assert!(buckets[0].ends_with(" 1"), "{}", buckets[0]);
        assert!(buckets[4].ends_with(" 1"), "{}", buckets[4]);
        assert!(buckets[5].ends_with(" 2"), "{}", buckets[5]);
        assert!(buckets[14].ends_with(" 2"), "{}", buckets[14]);
        assert!(
            text.contains("image_policy_admission_duration_seconds_count{kind=\"Pod\"} 2\n"),
            "{text}"
        );
    }

    #[test]
    fn cache_registry_and_policy_are_recorded() {
        let metrics = Metrics::new();
        metrics.cache(Cache::Verdict, true);
        metrics.cache(Cache::Verdict, true);
        metrics.cache(Cache::Digest, false);
        metrics.registry_request("ok");
        metrics.registry_request("unreachable");
        metrics.registry_request("ok");
        metrics.policy(true, 3, 7);
        metrics.event_dropped(EventDropped::QueueFull);
        metrics.event_dropped(EventDropped::QueueFull);
        metrics.event_dropped(EventDropped::PublishFailed);
        let text = metrics.encode().unwrap();
        for expected in [
            "image_policy_events_dropped_total{cause=\"queue_full\"} 2\n",
            "image_policy_events_dropped_total{cause=\"publish_failed\"} 1\n",
            "image_policy_verification_cache_total{cache=\"verdict\",result=\"hit\"} 2\n",
            "image_policy_verification_cache_total{cache=\"digest\",result=\"miss\"} 1\n",
            "image_policy_registry_requests_total{outcome=\"ok\"} 2\n",
            "image_policy_registry_requests_total{outcome=\"unreachable\"} 1\n",
            "image_policy_policy_ready 1\n",
            "image_policy_policy_keys 3\n",
            "image_policy_policy_patterns 7\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        metrics.policy(false, 0, 0);
        let text = metrics.encode().unwrap();
        assert!(text.contains("image_policy_policy_ready 0\n"), "{text}");
        assert!(text.contains("image_policy_policy_keys 0\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.registry_request("a\"b\\c\nd");
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("image_policy_registry_requests_total{outcome=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
    }
}
