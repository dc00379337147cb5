#!/usr/bin/env bash
# The test command: fetches the default model if needed, then checks formatting, lints and runs
# every test in release mode. CI (.ci/run) runs exactly this, with CI=true so that tests whose
# model or data is missing fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
# The same parity tests through burn's own ops (the path the GPU backends take) instead of the
# CPU device's host kernels.
NEGDIFF_BURN_KERNELS=1 cargo test --release --test integration -- model_parity packing interventions
