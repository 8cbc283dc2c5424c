#!/bin/sh
# The whole test suite: installs the test dependencies, builds the release binary, runs
# every unit, transcript and end-to-end test. `.ci/run` calls exactly this.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
# The end-to-end tests run the release binary (what is deployed); the tests themselves
# build quicker in the dev profile.
cargo build --release --workspace --bins
cargo test --workspace --no-fail-fast "$@"
