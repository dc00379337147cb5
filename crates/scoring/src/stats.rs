//! Streaming per-neuron moments (mean, std, skewness, kurtosis) and the negative fraction.
//!
//! Activations arrive token by token (a row holds one token's values for every neuron of a
//! layer), and a corpus can be too large to keep. [`Moments`] keeps, per neuron, the count,
//! mean and the central sums M₂, M₃, M₄ in f64. Each call to [`Moments::update_rows`] is one
//! batch: the batch's own mean and central sums are computed two-pass (accurate: no
//! cancellation between raw power sums), then merged into the running ones with Pébay's
//! pairwise update (P. Pébay, "Formulas for robust, one-pass parallel computation of
//! covariances and arbitrary-order statistical moments", Sandia SAND2008-6212):
//!
//! with δ = mean_B − mean_A and n = n_A + n_B,
//! - mean = mean_A + δ·n_B/n
//! - M₂ = M₂A + M₂B + δ²·n_A n_B/n
//! - M₃ = M₃A + M₃B + δ³·n_A n_B (n_A − n_B)/n² + 3δ·(n_A M₂B − n_B M₂A)/n
//! - M₄ = M₄A + M₄B + δ⁴·n_A n_B (n_A² − n_A n_B + n_B²)/n³
//!   + 6δ²·(n_A² M₂B + n_B² M₂A)/n² + 4δ·(n_A M₃B − n_B M₃A)/n
//!
//! The statistics are the biased (population) ones scipy reports by default: std = √(M₂/n),
//! skewness = (M₃/n)/(M₂/n)^1.5 (`scipy.stats.skew`), excess kurtosis = (M₄/n)/(M₂/n)² − 3
//! (`scipy.stats.kurtosis`). A neuron with M₂ = 0 (constant so far) has std 0 and NaN
//! skewness and kurtosis, as in scipy. Inputs are assumed finite (the collector checks).

use crate::{Result, ScoringError};

/// Running count, mean, central sums M₂..M₄ and negative count for every neuron of a layer.
#[derive(Debug, Clone)]
pub struct Moments {
    n_neurons: usize,
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    m3: Vec<f64>,
    m4: Vec<f64>,
    negatives: Vec<u64>,
    /// Batch scratch, kept to avoid allocating per batch: batch sums / central sums.
    batch: [Vec<f64>; 4],
    batch_neg: Vec<u64>,
}

impl Moments {
    /// Empty accumulators for `n_neurons` neurons.
    pub fn new(n_neurons: usize) -> Self {
        Self {
            n_neurons,
            count: 0,
            mean: vec![0.0; n_neurons],
            m2: vec![0.0; n_neurons],
            m3: vec![0.0; n_neurons],
            m4: vec![0.0; n_neurons],
            negatives: vec![0; n_neurons],
            batch: std::array::from_fn(|_| vec![0.0; n_neurons]),
            batch_neg: vec![0; n_neurons],
        }
    }

    /// Number of neurons.
    pub fn n_neurons(&self) -> usize {
        self.n_neurons
    }

