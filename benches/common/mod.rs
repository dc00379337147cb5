//! What the benches that need the real model and data share.

use std::path::{Path, PathBuf};

use negdiff_model::{LanguageModel, default_model_path, device::default_device};

/// The default model (SmolLM2, see `scripts/setup.sh`), or `None` after saying why the bench
/// is skipped.
pub fn default_model_or_skip() -> Option<LanguageModel> {
    match LanguageModel::load(
        &default_model_path().display().to_string(),
        &default_device(),
    ) {
        Ok(m) => Some(m),
        Err(e) => {
            eprintln!("skipping: {e} (run scripts/setup.sh)");
            None
        }
    }
}

/// The benchmark data: `$NEGDIFF_DATA`, else `../shared/data` beside the repository.
pub fn data_dir() -> PathBuf {
    std::env::var_os("NEGDIFF_DATA")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// Multiply-add throughput of this CPU right now, in GFLOP/s over `threads` threads: the ceiling
/// any f32 kernel can reach here, measured (not taken from a data sheet) because a shared
/// virtual machine's clock and neighbours move it by ±15% between minutes. Each thread runs
/// twelve independent chains of fused multiply-adds on registers (enough to cover the FMA
/// latency on two pipes) for ~0.3 s; the best of three runs is returned. The chains use the
/// widest vectors the CPU has, as the packed matmul does (`negdiff_model::gemm` picks its
/// AVX-512 kernel wherever AVX-512F is present): 16 lanes with AVX-512F, else 8 with AVX2+FMA.
/// `None` on CPUs without AVX2+FMA.
pub fn fma_peak_gflops(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        /// `n` rounds of 12 chains × 8 lanes × 2 FLOP.
        #[target_feature(enable = "avx2,fma")]
        fn chains256(n: usize) -> f32 {
            let mut acc = [_mm256_set1_ps(0.0); 12];
            let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            for _ in 0..n {
                for x in acc.iter_mut() {
                    *x = _mm256_fmadd_ps(a, *x, b);
                }
            }
            let mut s = _mm256_setzero_ps();
            for x in acc {
                s = _mm256_add_ps(s, x);
            }
            let mut out = [0f32; 8];
            // SAFETY: `out` holds eight values.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
            out.iter().sum()
        }
        /// `n` rounds of 12 chains × 16 lanes × 2 FLOP.
        #[target_feature(enable = "avx512f")]
        fn chains512(n: usize) -> f32 {
            let mut acc = [_mm512_set1_ps(0.0); 12];
            let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            for _ in 0..n {
                for x in acc.iter_mut() {
                    *x = _mm512_fmadd_ps(a, *x, b);
                }
            }
            let mut s = _mm512_setzero_ps();
            for x in acc {
                s = _mm512_add_ps(s, x);
            }
            _mm512_reduce_add_ps(s)
        }
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        let wide = is_x86_feature_detected!("avx512f");
        let lanes = if wide { 16 } else { 8 };
        const ROUNDS: usize = 50_000_000;
        let rounds = ROUNDS * 8 / lanes; // about the same time on either width
        let once = || {
            let t0 = std::time::Instant::now();
            let sums: Vec<f32> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads.max(1))
                    .map(|_| {
                        s.spawn(move || {
                            if wide {
                                // SAFETY: AVX-512F was detected above.
                                unsafe { chains512(rounds) }
                            } else {
                                // SAFETY: AVX2 and FMA were detected above.
                                unsafe { chains256(rounds) }
                            }
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            std::hint::black_box(sums);
            (threads.max(1) * rounds * 12 * lanes * 2) as f64 / t0.elapsed().as_secs_f64() / 1e9
        };
        (0..3).map(|_| once()).reduce(f64::max)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

/// FLOPs of one forward pass of a Llama-shaped model over `batch` causal rows of `seq` tokens:
/// 2 per weight per token in the linear layers and the LM head, and 4·d per (query, visible
/// key) pair for the attention scores and the value mix. Norms, rotary and activations (a few
/// FLOPs per value) are left out.
pub fn llama_forward_flops(dims: &negdiff_model::arch::ModelDims, batch: usize, seq: usize) -> f64 {
    let (d, f, hd) = (dims.d_model as f64, dims.d_mlp as f64, dims.head_dim as f64);
    let (h, kv) = (dims.n_heads as f64, dims.n_kv_heads as f64);
    let per_layer = d * h * hd + 2.0 * d * kv * hd + h * hd * d + 3.0 * d * f;
    let linear = 2.0 * (dims.n_layers as f64 * per_layer + dims.vocab_size as f64 * d);
    let visible_pairs = (seq * (seq + 1) / 2) as f64;
    let attention = dims.n_layers as f64 * 4.0 * h * hd * visible_pairs;
    batch as f64 * (seq as f64 * linear + attention)
}

/// mimalloc hands freed memory back to the OS 10 ms after it was freed (its `purge_delay`);
/// a forward pass frees and re-allocates multi-megabyte activations every few milliseconds,
/// and each re-allocation then faults in and zeroes fresh pages (measured with `perf`: ~3.5% of
/// a forward at 16×64, ~1% with a delay of a second). A second keeps a long run's memory at its
/// high-water mark while it works and still returns it when idle.
pub fn keep_freed_memory_a_while() {
    /// `mi_option_purge_delay` in mimalloc.h (v2 and v3 alike).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets one integer option; mimalloc reads options at every purge decision.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
}
