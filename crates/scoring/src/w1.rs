//! Wasserstein-1 distance of a neuron's standardised activations from N(0, 1).
//!
//! # Exact W1 against the true normal
//!
//! For a sorted standardised sample z₍₁₎ ≤ … ≤ z₍ₙ₎ the 1-D W1 distance to N(0,1) is the area
//! between the two quantile functions:
//!
//! W1 = Σᵢ ∫_{(i−1)/n}^{i/n} |z₍ᵢ₎ − Φ⁻¹(u)| du.
//!
//! With qᵢ = Φ⁻¹(i/n) and Tᵢ = φ(qᵢ) (T₀ = Tₙ = 0), and because ∫Φ⁻¹(u) du = −φ(Φ⁻¹(u)),
//! every band is closed-form: with a = (i−1)/n, b = i/n, Dᵢ = Tᵢ₋₁ − Tᵢ,
//!
//! - z ≥ qᵢ: z(b − a) − Dᵢ,
//! - z ≤ qᵢ₋₁: Dᵢ − z(b − a),
//! - otherwise the quantile curves cross at c = Φ(z) ∈ (a, b):
//!   z(2c − a − b) − Tᵢ₋₁ − Tᵢ + 2φ(z).
//!
//! [`NormalQuantiles`] holds qᵢ, Tᵢ and Dᵢ for one sample size, so a neuron costs a sort plus
//! O(n) multiply-adds, with `erfc`/`exp` only at crossing bands. There is no Monte-Carlo
//! sample and no quadrature: the result is exact up to floating-point rounding (observed
//! ~1e-15 absolute against a 40-digit mpmath evaluation of ∫|Fₙ − Φ| dx, see the parity test).
//!
//! The quantiles are tabulated with the symmetry qᵢ = −Φ⁻¹((n − i)/n) for i > n/2, so the
//! upper tail is as accurate as the lower one (forming 1 − i/n in floating point would lose
//! relative accuracy there).
//!
//! # Negative share
//!
//! [`w1_exact_split_sorted`] also returns the part of the W1 integral that lies where the
//! standardised value is below `cut` (with `cut = −mean/std`, where the *raw* pre-activation
//! is negative). In the quantile picture, the horizontal segment at height u between z(u) and
//! Φ⁻¹(u) is clipped to x < cut, so band i contributes ∫|min(zᵢ, cut) − min(Φ⁻¹(u), cut)| du;
//! this equals the CDF-form area ∫_{−∞}^{cut} |Fₙ(x) − Φ(x)| dx.
//!
//! # The authors' variant
//!
//! Kong et al. compute `scipy.stats.wasserstein_distance(z, np.random.normal(0, 1, n))`.
//! [`scipy_wasserstein`] reproduces scipy's `_cdf_distance` (merge both samples, right-sided
//! empirical CDFs, Σ|U − V|·Δ). It keeps the CDF difference as the exact integer
//! |i·m − j·n| and divides by n·m once, so it agrees with scipy to rounding (~1e-15
//! relative), not bit for bit (scipy's final dot product uses its own summation order).
//! [`w1_authors_sorted`] is the allocation-free version on pre-sorted inputs; when the two
//! samples have the same size (always the case here) it uses the identity
//! W1 = (1/n) Σ |z₍ᵢ₎ − v₍ᵢ₎| — both empirical quantile functions are step functions on the
//! same grid i/n, so this is the same integral, but a branch-free O(n) loop instead of a
//! 2n-step merge. Tests check both against scipy's numbers.
//!
//! # Speed
//!
//! [`score_neuron`] makes few passes over a neuron's n values: one computes the radix-sort keys,
//! their byte histograms and Σx; up to four counting-sort passes; one decodes the sorted keys to
//! f64 while summing the central moments; one standardises (as (x − mean)·(1/std), within an
//! ulp or two of numpy's `(x − mean)/std`) while summing every band's non-crossing term
//! |zᵢ/n − Dᵢ| and the authors' |zᵢ − vᵢ| (eight independent accumulators, so the additions
//! pipeline instead of waiting on one running sum); and a compare-only scan finds the crossing
//! bands. In all bands but the crossing ones, both non-crossing formulas equal |zᵢ/n − Dᵢ|, so
//! the crossings are added as corrections. The negative part then costs O(log n) plus the bands
//! between the cut's band and the last negative value. The sort is about two thirds of the time.
//!
//! # Degenerate neurons
//!
//! A neuron with zero variance (all values equal, which includes n = 1) or no values cannot be
//! standardised. [`score_neuron`] then reports `std = 0`, NaN skewness and kurtosis (as scipy
//! does), NaN `w1_exact`, NaN `w1_negative_share`, and `Some(NaN)` for `w1_authors` when the
//! authors' variant was asked for. Selection code must exclude NaN scores. "Zero variance" means
//! the f64 second central moment is exactly 0: with f32 inputs any non-constant neuron has a
//! relative spread far above rounding noise, so this matches scipy's own
//! `m2 <= (1e-15·mean)²` rule on such data.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::normal::{cdf, phi, quantile};
use crate::sort::{RadixScratch, sorted_keys_f32_and_sum, unkey32};
use crate::{Result, ScoringError};

/// Normal quantiles qᵢ = Φ⁻¹(i/n), densities Tᵢ = φ(qᵢ) and band integrals for one sample size
/// n, computed once and shared by every neuron scored with n values.
#[derive(Debug, Clone)]
pub struct NormalQuantiles {
    n: usize,
    /// qᵢ for i = 0..=n (q₀ = −∞, qₙ = +∞).
    q: Vec<f64>,
    /// Tᵢ = φ(qᵢ) for i = 0..=n (T₀ = Tₙ = 0).
    t: Vec<f64>,
    /// Dᵢ = Tᵢ₋₁ − Tᵢ = −∫_{(i−1)/n}^{i/n} Φ⁻¹(u) du, stored at index i − 1 (n entries).
    d: Vec<f64>,
}

