//! The second table of `webhook_load`: instructions and allocations per cached review, counted
//! by valgrind's callgrind, which gives the same figures run after run on a busy machine
//! where CPU time does not.
//!
//! The bench runs itself again under `valgrind --tool=callgrind` with
//! `WEBHOOK_LOAD_PROFILE=<rounds>` ([`stages`]): each stage handles the same body `rounds`
//! times inside a function of its own, `callgrind_stage_<name>`. Callgrind collects inside
//! those functions only (`--toggle-collect`) and writes a part file as each ends
//! (`--dump-after`), so that part N holds stage N alone, without the registry, the signing and
//! the first verification before it. A part's `totals` are its instructions; its calls to
//! `malloc`, `calloc` and `realloc` are its allocations.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use futures::executor::block_on;
use http::Request;
use image_policy::server::Handler as _;
use image_policy::telemetry::Metrics;
use image_policy::webhook::Webhook;
use image_policy::webhook::http::{ADMISSION_PATH, Routes};
use image_policy::webhook::review::Request as Review;

/// The stages, in the order they run and their parts are written.
pub const STAGES: [&str; 4] = [
    "Request::parse (reading the review)",
    "Webhook::handle (+ the decision and its answer)",
    "Routes::handle (+ metrics), no logger",
    "Routes::handle with the JSON log line",
];

/// Counts of one stage, per review.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted {
    pub instructions: f64,
    pub allocations: f64,
}

/// Runs each stage `rounds` times after a warm-up, then returns (the child under valgrind).
/// Each stage runs [`WARM_UP`] rounds first, in a part of its own that is not read.
pub fn stages(rounds: u32, webhook: Webhook, body: &[u8]) {
    for n in [WARM_UP, rounds] {
        callgrind_stage_parse(body, n);
    }
    for n in [WARM_UP, rounds] {
        callgrind_stage_handle(&webhook, body, n);
    }
    let routes = Arc::new(Routes::new(webhook, Metrics::new()));
    let posted = Bytes::copy_from_slice(body);
    for n in [WARM_UP, rounds] {
        callgrind_stage_routes(&routes, &posted, n);
    }
    let logger = super::json_logger(std::io::sink);
    tracing::subscriber::with_default(logger, || {
        for n in [WARM_UP, rounds] {
            callgrind_stage_logged(&routes, &posted, n);
        }
    });
}

/// Rounds of each stage before the counted ones: the caches of parsed names, the metrics'
/// label sets, the logger's buffers.
const WARM_UP: u32 = 100;

#[inline(never)]
fn callgrind_stage_parse(body: &[u8], rounds: u32) {
    for _ in 0..rounds {
        std::hint::black_box(Review::parse(std::hint::black_box(body)).is_ok());
    }
}

#[inline(never)]
fn callgrind_stage_handle(webhook: &Webhook, body: &[u8], rounds: u32) {
    block_on(async {
        for _ in 0..rounds {
            std::hint::black_box(webhook.handle(std::hint::black_box(body)).await);
        }
    });
}

#[inline(never)]
fn callgrind_stage_routes(routes: &Routes, posted: &Bytes, rounds: u32) {
    post_rounds(routes, posted, rounds);
}

#[inline(never)]
fn callgrind_stage_logged(routes: &Routes, posted: &Bytes, rounds: u32) {
    post_rounds(routes, posted, rounds);
}

fn post_rounds(routes: &Routes, posted: &Bytes, rounds: u32) {
    block_on(async {
        for _ in 0..rounds {
            let request = Request::post(ADMISSION_PATH).body(posted.clone());
            std::hint::black_box(routes.handle(request.expect("request")).await);
        }
    });
}

/// Runs this bench again under callgrind for `rounds` reviews per stage, and returns each
/// stage's counts per review (the warm-up's part excluded); `None` without valgrind.
pub fn measure(rounds: u32, dir: &Path) -> Option<Vec<Counted>> {
    let out = dir.join("callgrind.out");
    let status = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=*callgrind_stage_*",
        ])
        // One option per function: valgrind 3.19 matches no `*` at the end of this one.
        .args(
            ["parse", "handle", "routes", "logged"]
                .map(|stage| format!("--dump-after=*callgrind_stage_{stage}")),
        )
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(std::env::current_exe().expect("this bench"))
        .arg("--bench")
        .env("WEBHOOK_LOAD_PROFILE", rounds.to_string())
        .output()
        .ok()?;
    assert!(
        status.status.success(),
        "callgrind: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    // Parts in order: each stage's warm-up, then the stage.
    let part = |n: usize| {
        let path = format!("{}.{n}", out.display());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        count(&text, rounds)
    };
    Some((1..=STAGES.len()).map(|n| part(2 * n)).collect())
}

/// The instructions (`totals`) and the calls to the C allocator of one part, per review.
fn count(part: &str, rounds: u32) -> Counted {
    let mut names = std::collections::HashMap::new();
    let mut callee = String::new();
    let mut instructions = 0.0;
    let mut allocations = 0u64;
    for line in part.lines() {
        if let Some(total) = line.strip_prefix("totals: ") {
            instructions = total.trim().parse().unwrap_or(f64::NAN);
            continue;
        }
        if let Some(calls) = line.strip_prefix("calls=") {
            let n: u64 = calls
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if matches!(callee.as_str(), "malloc" | "calloc" | "realloc") {
                allocations += n;
            }
            continue;
        }
        // `fn=(id) name` (a function) or `cfn=(id) name` (the one the next `calls=` calls),
        // with its name the first time an id is used and without it after.
        let (called, rest) = match (line.strip_prefix("cfn="), line.strip_prefix("fn=")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => continue,
        };
        let (id, name) = rest.split_once(' ').unwrap_or((rest, ""));
        if !name.is_empty() {
            names.insert(id.to_owned(), name.to_owned());
        }
        if called {
            callee = names.get(id).cloned().unwrap_or_default();
        }
    }
    Counted {
        instructions: instructions / f64::from(rounds),
        allocations: allocations as f64 / f64::from(rounds),
    }
}
