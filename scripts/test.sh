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
# compiled them, so they are not linked again here; doc tests run on their own.
cargo test --release --workspace --no-fail-fast --lib --bins --tests 2>&1
cargo test --release --workspace --no-fail-fast --doc 2>&1
stage "cargo test --release"

# The fuzz targets' checks on stable Rust with random and mutated input (fuzz/ is a workspace of
# its own; cargo-fuzz itself runs by hand, see fuzz/README.md). Formatted and linted like the rest.
(cd fuzz && cargo fmt --check && cargo clippy --release --target-dir ../target --all-targets -- -D warnings 2>&1 \
  && cargo test --release --target-dir ../target 2>&1)
stage "fuzz checks on random input"

# The aarch64 station binary (cross gcc and an arm64 OpenCV sysroot; fails unless it links and
# is an AArch64 executable), under target/aarch64-unknown-linux-gnu/.
scripts/build-aarch64.sh
stage "aarch64 cross-build"

printf '== total %ds\n' $(( $(date +%s) - total_start )) >&2
