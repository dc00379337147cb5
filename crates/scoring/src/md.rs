//! Mapping difficulty (Sawmya et al., ICLR 2025): how much a neuron separates nearby inputs.
//!
//! For random pairs of collected tokens (i, j) and a layer: Δx = ‖x_i − x_j‖₂ where x is the
//! MLP's input (`ln2.hook_normalized`), normalised by its maximum over the pairs (Nx); for each
//! neuron Δy = |y_i − y_j| where y is its pre-activation, normalised by its median over the
//! pairs (Ny); MD = mean over pairs of (Δy/Ny)/(Δx/Nx). Pairs with Δx = 0 (identical inputs,
//! e.g. the same context seen twice through overlapping windows) are dropped; a neuron whose
//! median Δy is 0 gets MD = NaN (it is constant on most pairs).
//!
//! A high-MD neuron maps similar inputs far apart. For a chosen neuron, [`MdSample::top_pairs`]
//! lists the pairs with the largest ratio: the paper's Figure 1 table.

use std::collections::{BTreeMap, HashMap};

use negdiff_hooks::{HookPoint, HookSite};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::collect::ActivationConsumer;
use crate::{Result, ScoringError};

/// Settings for mapping difficulty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MdSpec {
    /// Tokens sampled from the collected stream.
    pub tokens: usize,
    /// Random pairs among them.
    pub pairs: usize,
    /// Seed for both samples.
    pub seed: u64,
}

impl Default for MdSpec {
    fn default() -> Self {
        MdSpec {
            tokens: 1000,
            pairs: 20_000,
            seed: 0,
        }
    }
}

/// Keeps the MLP inputs and pre-activations of a seeded sample of collected tokens.
#[derive(Debug)]
pub struct MdSample {
    spec: MdSpec,
    n_layers: usize,
    /// Collected index → row in the sample.
    slot: HashMap<usize, usize>,
    /// The sampled collected indices, in sample order.
    pub indices: Vec<usize>,
    inputs: BTreeMap<usize, Vec<f32>>,
    pre: BTreeMap<usize, Vec<f32>>,
    d_model: usize,
    d_mlp: usize,
}

/// One pair of the Figure 1 table.
#[derive(Debug, Clone, Serialize)]
pub struct MdPair {
    /// Collected index of the first token.
    pub a: usize,
    /// Collected index of the second token.
    pub b: usize,
    /// Normalised input distance Δx/Nx.
    pub dx: f64,
    /// Normalised output distance Δy/Ny.
    pub dy: f64,
    /// Their ratio.
    pub ratio: f64,
    /// Raw pre-activations of the two tokens.
    pub y_a: f32,
    /// Raw pre-activation of the second token.
    pub y_b: f32,
}

impl MdSample {
    /// Samples `spec.tokens` distinct indices out of `n_collected` (all if fewer).
    pub fn new(
        spec: MdSpec,
        n_collected: usize,
        n_layers: usize,
        d_model: usize,
        d_mlp: usize,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let k = spec.tokens.min(n_collected);
        let mut indices: Vec<usize> = rand::seq::index::sample(&mut rng, n_collected, k).into_vec();
        indices.sort_unstable();
        let slot = indices.iter().enumerate().map(|(s, &i)| (i, s)).collect();
        let zeros = |w: usize| (0..n_layers).map(|l| (l, vec![0f32; k * w])).collect();
        MdSample {
            spec,
            n_layers,
            slot,
            indices,
            inputs: zeros(d_model),
            pre: zeros(d_mlp),
            d_model,
            d_mlp,
        }
    }

    /// The random pairs (sample slots), drawn with the spec's seed.
    fn pairs(&self) -> Vec<(usize, usize)> {
        let k = self.indices.len();
        if k < 2 {
            return Vec::new();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.spec.seed ^ 0x9e37_79b9_7f4a_7c15);
        (0..self.spec.pairs)
            .map(|_| {
                let a = rng.random_range(0..k);
                let mut b = rng.random_range(0..k - 1);
                if b >= a {
                    b += 1;
                }
                (a, b)
            })
            .collect()
    }