    /// Number of rows (tokens) seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds one batch of rows; each row is one token's values for all neurons.
    ///
    /// Larger batches are both faster and (slightly) more accurate; a batch is held only as
    /// row references, never copied.
    ///
    /// # Errors
    ///
    /// [`ScoringError::Settings`] if a row's length is not `n_neurons`; nothing is added then.
    pub fn update_rows<'a>(&mut self, rows: impl IntoIterator<Item = &'a [f32]>) -> Result<()> {
        let rows: Vec<&[f32]> = rows.into_iter().collect();
        if let Some(bad) = rows.iter().find(|r| r.len() != self.n_neurons) {
            return Err(ScoringError::Settings(format!(
                "activation row has {} values, expected {} neurons",
                bad.len(),
                self.n_neurons
            )));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let nb = rows.len() as f64;
        let [bmean, bm2, bm3, bm4] = &mut self.batch;
        bmean.fill(0.0);
        for row in &rows {
            for (s, &x) in bmean.iter_mut().zip(row.iter()) {
                *s += f64::from(x);
            }
        }
        for s in bmean.iter_mut() {
            *s /= nb;
        }
        bm2.fill(0.0);
        bm3.fill(0.0);
        bm4.fill(0.0);
        self.batch_neg.fill(0);
        for row in &rows {
            for (j, &x) in row.iter().enumerate() {
                let d = f64::from(x) - bmean[j];
                let d2 = d * d;
                bm2[j] += d2;
                bm3[j] += d2 * d;
                bm4[j] += d2 * d2;
                self.batch_neg[j] += u64::from(x < 0.0);
            }
        }
        let b = Batch {
            n: rows.len() as u64,
            mean: bmean,
            m2: bm2,
            m3: bm3,
            m4: bm4,
            neg: &self.batch_neg,
        };
        merge_into(
            &mut self.count,
            &mut self.mean,
            &mut self.m2,
            &mut self.m3,
            &mut self.m4,
            &mut self.negatives,
            &b,
        );
        Ok(())
    }

    /// Merges another accumulator (e.g. from another thread's share of the tokens) into this
    /// one.
    ///
    /// # Errors
    ///
    /// [`ScoringError::Settings`] if the neuron counts differ.
    pub fn merge(&mut self, other: &Moments) -> Result<()> {
        if other.n_neurons != self.n_neurons {
            return Err(ScoringError::Settings(format!(
                "cannot merge moments of {} neurons into {}",
                other.n_neurons, self.n_neurons
            )));
        }
        let b = Batch {
            n: other.count,
            mean: &other.mean,
            m2: &other.m2,
            m3: &other.m3,
            m4: &other.m4,
            neg: &other.negatives,
        };
        merge_into(
            &mut self.count,
            &mut self.mean,
            &mut self.m2,
            &mut self.m3,
            &mut self.m4,
            &mut self.negatives,
            &b,
        );
        Ok(())
    }

    /// Per-neuron mean (NaN before any row).
    pub fn mean(&self) -> Vec<f64> {
        if self.count == 0 {
            return vec![f64::NAN; self.n_neurons];
        }
        self.mean.clone()
    }

    /// Per-neuron population standard deviation √(M₂/n) (NaN before any row).
    pub fn std(&self) -> Vec<f64> {
        let n = self.count as f64;
        self.m2.iter().map(|&m2| (m2 / n).sqrt()).collect()
    }

    /// Per-neuron biased skewness (M₃/n)/(M₂/n)^1.5; NaN where M₂ = 0.
    pub fn skewness(&self) -> Vec<f64> {
        let n = self.count as f64;
        self.m2
            .iter()
            .zip(&self.m3)
            .map(|(&m2, &m3)| {
                if m2 == 0.0 {
                    f64::NAN
                } else {
                    let var = m2 / n;
                    (m3 / n) / (var * var.sqrt())
                }
            })
            .collect()
    }

    /// Per-neuron biased excess (Fisher) kurtosis (M₄/n)/(M₂/n)² − 3; NaN where M₂ = 0.
    pub fn excess_kurtosis(&self) -> Vec<f64> {
        let n = self.count as f64;
        self.m2
            .iter()
            .zip(&self.m4)
            .map(|(&m2, &m4)| {
                if m2 == 0.0 {
                    f64::NAN
                } else {
                    let var = m2 / n;
                    (m4 / n) / (var * var) - 3.0
                }
            })
            .collect()
    }

    /// Per-neuron fraction of values < 0 (NaN before any row).
    pub fn frac_negative(&self) -> Vec<f64> {
        let n = self.count as f64;
        self.negatives.iter().map(|&k| k as f64 / n).collect()
    }

    /// Per-neuron count of values < 0.
    pub fn negatives(&self) -> &[u64] {
        &self.negatives
    }
}

