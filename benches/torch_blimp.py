#!/usr/bin/env python3
"""PyTorch/transformers BLiMP baseline on SmolLM2-135M (GGUF -> f32): speed and accuracy.

For every paradigm file DIR/*.jsonl (sorted by name) it takes the first N lines and scores
each pair as ONE right-padded batch of its two sentences (attention mask, pad id = the
tokenizer's pad id): score = summed natural-log log-prob of the full sentence, no BOS, so the
first token is unscored. A pair is correct when logp_good > logp_bad.

Prints one JSON line at the end:
  {"impl": "torch", "pairs", "paradigms", "seconds", "pairs_per_s", "accuracy",
   "threads", "per_paradigm_accuracy": {uid: acc}, "torch_version", ...}
With --out FILE.jsonl also writes one line per pair in file order, matching
`negdiff blimp`: {"uid", "pair_id", "logp_good", "logp_bad", "correct"}.
Timing covers tokenisation + forward + scoring, not model loading.

Run:
    /work/pyenv/venv/bin/python benches/torch_blimp.py --data /work/shared/data/blimp \
        --per-paradigm 20 [--model PATH] [--threads 2] [--out FILE.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _torch_common import DEFAULT_MODEL, load_gguf  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="BLiMP minimal-pair scoring with transformers (f32, CPU)")
    ap.add_argument("--data", type=Path, required=True, help="directory of BLiMP *.jsonl paradigm files")
    ap.add_argument("--per-paradigm", type=int, default=20, help="first N pairs of each paradigm")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--out", type=Path, help="optional per-pair JSONL output")
    args = ap.parse_args(argv)

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok, model = load_gguf(args.model, attn=args.attn)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    files = sorted(args.data.glob("*.jsonl"))
    if not files:
        print(f"error: no *.jsonl in {args.data}", file=sys.stderr)
        return 2
    pairs = []
    for f in files:
        with open(f) as fh:
            for i, line in enumerate(fh):
                if i >= args.per_paradigm:
                    break
                pairs.append(json.loads(line))

    out_lines, per = [], {}
    load_before = round(os.getloadavg()[0], 2)
    start = time.perf_counter()
    with torch.inference_mode():
        for p in pairs:
            enc = [tok(s, add_special_tokens=False)["input_ids"] for s in (p["sentence_good"], p["sentence_bad"])]
            t = max(len(e) for e in enc)
            ids = torch.full((2, t), pad, dtype=torch.int64)
            mask = torch.zeros((2, t), dtype=torch.int64)
            for r, e in enumerate(enc):
                ids[r, : len(e)] = torch.tensor(e)
                mask[r, : len(e)] = 1
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            lp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            sums = (lp * mask[:, 1:]).sum(dim=1).tolist()
            correct = sums[0] > sums[1]
            uid = p.get("UID", "?")
            per.setdefault(uid, []).append(correct)
            out_lines.append({"uid": uid, "pair_id": p.get("pairID"), "logp_good": sums[0],
                              "logp_bad": sums[1], "correct": correct})
    secs = time.perf_counter() - start
    if args.out:
        with open(args.out, "w") as fh:
            for o in out_lines:
                fh.write(json.dumps(o) + "\n")
    n = len(out_lines)
    acc = sum(o["correct"] for o in out_lines) / n
    print(json.dumps({
        "impl": "torch",
        "pairs": n,
        "paradigms": len(per),
        "per_paradigm": args.per_paradigm,
        "seconds": round(secs, 3),
        "pairs_per_s": round(n / secs, 3),
        "accuracy": round(acc, 6),
        "n": n,
        "threads": args.threads,
        "attn": args.attn,
        "per_paradigm_accuracy": {k: round(sum(v) / len(v), 4) for k, v in sorted(per.items())},
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