impl NormalQuantiles {
    /// Tabulates the quantiles for samples of `n` values (O(n) quantile evaluations).
    pub fn new(n: usize) -> Self {
        let nf = n as f64;
        let q: Vec<f64> = (0..=n)
            .map(|i| {
                if i == 0 {
                    f64::NEG_INFINITY
                } else if i == n {
                    f64::INFINITY
                } else if 2 * i <= n {
                    quantile(i as f64 / nf)
                } else {
                    // Symmetry keeps the upper tail as accurate as the lower one.
                    -quantile((n - i) as f64 / nf)
                }
            })
            .collect();
        let t: Vec<f64> = q.iter().map(|&x| phi(x)).collect();
        let d = t.windows(2).map(|w| w[0] - w[1]).collect();
        Self { n, q, t, d }
    }

    /// The sample size this table is for.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the table is for empty samples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The 0-based band k with q[k] <= cut < q[k + 1] for a finite `cut` (bands before it lie
    /// wholly below the cut).
    fn cut_band(&self, cut: f64) -> usize {
        // q[n] = +∞ > cut, so k < n.
        self.q[1..self.n].partition_point(|&x| x <= cut)
    }

    /// qᵢ = Φ⁻¹(i/n) for i = 0..=n.
    pub fn quantiles(&self) -> &[f64] {
        &self.q
    }

    /// Tᵢ = φ(qᵢ) for i = 0..=n.
    pub fn densities(&self) -> &[f64] {
        &self.t
    }
}

/// ∫_a^b |z − Φ⁻¹(u)| du for a band with endpoints qa = Φ⁻¹(a), qb = Φ⁻¹(b), ta = φ(qa),
/// tb = φ(qb).
#[inline]
fn band(z: f64, a: f64, b: f64, qa: f64, qb: f64, ta: f64, tb: f64) -> f64 {
    if z >= qb {
        z * (b - a) - (ta - tb)
    } else if z <= qa {
        (ta - tb) - z * (b - a)
    } else {
        crossing(z, a, b, ta, tb)
    }
}

/// The band integral when Φ⁻¹ crosses z inside the band (at u = Φ(z)).
#[cold]
fn crossing(z: f64, a: f64, b: f64, ta: f64, tb: f64) -> f64 {
    // Rounding can put Φ(z) a hair outside the band; the formula is continuous there.
    let c = cdf(z).clamp(a, b);
    z * ((c - a) - (b - c)) - ta - tb + 2.0 * phi(z)
}

/// Exact W1 between the empirical distribution of the sorted sample `z` and N(0, 1).
///
/// `z` must be sorted ascending and finite. Returns NaN for an empty sample.
///
/// # Panics
///
/// If `table.len() != z.len()` (the table is for another sample size).
pub fn w1_exact_sorted(z: &[f64], table: &NormalQuantiles) -> f64 {
    assert_eq!(
        table.len(),
        z.len(),
        "NormalQuantiles built for another sample size"
    );
    let n = z.len();
    if n == 0 {
        return f64::NAN;
    }
    let inv_n = 1.0 / n as f64;
    sum_abs_scaled_diff(z, &table.d, inv_n) + crossing_corrections(z, table, 0)
}

/// Σ |zᵢ/n − Dᵢ|: every band's integral when Φ⁻¹ does not cross zᵢ inside it (both
/// non-crossing cases of the band formula are this absolute value). Eight independent
/// accumulators, because a single running sum is bound by the add latency.
fn sum_abs_scaled_diff(z: &[f64], d: &[f64], inv_n: f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let zc = z.chunks_exact(8);
    let dc = d.chunks_exact(8);
    let mut rest = 0.0;
    for (a, b) in zc.remainder().iter().zip(dc.remainder()) {
        rest += (a * inv_n - b).abs();
    }
    for (a, b) in zc.zip(dc) {
        for ((s, x), y) in acc.iter_mut().zip(a).zip(b) {
            *s += (x * inv_n - y).abs();
        }
    }
    lanes_total(acc) + rest
}

/// Σ zᵢ with eight accumulators.
fn sum_lanes(z: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let zc = z.chunks_exact(8);
    let rest: f64 = zc.remainder().iter().sum();
    for a in zc {
        for (s, x) in acc.iter_mut().zip(a) {
            *s += x;
        }
    }
    lanes_total(acc) + rest
}

/// Decodes the sorted keys into `out` as f64 and returns Σ(x − mean)², Σ(x − mean)³,
/// Σ(x − mean)⁴ (four accumulators each), in the same pass.
fn decode_and_central_sums(keys: &[u32], mean: f64, out: &mut Vec<f64>) -> (f64, f64, f64) {
    out.clear();
    out.resize(keys.len(), 0.0);
    let (mut s2, mut s3, mut s4) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
    let kc = keys.chunks_exact(4);
    let (mut r2, mut r3, mut r4) = (0.0, 0.0, 0.0);
    let tail = kc.remainder().len();
    let split = keys.len() - tail;
    for (&k, o) in kc.remainder().iter().zip(&mut out[split..]) {
        let v = f64::from(unkey32(k));
        *o = v;
        let d = v - mean;
        let d2 = d * d;
        r2 += d2;
        r3 += d2 * d;
        r4 += d2 * d2;
    }
    for (c, o) in kc.zip(out.chunks_exact_mut(4)) {
        for l in 0..4 {
            let v = f64::from(unkey32(c[l]));
            o[l] = v;
            let d = v - mean;
            let d2 = d * d;
            s2[l] += d2;
            s3[l] += d2 * d;
            s4[l] += d2 * d2;
        }
    }
    let total = |a: [f64; 4], r: f64| (a[0] + a[2]) + (a[1] + a[3]) + r;
    (total(s2, r2), total(s3, r3), total(s4, r4))
}

/// Pairwise total of eight partial sums.
fn lanes_total(a: [f64; 8]) -> f64 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// For the bands (0-based, starting at `first`, one per element of `z`) where Φ⁻¹ crosses zᵢ
/// inside the band, the crossing formula minus the |zᵢ/n − Dᵢ| that
/// [`sum_abs_scaled_diff`] counted for them. Crossings are rare (O(√n) for a near-normal
/// sample, a handful otherwise), so the scan is a predictable branch with no float chain.
fn crossing_corrections(z: &[f64], table: &NormalQuantiles, first: usize) -> f64 {
    let n = table.n;
    let nf = n as f64;
    let inv_n = 1.0 / nf;
    let (q, t, d) = (&table.q[first..], &table.t[first..], &table.d[first..]);
    let mut corr = 0.0;
    for (j, ((&zi, lo), hi)) in z.iter().zip(q).zip(&q[1..]).enumerate() {
        if zi > *lo && zi < *hi {
            let i = first + j;
            let exact = crossing(zi, i as f64 / nf, (i + 1) as f64 / nf, t[j], t[j + 1]);
            corr += exact - (zi * inv_n - d[j]).abs();
        }
    }
    corr
}

