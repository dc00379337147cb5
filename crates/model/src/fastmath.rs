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
    MaxSum {
        max,
        sum,
        nan: row.iter().any(|v| v.is_nan()),
    }
    .log_sum_exp()
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

    /// `log Σ exp(x)` over everything merged: `max + ln sum`, NaN where a NaN was seen or the
    /// maximum is not finite (a row of only −∞, or holding +∞).
    pub(crate) fn log_sum_exp(self) -> f32 {
        if self.nan || !self.max.is_finite() {
            return f32::NAN;
        }
        (self.max as f64 + (self.sum as f64).ln()) as f32
    }
}

/// One row's log-sum-exp pieces kept lane by lane ([`LANES`] columns apart), so that folding
/// in more of the row, a matmul panel at a time, is all vector work: no horizontal reduction
/// and no scalar exponential until [`reduce`](Self::reduce).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneMaxSum {
    max: [f32; LANES],
    sum: [f32; LANES],
    /// NaNs seen per lane (`max` ignores NaN).
    nans: [f32; LANES],
}

impl LaneMaxSum {
    /// Nothing seen yet.
    pub(crate) const EMPTY: LaneMaxSum = LaneMaxSum {
        max: [f32::NEG_INFINITY; LANES],
        sum: [0.0; LANES],
        nans: [0.0; LANES],
    };

    #[inline(always)]
    fn add(&mut self, chunks: &[[f32; LANES]]) {
        let mut max = self.max;
        for c in chunks {
            for (m, &v) in max.iter_mut().zip(c) {
                *m = m.max(v);
            }
        }
        // The old sum rescaled to the new maximum (a −∞ − −∞ NaN here only meets a zero sum).
        for ((s, &old), &new) in self.sum.iter_mut().zip(&self.max).zip(&max) {
            *s *= exp_nonpositive(old - new);
        }
        for c in chunks {
            for (((s, n), &m), &v) in self.sum.iter_mut().zip(&mut self.nans).zip(&max).zip(c) {
                *s += exp_nonpositive(v - m);
                *n += if v.is_nan() { 1.0 } else { 0.0 };
            }
        }
        self.max = max;
    }

    /// The lanes merged into one piece.
    pub(crate) fn reduce(&self) -> MaxSum {
        let max = self.max.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum = self
            .sum
            .iter()
            .zip(&self.max)
            .map(|(&s, &m)| {
                if m == f32::NEG_INFINITY {
                    0.0
                } else {
                    s * exp_nonpositive(m - max)
                }
            })
            .sum();
        MaxSum {
            max,
            sum,
            nan: self.nans.iter().any(|&n| n > 0.0),
        }
    }
}

#[inline(always)]
fn fold_lanes_slice(tile: &[f32], ld: usize, width: usize, states: &mut [LaneMaxSum]) {
    for (i, state) in states.iter_mut().enumerate() {
        let (chunks, _) = tile[i * ld..][..width].as_chunks::<LANES>();
        state.add(chunks);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fold_lanes_avx512(tile: &[f32], ld: usize, width: usize, states: &mut [LaneMaxSum]) {
    fold_lanes_slice(tile, ld, width, states)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fold_lanes_avx2(tile: &[f32], ld: usize, width: usize, states: &mut [LaneMaxSum]) {
    fold_lanes_slice(tile, ld, width, states)
}

/// Values per lane group of [`fold_lanes`]: its rows' widths are multiples of this.
pub(crate) const FOLD_LANES: usize = LANES;

/// Folds row `i` of `tile` (`tile[i·ld ..][..width]`, `width` a multiple of [`FOLD_LANES`];
/// pad a shorter row with −∞) into `states[i]`, for every state.
pub(crate) fn fold_lanes(tile: &[f32], ld: usize, width: usize, states: &mut [LaneMaxSum]) {
    debug_assert!(width.is_multiple_of(LANES));
    debug_assert!(states.is_empty() || tile.len() >= (states.len() - 1) * ld + width);
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { fold_lanes_avx512(tile, ld, width, states) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { fold_lanes_avx2(tile, ld, width, states) };
        }
    }
    fold_lanes_slice(tile, ld, width, states)
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

    /// `row` folded `piece` values at a time (each piece padded with −∞ to whole lane groups),
    /// the lanes reduced.
    fn folded(row: &[f32], piece: usize) -> MaxSum {
        let mut state = [LaneMaxSum::EMPTY];
        for chunk in row.chunks(piece) {
            let width = chunk.len().div_ceil(FOLD_LANES) * FOLD_LANES;
            let mut padded = vec![f32::NEG_INFINITY; width];
            padded[..chunk.len()].copy_from_slice(chunk);
            fold_lanes(&padded, width, width, &mut state);
        }
        state[0].reduce()
    }

    #[test]
    fn lane_pieces_merge_to_the_whole_row() {
        let row: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3)
            .collect();
        let whole = log_sum_exp(&row);
        for piece in [1, 7, 32, 999] {
            let got = folded(&row, piece).log_sum_exp();
            assert!(
                (got - whole).abs() <= 1e-5 * whole.abs().max(1.0),
                "{piece}: {got} vs {whole}"
            );
            // Two halves folded apart and merged as pieces.
            let (a, b) = row.split_at(430);
            let merged = folded(a, piece).merge(folded(b, piece)).log_sum_exp();
            assert!(
                (merged - whole).abs() <= 1e-5 * whole.abs().max(1.0),
                "{piece}: {merged}"
            );
        }
        // −∞ adds nothing; NaN anywhere, or nothing finite, is NaN.
        assert!(folded(&[f32::NEG_INFINITY; 4], 4).log_sum_exp().is_nan());
        let two = folded(&[f32::NEG_INFINITY, 0.0, 0.0], 2).log_sum_exp();
        assert!((two - 2f32.ln()).abs() < 1e-6, "{two}");
        assert!(folded(&[0.0, f32::NAN, 1.0], 3).log_sum_exp().is_nan());
        assert!(folded(&[0.0, f32::INFINITY], 3).log_sum_exp().is_nan());
        let empty = MaxSum::EMPTY
            .merge(folded(&[0.0, 0.0], 2))
            .merge(MaxSum::EMPTY);
        assert!((empty.log_sum_exp() - 2f32.ln()).abs() < 1e-6);
        // Strided rows: two rows of 16 values stored 20 apart.
        let mut tile = vec![0f32; 36];
        tile[..16]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32);
        let mut states = [LaneMaxSum::EMPTY; 2];
        fold_lanes(&tile, 20, 16, &mut states);
        assert!((states[0].reduce().log_sum_exp() - log_sum_exp(&tile[..16])).abs() < 1e-6);
        assert!((states[1].reduce().log_sum_exp() - 16f32.ln()).abs() < 1e-6);
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
