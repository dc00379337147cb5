#!/usr/bin/env python
"""Time the authors' Wasserstein-neuron computation (scipy) per neuron.

For each of the first K neurons of a neuron-major float32 activation array
[n_neurons, n_tokens] this does what Kong et al. do:

    z = (x - x.mean()) / x.std()                 # numpy, float64, ddof=0
    v = np.random.normal(0, 1, len(z))           # a fresh normal sample
    scipy.stats.wasserstein_distance(z, v)

and prints one JSON line:

    {"impl": "scipy", "neurons": K, "tokens": T, "seconds_per_neuron": ...,
     "cpu_seconds_per_neuron": ...}

(`cpu_seconds_per_neuron` is this process's CPU time, less sensitive to other load on the
machine than the wall time.) BLAS runs single-threaded unless `--blas-threads N` (or the
usual OMP/OPENBLAS/MKL_NUM_THREADS variables) says otherwise. The Rust side of the
comparison is negdiff's `score_layer` / `score_neuron`.

Usage:
    python benches/w1_scipy.py ACTIVATIONS.npy [--neurons K]
    python benches/w1_scipy.py --synthetic 30000 [--neurons K]   # random N(0,1) data
"""

import argparse
import json
import os
import sys
import time


def _blas_threads_from_argv() -> str:
    """--blas-threads must take effect before numpy is imported."""
    for i, a in enumerate(sys.argv):
        if a == "--blas-threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--blas-threads="):
            return a.split("=", 1)[1]
    return "1"


# scipy's final dot product goes through BLAS; a multi-threaded BLAS only adds overhead for a
# 1-D dot and, on a busy machine, makes the timing much worse and noisier. Default: 1 thread,
# the fair per-neuron, single-core comparison (and the fastest for scipy).
_BLAS_THREADS = _blas_threads_from_argv()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _BLAS_THREADS)

import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("activations", nargs="?", help="neuron-major float32 .npy [n_neurons, n_tokens]")
    ap.add_argument("--neurons", type=int, default=200, help="time the first K neurons (default 200)")
    ap.add_argument("--synthetic", type=int, metavar="TOKENS",
                    help="use random N(0,1) float32 data with this many tokens instead of a file")
    ap.add_argument("--seed", type=int, default=0, help="seed for np.random (default 0)")
    ap.add_argument("--blas-threads", default="1",
                    help="BLAS/OpenMP threads (default 1; set before numpy loads)")
    args = ap.parse_args()
    if (args.activations is None) == (args.synthetic is None):
        ap.error("give either an activations .npy or --synthetic TOKENS")
    if args.neurons < 1:
        ap.error("--neurons must be >= 1")

    if args.synthetic is not None:
        rng = np.random.default_rng(args.seed)
        acts = rng.standard_normal((args.neurons, args.synthetic)).astype(np.float32)
    else:
        acts = np.load(args.activations, mmap_mode="r")
        if acts.ndim != 2:
            print(f"{args.activations}: expected a 2-D [n_neurons, n_tokens] array, got shape {acts.shape}",
                  file=sys.stderr)
            return 2
    k = min(args.neurons, acts.shape[0])
    rows = np.ascontiguousarray(acts[:k], dtype=np.float32)  # load outside the timed loop
    np.random.seed(args.seed)

    sink = 0.0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for x in rows:
        x64 = x.astype(np.float64)
        z = (x64 - x64.mean()) / x64.std()
        v = np.random.normal(0, 1, len(z))
        sink += scipy.stats.wasserstein_distance(z, v)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if not np.isfinite(sink):
        print("warning: some neurons gave a non-finite distance (constant neurons?)", file=sys.stderr)
    print(json.dumps({
        "impl": "scipy",
        "neurons": int(k),
        "tokens": int(rows.shape[1]),
        "seconds_per_neuron": wall / k,
        "cpu_seconds_per_neuron": cpu / k,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
