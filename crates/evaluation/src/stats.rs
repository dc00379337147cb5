//! Statistics for reporting evaluation results: binomial confidence intervals, bootstrap
//! intervals, and paired tests between two conditions on the same items.
//!
//! Everything here is deterministic: bootstraps draw from a `ChaCha8Rng` seeded by the
//! caller, so a report can be regenerated bit for bit.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;
use statrs::function::factorial::ln_binomial;

use crate::EvalError;

/// The standard normal quantile for a two-sided 95% interval (`Φ⁻¹(0.975)`).
pub const Z_95: f64 = 1.959963984540054;

/// The Wilson score interval for a binomial proportion `successes / n` with normal quantile
/// `z` (use [`Z_95`] for 95%).
///
/// Returns `(0, 1)` when `n == 0` (no information) and `(NaN, NaN)` when
/// `successes > n` (not a proportion). The bounds are clamped to `[0, 1]` and are exactly 0
/// (1) when there are no successes (failures).
pub fn wilson_interval(successes: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    if successes > n {
        return (f64::NAN, f64::NAN);
    }
    let nf = n as f64;
    let p = successes as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    // In exact arithmetic the bound is 0 (1) at p = 0 (1); rounding can miss it by an ulp.
    let low = if successes == 0 {
        0.0
    } else {
        (center - half).clamp(0.0, 1.0)
    };
    let high = if successes == n {
        1.0
    } else {
        (center + half).clamp(0.0, 1.0)
    };
    (low, high)
}

