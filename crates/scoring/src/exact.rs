//! Keeping every collected pre-activation, for exact scoring.

use std::collections::BTreeMap;

use negdiff_hooks::HookSite;

use crate::Result;
use crate::collect::ActivationConsumer;

/// All collected `mlp.hook_pre` values of some layers, token-major (`[n_tokens, d_mlp]`).
#[derive(Debug, Default)]
pub struct ExactStore {
    layers: BTreeMap<usize, Vec<f32>>,
    width: usize,
}

impl ExactStore {
    /// A store for `layers`.
    pub fn new(layers: impl IntoIterator<Item = usize>) -> Self {
        ExactStore {
            layers: layers.into_iter().map(|l| (l, Vec::new())).collect(),
            width: 0,
        }
    }

    /// Bytes a store of `n_layers × n_tokens × d_mlp` values needs (plus one layer transposed).
    pub fn bytes_needed(n_layers: usize, n_tokens: usize, d_mlp: usize) -> usize {
        (n_layers + 1) * n_tokens * d_mlp * std::mem::size_of::<f32>()
    }

    /// Takes one layer out as neuron-major `[d_mlp][n_tokens]` (transposed in cache blocks).
    pub fn take_neuron_major(&mut self, layer: usize) -> Option<(Vec<f32>, usize)> {
        let rows = self.layers.remove(&layer)?;
        let d = self.width;
        if d == 0 {
            return Some((Vec::new(), 0));
        }
        let n = rows.len() / d;
        let mut out = vec![0f32; rows.len()];
        const B: usize = 64;
        for t0 in (0..n).step_by(B) {
            for j0 in (0..d).step_by(B) {
                for t in t0..(t0 + B).min(n) {
                    for j in j0..(j0 + B).min(d) {
                        out[j * n + t] = rows[t * d + j];
                    }
                }
            }
        }
        Some((out, n))
    }

    /// Layers held.
    pub fn layers(&self) -> Vec<usize> {
        self.layers.keys().copied().collect()
    }
}

impl ActivationConsumer for ExactStore {
    fn sites(&self) -> Vec<HookSite> {
        self.layers.keys().map(|&l| HookSite::mlp_pre(l)).collect()
    }

    fn consume(&mut self, site: HookSite, _first: usize, rows: &[f32], width: usize) -> Result<()> {
        self.width = width;
        if let Some(v) = self.layers.get_mut(&site.layer) {
            v.extend_from_slice(rows);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_exactly() {
        let mut s = ExactStore::new([3]);
        let rows: Vec<f32> = (0..(130 * 70)).map(|v| v as f32).collect();
        s.consume(HookSite::mlp_pre(3), 0, &rows[..70 * 60], 70)
            .unwrap();
        s.consume(HookSite::mlp_pre(3), 60, &rows[70 * 60..], 70)
            .unwrap();
        let (nm, n) = s.take_neuron_major(3).unwrap();
        assert_eq!(n, 130);
        for t in 0..130 {
            for j in 0..70 {
                assert_eq!(nm[j * 130 + t], rows[t * 70 + j]);
            }
        }
    }
}
