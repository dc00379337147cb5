#!/usr/bin/env bash
# The main job on a fresh machine: fetch the default model (SmolLM2-135M-Instruct), build,
# and run negdiff on it. Output goes to ${NEGDIFF_OUT:-results/}.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release -p negdiff-cli
MODEL="${NEGDIFF_MODEL:-${NEGDIFF_CACHE:-$HOME/.cache/negdiff}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
BIN=target/release/negdiff
"$BIN" info "$MODEL"
"$BIN" generate "$MODEL" --prompt "The capital of France is" -n 20
"$BIN" logprobs "$MODEL" --text "The keys to the cabinet are on the table."
