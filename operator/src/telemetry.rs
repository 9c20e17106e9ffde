//! What the operator tells the outside about itself: JSON log lines (docs/contract.md §6), Prometheus
//! metrics, and the plain-HTTP `/healthz`, `/readyz` and `/metrics` endpoints.
//!
//! [`logs`] formats every `tracing` event as one JSON object per line on stderr;
//! [`metrics`] holds the counters and histograms, whose label values all come from fixed sets;
//! [`health`] serves them on the metrics port, apart from the webhook's TLS port.

pub mod health;
pub mod logs;
pub mod metrics;

mod json;

pub use health::{Readiness, serve_health};
pub use logs::{JsonFields, JsonFormat, env_filter, init_logging, json_layer};
pub use metrics::{Cache, DecisionLabel, EventDropped, Metrics};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log level is neither a level nor an `EnvFilter` directive.
    #[error(
        "invalid log level {directive:?}: {source}; use a level such as \"info\" or \"debug\", or a directive such as \"info,image-policy=debug\""
    )]
    Filter {
        /// The directive as given.
        directive: String,
        /// What the parser found wrong.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global logger was installed already (logging is set up once per process).
    #[error("logging was already initialised: {0}")]
    AlreadyInitialized(String),
    /// The metrics could not be written in the OpenMetrics text format.
    #[error("metrics could not be encoded")]
    Encode(#[from] std::fmt::Error),
}
