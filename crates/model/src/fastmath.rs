//! Vectorised host kernels for the two exponential-heavy steps of CPU scoring: the
//! log-softmax normaliser `log Σ exp(x)` over each row of logits, and SiLU.
//!
//! Scoring needs `log p(target) = x_target − log Σ exp(x)` at each position, one exponential
//! per vocabulary entry (49k for SmolLM2), and a Llama MLP takes one per neuron (46k per token
//! in SmolLM2). burn's CPU backend evaluates `exp` one scalar libm call at a time, which was
//! ~10% of a BLiMP run; here the exponential is a short polynomial that the compiler
//! vectorises (AVX-512 or AVX2 chosen at run time), with relative error below 2e-7.

/// `log2(e)`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in a part exact in f32 and a remainder (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this `exp` is under the smallest normal f32 and counts as zero in a sum dominated by
/// `exp(0) = 1` (the maximum's own term).
const EXP_MIN_ARG: f32 = -87.0;

/// `exp(x)` for `x ≤ 0` (relative error < 2e-7), `0` below [`EXP_MIN_ARG`].
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let under = x < EXP_MIN_ARG;
    let x = x.max(EXP_MIN_ARG);
    // x = n·ln2 + r with |r| ≤ ln2/2, exp(x) = 2ⁿ·exp(r).
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    // Cephes' minimax polynomial for exp on [-ln2/2, ln2/2].
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2ⁿ for n in [-126, 0] built from its exponent bits.
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    if under { 0.0 } else { y * scale }
}

const LANES: usize = 16;