/// Exact W1 of the sorted sample `z` from N(0, 1), and the part of it lying at x < `cut`.
///
/// Returns `(total, part)` with `part = ∫_{−∞}^{cut} |Fₙ(x) − Φ(x)| dx`; `cut = +∞` gives
/// `part == total`, `cut = −∞` gives 0, NaN `cut` gives NaN `part`. An empty sample gives
/// `(NaN, NaN)`. `z` must be sorted ascending and finite.
///
/// # Panics
///
/// If `table.len() != z.len()`.
pub fn w1_exact_split_sorted(z: &[f64], cut: f64, table: &NormalQuantiles) -> (f64, f64) {
    assert_eq!(
        table.len(),
        z.len(),
        "NormalQuantiles built for another sample size"
    );
    let n = z.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    if cut.is_nan() || cut == f64::INFINITY || cut == f64::NEG_INFINITY {
        let total = w1_exact_sorted(z, table);
        let part = if cut == f64::INFINITY {
            total
        } else if cut == f64::NEG_INFINITY {
            0.0
        } else {
            f64::NAN
        };
        return (total, part);
    }
    let inv_n = 1.0 / n as f64;
    let k = table.cut_band(cut);
    let m = k.min(z.partition_point(|&x| x < cut));
    let head = sum_abs_scaled_diff(&z[..m], &table.d[..m], inv_n);
    let rest = sum_abs_scaled_diff(&z[m..], &table.d[m..], inv_n);
    finish_split(z, cut, table, k, m, head, rest)
}

/// Completes [`w1_exact_split_sorted`] from the non-crossing band sums
/// `head = Σ_{i<m_sums} |zᵢ/n − Dᵢ|` and `rest` (the other bands), for a finite `cut` whose
/// band is `k`. `m_sums` may be a guess of m = min(k, #{z < cut}) (the fused path in
/// [`score_neuron`] guesses it from the raw signs); the few bands in between are moved.
fn finish_split(
    z: &[f64],
    cut: f64,
    table: &NormalQuantiles,
    k: usize,
    m_sums: usize,
    mut head: f64,
    mut rest: f64,
) -> (f64, f64) {
    let n = z.len();
    let nf = n as f64;
    let inv_n = 1.0 / nf;
    let (q, t, d) = (&table.q, &table.t, &table.d);
    // 0-based bands i < k have q[i + 1] <= cut: Φ⁻¹ stays below the cut on the whole band.
    // Band k contains Φ(cut); bands after it have Φ⁻¹ >= cut throughout. Values i < j0 are
    // below the cut. Bands i < m = min(k, j0) contribute identically to the total and to the
    // part.
    let j0 = z.partition_point(|&x| x < cut);
    let m = k.min(j0);
    if m < m_sums {
        let moved = sum_abs_scaled_diff(&z[m..m_sums], &d[m..m_sums], inv_n);
        head -= moved;
        rest += moved;
    } else if m > m_sums {
        let moved = sum_abs_scaled_diff(&z[m_sums..m], &d[m_sums..m], inv_n);
        head += moved;
        rest -= moved;
    }
    head += crossing_corrections(&z[..m], table, 0);
    rest += crossing_corrections(&z[m..], table, m);
    let total = head + rest;
    let mut part = head;
    // Bands m <= i < k (z clipped to cut >= q[i + 1]): Σ (cut/n − Dᵢ), and the Dᵢ telescope.
    part += (k - m) as f64 * cut * inv_n - (t[m] - t[k]);
    // Band k: below Φ(cut) an ordinary band ending at (Φ(cut), cut); above it Φ⁻¹ is clipped
    // to cut, leaving the constant gap cut − min(z, cut).
    let a = k as f64 / nf;
    let b = (k + 1) as f64 / nf;
    let uc = cdf(cut).clamp(a, b);
    let zc = z[k].min(cut);
    part += band(zc, a, uc, q[k], cut, t[k], phi(cut)) + (cut - zc) * (b - uc);
    // Bands k < i < j0: Φ⁻¹ clipped to cut, z below it: Σ (cut − zᵢ)/n.
    if j0 > k + 1 {
        let tail = &z[k + 1..j0];
        part += (tail.len() as f64 * cut - sum_lanes(tail)) * inv_n;
    }
    (total, part)
}

/// One pass over the sorted raw values `z` (as f64): standardises them in place,
/// zᵢ ← (zᵢ − mean)/std, and returns (Σ_{i<m} |zᵢ/n − Dᵢ|, Σ_{i≥m} |zᵢ/n − Dᵢ|, Σ|zᵢ − vᵢ|),
/// the last only when `v` (the authors' sample) has the same length (else 0).
fn standardise_and_sum(
    z: &mut [f64],
    mean: f64,
    std: f64,
    d: &[f64],
    m: usize,
    v: Option<&[f64]>,
) -> (f64, f64, f64) {
    let inv_n = 1.0 / z.len() as f64;
    let (zh, zr) = z.split_at_mut(m);
    let (dh, dr) = d.split_at(m);
    match v {
        Some(v) if v.len() == zh.len() + zr.len() => {
            let (vh, vr) = v.split_at(m);
            let (h, ah) = standardise_chunk(zh, mean, std, dh, inv_n, Some(vh));
            let (r, ar) = standardise_chunk(zr, mean, std, dr, inv_n, Some(vr));
            (h, r, ah + ar)
        }
        _ => {
            let (h, _) = standardise_chunk(zh, mean, std, dh, inv_n, None);
            let (r, _) = standardise_chunk(zr, mean, std, dr, inv_n, None);
            (h, r, 0.0)
        }
    }
}

