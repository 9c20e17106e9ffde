#!/usr/bin/env bash
# Coverage-guided fuzzing of image-policy with cargo-fuzz (libFuzzer): see fuzz/README.md.
#
#   fuzz/run.sh run [TARGET...]   each target for $FUZZ_SECONDS (default 180), one after the
#                                 other; new inputs go to target/fuzz/corpus/<target>/, crashes
#                                 to target/fuzz/artifacts/<target>/, logs to target/fuzz/logs/
#   fuzz/run.sh cmin [TARGET...]  merges the committed corpus, the seeds and what runs found
#                                 into a minimal fuzz/corpus/<target>/ (inputs up to 32 KiB)
#   fuzz/run.sh stats             per target: runs, time, executions, coverage (from the logs)
#   fuzz/run.sh time TARGET FILE  how long one input takes, alone
#
# It installs what it needs (a C++ compiler for libFuzzer, Python for the seeds, cargo-fuzz
# from crates.io) and nothing the second time. The machine's stable toolchain builds the targets: cargo-fuzz's
# nightly flags are let through with RUSTC_BOOTSTRAP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARGO_FUZZ_VERSION=0.13.2
TARGETS=(review names policy identity registry exchange bundle docker_config manifest)
WORK=$ROOT/target/fuzz
SECONDS_EACH=${FUZZ_SECONDS:-180}
# Per input: 1 s, 512 MiB (the admission path's budget is far below either). libFuzzer's
# timeout is wall time: on a loaded machine a niced fuzzer can wait longer than that for a
# core, so FUZZ_TIMEOUT raises it, and every input slower than 1 s is still written to
# artifacts/ as slow-unit-* (re-time it alone: fuzz/run.sh time TARGET FILE).
LIBFUZZER=(-timeout="${FUZZ_TIMEOUT:-1}" -report_slow_units=1 -rss_limit_mb=512
  -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1)
# No sanitizer: the project forbids unsafe code, so ASan would slow every input to catch what
# cannot happen in it; debug assertions on, so that an integer overflow is a crash, not a
# silent wrap.
BUILD=(--sanitizer none --debug-assertions --target-dir "$WORK/build")
export RUSTC_BOOTSTRAP=1
# A backtrace takes long to print under load; a timeout that fires while it prints deadlocks.
export RUST_BACKTRACE=0

install() {
  local missing=()
  command -v c++ >/dev/null || missing+=(g++)
  command -v python3 >/dev/null || missing+=(python3)
  if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
  fi
}

targets() {
  if (($#)); then printf '%s\n' "$@"; else printf '%s\n' "${TARGETS[@]}"; fi
}

seeds() {
  rm -rf "$WORK/seeds"
  python3 "$ROOT/fuzz/seeds.py" "$WORK/seeds" >/dev/null
}

run() {
  install
  seeds
  cd "$ROOT/fuzz"
  cargo fuzz build "${BUILD[@]}"
  local failed=()
  for target in $(targets "$@"); do
    mkdir -p "$WORK/corpus/$target" "$WORK/artifacts/$target" "$WORK/logs" "$WORK/seeds/$target"
    echo "[fuzz] $target for ${SECONDS_EACH}s"
    local start=$SECONDS status=0
    # The first corpus directory receives what is new; the committed one and the seeds are
    # read only.
    cargo fuzz run "${BUILD[@]}" "$target" \
      "$WORK/corpus/$target" "$ROOT/fuzz/corpus/$target" "$WORK/seeds/$target" -- \
      "${LIBFUZZER[@]}" -max_total_time="$SECONDS_EACH" \
      -artifact_prefix="$WORK/artifacts/$target/" >>"$WORK/logs/$target.log" 2>&1 || status=$?
    echo "[fuzz] seconds: $((SECONDS - start))" >>"$WORK/logs/$target.log"
    if ((status)); then
      failed+=("$target")
      echo "[fuzz] $target FAILED: see $WORK/logs/$target.log and $WORK/artifacts/$target/"
    fi
  done
  stats
  if ((${#failed[@]})); then
    echo "[fuzz] failed: ${failed[*]}" >&2
    exit 1
  fi
}

cmin() {
  install
  seeds
  cd "$ROOT/fuzz"
  cargo fuzz build "${BUILD[@]}"
  for target in $(targets "$@"); do
    local merged="$WORK/merged/$target" small="$WORK/small/$target"
    rm -rf "$merged" "$small"
    mkdir -p "$merged" "$small" "$WORK/corpus/$target" "$ROOT/fuzz/corpus/$target"
    # Small files only: what does not fit in 32 KiB is not committed.
    for dir in "$ROOT/fuzz/corpus/$target" "$WORK/seeds/$target" "$WORK/corpus/$target"; do
      find "$dir" -maxdepth 1 -type f -size -32k -exec cp -t "$small" {} +
    done
    cargo fuzz run "${BUILD[@]}" "$target" "$merged" "$small" -- \
      -merge=1 "${LIBFUZZER[@]}" >"$WORK/logs/$target.cmin.log" 2>&1
    rm -rf "$ROOT/fuzz/corpus/$target"
    mv "$merged" "$ROOT/fuzz/corpus/$target"
    echo "[fuzz] $target: $(find "$ROOT/fuzz/corpus/$target" -type f | wc -l) inputs," \
      "$(du -sh "$ROOT/fuzz/corpus/$target" | cut -f1)"
  done
}

# libFuzzer prints `#N ... cov: E ft: F corp: ...` as it goes and
# `stat::number_of_executed_units: N` when a run ends (not when it crashes); this script adds
# `[fuzz] seconds: S` after each run. Per target: the runs, their seconds and executions
# summed, the most edges covered, the inputs left in artifacts/.
stats() {
  printf '%-14s %5s %9s %14s %8s %10s\n' target runs seconds executions "cov:" "artifacts"
  for target in "${TARGETS[@]}"; do
    local log="$WORK/logs/$target.log"
    [[ -f $log ]] || continue
    awk -v t="$target" -v found="$(find "$WORK/artifacts/$target" -type f 2>/dev/null | wc -l)" '
      /^#[0-9]+/ {
        n = substr($1, 2) + 0; if (n > last) last = n
        for (i = 1; i < NF; i++) if ($i == "cov:" && $(i+1) + 0 > cov) cov = $(i+1) + 0
      }
      /stat::number_of_executed_units:/ { if ($2 + 0 > last) last = $2 + 0 }
      /^\[fuzz\] seconds:/ { secs += $3; units += last; last = 0; runs++ }
      END { printf "%-14s %5d %9d %14d %8d %10d\n", t, runs, secs, units, cov, found }
    ' "$log"
  done
}

# One input through a target's fuzz build, alone: libFuzzer prints how long it took.
time_one() {
  local host
  host=$(rustc -vV | sed -n 's/^host: //p')
  "$WORK/build/$host/release/$1" -runs=3 "$2" 2>&1 | grep -E '^Executed|panicked|ERROR'
}

case "${1:-run}" in
  run) shift || true; run "$@" ;;
  cmin) shift; cmin "$@" ;;
  stats) stats ;;
  time) time_one "$2" "$3" ;;
  *) echo "usage: fuzz/run.sh run|cmin|stats|time [TARGET...]" >&2; exit 2 ;;
esac
