#!/usr/bin/env python3
"""PyTorch/transformers forward-pass throughput baseline on SmolLM2-135M (GGUF -> f32).

Prints one JSON line per shape (and per mode):
  {"impl": "torch", "mode": "forward"|"forward+logprobs", "shape": "16x64",
   "tokens_per_s", "seconds_per_forward", "runs", "mean_s", "min_s", "threads": 2,
   "attn", "loadavg_1m_before", "loadavg_1m_after", "torch_version", "transformers_version"}
The 1-minute load averages are there to spot runs disturbed by other work: on a 2-core machine,
anything else running (e.g. cargo) slows 2-thread OpenMP by up to 10x.

seconds_per_forward is the MEDIAN over the timed runs; tokens_per_s = batch*seq / median.
Each shape: 2 warm-up runs, then timed runs until at least --min-runs (5) runs AND at least
--min-seconds (20 s) have elapsed (capped at --max-runs). Random ids (seed 0) in
[0, vocab), full attention mask, torch.inference_mode(), f32, CPU.
--logprobs additionally times forward + log_softmax + gather of the next-token log-probs.

Run:
    /work/pyenv/venv/bin/python benches/torch_forward.py [--model PATH] [--logprobs]
        [--shapes 16x64 1x512] [--threads 2] [--attn sdpa|eager]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _torch_common import DEFAULT_MODEL, load_gguf  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="transformers forward throughput on SmolLM2 (f32, CPU)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--shapes", nargs="+", default=["16x64", "1x512"], help="BATCHxSEQ")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--logprobs", action="store_true", help="also time forward + log_softmax + gather")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-runs", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=20.0)
    ap.add_argument("--max-runs", type=int, default=1000)
    args = ap.parse_args(argv)

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    _, model = load_gguf(args.model, attn=args.attn)
    vocab = model.config.vocab_size

    def fwd(ids, mask):
        return model(input_ids=ids, attention_mask=mask, use_cache=False).logits

    def fwd_lp(ids, mask):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        # log_softmax over the contiguous logits, then drop the last position: slicing first
        # makes log_softmax run on a strided view, which is 2-10x slower here.
        lp = torch.log_softmax(logits.float(), dim=-1)
        return lp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]

    modes = [("forward", fwd)] + ([("forward+logprobs", fwd_lp)] if args.logprobs else [])
    for shape in args.shapes:
        b, t = (int(x) for x in shape.lower().split("x"))
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab, (b, t), generator=g, dtype=torch.int64)
        mask = torch.ones_like(ids)
        for mode, fn in modes:
            times = []
            load_before = round(os.getloadavg()[0], 2)
            with torch.inference_mode():
                for _ in range(args.warmup):
                    fn(ids, mask)
                start = time.perf_counter()
                while len(times) < args.max_runs and (
                    len(times) < args.min_runs or time.perf_counter() - start < args.min_seconds
                ):
                    t0 = time.perf_counter()
                    fn(ids, mask)
                    times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print(json.dumps({
                "impl": "torch",
                "mode": mode,
                "shape": shape,
                "tokens_per_s": round(b * t / med, 2),
                "seconds_per_forward": round(med, 5),
                "runs": len(times),
                "mean_s": round(statistics.fmean(times), 5),
                "min_s": round(min(times), 5),
                "threads": args.threads,
                "attn": args.attn,
                "loadavg_1m_before": load_before,
                "loadavg_1m_after": round(os.getloadavg()[0], 2),
                "torch_version": torch.__version__,
                "transformers_version": transformers.__version__,
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