/// [`standardise_and_sum`] on one contiguous range, eight accumulators per sum.
fn standardise_chunk(
    z: &mut [f64],
    mean: f64,
    std: f64,
    d: &[f64],
    inv_n: f64,
    v: Option<&[f64]>,
) -> (f64, f64) {
    let mut acc = [0.0f64; 8];
    let mut auth = [0.0f64; 8];
    let mut rest = 0.0;
    let mut rest_auth = 0.0;
    // Multiplying by 1/std instead of dividing (as numpy's `(x - mean) / std` does) differs by
    // at most an ulp or two per value, far below every tolerance here, and division is the
    // slowest operation in the pass. The product is still monotone in x.
    let inv_std = 1.0 / std;
    let zc = z.chunks_exact_mut(8);
    let dc = d.chunks_exact(8);
    match v {
        Some(v) => {
            let vc = v.chunks_exact(8);
            for ((x, &dd), &vv) in zc
                .into_remainder()
                .iter_mut()
                .zip(dc.remainder())
                .zip(vc.remainder())
            {
                *x = (*x - mean) * inv_std;
                rest += (*x * inv_n - dd).abs();
                rest_auth += (*x - vv).abs();
            }
            for ((c, dd), vv) in z.chunks_exact_mut(8).zip(dc).zip(vc) {
                for l in 0..8 {
                    let zi = (c[l] - mean) * inv_std;
                    c[l] = zi;
                    acc[l] += (zi * inv_n - dd[l]).abs();
                    auth[l] += (zi - vv[l]).abs();
                }
            }
        }
        None => {
            for (x, &dd) in zc.into_remainder().iter_mut().zip(dc.remainder()) {
                *x = (*x - mean) * inv_std;
                rest += (*x * inv_n - dd).abs();
            }
            for (c, dd) in z.chunks_exact_mut(8).zip(dc) {
                for l in 0..8 {
                    let zi = (c[l] - mean) * inv_std;
                    c[l] = zi;
                    acc[l] += (zi * inv_n - dd[l]).abs();
                }
            }
        }
    }
    (lanes_total(acc) + rest, lanes_total(auth) + rest_auth)
}

/// `scipy.stats.wasserstein_distance(u, v)` (unweighted), computed the way scipy's
/// `_cdf_distance` does: sort both samples, merge all values, take the right-continuous
/// empirical CDFs of `u` and `v` at each merged value, and sum |U − V| times the gap to the
/// next merged value.
///
/// Sorts copies of the inputs. Returns NaN if either sample is empty (scipy raises).
pub fn scipy_wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let mut us = u.to_vec();
    let mut vs = v.to_vec();
    us.sort_by(f64::total_cmp);
    vs.sort_by(f64::total_cmp);
    cdf_walk(&us, &vs)
}

/// The authors' W1 for already-sorted inputs, without allocating: the same value as
/// [`scipy_wasserstein`] (see the module docs for the equal-size identity used).
///
/// Returns NaN if either sample is empty.
pub fn w1_authors_sorted(z_sorted: &[f64], normal_sorted: &[f64]) -> f64 {
    let n = z_sorted.len();
    if n == 0 || normal_sorted.is_empty() {
        return f64::NAN;
    }
    if normal_sorted.len() == n {
        let mut acc = [0.0f64; 8];
        let zc = z_sorted.chunks_exact(8);
        let vc = normal_sorted.chunks_exact(8);
        let mut rest = 0.0;
        for (a, b) in zc.remainder().iter().zip(vc.remainder()) {
            rest += (a - b).abs();
        }
        for (a, b) in zc.zip(vc) {
            for ((s, x), y) in acc.iter_mut().zip(a).zip(b) {
                *s += (x - y).abs();
            }
        }
        (lanes_total(acc) + rest) / n as f64
    } else {
        cdf_walk(z_sorted, normal_sorted)
    }
}

/// scipy's `_cdf_distance(1, …)` on sorted inputs, as a merge walk.
fn cdf_walk(u: &[f64], v: &[f64]) -> f64 {
    let (n, m) = (u.len(), v.len());
    if n == 0 || m == 0 {
        return f64::NAN;
    }
    // i, j count the values of u and v consumed so far. When the next merged value is larger
    // than the previous one, every value <= previous has been consumed, so i/n and j/m are the
    // right-sided CDFs scipy's searchsorted gives; for ties the gap is 0 and the counts don't
    // matter.
    let (mut i, mut j) = (0usize, 0usize);
    let next = |i: &mut usize, j: &mut usize| -> f64 {
        if *j >= m || (*i < n && u[*i] <= v[*j]) {
            *i += 1;
            u[*i - 1]
        } else {
            *j += 1;
            v[*j - 1]
        }
    };
    let mut prev = next(&mut i, &mut j);
    let (mi, ni) = (m as i128, n as i128);
    let mut acc = 0.0;
    while i < n || j < m {
        // |i/n − j/m| = |i·m − j·n| / (n·m), exact in integers.
        let diff = (i as i128 * mi - j as i128 * ni).unsigned_abs() as f64;
        let x = next(&mut i, &mut j);
        acc += diff * (x - prev);
        prev = x;
    }
    acc / (n as f64 * m as f64)
}

/// Everything scoring reports about one neuron.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NeuronScore {
    /// Mean of the raw pre-activations.
    pub mean: f64,
    /// Population standard deviation (ddof = 0); 0 for a constant neuron.
    pub std: f64,
    /// Skewness m₃/m₂^1.5 (biased, as `scipy.stats.skew`); NaN when `std == 0`.
    pub skewness: f64,
    /// Excess (Fisher) kurtosis m₄/m₂² − 3 (biased, as `scipy.stats.kurtosis`); NaN when
    /// `std == 0`.
    pub kurtosis: f64,
    /// Fraction of raw pre-activations that are < 0.
    pub frac_negative: f64,
    /// Exact W1 of the standardised values from N(0, 1); NaN when `std == 0`.
    pub w1_exact: f64,
    /// Share of `w1_exact` lying where the raw pre-activation is negative, in [0, 1]; NaN when
    /// `std == 0`.
    pub w1_negative_share: f64,
    /// The authors' Monte-Carlo W1 (`scipy.stats.wasserstein_distance` against the shared
    /// normal sample), if a sample was given; `Some(NaN)` when `std == 0`.
    pub w1_authors: Option<f64>,
}

/// Reusable buffers for [`score_neuron`], so scoring many neurons does not allocate per neuron.
#[derive(Debug, Default, Clone)]
pub struct ScoreScratch {
    radix: RadixScratch,
    z: Vec<f64>,
}

