#!/bin/sh
# The whole test suite: installs the test dependencies, builds the release binary, runs
# every unit, transcript and end-to-end test. `.ci/run` calls exactly this.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
cargo build --release --workspace --bins
cargo test --release --workspace --no-fail-fast "$@"