    /// Normalised input distances per pair for one layer (`None` entries: Δx = 0, dropped).
    fn input_distances(&self, layer: usize, pairs: &[(usize, usize)]) -> Vec<Option<f64>> {
        let x = &self.inputs[&layer];
        let d = self.d_model;
        let raw: Vec<f64> = pairs
            .iter()
            .map(|&(a, b)| {
                x[a * d..(a + 1) * d]
                    .iter()
                    .zip(&x[b * d..(b + 1) * d])
                    .map(|(p, q)| ((p - q) as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let max = raw.iter().copied().fold(0f64, f64::max);
        raw.into_iter()
            .map(|v| (v > 0.0 && max > 0.0).then(|| v / max))
            .collect()
    }

    /// MD of every neuron of every layer: `[n_layers][d_mlp]`.
    pub fn mapping_difficulty(&self) -> Vec<Vec<f64>> {
        let pairs = self.pairs();
        (0..self.n_layers)
            .map(|layer| {
                let dx = self.input_distances(layer, &pairs);
                let y = &self.pre[&layer];
                let d = self.d_mlp;
                (0..d)
                    .into_par_iter()
                    .map(|n| {
                        let mut dy: Vec<f64> = Vec::with_capacity(pairs.len());
                        let mut used: Vec<f64> = Vec::with_capacity(pairs.len());
                        for (&(a, b), dxp) in pairs.iter().zip(&dx) {
                            if let Some(dxp) = dxp {
                                dy.push((y[a * d + n] - y[b * d + n]).abs() as f64);
                                used.push(*dxp);
                            }
                        }
                        let ny = median(&dy);
                        if dy.is_empty() || ny <= 0.0 {
                            return f64::NAN;
                        }
                        dy.iter().zip(&used).map(|(y, x)| (y / ny) / x).sum::<f64>()
                            / dy.len() as f64
                    })
                    .collect()
            })
            .collect()
    }

    /// The `k` pairs with the largest (Δy/Ny)/(Δx/Nx) for one neuron.
    pub fn top_pairs(&self, layer: usize, neuron: usize, k: usize) -> Result<Vec<MdPair>> {
        if layer >= self.n_layers || neuron >= self.d_mlp {
            return Err(ScoringError::Settings(format!(
                "neuron {layer}:{neuron} is outside the model ({} layers × {} neurons)",
                self.n_layers, self.d_mlp
            )));
        }
        let pairs = self.pairs();
        let dx = self.input_distances(layer, &pairs);
        let y = &self.pre[&layer];
        let d = self.d_mlp;
        let dy: Vec<f64> = pairs
            .iter()
            .map(|&(a, b)| (y[a * d + neuron] - y[b * d + neuron]).abs() as f64)
            .collect();
        let kept: Vec<f64> = dy
            .iter()
            .zip(&dx)
            .filter(|(_, x)| x.is_some())
            .map(|(y, _)| *y)
            .collect();
        let ny = median(&kept);
        let mut out: Vec<MdPair> = pairs
            .iter()
            .zip(dx.iter().zip(&dy))
            .filter_map(|(&(a, b), (x, &yv))| {
                let x = (*x)?;
                let dyn_ = if ny > 0.0 { yv / ny } else { f64::NAN };
                Some(MdPair {
                    a: self.indices[a],
                    b: self.indices[b],
                    dx: x,
                    dy: dyn_,
                    ratio: dyn_ / x,
                    y_a: y[a * d + neuron],
                    y_b: y[b * d + neuron],
                })
            })
            .collect();
        out.sort_by(|p, q| {
            q.ratio
                .total_cmp(&p.ratio)
                .then(p.a.cmp(&q.a))
                .then(p.b.cmp(&q.b))
        });
        out.dedup_by(|p, q| (p.a, p.b) == (q.a, q.b) || (p.a, p.b) == (q.b, q.a));
        out.truncate(k);
        Ok(out)
    }
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

impl ActivationConsumer for MdSample {
    fn sites(&self) -> Vec<HookSite> {
        (0..self.n_layers)
            .flat_map(|l| [HookSite::new(l, HookPoint::MlpIn), HookSite::mlp_pre(l)])
            .collect()
    }

    fn consume(&mut self, site: HookSite, first: usize, rows: &[f32], width: usize) -> Result<()> {
        let store = match site.point {
            HookPoint::MlpIn => self.inputs.get_mut(&site.layer),
            HookPoint::MlpPre => self.pre.get_mut(&site.layer),
            _ => None,
        };
        let Some(store) = store else { return Ok(()) };
        for r in 0..rows.len() / width {
            if let Some(&s) = self.slot.get(&(first + r)) {
                store[s * width..(s + 1) * width]
                    .copy_from_slice(&rows[r * width..(r + 1) * width]);
            }
        }
        Ok(())
    }
}