impl ScoreScratch {
    /// Empty buffers; they grow to the sample size on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Scores one neuron from its raw pre-activations `x` (one value per token, finite).
///
/// Moments are computed in f64 (two-pass: mean, then central moments about it), the values
/// are sorted once (radix sort), standardised as `(x − mean)/std` with the population std, and
/// both W1 variants are computed on the sorted standardised values (see "Speed" in the module
/// docs). The negative share uses `cut = −mean/std`. See the module docs for the zero-variance
/// convention.
///
/// `normal_sorted` is the authors' shared N(0,1) sample, sorted (see [`seeded_normal_sample`]);
/// `None` skips the authors' variant.
///
/// # Panics
///
/// If `table.len() != x.len()`.
pub fn score_neuron(
    x: &[f32],
    table: &NormalQuantiles,
    normal_sorted: Option<&[f64]>,
    scratch: &mut ScoreScratch,
) -> NeuronScore {
    assert_eq!(
        table.len(),
        x.len(),
        "NormalQuantiles built for another sample size"
    );
    let n = x.len();
    let nf = n as f64;
    let ScoreScratch { radix, z } = scratch;
    // Sort once (radix sort on order-preserving keys), decoding straight into f64.
    let (keys, sum) = sorted_keys_f32_and_sum(x, radix);
    let mean = if n == 0 { f64::NAN } else { sum / nf };
    let (m2, m3, m4) = decode_and_central_sums(keys, mean, z);
    let negatives = z.partition_point(|&v| v < 0.0);
    let frac_negative = if n == 0 {
        f64::NAN
    } else {
        negatives as f64 / nf
    };
    if n == 0 || m2 == 0.0 {
        return NeuronScore {
            mean,
            std: 0.0,
            skewness: f64::NAN,
            kurtosis: f64::NAN,
            frac_negative,
            w1_exact: f64::NAN,
            w1_negative_share: f64::NAN,
            w1_authors: normal_sorted.map(|_| f64::NAN),
        };
    }
    let var = m2 / nf;
    let std = var.sqrt();
    let skewness = (m3 / nf) / (var * std);
    let kurtosis = (m4 / nf) / (var * var) - 3.0;
    let cut = -mean / std;

    // (x − mean)/std is monotone in x, so the standardised values stay sorted. One fused pass
    // standardises and sums the non-crossing band terms (split where the negative part's
    // bands end; the raw sign count is the guess, corrected in `finish_split`) and the authors'
    // |z − v|.
    let (w1_exact, part, authors_sum) = if cut.is_finite() {
        let k = table.cut_band(cut);
        let m_guess = k.min(negatives);
        let (head, rest, authors_sum) =
            standardise_and_sum(z, mean, std, &table.d, m_guess, normal_sorted);
        let (total, part) = finish_split(z, cut, table, k, m_guess, head, rest);
        (total, part, authors_sum)
    } else {
        // Not reachable from f32 inputs (|mean|/std is far inside the f64 range); kept so the
        // general path's conventions apply if it ever is.
        for v in z.iter_mut() {
            *v = (*v - mean) / std;
        }
        let (total, part) = w1_exact_split_sorted(z, cut, table);
        (total, part, f64::NAN)
    };
    let w1_authors = normal_sorted.map(|v| {
        if v.len() == n && cut.is_finite() {
            authors_sum / nf
        } else {
            w1_authors_sorted(z, v)
        }
    });
    NeuronScore {
        mean,
        std,
        skewness,
        kurtosis,
        frac_negative,
        w1_exact,
        w1_negative_share: part / w1_exact,
        w1_authors,
    }
}

/// Scores every neuron of a layer in parallel.
///
/// `values` is neuron-major: neuron j's `n` values are `values[j*n..(j+1)*n]`. Each neuron is
/// scored independently by [`score_neuron`], so the result does not depend on the number of
/// threads.
///
/// # Errors
///
/// [`ScoringError::Settings`] if `n == 0`, `values.len()` is not a multiple of `n`, or
/// `table` / `normal_sorted` were made for a different sample size than `n`.
pub fn score_layer(
    values: &[f32],
    n: usize,
    table: &NormalQuantiles,
    normal_sorted: Option<&[f64]>,
) -> Result<Vec<NeuronScore>> {
    if n == 0 || !values.len().is_multiple_of(n) {
        return Err(ScoringError::Settings(format!(
            "{} activation values do not split into neurons of {n} tokens",
            values.len()
        )));
    }
    if table.len() != n {
        return Err(ScoringError::Settings(format!(
            "normal quantile table is for {} tokens, activations have {n}",
            table.len()
        )));
    }
    if let Some(v) = normal_sorted
        && v.len() != n
    {
        return Err(ScoringError::Settings(format!(
            "normal sample has {} values, activations have {n} tokens",
            v.len()
        )));
    }
    Ok(values
        .par_chunks(n)
        .map_init(ScoreScratch::new, |scratch, x| {
            score_neuron(x, table, normal_sorted, scratch)
        })
        .collect())
}

/// The authors' N(0, 1) sample of size `n`, reproducibly: `ChaCha8Rng::seed_from_u64(seed)`,
/// Box–Muller, sorted ascending.
///
/// Each pair of uniforms u₁ ∈ (0, 1] (as `1 − U[0,1)`, so the log is finite) and u₂ ∈ [0, 1)
/// (53-bit, `Rng::random::<f64>()`) gives r = √(−2 ln u₁) and the two normals r·cos(2πu₂),
/// r·sin(2πu₂); an odd `n` drops the last sine. Box–Muller is exact in distribution (no
/// rejection or tables). The values depend on the platform's `ln`/`sin`/`cos` only in the
/// last ulp, so the same seed gives the same sample to ~1e-16 everywhere and bit-identically
/// on one platform.
pub fn seeded_normal_sample(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        out.push(r * theta.cos());
        out.push(r * theta.sin());
    }
    out.truncate(n);
    out.sort_by(f64::total_cmp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normal::cdf_integral;
    use rand::Rng;

    /// ∫_{lo}^{hi} |F_n(x) − Φ(x)| dx in the CDF form, splitting at every sample point and at
    /// every crossing, with closed-form ∫Φ. Independent of the quantile-form code.
    fn brute_cdf_area(z_sorted: &[f64], lo: f64, hi: f64) -> f64 {
        let n = z_sorted.len();
        let mut pts: Vec<f64> = z_sorted.to_vec();
        for i in 1..n {
            pts.push(quantile(i as f64 / n as f64));
        }
        pts.push(lo);
        pts.push(hi);
        pts.retain(|&p| p >= lo && p <= hi);
        pts.sort_by(f64::total_cmp);
        pts.dedup();
        // Tails beyond the data: F_n = 0 below the minimum, 1 above the maximum.
        let mut area = 0.0;
        for w in pts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let mid = 0.5 * (a + b);
            let f = z_sorted.partition_point(|&v| v <= mid) as f64 / n as f64;
            let int_phi = cdf_integral(b) - cdf_integral(a);
            area += (f * (b - a) - int_phi).abs();
        }
        area
    }

