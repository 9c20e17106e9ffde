//! Helpers for the end-to-end suite: run `kubectl` and `image-policy` against the cluster
//! that `hack/e2e.sh` started, and say clearly what failed.
//!
//! The suite is not meant to run without that cluster: every helper fails loudly when
//! `KUBECONFIG` or `IMAGE_POLICY_BIN` is missing, rather than skipping.

// This crate is a test harness: a failed expectation must stop the test with a message.
#![allow(clippy::panic)]

pub mod cluster;
pub mod helm;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What a command printed, and whether it succeeded.
#[derive(Debug)]
pub struct Run {
    /// Exit status was zero.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Standard output, or a failure that shows both streams.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(
            self.ok,
            "{what} failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }
}

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the suite with hack/e2e.sh"))
}

/// Runs `kubectl ARGS` with `stdin` as its input.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Run {
    run(
        Command::new("kubectl")
            .env("KUBECONFIG", env("KUBECONFIG"))
            .args(args),
        stdin,
    )
}

/// The product's binary, as built by `hack/e2e.sh`.
pub fn image_policy_bin() -> String {
    env("IMAGE_POLICY_BIN")
}

/// Runs the product's binary.
pub fn image_policy(args: &[&str]) -> Run {
    run(Command::new(image_policy_bin()).args(args), None)
}

/// Whether `GET http://127.0.0.1:{port}{path}` answers 200.
pub fn http_ok(port: u16, path: &str) -> bool {
    http_get(port, path).is_some()
}

/// The body of a plain `GET` on 127.0.0.1:`port` when it answers 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    if !answer.starts_with("HTTP/1.1 200") {
        return None;
    }
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

fn run(command: &mut Command, stdin: Option<&str>) -> Run {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("writing to {command:?}: {e}"));
    }
    Run::from(
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{command:?}: {e}")),
    )
}

/// Retries `check` until it returns `Some` or `limit` passes.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A file of the operator's test data.
pub fn operator_data(path: &str) -> String {
    let full = format!(
        "{}/../operator/tests/data/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}