#[inline(always)]
fn row_max_sum(row: &[f32]) -> (f32, f32) {
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    let mut m = [f32::NEG_INFINITY; LANES];
    for c in chunks.clone() {
        for (mi, &v) in m.iter_mut().zip(c) {
            *mi = mi.max(v);
        }
    }
    let max = tail.iter().fold(
        m.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        |a, &b| a.max(b),
    );
    let mut s = [0f32; LANES];
    for c in chunks {
        for (si, &v) in s.iter_mut().zip(c) {
            *si += exp_nonpositive(v - max);
        }
    }
    let sum = s.iter().sum::<f32>() + tail.iter().map(|&v| exp_nonpositive(v - max)).sum::<f32>();
    (max, sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn row_max_sum_avx512(row: &[f32]) -> (f32, f32) {
    row_max_sum(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_max_sum_avx2(row: &[f32]) -> (f32, f32) {
    row_max_sum(row)
}

/// `log Σ_j exp(row_j)` of one row, as `max + ln Σ exp(row − max)`. A row holding NaN or
/// only `-inf` gives NaN (as `log_softmax` would).
pub fn log_sum_exp(row: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    let (max, sum) = if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { row_max_sum_avx512(row) }
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: as above.
        unsafe { row_max_sum_avx2(row) }
    } else {
        row_max_sum(row)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (max, sum) = row_max_sum(row);
    if row.iter().any(|v| v.is_nan()) || !max.is_finite() {
        return f32::NAN;
    }
    (max as f64 + (sum as f64).ln()) as f32
}

/// One row's log-sum-exp in pieces: the largest value seen and `Σ exp(x − max)` over the values
/// seen, so that a row can be reduced a few columns at a time, as a matmul produces it, and
/// the pieces merged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MaxSum {
    max: f32,
    sum: f32,
    /// A NaN was among the values (`max` ignores NaN).
    nan: bool,
}

impl MaxSum {
    /// Nothing seen yet.
    pub(crate) const EMPTY: MaxSum = MaxSum {
        max: f32::NEG_INFINITY,
        sum: 0.0,
        nan: false,
    };

    #[inline(always)]
    fn of(row: &[f32]) -> MaxSum {
        let (max, sum) = row_max_sum(row);
        let nan = row.iter().fold(false, |n, v| n | v.is_nan());
        MaxSum { max, sum, nan }
    }

    /// Both pieces together: the sum rescaled to the larger maximum.
    pub(crate) fn merge(self, other: MaxSum) -> MaxSum {
        let nan = self.nan | other.nan;
        let (hi, lo) = if self.max >= other.max {
            (self, other)
        } else {
            (other, self)
        };
        if lo.max == f32::NEG_INFINITY || !hi.max.is_finite() {
            // `lo` adds nothing (empty, or only −∞); a +∞ maximum makes the result NaN below.
            return MaxSum { nan, ..hi };
        }
        MaxSum {
            max: hi.max,
            sum: hi.sum + lo.sum * exp_nonpositive(lo.max - hi.max),
            nan,
        }
    }

    /// `log Σ exp(x)` over everything merged; NaN as [`log_sum_exp`] gives it.
    pub(crate) fn log_sum_exp(self) -> f32 {
        if self.nan || !self.max.is_finite() {
            return f32::NAN;
        }
        (self.max as f64 + (self.sum as f64).ln()) as f32
    }
}

#[inline(always)]
fn fold_rows_slice(tile: &[f32], ld: usize, cols: usize, states: &mut [MaxSum]) {
    for (i, state) in states.iter_mut().enumerate() {
        *state = state.merge(MaxSum::of(&tile[i * ld..][..cols]));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fold_rows_avx512(tile: &[f32], ld: usize, cols: usize, states: &mut [MaxSum]) {
    fold_rows_slice(tile, ld, cols, states)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fold_rows_avx2(tile: &[f32], ld: usize, cols: usize, states: &mut [MaxSum]) {
    fold_rows_slice(tile, ld, cols, states)
}

/// Merges row `i` of `tile` (`tile[i·ld ..][..cols]`) into `states[i]`, for every state.
pub(crate) fn fold_rows(tile: &[f32], ld: usize, cols: usize, states: &mut [MaxSum]) {
    debug_assert!(states.is_empty() || tile.len() >= (states.len() - 1) * ld + cols);
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { fold_rows_avx512(tile, ld, cols, states) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { fold_rows_avx2(tile, ld, cols, states) };
        }
    }
    fold_rows_slice(tile, ld, cols, states)
}

#[inline(always)]
fn silu_mul_slice(gate: &[f32], up: &mut [f32]) {
    for (u, &g) in up.iter_mut().zip(gate) {
        let e = exp_nonpositive(-g.abs());
        let sigmoid = if g >= 0.0 { 1.0 } else { e } / (1.0 + e);
        *u *= g * sigmoid;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn silu_mul_avx512(gate: &[f32], up: &mut [f32]) {
    silu_mul_slice(gate, up)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn silu_mul_avx2(gate: &[f32], up: &mut [f32]) {
    silu_mul_slice(gate, up)
}

/// `up ← SiLU(gate) ⊙ up` elementwise (a SwiGLU MLP's hidden state), with SiLU as in
/// [`silu_in_place`] and rounded to f32 before the product, as PyTorch's
/// `act_fn(gate) * up`.
pub fn silu_mul_in_place(gate: &[f32], up: &mut [f32]) {
    debug_assert_eq!(gate.len(), up.len());
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { silu_mul_avx512(gate, up) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { silu_mul_avx2(gate, up) };
        }
    }
    silu_mul_slice(gate, up)
}

#[inline(always)]
fn silu_slice(x: &mut [f32]) {
    for v in x.iter_mut() {
        // e = exp(-|x|) ≤ 1 never overflows; σ(x) = 1/(1+e) for x ≥ 0, e/(1+e) below.
        let e = exp_nonpositive(-v.abs());
        let sigmoid = if *v >= 0.0 { 1.0 } else { e } / (1.0 + e);
        *v *= sigmoid;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn silu_avx512(x: &mut [f32]) {
    silu_slice(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn silu_avx2(x: &mut [f32]) {
    silu_slice(x)
}

/// `x · σ(x)` in place (relative error < 4e-7; NaN stays NaN, `inf` gives `inf`, `-inf` gives
/// NaN as PyTorch's `x / (1 + exp(-x))` does).
pub fn silu_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { silu_avx512(x) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { silu_avx2(x) };
        }
    }
    silu_slice(x)
}

/// `y += alpha · x`.
#[inline(always)]
pub(crate) fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `x ← softmax(x)` for a row without NaN: `exp(x − max) / Σ exp(x − max)`.
#[inline(always)]
pub(crate) fn softmax_in_place(x: &mut [f32]) {
    let (chunks, tail) = x.as_chunks::<LANES>();
    let mut m = [f32::NEG_INFINITY; LANES];
    for c in chunks {
        for i in 0..LANES {
            m[i] = m[i].max(c[i]);
        }
    }
    let max = tail.iter().fold(
        m.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        |a, &b| a.max(b),
    );
    let (chunks, tail) = x.as_chunks_mut::<LANES>();
    let mut sums = [0f32; LANES];
    for c in chunks {
        for i in 0..LANES {
            c[i] = exp_nonpositive(c[i] - max);
            sums[i] += c[i];
        }
    }
    let mut sum = sums.iter().sum::<f32>();
    for v in tail {
        *v = exp_nonpositive(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_its_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let got = exp_nonpositive(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_3;
        }
        assert!(worst < 2e-7, "relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn silu_matches_f64_reference() {
        let mut xs: Vec<f32> = (-20_000..20_000).map(|i| i as f32 * 0.005).collect();
        xs.extend([-200.0, 200.0, 0.0, -0.0, 1e-30, -1e-30]);
        let mut got = xs.clone();
        silu_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = x as f64 / (1.0 + (-(x as f64)).exp());
            let tol = 4e-7 * want.abs() + 1e-35; // below e^-87 the exponential is flushed to 0
            assert!(
                (g as f64 - want).abs() <= tol,
                "silu({x}) = {g}, want {want}"
            );
        }
        let mut special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        silu_in_place(&mut special);
        assert!(special[0].is_nan());
        assert_eq!(special[1], f32::INFINITY);
        assert!(
            special[2].is_nan(),
            "-inf · σ(-inf) = -inf · 0, NaN as in PyTorch"
        );
    }

    #[test]
    fn silu_mul_is_silu_then_product() {
        let gate: Vec<f32> = (-3000..3000).map(|i| i as f32 * 0.01).collect();
        let up: Vec<f32> = gate.iter().map(|g| 1.5 - g * 0.3).collect();
        let mut fused = up.clone();
        silu_mul_in_place(&gate, &mut fused);
        let mut act = gate.clone();
        silu_in_place(&mut act);
        let want: Vec<f32> = act.iter().zip(&up).map(|(a, u)| a * u).collect();
        assert_eq!(fused, want);
    }

    #[test]
    fn max_sum_pieces_merge_to_the_whole_row() {
        let row: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3)
            .collect();
        let whole = log_sum_exp(&row);
        for piece in [1, 7, 32, 999] {
            let mut state = [MaxSum::EMPTY];
            for chunk in row.chunks(piece) {
                fold_rows(chunk, chunk.len(), chunk.len(), &mut state);
            }
            let got = state[0].log_sum_exp();
            assert!(
                (got - whole).abs() <= 1e-5 * whole.abs().max(1.0),
                "{piece}: {got} vs {whole}"
            );
        }
        // Pieces of −∞ add nothing; NaN anywhere, or nothing finite, is NaN.
        let mut state = [MaxSum::EMPTY];
        fold_rows(&[f32::NEG_INFINITY; 4], 4, 4, &mut state);
        assert!(state[0].log_sum_exp().is_nan());
        fold_rows(&[0.0, 0.0], 2, 2, &mut state);
        assert!((state[0].log_sum_exp() - 2f32.ln()).abs() < 1e-6);
        fold_rows(&[f32::NAN], 1, 1, &mut state);
        assert!(state[0].log_sum_exp().is_nan());
        // Strided rows: two rows of 3 values stored 5 apart.
        let tile = [1.0, 2.0, 3.0, 9.0, 9.0, 0.0, 0.0, 0.0];
        let mut states = [MaxSum::EMPTY; 2];
        fold_rows(&tile, 5, 3, &mut states);
        assert!((states[0].log_sum_exp() - log_sum_exp(&tile[..3])).abs() < 1e-6);
        assert!((states[1].log_sum_exp() - 3f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn log_sum_exp_matches_f64_reference() {
        for n in [1usize, 15, 16, 17, 1000, 49_152] {
            let row: Vec<f32> = (0..n)
                .map(|i| {
                    ((i * 7919 % 1000) as f32 / 37.0 - 12.0) * if i % 3 == 0 { 1.0 } else { -2.0 }
                })
                .collect();
            let max = row
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
            let want = max
                + row
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            let got = log_sum_exp(&row) as f64;
            assert!(
                (got - want).abs() < 1e-5 * want.abs().max(1.0),
                "n {n}: {got} vs {want}"
            );
        }
        assert!(log_sum_exp(&[1.0, f32::NAN]).is_nan());
        assert!(log_sum_exp(&[f32::NEG_INFINITY; 3]).is_nan());
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY, 0.0]), 0.0);
    }
}
