//! GFLOP/s of the CPU matrix products on SmolLM2-135M's linear-layer shapes, in one run: burn-flex's
//! `matmul` (what the CPU device used before), negdiff's packed kernel
//! (`negdiff_model::gemm`, weights packed once as at model load; what the CPU device uses now)
//! and, where one loads, a system OpenBLAS `cblas_sgemm`; with the largest difference from
//! burn's result.
//!
//! OpenBLAS is loaded at run time from `libopenblas.so.0` (Debian: `libopenblas0-pthread`), or
//! from `NEGDIFF_OPENBLAS`, and runs its own threads (`OPENBLAS_NUM_THREADS`, default: all
//! cores). Debian 12's OpenBLAS 0.3.21 does not recognise newer Xeons and falls back to SSE3
//! kernels unless `OPENBLAS_CORETYPE` names better ones; the bench prints the kernels chosen.
//! Without a loadable OpenBLAS only burn is timed.
//!
//! Then the LM head as scoring uses it, next-token log-probabilities of 128 and 512 rows: the
//! logits written out in chunks of 128 rows and each row's log-sum-exp taken after (the CPU
//! path before the fused kernel) against `PackedMatrix::log_softmax_at` (product and
//! log-softmax in one pass, logits never stored), with the largest difference between them.
//!
//! Run: `OPENBLAS_CORETYPE=SkylakeX RAYON_NUM_THREADS=2 cargo bench --bench matmul`

use std::ffi::{CStr, c_char, c_int};
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use negdiff_model::fastmath::log_sum_exp;
use negdiff_model::gemm::PackedMatrix;
use rayon::prelude::*;
use serde_json::json;

type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

struct OpenBlas {
    sgemm: Sgemm,
    core: String,
    _lib: libloading::Library,
}

fn open_blas() -> Result<OpenBlas, String> {
    let name = std::env::var("NEGDIFF_OPENBLAS").unwrap_or_else(|_| "libopenblas.so.0".into());
    // SAFETY: loading runs OpenBLAS's initialisers (CPU detection, buffers); the symbols have
    // the C signatures declared here.
    unsafe {
        let lib = libloading::Library::new(&name).map_err(|e| format!("{name}: {e}"))?;
        let sgemm = *lib
            .get::<Sgemm>(b"cblas_sgemm\0")
            .map_err(|e| format!("{name}: {e}"))?;
        let core = lib
            .get::<unsafe extern "C" fn() -> *const c_char>(b"openblas_get_corename\0")
            .ok()
            .map(|f| f())
            .filter(|p| !p.is_null())
            .map(|p| CStr::from_ptr(p).to_string_lossy().into_owned())
            .unwrap_or_else(|| "unknown".into());
        Ok(OpenBlas {
            sgemm,
            core,
            _lib: lib,
        })
    }
}