/// A batch's (or another accumulator's) moments, borrowed.
struct Batch<'a> {
    n: u64,
    mean: &'a [f64],
    m2: &'a [f64],
    m3: &'a [f64],
    m4: &'a [f64],
    neg: &'a [u64],
}

/// Pébay's pairwise merge of `b` into the running accumulators.
fn merge_into(
    count: &mut u64,
    mean: &mut [f64],
    m2: &mut [f64],
    m3: &mut [f64],
    m4: &mut [f64],
    negatives: &mut [u64],
    b: &Batch<'_>,
) {
    if b.n == 0 {
        return;
    }
    for (k, &nb) in negatives.iter_mut().zip(b.neg) {
        *k += nb;
    }
    if *count == 0 {
        *count = b.n;
        mean.copy_from_slice(b.mean);
        m2.copy_from_slice(b.m2);
        m3.copy_from_slice(b.m3);
        m4.copy_from_slice(b.m4);
        return;
    }
    let na = *count as f64;
    let nb = b.n as f64;
    let n = na + nb;
    let (nab, n2, n3) = (na * nb, n * n, n * n * n);
    for j in 0..mean.len() {
        let (ma2, ma3) = (m2[j], m3[j]);
        let (mb2, mb3) = (b.m2[j], b.m3[j]);
        let delta = b.mean[j] - mean[j];
        let d2 = delta * delta;
        mean[j] += delta * nb / n;
        m4[j] += b.m4[j]
            + d2 * d2 * nab * (na * na - nab + nb * nb) / n3
            + 6.0 * d2 * (na * na * mb2 + nb * nb * ma2) / n2
            + 4.0 * delta * (na * mb3 - nb * ma3) / n;
        m3[j] += mb3 + d2 * delta * nab * (na - nb) / n2 + 3.0 * delta * (na * mb2 - nb * ma2) / n;
        m2[j] += mb2 + d2 * nab / n;
    }
    *count += b.n;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Two-pass f64 reference: (mean, std, skew, kurt, frac_neg).
    fn two_pass(x: &[f32]) -> (f64, f64, f64, f64, f64) {
        let n = x.len() as f64;
        let m = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let (mut s2, mut s3, mut s4) = (0.0, 0.0, 0.0);
        for &v in x {
            let d = f64::from(v) - m;
            s2 += d * d;
            s3 += d * d * d;
            s4 += d * d * d * d;
        }
        let var = s2 / n;
        let neg = x.iter().filter(|&&v| v < 0.0).count() as f64 / n;
        (
            m,
            var.sqrt(),
            (s3 / n) / var.powf(1.5),
            (s4 / n) / (var * var) - 3.0,
            neg,
        )
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-12)
    }

    #[test]
    fn matches_two_pass_over_uneven_batches() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let neurons = 7;
        let tokens = 5003;
        // Neuron j: a different shape and a large offset for some (tests cancellation).
        let rows: Vec<Vec<f32>> = (0..tokens)
            .map(|_| {
                (0..neurons)
                    .map(|j| {
                        let u: f32 = rng.random();
                        match j {
                            0 => u,
                            1 => u.powi(5) * 10.0 - 1.0,
                            2 => 1000.0 + u,
                            3 => -(u.powi(3)),
                            4 => (u * 4.0).floor(),
                            5 => 0.25,
                            _ => (u - 0.5) * 1e-3,
                        }
                    })
                    .collect()
            })
            .collect();
        let mut m = Moments::new(neurons);
        let mut start = 0;
        for size in [1usize, 2, 17, 1000, 3, 2500].iter().cycle() {
            if start >= tokens {
                break;
            }
            let end = (start + size).min(tokens);
            m.update_rows(rows[start..end].iter().map(Vec::as_slice))
                .unwrap();
            start = end;
        }
        assert_eq!(m.count(), tokens as u64);
        let (mean, std, skew, kurt, neg) = (
            m.mean(),
            m.std(),
            m.skewness(),
            m.excess_kurtosis(),
            m.frac_negative(),
        );
        for j in 0..neurons {
            let col: Vec<f32> = rows.iter().map(|r| r[j]).collect();
            let (rm, rs, rk, rku, rn) = two_pass(&col);
            assert!(close(mean[j], rm, 1e-13), "mean {j}");
            assert_eq!(neg[j], rn);
            if j == 5 {
                assert_eq!(std[j], 0.0);
                assert!(skew[j].is_nan() && kurt[j].is_nan());
                continue;
            }
            assert!(close(std[j], rs, 1e-11), "std {j}: {} {rs}", std[j]);
            assert!((skew[j] - rk).abs() < 1e-9 * rk.abs().max(1.0), "skew {j}");
            assert!(
                (kurt[j] - rku).abs() < 1e-9 * rku.abs().max(1.0),
                "kurt {j}"
            );
        }
    }

    #[test]
    fn merge_of_parts_equals_whole() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let rows: Vec<Vec<f32>> = (0..2000)
            .map(|_| (0..3).map(|_| rng.random::<f32>().powi(2)).collect())
            .collect();
        let mut whole = Moments::new(3);
        whole.update_rows(rows.iter().map(Vec::as_slice)).unwrap();
        let mut a = Moments::new(3);
        let mut b = Moments::new(3);
        a.update_rows(rows[..700].iter().map(Vec::as_slice))
            .unwrap();
        b.update_rows(rows[700..].iter().map(Vec::as_slice))
            .unwrap();
        a.merge(&b).unwrap();
        a.merge(&Moments::new(3)).unwrap();
        for (x, y) in a.skewness().iter().zip(whole.skewness()) {
            assert!((x - y).abs() < 1e-12);
        }
        for (x, y) in a.excess_kurtosis().iter().zip(whole.excess_kurtosis()) {
            assert!((x - y).abs() < 1e-12);
        }
        assert_eq!(a.negatives(), whole.negatives());
        assert!(a.merge(&Moments::new(2)).is_err());
    }

    #[test]
    fn rejects_bad_rows_and_handles_empty() {
        let mut m = Moments::new(3);
        assert!(m.update_rows([&[1.0f32, 2.0][..]]).is_err());
        assert_eq!(m.count(), 0);
        m.update_rows(std::iter::empty()).unwrap();
        assert!(m.mean()[0].is_nan());
        assert!(m.std()[0].is_nan());
        assert_eq!(m.n_neurons(), 3);
    }

    #[test]
    fn parity_with_scipy_fixture() {
        let fx = crate::w1::fixture::load();
        for c in &fx.cases {
            let x: Vec<f32> = c.x.iter().map(|&v| v as f32).collect();
            // One neuron, fed in uneven batches so Pébay's merge is exercised.
            let mut m = Moments::new(1);
            for chunk in x.chunks(37) {
                m.update_rows(chunk.chunks(1)).unwrap();
            }
            if c.constant {
                assert_eq!(m.std()[0], 0.0);
                assert!(m.skewness()[0].is_nan() && m.excess_kurtosis()[0].is_nan());
                continue;
            }
            let (Some(skew), Some(kurt)) = (c.skew, c.kurtosis) else {
                panic!("{}: fixture lacks moments", c.name);
            };
            let got_s = m.skewness()[0];
            let got_k = m.excess_kurtosis()[0];
            assert!(
                ((got_s - skew) / skew).abs() < 1e-9 || (got_s - skew).abs() < 1e-13,
                "{}: skew {got_s} vs {skew}",
                c.name
            );
            assert!(
                ((got_k - kurt) / kurt).abs() < 1e-9,
                "{}: kurt {got_k} vs {kurt}",
                c.name
            );
            eprintln!(
                "moments {}: skew {got_s:.6} (|Δ| {:.1e}), kurtosis {got_k:.6} (rel {:.1e})",
                c.name,
                (got_s - skew).abs(),
                ((got_k - kurt) / kurt).abs()
            );
        }
    }
}