    /// The straightforward per-band loop, as a reference for the vectorised version.
    fn reference_split(z: &[f64], cut: f64, table: &NormalQuantiles) -> (f64, f64) {
        let n = z.len();
        let nf = n as f64;
        let (q, t) = (table.quantiles(), table.densities());
        let (mut total, mut part) = (0.0, 0.0);
        for (i, &zi) in z.iter().enumerate() {
            let (a, b) = (i as f64 / nf, (i + 1) as f64 / nf);
            total += band(zi, a, b, q[i], q[i + 1], t[i], t[i + 1]);
            let zc = zi.min(cut);
            part += if q[i + 1] <= cut {
                band(zc, a, b, q[i], q[i + 1], t[i], t[i + 1])
            } else if q[i] >= cut {
                (cut - zc) * (b - a)
            } else {
                let uc = cdf(cut).clamp(a, b);
                band(zc, a, uc, q[i], cut, t[i], phi(cut)) + (cut - zc) * (b - uc)
            };
        }
        (total, part)
    }

    #[test]
    fn vectorised_matches_reference_loop() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        for n in [2usize, 3, 7, 8, 9, 17, 100, 1000, 4099] {
            let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>().powi(3)).collect();
            let z = standardise(&x);
            let table = NormalQuantiles::new(n);
            for cut in [-3.0, -0.5, 0.0, 0.2, 1.0, 5.0, z[0], z[n - 1], z[n / 2]] {
                let (t1, p1) = w1_exact_split_sorted(&z, cut, &table);
                let (t2, p2) = reference_split(&z, cut, &table);
                assert!(
                    (t1 - t2).abs() < 1e-14 && (p1 - p2).abs() < 1e-14,
                    "n={n} cut={cut}"
                );
            }
            let mut y: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            y.sort_by(f64::total_cmp);
            let direct: f64 = z.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum::<f64>() / n as f64;
            assert!((w1_authors_sorted(&z, &y) - direct).abs() < 1e-14);
        }
    }

    fn standardise(x: &[f64]) -> Vec<f64> {
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        let s = (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
        let mut z: Vec<f64> = x.iter().map(|v| (v - m) / s).collect();
        z.sort_by(f64::total_cmp);
        z
    }

    fn samples() -> Vec<Vec<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let normal: Vec<f64> = seeded_normal_sample(500, 3);
        let skew: Vec<f64> = (0..400).map(|_| rng.random::<f64>().powi(4)).collect();
        let ties: Vec<f64> = (0..300)
            .map(|_| (rng.random::<f64>() * 6.0).floor())
            .collect();
        vec![normal, skew, ties, vec![1.0, 2.0], vec![-1.0, 0.5, 4.0]]
    }

    #[test]
    fn exact_matches_brute_force_cdf_area() {
        for x in samples() {
            let z = standardise(&x);
            let table = NormalQuantiles::new(z.len());
            let w = w1_exact_sorted(&z, &table);
            let brute = brute_cdf_area(&z, -40.0, 40.0);
            assert!(
                (w - brute).abs() < 1e-12,
                "n={} exact {w} brute {brute}",
                z.len()
            );
            for cut in [
                -2.5,
                -0.3,
                0.0,
                0.1,
                1.7,
                3.0,
                -40.0,
                40.0,
                z[0],
                z[z.len() / 2],
            ] {
                let (total, part) = w1_exact_split_sorted(&z, cut, &table);
                assert!((total - w).abs() <= 1e-15 * w);
                let brute_part = brute_cdf_area(&z, -40.0, cut);
                assert!(
                    (part - brute_part).abs() < 1e-12,
                    "n={} cut={cut} part {part} brute {brute_part}",
                    z.len()
                );
            }
        }
    }

    #[test]
    fn split_limits() {
        let z = standardise(&samples()[1]);
        let table = NormalQuantiles::new(z.len());
        let total = w1_exact_sorted(&z, &table);
        assert_eq!(
            w1_exact_split_sorted(&z, f64::INFINITY, &table),
            (total, total)
        );
        assert_eq!(
            w1_exact_split_sorted(&z, f64::NEG_INFINITY, &table),
            (total, 0.0)
        );
        assert!(w1_exact_split_sorted(&z, f64::NAN, &table).1.is_nan());
        // Far-out finite cuts approach the limits continuously.
        let (_, hi) = w1_exact_split_sorted(&z, 1e6, &table);
        let (_, lo) = w1_exact_split_sorted(&z, -1e6, &table);
        assert!((hi - total).abs() < 1e-15 && lo.abs() < 1e-15);
        // Monotone in the cut.
        let mut prev = 0.0;
        for k in -60..=60 {
            let (_, p) = w1_exact_split_sorted(&z, k as f64 * 0.1, &table);
            assert!(p >= prev - 1e-15);
            prev = p;
        }
    }

    #[test]
    fn table_is_symmetric_and_accurate() {
        let t = NormalQuantiles::new(7);
        let q = t.quantiles();
        for i in 0..=7 {
            assert_eq!(q[i], -q[7 - i]);
        }
        assert_eq!(t.densities()[0], 0.0);
        assert_eq!(t.densities()[7], 0.0);
        assert!(NormalQuantiles::new(0).is_empty());
    }

    #[test]
    fn authors_variant_matches_walk_and_scipy_examples() {
        // Examples from scipy's docstring.
        assert!((scipy_wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]) - 5.0).abs() < 1e-15);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for n in [1usize, 2, 5, 100, 1001] {
            let mut a: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 3.0 - 1.0).collect();
            let mut b: Vec<f64> = (0..n)
                .map(|_| (rng.random::<f64>() * 4.0).round())
                .collect();
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let walk = cdf_walk(&a, &b);
            let fast = w1_authors_sorted(&a, &b);
            assert!(
                (walk - fast).abs() <= 1e-13 * walk.max(1e-300),
                "{walk} {fast}"
            );
            // Unequal sizes go through the walk.
            let c = &b[..n.div_ceil(2)];
            assert_eq!(w1_authors_sorted(&a, c), cdf_walk(&a, c));
        }
        assert!(scipy_wasserstein(&[], &[1.0]).is_nan());
        assert!(w1_authors_sorted(&[1.0], &[]).is_nan());
    }

    #[test]
    fn degenerate_neurons() {
        let table = NormalQuantiles::new(5);
        let normal = seeded_normal_sample(5, 1);
        let mut s = ScoreScratch::new();
        let r = score_neuron(&[2.0; 5], &table, Some(&normal), &mut s);
        assert_eq!(r.std, 0.0);
        assert_eq!(r.mean, 2.0);
        assert_eq!(r.frac_negative, 0.0);
        assert!(r.w1_exact.is_nan() && r.w1_negative_share.is_nan());
        assert!(r.skewness.is_nan() && r.kurtosis.is_nan());
        assert!(r.w1_authors.is_some_and(f64::is_nan));
        let one = score_neuron(&[-3.0], &NormalQuantiles::new(1), None, &mut s);
        assert!(one.w1_exact.is_nan() && one.w1_authors.is_none());
        assert_eq!(one.frac_negative, 1.0);
        let empty = score_neuron(&[], &NormalQuantiles::new(0), None, &mut s);
        assert!(empty.mean.is_nan() && empty.w1_exact.is_nan());
    }

    #[test]
    fn score_neuron_consistent_with_parts() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x: Vec<f32> = (0..3000)
            .map(|_| (rng.random::<f32>() - 0.3).powi(3) * 5.0)
            .collect();
        let table = NormalQuantiles::new(x.len());
        let normal = seeded_normal_sample(x.len(), 9);
        let r = score_neuron(&x, &table, Some(&normal), &mut ScoreScratch::new());
        let xd: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let z = standardise(&xd);
        let w = w1_exact_sorted(&z, &table);
        assert!((r.w1_exact - w).abs() < 1e-13);
        let cut = -r.mean / r.std;
        let brute = brute_cdf_area(&z, -40.0, cut);
        assert!((r.w1_negative_share * r.w1_exact - brute).abs() < 1e-12);
        let neg = x.iter().filter(|&&v| v < 0.0).count() as f64 / x.len() as f64;
        assert_eq!(r.frac_negative, neg);
        let a = scipy_wasserstein(&z, &normal);
        assert!((r.w1_authors.unwrap_or(f64::NAN) - a).abs() < 1e-13);
    }

    /// Exact zeros sit at the cut, where the fused path's raw-sign guess of the split band and
    /// the standardised comparison can disagree by rounding; the result must not care.
    #[test]
    fn score_neuron_with_values_at_the_cut() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for (n, p_zero) in [(500usize, 0.3), (2000, 0.6), (301, 0.05)] {
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.random::<f64>() < p_zero {
                        0.0
                    } else {
                        rng.random::<f32>() * 3.0 - 0.7
                    }
                })
                .collect();
            let table = NormalQuantiles::new(n);
            let r = score_neuron(&x, &table, None, &mut ScoreScratch::new());
            let z = standardise(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
            let brute = brute_cdf_area(&z, -40.0, 40.0);
            let brute_part = brute_cdf_area(&z, -40.0, -r.mean / r.std);
            assert!((r.w1_exact - brute).abs() < 1e-12, "{} {brute}", r.w1_exact);
            let part = r.w1_negative_share * r.w1_exact;
            assert!((part - brute_part).abs() < 1e-12, "{part} {brute_part}");
        }
    }

    #[test]
    fn score_layer_matches_per_neuron_and_checks_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 257;
        let values: Vec<f32> = (0..n * 9).map(|_| rng.random::<f32>().powi(2)).collect();
        let table = NormalQuantiles::new(n);
        let normal = seeded_normal_sample(n, 2);
        let layer = score_layer(&values, n, &table, Some(&normal)).unwrap();
        assert_eq!(layer.len(), 9);
        let mut s = ScoreScratch::new();
        for (j, r) in layer.iter().enumerate() {
            let one = score_neuron(&values[j * n..(j + 1) * n], &table, Some(&normal), &mut s);
            assert_eq!(*r, one);
        }
        assert!(score_layer(&values[1..], n, &table, None).is_err());
        assert!(score_layer(&values, 0, &table, None).is_err());
        assert!(score_layer(&values, n, &NormalQuantiles::new(3), None).is_err());
        assert!(score_layer(&values, n, &table, Some(&normal[1..])).is_err());
    }

    #[test]
    fn seeded_sample_is_reproducible_and_normal() {
        let a = seeded_normal_sample(20_001, 42);
        let b = seeded_normal_sample(20_001, 42);
        assert_eq!(a, b);
        assert_eq!(a.len(), 20_001);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert_ne!(a, seeded_normal_sample(20_001, 43));
        // Its exact W1 from N(0,1) (unstandardised) is ~ 1/sqrt(n) scale.
        let w = w1_exact_sorted(&a, &NormalQuantiles::new(a.len()));
        assert!(w < 0.03, "{w}");
        let m = a.iter().sum::<f64>() / a.len() as f64;
        assert!(m.abs() < 0.03);
    }

    /// Parity with scipy and a 40-digit mpmath integral (tests/fixtures/make_w1_fixtures.py).
    #[test]
    fn parity_with_fixture() {
        let fx = fixture::load();
        let mut max_exact: f64 = 0.0;
        let mut max_part: f64 = 0.0;
        let mut max_authors: f64 = 0.0;
        for c in &fx.cases {
            let n = c.x.len();
            let table = NormalQuantiles::new(n);
            let mut v = c.v.clone();
            v.sort_by(f64::total_cmp);
            let x32: Vec<f32> = c.x.iter().map(|&x| x as f32).collect();
            let r = score_neuron(&x32, &table, Some(&v), &mut ScoreScratch::new());
            if c.constant {
                assert!(r.w1_exact.is_nan() && r.skewness.is_nan(), "{}", c.name);
                continue;
            }
            let (Some(want_exact), Some(want_part)) = (c.w1_exact, c.w1_negative_part) else {
                panic!("{}: fixture lacks exact values", c.name);
            };
            // Scipy's own function on the stored standardised z.
            let authors = scipy_wasserstein(&c.z, &c.v);
            let rel = |a: f64, b: f64| ((a - b) / b).abs();
            let want_scipy = c.scipy_wasserstein.unwrap_or(f64::NAN);
            assert!(
                rel(authors, want_scipy) < 1e-9,
                "{}: {authors} vs {want_scipy}",
                c.name
            );
            let fast = r.w1_authors.unwrap_or(f64::NAN);
            assert!(
                rel(fast, want_scipy) < 1e-9,
                "{}: {fast} vs {want_scipy}",
                c.name
            );
            max_authors = max_authors
                .max(rel(authors, want_scipy))
                .max(rel(fast, want_scipy));
            // Exact W1 on the stored z and from the raw x via score_neuron.
            let mut z = c.z.clone();
            z.sort_by(f64::total_cmp);
            let cut = c.cut.unwrap_or(f64::NAN);
            let (total, part) = w1_exact_split_sorted(&z, cut, &table);
            for (got, want, what) in [
                (total, want_exact, "exact"),
                (r.w1_exact, want_exact, "exact (score_neuron)"),
                (part, want_part, "negative part"),
                (
                    r.w1_negative_share * r.w1_exact,
                    want_part,
                    "negative part (score_neuron)",
                ),
            ] {
                assert!(
                    (got - want).abs() < 1e-6,
                    "{}: {what} {got} vs {want}",
                    c.name
                );
                if what.starts_with("exact") {
                    max_exact = max_exact.max((got - want).abs());
                } else {
                    max_part = max_part.max((got - want).abs());
                }
            }
            let (Some(skew), Some(kurt)) = (c.skew, c.kurtosis) else {
                panic!("{}: fixture lacks moments", c.name);
            };
            assert!(rel(r.skewness, skew) < 1e-9 || (r.skewness - skew).abs() < 1e-13);
            assert!(
                rel(r.kurtosis, kurt) < 1e-9,
                "{}: {} vs {kurt}",
                c.name,
                r.kurtosis
            );
        }
        eprintln!(
            "parity: max |exact - mpmath| = {max_exact:.3e}, max |part - mpmath| = \
             {max_part:.3e}, max rel |authors - scipy| = {max_authors:.3e}"
        );
        // Far tighter than the 1e-6 contract: the closed form is exact up to rounding.
        assert!(max_exact < 1e-12 && max_part < 1e-12);
    }

    /// This thread's CPU time in µs (Linux; the timing test only), so that other load on the
    /// machine does not inflate the numbers as much as wall time.
    fn thread_cpu_us() -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) * 1e4
    }

    /// Single-thread timing of `score_neuron` at 30,000 tokens (run with
    /// `cargo test --release -p negdiff-scoring --lib -- --ignored --nocapture timing`).
    #[test]
    #[ignore = "timing, not a test"]
    fn timing_score_neuron() {
        let n = 30_000;
        let neurons = 200;
        let reps = 5;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let values: Vec<f32> = (0..n * neurons)
            .map(|_| {
                let u: f64 = rng.random();
                let v: f64 = rng.random();
                ((-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect();
        let table = NormalQuantiles::new(n);
        let normal = seeded_normal_sample(n, 1);
        let mut s = ScoreScratch::new();
        let mut sink = 0.0;
        let report = |what: &str, wall: std::time::Instant, cpu0: f64| {
            let count = (neurons * reps) as f64;
            eprintln!(
                "{what}: {:.1} us/neuron wall, {:.1} us/neuron thread CPU",
                wall.elapsed().as_secs_f64() / count * 1e6,
                (thread_cpu_us() - cpu0) / count
            );
        };
        for with_authors in [false, true] {
            let (t, c) = (std::time::Instant::now(), thread_cpu_us());
            for _ in 0..reps {
                for j in 0..neurons {
                    let r = score_neuron(
                        &values[j * n..(j + 1) * n],
                        &table,
                        with_authors.then_some(&normal[..]),
                        &mut s,
                    );
                    sink += r.w1_exact;
                }
            }
            report(&format!("score_neuron n={n} authors={with_authors}"), t, c);
        }
        let (t, c) = (std::time::Instant::now(), thread_cpu_us());
        for _ in 0..reps {
            for j in 0..neurons {
                let (keys, sum) =
                    sorted_keys_f32_and_sum(&values[j * n..(j + 1) * n], &mut s.radix);
                sink += f64::from(keys[n / 2]) + sum;
            }
        }
        report("  of which the radix sort of the keys", t, c);
        let t = std::time::Instant::now();
        for _ in 0..reps {
            let layer = score_layer(&values, n, &table, Some(&normal)).unwrap();
            sink += layer[0].w1_exact;
        }
        eprintln!(
            "score_layer ({} threads): {:.1} us/neuron wall",
            rayon::current_num_threads(),
            t.elapsed().as_secs_f64() / (neurons * reps) as f64 * 1e6
        );
        assert!(sink.is_finite());
    }
}

/// The parity fixture written by `tests/fixtures/make_w1_fixtures.py`, shared by the tests of
/// this module and of `stats`.
#[cfg(test)]
pub(crate) mod fixture {
    use serde::Deserialize;

    /// One synthetic sample and scipy's / mpmath's numbers for it.
    #[derive(Debug, Deserialize)]
    pub(crate) struct Case {
        pub name: String,
        /// Raw values (float32-representable).
        pub x: Vec<f64>,
        /// (x − mean)/std in float64, ddof = 0 (unsorted, same order as x).
        pub z: Vec<f64>,
        /// The seeded normal sample (unsorted).
        pub v: Vec<f64>,
        pub constant: bool,
        pub cut: Option<f64>,
        pub scipy_wasserstein: Option<f64>,
        pub w1_exact: Option<f64>,
        pub w1_negative_part: Option<f64>,
        pub skew: Option<f64>,
        pub kurtosis: Option<f64>,
    }

    #[derive(Debug, Deserialize)]
    pub(crate) struct Fixture {
        pub cases: Vec<Case>,
    }

    pub(crate) fn load() -> Fixture {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/scoring/w1_parity.json"
        );
        let text = std::fs::read_to_string(path).expect("read w1_parity.json");
        serde_json::from_str(&text).expect("parse w1_parity.json")
    }
}
