#!/usr/bin/env bash
# Runs every test: set-up first (idempotent), then the whole workspace's tests, including the
# system tests in tests/ that run the real agent, pump simulator, mosquitto and models.
# Prints the time of each stage. `.ci/run` runs exactly this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

stage_start=$(date +%s)
total_start=$stage_start
stage() {
  local now; now=$(date +%s)
  printf '== stage %-28s %4ds\n' "$1" $((now - stage_start)) >&2
  stage_start=$now
}

scripts/setup.sh
stage "setup (apt, ORT, models, build)"

# Lint gates before any test: unformatted code or any clippy warning fails the run. Release
# profile, so the build scripts the set-up ran (OpenCV bindings among them) are reused.
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings 2>&1
stage "cargo fmt --check, clippy -D warnings"

# Release profile: the tests reuse the set-up's release build instead of a second debug build.
# Examples (benchmarks and evaluation tools) are not tests: clippy --all-targets above has
# compiled them, so they are not linked again here. Doc tests run here, before the lanes below.
cargo test --release --workspace --no-fail-fast --lib --bins --tests --no-run 2>&1
cargo test --release --workspace --no-fail-fast --doc 2>&1
stage "build the tests, doc tests"

# Lanes, so the run fits in 30 minutes on 2 cores. The reliability suite is the longest test
# binary (about 6 minutes, two scenarios at a time) and mostly waits on real time (rush hours,
# kills, restarts: about 15 % of a core a scenario), so it runs beside every other test. So do
# the aarch64 cross-build and the fuzz targets' checks, at nice 19 (compiling: they take the CPU
# the tests leave), each in a target directory of its own so that no cargo waits for another's
# build lock. Each lane's output goes to its own log, printed whole after the other tests.
logs=target/test-logs
mkdir -p "$logs"
lanes_start=$(date +%s)
(
  set +e
  cargo test --release --no-fail-fast --test reliability 2>&1
  status=$?
  printf '== lane: reliability suite %ds\n' $(( $(date +%s) - lanes_start ))
  exit "$status"
) > "$logs/reliability.log" 2>&1 &
reliability_lane=$!
(
  set +e
  # The aarch64 station binary (cross gcc and an arm64 OpenCV sysroot; fails unless it links
  # and is an AArch64 executable), under target/cross/aarch64-unknown-linux-gnu/.
  CARGO_TARGET_DIR="$root/target/cross" nice -n 19 scripts/build-aarch64.sh 2>&1
  cross=$?
  printf '== lane: aarch64 cross-build done at %ds\n' $(( $(date +%s) - lanes_start ))
  # The fuzz targets' checks on stable Rust with random and mutated input (fuzz/ is a workspace
  # of its own; cargo-fuzz itself runs by hand, see fuzz/README.md). Formatted and linted like
  # the rest.
  (cd fuzz && cargo fmt --check \
    && nice -n 19 cargo clippy --release --target-dir ../target/fuzz --all-targets -- -D warnings 2>&1 \
    && nice -n 19 cargo test --release --target-dir ../target/fuzz 2>&1)
  fuzz=$?
  printf '== lane: fuzz checks done at %ds\n' $(( $(date +%s) - lanes_start ))
  [ "$cross" -eq 0 ] && [ "$fuzz" -eq 0 ]
) > "$logs/aarch64-and-fuzz.log" 2>&1 &
build_lane=$!

# Every other test; the reliability suite's tests (exact names) are left to its lane.
mapfile -t reliability_tests < <(cargo test --release --test reliability -q -- --list --format terse 2>/dev/null \
  | sed -n 's/: test$//p')
if [ "${#reliability_tests[@]}" -eq 0 ]; then
  echo "could not list the reliability suite's tests" >&2
  kill "$reliability_lane" "$build_lane" 2>/dev/null
  exit 1
fi
skips=()
for name in "${reliability_tests[@]}"; do skips+=(--skip "$name"); done
set +e
cargo test --release --workspace --no-fail-fast --lib --bins --tests -- --exact "${skips[@]}" 2>&1
others=$?
stage "cargo test (all but reliability)"
wait "$reliability_lane"
reliability=$?
wait "$build_lane"
builds=$?
set -e
cat "$logs/reliability.log" "$logs/aarch64-and-fuzz.log"
stage "reliability, aarch64 build, fuzz checks"
if [ "$others" -ne 0 ] || [ "$reliability" -ne 0 ] || [ "$builds" -ne 0 ]; then
  echo "tests failed: other tests rc=$others, reliability suite rc=$reliability, aarch64 build and fuzz checks rc=$builds" >&2
  exit 1
fi

printf '== total %ds\n' $(( $(date +%s) - total_start )) >&2