/// The percentile-bootstrap confidence interval for the mean of `values`.
///
/// Draws `n_resamples` resamples of `values.len()` items with replacement from a
/// `ChaCha8Rng` seeded with `seed`, and returns the `(1 - level) / 2` and `(1 + level) / 2`
/// quantiles of the resample means (linear interpolation between order statistics, as
/// numpy's default). Returns `(NaN, NaN)` if `values` is empty, `n_resamples` is 0, or
/// `level` is not strictly between 0 and 1.
pub fn bootstrap_mean_ci(values: &[f64], n_resamples: usize, seed: u64, level: f64) -> (f64, f64) {
    if values.is_empty() || n_resamples == 0 || !(level > 0.0 && level < 1.0) {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..n_resamples)
        .map(|_| {
            let sum: f64 = (0..n).map(|_| values[rng.random_range(0..n)]).sum();
            sum / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    (
        quantile_sorted(&means, alpha),
        quantile_sorted(&means, 1.0 - alpha),
    )
}

/// The `q` quantile of sorted, non-empty `sorted` by linear interpolation.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The paired percentile-bootstrap confidence interval for `mean(a) - mean(b)`, where
/// `a[i]` and `b[i]` are the same item under two conditions (0/1 correctness for accuracy
/// differences, or per-item NLLs).
///
/// Items are resampled together, which is the bootstrap of the per-item differences
/// `a[i] - b[i]`; arguments and degenerate cases are as in [`bootstrap_mean_ci`].
///
/// # Errors
///
/// [`EvalError::LengthMismatch`] if `a` and `b` differ in length.
pub fn paired_bootstrap_diff_ci(
    a: &[f64],
    b: &[f64],
    n_resamples: usize,
    seed: u64,
    level: f64,
) -> Result<(f64, f64), EvalError> {
    if a.len() != b.len() {
        return Err(EvalError::LengthMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    Ok(bootstrap_mean_ci(&diffs, n_resamples, seed, level))
}

/// McNemar's test for two classifiers judged on the same items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Items `a` got wrong and `b` got right.
    pub b01: usize,
    /// Items `a` got right and `b` got wrong.
    pub b10: usize,
    /// The continuity-corrected chi-square statistic `(|b01 - b10| - 1)² / (b01 + b10)`
    /// (0 when `b01 + b10 == 0`, and when `|b01 - b10| <= 1`).
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub statistic: f64,
    /// The exact two-sided p-value: `min(1, 2 P(X <= min(b01, b10)))` for
    /// `X ~ Binomial(b01 + b10, 1/2)` (what `scipy.stats.binomtest` gives).
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub p_value_exact: f64,
    /// The p-value of `statistic` under chi-square with one degree of freedom.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub p_value_chi2_cc: f64,
}

/// McNemar's test of whether conditions `a` and `b` differ in accuracy on the same items
/// (`a_correct[i]`, `b_correct[i]` say whether each got item `i` right). Only discordant
/// items count; with none, both p-values are 1.
///
/// # Errors
///
/// [`EvalError::LengthMismatch`] if the slices differ in length.
pub fn mcnemar(a_correct: &[bool], b_correct: &[bool]) -> Result<McNemar, EvalError> {
    if a_correct.len() != b_correct.len() {
        return Err(EvalError::LengthMismatch {
            left: a_correct.len(),
            right: b_correct.len(),
        });
    }
    let b01 = a_correct
        .iter()
        .zip(b_correct)
        .filter(|&(&a, &b)| !a && b)
        .count();
    let b10 = a_correct
        .iter()
        .zip(b_correct)
        .filter(|&(&a, &b)| a && !b)
        .count();
    let n = b01 + b10;
    if n == 0 {
        return Ok(McNemar {
            b01,
            b10,
            statistic: 0.0,
            p_value_exact: 1.0,
            p_value_chi2_cc: 1.0,
        });
    }
    let corrected = (b01.abs_diff(b10) as f64 - 1.0).max(0.0);
    let statistic = corrected * corrected / n as f64;
    // The chi-square(1) survival function: P(Z² > s) = erfc(sqrt(s / 2)).
    let p_value_chi2_cc = erfc((statistic / 2.0).sqrt());
    Ok(McNemar {
        b01,
        b10,
        statistic,
        p_value_exact: binomial_two_sided_half(b01.min(b10) as u64, n as u64),
        p_value_chi2_cc,
    })
}

/// `min(1, 2 P(X <= k))` for `X ~ Binomial(n, 1/2)`, `k <= n / 2`.
///
/// Summed in log space (log-sum-exp) so that tails far below `f64::MIN_POSITIVE` of each
/// term, with tens of thousands of items, neither underflow term by term nor lose the
/// leading terms' precision.
fn binomial_two_sided_half(k: u64, n: u64) -> f64 {
    if 2 * k >= n {
        return 1.0;
    }
    let log_half_n = n as f64 * std::f64::consts::LN_2;
    let logs: Vec<f64> = (0..=k).map(|i| ln_binomial(n, i) - log_half_n).collect();
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logs.iter().map(|l| (l - max).exp()).sum();
    let log_tail = max + sum.ln();
    (std::f64::consts::LN_2 + log_tail).exp().min(1.0)
}

/// An accuracy with its Wilson 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Items judged correct.
    pub correct: usize,
    /// Items judged.
    pub n: usize,
    /// `correct / n` (NaN when `n == 0`).
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub accuracy: f64,
    /// Lower bound of the Wilson 95% interval (0 when `n == 0`).
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub ci_low: f64,
    /// Upper bound of the Wilson 95% interval (1 when `n == 0`).
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub ci_high: f64,
}

impl Accuracy {
    /// The accuracy of `correct` out of `n` (`correct > n` gives NaN interval bounds).
    pub fn new(correct: usize, n: usize) -> Self {
        let (ci_low, ci_high) = wilson_interval(correct, n, Z_95);
        let accuracy = if n == 0 {
            f64::NAN
        } else {
            correct as f64 / n as f64
        };
        Self {
            correct,
            n,
            accuracy,
            ci_low,
            ci_high,
        }
    }

    /// The accuracy of a sequence of per-item judgements (`true` = correct).
    pub fn from_bools(judgements: impl IntoIterator<Item = bool>) -> Self {
        let (correct, n) = judgements
            .into_iter()
            .fold((0, 0), |(c, n), ok| (c + usize::from(ok), n + 1));
        Self::new(correct, n)
    }
}

/// Accuracy per group: `items` yields `(group key, correct)`; the result maps each key seen
/// to its [`Accuracy`], in key order.
pub fn group_accuracy<K: Ord + Clone>(
    items: impl IntoIterator<Item = (K, bool)>,
) -> BTreeMap<K, Accuracy> {
    let mut counts: BTreeMap<K, (usize, usize)> = BTreeMap::new();
    for (key, ok) in items {
        let entry = counts.entry(key).or_insert((0, 0));
        entry.0 += usize::from(ok);
        entry.1 += 1;
    }
    counts
        .into_iter()
        .map(|(k, (correct, n))| (k, Accuracy::new(correct, n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn wilson_hand_checked() {
        // 8/10 at z = 1.96: center (0.8 + 0.19208) / 1.38416 = 0.716738,
        // half = 1.96 sqrt(0.016 + 0.009604) / 1.38416 = 0.226581.
        let (lo, hi) = wilson_interval(8, 10, 1.96);
        assert!((lo - 0.490_156_8).abs() < 1e-6, "{lo}");
        assert!((hi - 0.943_319_1).abs() < 1e-6, "{hi}");
        assert_eq!(wilson_interval(0, 0, Z_95), (0.0, 1.0));
        let (lo, hi) = wilson_interval(0, 5, Z_95);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.4 && hi < 0.5, "{hi}");
        let (lo, hi) = wilson_interval(5, 5, Z_95);
        assert_eq!(hi, 1.0);
        assert!(lo > 0.5 && lo < 0.6, "{lo}");
        assert!(wilson_interval(6, 5, Z_95).0.is_nan());
    }

    #[test]
    fn bootstrap_is_deterministic_and_sane() {
        let values: Vec<f64> = (0..200).map(|i| f64::from(i % 7)).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let a = bootstrap_mean_ci(&values, 2000, 42, 0.95);
        let b = bootstrap_mean_ci(&values, 2000, 42, 0.95);
        assert_eq!(a, b);
        assert!(a.0 < mean && mean < a.1, "{a:?} {mean}");
        // The normal-theory half width is 1.96 * sd / sqrt(n) ~= 0.277 here.
        let half = (a.1 - a.0) / 2.0;
        assert!(half > 0.22 && half < 0.34, "{half}");
        let narrow = bootstrap_mean_ci(&values, 2000, 42, 0.5);
        assert!(narrow.1 - narrow.0 < a.1 - a.0);
        assert_ne!(bootstrap_mean_ci(&values, 2000, 43, 0.95), a);
        assert_eq!(bootstrap_mean_ci(&[3.0; 10], 100, 1, 0.95), (3.0, 3.0));
        assert!(bootstrap_mean_ci(&[], 100, 1, 0.95).0.is_nan());
        assert!(bootstrap_mean_ci(&values, 100, 1, 1.0).0.is_nan());
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        // numpy.quantile([1, 2, 3, 4], [0.025, 0.5, 0.975]) = [1.075, 2.5, 3.925]
        assert!((quantile_sorted(&s, 0.025) - 1.075).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.975) - 3.925).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn paired_bootstrap() {
        let a: Vec<f64> = (0..300).map(|i| f64::from(u8::from(i % 4 != 0))).collect();
        let b: Vec<f64> = (0..300).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
        // mean(a) - mean(b) = 0.75 - 0.5
        let (lo, hi) = paired_bootstrap_diff_ci(&a, &b, 2000, 7, 0.95).unwrap();
        assert!(lo < 0.25 && 0.25 < hi && lo > 0.1 && hi < 0.4, "{lo} {hi}");
        // Identical conditions: every resampled difference is exactly 0.
        assert_eq!(
            paired_bootstrap_diff_ci(&a, &a, 100, 7, 0.95).unwrap(),
            (0.0, 0.0)
        );
        assert!(matches!(
            paired_bootstrap_diff_ci(&a, &b[1..], 10, 0, 0.95),
            Err(EvalError::LengthMismatch {
                left: 300,
                right: 299
            })
        ));
    }

    #[test]
    fn mcnemar_small_cases() {
        // b01 = 1, b10 = 4: exact p = 2 * (1 + 5) / 32 = 0.375; cc statistic = 4/5.
        let a = [true, true, true, true, false, true, false];
        let b = [false, false, false, false, true, true, false];
        let m = mcnemar(&a, &b).unwrap();
        assert_eq!((m.b01, m.b10), (1, 4));
        assert!((m.p_value_exact - 0.375).abs() < 1e-12);
        assert!((m.statistic - 0.8).abs() < 1e-12);
        // chi2(1).sf(0.8) = 0.371093369522...
        assert!(
            close(m.p_value_chi2_cc, 0.371_093_369_522_697_7, 1e-9),
            "{m:?}"
        );

        let none = mcnemar(&[true, false], &[true, false]).unwrap();
        assert_eq!(
            (none.p_value_exact, none.p_value_chi2_cc, none.statistic),
            (1.0, 1.0, 0.0)
        );
        // Balanced discordance: p = 1.
        let m = mcnemar(&[true, false], &[false, true]).unwrap();
        assert_eq!(m.p_value_exact, 1.0);
        assert!(mcnemar(&[true], &[]).is_err());
    }

    /// Compares against `tests/fixtures/eval/stats_expected.json`, written by scipy/numpy
    /// (`tests/fixtures/eval/make_stats_fixtures.py`).
    #[test]
    fn matches_scipy_fixtures() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/eval/stats_expected.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
        let u = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap() as usize;

        assert_eq!(f(&fixture, "z95"), Z_95);
        for case in fixture["wilson"].as_array().unwrap() {
            let (lo, hi) = wilson_interval(u(case, "successes"), u(case, "n"), f(case, "z"));
            assert!((lo - f(case, "low")).abs() < 1e-12, "{case} {lo}");
            assert!((hi - f(case, "high")).abs() < 1e-12, "{case} {hi}");
        }
        for case in fixture["mcnemar"].as_array().unwrap() {
            let (b01, b10) = (u(case, "b01"), u(case, "b10"));
            // b01 items a-wrong/b-right, b10 a-right/b-wrong, plus concordant padding.
            let mut a = vec![false; b01];
            let mut b = vec![true; b01];
            a.extend(std::iter::repeat_n(true, b10));
            b.extend(std::iter::repeat_n(false, b10));
            a.extend([true, false, true]);
            b.extend([true, false, true]);
            let m = mcnemar(&a, &b).unwrap();
            assert_eq!((m.b01, m.b10), (b01, b10));
            assert!(
                close(m.statistic, f(case, "statistic"), 1e-12),
                "{case} {m:?}"
            );
            assert!(
                close(m.p_value_exact, f(case, "p_value_exact"), 1e-9),
                "{case} {m:?}"
            );
            assert!(
                close(m.p_value_chi2_cc, f(case, "p_value_chi2_cc"), 1e-9),
                "{case} {m:?}"
            );
        }
        for case in fixture["quantiles"].as_array().unwrap() {
            let values: Vec<f64> = case["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got = quantile_sorted(&values, f(case, "q"));
            assert!((got - f(case, "expected")).abs() < 1e-12, "{case} {got}");
        }
    }

    #[test]
    fn accuracy_and_groups() {
        let acc = Accuracy::from_bools([true, true, false, true]);
        assert_eq!((acc.correct, acc.n), (3, 4));
        assert_eq!(acc.accuracy, 0.75);
        assert_eq!((acc.ci_low, acc.ci_high), wilson_interval(3, 4, Z_95));
        assert!(Accuracy::from_bools([]).accuracy.is_nan());

        let groups = group_accuracy([("b", true), ("a", false), ("b", false), ("a", false)]);
        let keys: Vec<_> = groups.keys().copied().collect();
        assert_eq!(keys, vec!["a", "b"]);
        assert_eq!(groups["a"].correct, 0);
        assert_eq!(groups["b"].accuracy, 0.5);
    }
}
