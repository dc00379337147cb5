#!/usr/bin/env bash
# The main job on a fresh machine: fetch the default model (SmolLM2-135M-Instruct), build, and
# run the whole pipeline on it (score neurons on UD EWT dev, select the top 1% per layer, main
# table on BLiMP + TSE + perplexity with controls, excess surprisal by POS, layer sweep) with the
# default subset. Results and report.md / report.html go to ${NEGDIFF_OUT:-results}; rerunning
# resumes. Extra arguments go to `negdiff reproduce` (e.g. --full for the paper-sized run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -p negdiff-cli
MODEL="${NEGDIFF_MODEL:-${NEGDIFF_CACHE:-$HOME/.cache/negdiff}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
target/release/negdiff reproduce "$MODEL" --out "${NEGDIFF_OUT:-results}" "$@"