impl OpenBlas {
    /// `C = A · Bᵀ`, `A: [m, k]`, `B: [n, k]` (the `[out, in]` weight layout), row-major.
    fn matmul_nt(&self, a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        assert!(a.len() == m * k && b.len() == n * k);
        let (m, k, n) = (m as c_int, k as c_int, n as c_int);
        // SAFETY: the buffers hold m·k, n·k and m·n floats (asserted / allocated above).
        unsafe {
            (self.sgemm)(
                101, // row-major
                111, // A as is
                112, // B transposed
                m,
                n,
                k,
                1.0,
                a.as_ptr(),
                k,
                b.as_ptr(),
                k,
                0.0,
                c.as_mut_ptr(),
                n,
            )
        };
        c
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn best_of<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let dev = Device::flex();
    let blas = open_blas();
    println!(
        "{}",
        json!({
            "rayon_threads": rayon::current_num_threads(),
            "openblas": match &blas { Ok(b) => b.core.clone(), Err(e) => format!("not used: {e}") },
            "OPENBLAS_CORETYPE": std::env::var("OPENBLAS_CORETYPE").ok(),
        })
    );
    // (rows, in, out): MLP gate/up, MLP down, attention projections, LM head (128 / 512 rows).
    for (m, k, n) in [
        (2048, 576, 1536),
        (2048, 1536, 576),
        (2048, 576, 576),
        (128, 576, 49152),
        (512, 576, 49152),
    ] {
        let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &dev);
        let w = Tensor::<2>::random([n, k], Distribution::Normal(0.0, 0.05), &dev);
        // Contiguous `[in, out]`, as the linear layers store it for burn.
        let w_t = Tensor::<2>::from_data(w.clone().transpose().into_data(), &dev);
        let flops = 2.0 * (m * k * n) as f64;
        let mut burn_out = Vec::new();
        let burn_s = best_of(5, || {
            burn_out = x
                .clone()
                .matmul(w_t.clone())
                .try_into_vec_as::<f32>()
                .expect("read back");
        });
        let mut row = json!({"m": m, "k": k, "n": n, "burn_gflops": flops / burn_s / 1e9});
        let xs = x.clone().try_into_vec_as::<f32>().expect("read back");
        let ws = w.clone().try_into_vec_as::<f32>().expect("read back");
        // negdiff's own kernel: weights packed once (not timed, as at model load).
        let packed = PackedMatrix::pack(k, &[(&ws[..], n)]).expect("pack");
        let mut packed_out = vec![0f32; m * n];
        let packed_s = best_of(5, || {
            packed
                .matmul(&xs, m, &mut [&mut packed_out[..]])
                .expect("packed matmul")
        });
        row["packed_gflops"] = json!(flops / packed_s / 1e9);
        row["packed_over_burn"] = json!(burn_s / packed_s);
        row["packed_max_abs_diff"] = json!(max_abs_diff(&packed_out, &burn_out));
        if let Ok(b) = &blas {
            let mut out = Vec::new();
            let blas_s = best_of(5, || out = b.matmul_nt(&xs, &ws, m, k, n));
            let diff = max_abs_diff(&out, &burn_out);
            row["openblas_gflops"] = json!(flops / blas_s / 1e9);
            row["openblas_over_burn"] = json!(burn_s / blas_s);
            row["max_abs_diff"] = json!(diff);
        }
        println!("{row}");
    }
    log_softmax_head();
}

/// Next-token log-probabilities through SmolLM2's LM head shape: logits in 128-row chunks then
/// log-sum-exp, against the fused `log_softmax_at`.
fn log_softmax_head() {
    let (k, n) = (576, 49152);
    let ws: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7919 % 10007) as f32 / 10007.0 - 0.5) * 0.1)
        .collect();
    let packed = PackedMatrix::pack(k, &[(&ws[..], n)]).expect("pack");
    for m in [128, 512] {
        let xs: Vec<f32> = (0..m * k)
            .map(|i| ((i * 104_729 % 1009) as f32 / 1009.0 - 0.5) * 4.0)
            .collect();
        let picks: Vec<(usize, usize)> = (0..m).map(|r| (r, r * 331 % n)).collect();
        let mut chunked = Vec::new();
        let chunked_s = best_of(5, || {
            chunked.clear();
            for rows in (0..m).collect::<Vec<_>>().chunks(128) {
                let (r0, len) = (rows[0], rows.len());
                let logits = packed
                    .matmul_new(&xs[r0 * k..(r0 + len) * k], len)
                    .expect("matmul")
                    .remove(0);
                let norm: Vec<f32> = logits.par_chunks_exact(n).map(log_sum_exp).collect();
                chunked.extend(
                    picks[r0..r0 + len]
                        .iter()
                        .map(|&(r, c)| logits[(r - r0) * n + c] - norm[r - r0]),
                );
            }
        });
        let mut fused = Vec::new();
        let fused_s = best_of(5, || {
            fused = packed
                .log_softmax_at(&xs, m, None, &picks)
                .expect("fused log-softmax")
        });
        let flops = 2.0 * (m * k * n) as f64;
        println!(
            "{}",
            json!({"lm_head_logprobs_rows": m, "k": k, "n": n,
                   "chunked_then_lse_s": chunked_s, "fused_s": fused_s,
                   "fused_over_chunked": chunked_s / fused_s,
                   "fused_gflops": flops / fused_s / 1e9,
                   "max_abs_diff": max_abs_diff(&fused, &chunked)})
        );
    }
}
