//! [`NeuronSet`]: which neurons of which layers an intervention touches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::InterventionError;

/// Per-layer neuron indices with a name and a record of how they were chosen.
///
/// Saved as JSON: `{"name", "layers": {"0": [..], "1": [..]}, "d_mlp", "n_layers", "provenance"}`
/// (layers with no neurons may be omitted; indices are sorted and unique).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeuronSet {
    /// A name for reports.
    pub name: String,
    /// Layer → sorted, unique neuron indices.
    #[serde(with = "layer_keys")]
    pub layers: BTreeMap<usize, Vec<usize>>,
    /// The MLP width the set was made for, if known (checked against the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_mlp: Option<usize>,
    /// The layer count the set was made for, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_layers: Option<usize>,
    /// How the set was made (rule, parameters, source files, seed).
    #[serde(default)]
    pub provenance: serde_json::Value,
}

mod layer_keys {
    //! JSON object keys are strings: `{"0": [...]}` ↔ `BTreeMap<usize, Vec<usize>>`.
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<usize, Vec<usize>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k.to_string(), v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<usize, Vec<usize>>, D::Error> {
        let raw: BTreeMap<String, Vec<usize>> = BTreeMap::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                k.parse::<usize>()
                    .map(|k| (k, v))
                    .map_err(|_| D::Error::custom(format!("layer key `{k}` is not an integer")))
            })
            .collect()
    }
}

/// numpy's default (`linear`) percentile of `sorted` (ascending), `q` in [0, 100].
///
/// Follows numpy's arithmetic (virtual index `q/100·(n-1)`, and its two-sided `lerp`) so that
/// selections agree with the authors' `np.percentile` even at ties.
pub fn percentile_linear(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let virtual_index = (q / 100.0) * (n - 1) as f64;
    let prev = virtual_index.floor().clamp(0.0, (n - 1) as f64) as usize;
    let next = (prev + 1).min(n - 1);
    let gamma = virtual_index - prev as f64;
    let (a, b) = (sorted[prev], sorted[next]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

fn check_scores(scores: &[Vec<f64>]) -> Result<(), InterventionError> {
    for (l, row) in scores.iter().enumerate() {
        if let Some(i) = row.iter().position(|v| v.is_nan()) {
            return Err(InterventionError::Scores(format!(
                "layer {l}, neuron {i} has a NaN score"
            )));
        }
    }
    Ok(())
}

impl NeuronSet {
    /// A set from explicit per-layer lists (sorted and de-duplicated here).
    pub fn new(name: impl Into<String>, layers: BTreeMap<usize, Vec<usize>>) -> Self {
        let layers = layers
            .into_iter()
            .map(|(l, mut v)| {
                v.sort_unstable();
                v.dedup();
                (l, v)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        NeuronSet {
            name: name.into(),
            layers,
            d_mlp: None,
            n_layers: None,
            provenance: serde_json::Value::Null,
        }
    }

    /// The empty set (an intervention on it is exactly the identity).
    pub fn empty(name: impl Into<String>) -> Self {
        Self::new(name, BTreeMap::new())
    }

    /// Records the model shape the set was made for.
    pub fn with_shape(mut self, n_layers: usize, d_mlp: usize) -> Self {
        self.n_layers = Some(n_layers);
        self.d_mlp = Some(d_mlp);
        self
    }

    /// Records provenance.
    pub fn with_provenance(mut self, provenance: serde_json::Value) -> Self {
        self.provenance = provenance;
        self
    }

    /// The neurons of one layer (empty if none).
    pub fn neurons(&self, layer: usize) -> &[usize] {
        self.layers.get(&layer).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Total number of neurons over all layers.
    pub fn len(&self) -> usize {
        self.layers.values().map(Vec::len).sum()
    }

    /// Whether no layer has any neuron.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the set against a model with `n_layers` layers of `d_mlp` neurons.
    pub fn validate(&self, n_layers: usize, d_mlp: usize) -> Result<(), InterventionError> {
        if let Some(set_d_mlp) = self.d_mlp
            && set_d_mlp != d_mlp
        {
            return Err(InterventionError::WidthMismatch {
                set: self.name.clone(),
                set_d_mlp,
                d_mlp,
                layer: self.layers.keys().next().copied().unwrap_or(0),
            });
        }
        for (&layer, neurons) in &self.layers {
            if layer >= n_layers {
                return Err(InterventionError::LayerOutOfRange {
                    set: self.name.clone(),
                    layer,
                    n_layers,
                });
            }
            if let Some(&neuron) = neurons.iter().find(|&&n| n >= d_mlp) {
                return Err(InterventionError::NeuronOutOfRange {
                    set: self.name.clone(),
                    layer,
                    neuron,
                    d_mlp,
                });
            }
        }
        Ok(())
    }

    /// Reads a set from JSON.
    pub fn load(path: &Path) -> Result<Self, InterventionError> {
        let text = std::fs::read_to_string(path).map_err(|e| InterventionError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let set: NeuronSet = serde_json::from_str(&text).map_err(|e| InterventionError::File {
            path: path.to_path_buf(),
            message: format!("not a neuron set: {e}"),
        })?;
        // Normalise (sorted, unique, no empty layers) whatever the file held.
        let mut normal = NeuronSet::new(set.name.clone(), set.layers.clone());
        normal.d_mlp = set.d_mlp;
        normal.n_layers = set.n_layers;
        normal.provenance = set.provenance;
        Ok(normal)
    }

    /// Writes the set as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), InterventionError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| InterventionError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|e| InterventionError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The authors' rule: in each layer, the neurons scoring strictly above that layer's
    /// `(100 - p)`-th percentile (numpy linear interpolation). `scores[layer][neuron]`.
    pub fn top_percent_per_layer(
        name: impl Into<String>,
        scores: &[Vec<f64>],
        p: f64,
    ) -> Result<Self, InterventionError> {
        Self::percent_per_layer(name, scores, p, true)
    }

    /// The mirror rule: strictly below each layer's `p`-th percentile.
    pub fn bottom_percent_per_layer(
        name: impl Into<String>,
        scores: &[Vec<f64>],
        p: f64,
    ) -> Result<Self, InterventionError> {
        Self::percent_per_layer(name, scores, p, false)
    }

    fn percent_per_layer(
        name: impl Into<String>,
        scores: &[Vec<f64>],
        p: f64,
        top: bool,
    ) -> Result<Self, InterventionError> {
        if !(0.0..=100.0).contains(&p) {
            return Err(InterventionError::Scores(format!(
                "percent {p} is outside [0, 100]"
            )));
        }
        check_scores(scores)?;
        let mut layers = BTreeMap::new();
        for (l, row) in scores.iter().enumerate() {
            let mut sorted = row.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let chosen: Vec<usize> = if top {
                let t = percentile_linear(&sorted, 100.0 - p);
                (0..row.len()).filter(|&i| row[i] > t).collect()
            } else {
                let t = percentile_linear(&sorted, p);
                (0..row.len()).filter(|&i| row[i] < t).collect()
            };
            layers.insert(l, chosen);
        }
        let d_mlp = scores.first().map(Vec::len).unwrap_or(0);
        Ok(Self::new(name, layers)
            .with_shape(scores.len(), d_mlp)
            .with_provenance(serde_json::json!({
                "rule": if top { "top_percent_per_layer" } else { "bottom_percent_per_layer" },
                "percent": p,
                "threshold": if top { "strictly above the (100-p) percentile, numpy linear" }
                             else { "strictly below the p percentile, numpy linear" },
            })))
    }

    /// The `k` highest-scoring neurons over all layers (ties: lower layer, then lower index).
    pub fn global_top_k(
        name: impl Into<String>,
        scores: &[Vec<f64>],
        k: usize,
    ) -> Result<Self, InterventionError> {
        check_scores(scores)?;
        let mut all: Vec<(f64, usize, usize)> = scores
            .iter()
            .enumerate()
            .flat_map(|(l, row)| row.iter().enumerate().map(move |(i, &s)| (s, l, i)))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut layers: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &(_, l, i) in all.iter().take(k) {
            layers.entry(l).or_default().push(i);
        }
        let d_mlp = scores.first().map(Vec::len).unwrap_or(0);
        Ok(Self::new(name, layers)
            .with_shape(scores.len(), d_mlp)
            .with_provenance(serde_json::json!({"rule": "global_top_k", "k": k})))
    }

    /// A random set with the same number of neurons per layer as `like`, drawn uniformly from
    /// `0..d_mlp` (optionally excluding `like`'s own neurons) with a seeded generator.
    pub fn random_like(
        name: impl Into<String>,
        like: &NeuronSet,
        d_mlp: usize,
        seed: u64,
        exclude_like: bool,
    ) -> Result<Self, InterventionError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut layers = BTreeMap::new();
        for (&l, chosen) in &like.layers {
            let pool: Vec<usize> = if exclude_like {
                let taken: BTreeSet<usize> = chosen.iter().copied().collect();
                (0..d_mlp).filter(|i| !taken.contains(i)).collect()
            } else {
                (0..d_mlp).collect()
            };
            if chosen.len() > pool.len() {
                return Err(InterventionError::Invalid(format!(
                    "layer {l}: cannot draw {} neurons from a pool of {}",
                    chosen.len(),
                    pool.len()
                )));
            }
            let picked = sample(&mut rng, pool.len(), chosen.len())
                .into_iter()
                .map(|i| pool[i])
                .collect();
            layers.insert(l, picked);
        }
        Ok(Self::new(name, layers)
            .with_shape(
                like.n_layers
                    .unwrap_or(0)
                    .max(like.layers.keys().last().map_or(0, |l| l + 1)),
                d_mlp,
            )
            .with_provenance(serde_json::json!({
                "rule": "random_like", "like": like.name, "seed": seed,
                "exclude_like": exclude_like, "generator": "ChaCha8 + rand::seq::index::sample",
            })))
    }

    /// Neurons in either set.
    pub fn union(&self, other: &NeuronSet, name: impl Into<String>) -> Self {
        let mut layers = self.layers.clone();
        for (&l, v) in &other.layers {
            layers.entry(l).or_default().extend(v);
        }
        let mut out = Self::new(name, layers);
        out.d_mlp = self.d_mlp.or(other.d_mlp);
        out.n_layers = self.n_layers.or(other.n_layers);
        out.provenance = serde_json::json!({"rule": "union", "of": [self.name, other.name]});
        out
    }

    /// Neurons of `self` not in `other`.
    pub fn difference(&self, other: &NeuronSet, name: impl Into<String>) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|(&l, v)| {
                let drop: BTreeSet<usize> = other.neurons(l).iter().copied().collect();
                (l, v.iter().copied().filter(|i| !drop.contains(i)).collect())
            })
            .collect();
        let mut out = Self::new(name, layers);
        out.d_mlp = self.d_mlp;
        out.n_layers = self.n_layers;
        out.provenance = serde_json::json!({"rule": "difference", "of": [self.name, other.name]});
        out
    }

    /// The same neurons restricted to the given layers (for one-layer-at-a-time experiments).
    pub fn restrict_to_layers(&self, keep: &[usize], name: impl Into<String>) -> Self {
        let layers = self
            .layers
            .iter()
            .filter(|(l, _)| keep.contains(l))
            .map(|(&l, v)| (l, v.clone()))
            .collect();
        let mut out = Self::new(name, layers);
        out.d_mlp = self.d_mlp;
        out.n_layers = self.n_layers;
        out.provenance =
            serde_json::json!({"rule": "restrict_to_layers", "of": self.name, "layers": keep});
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([1, 2, 3, 4], q) for several q (values computed with numpy 2.4).
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_linear(&v, 0.0), 1.0);
        assert_eq!(percentile_linear(&v, 100.0), 4.0);
        assert_eq!(percentile_linear(&v, 50.0), 2.5);
        assert_eq!(percentile_linear(&v, 99.0), 3.9699999999999998);
        assert_eq!(percentile_linear(&v, 10.0), 1.3);
        assert_eq!(percentile_linear(&[5.0], 30.0), 5.0);
    }

    #[test]
    fn top_percent_is_strictly_above() {
        let scores = vec![(0..100).map(|i| i as f64).collect::<Vec<_>>()];
        let s = NeuronSet::top_percent_per_layer("t", &scores, 1.0).unwrap();
        // 99th percentile of 0..99 is 98.01; only 99 lies above it.
        assert_eq!(s.neurons(0), &[99]);
        let s = NeuronSet::bottom_percent_per_layer("b", &scores, 2.0).unwrap();
        assert_eq!(s.neurons(0), &[0, 1]);
        let s = NeuronSet::top_percent_per_layer("t", &scores, 0.0).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn json_round_trip_uses_string_layer_keys() {
        let mut layers = BTreeMap::new();
        layers.insert(0, vec![5, 1, 5]);
        layers.insert(12, vec![7]);
        let s = NeuronSet::new("x", layers).with_shape(30, 1536);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"0\":[1,5]"), "{json}");
        let back: NeuronSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn validation_names_set_layer_and_limit() {
        let mut layers = BTreeMap::new();
        layers.insert(3, vec![10]);
        let s = NeuronSet::new("wn", layers);
        let e = s.validate(2, 64).unwrap_err().to_string();
        assert!(
            e.contains("`wn`") && e.contains("layer 3") && e.contains("2 layers"),
            "{e}"
        );
        let e = s.validate(4, 8).unwrap_err().to_string();
        assert!(
            e.contains("neuron 10") && e.contains("layer 3") && e.contains("8 neurons"),
            "{e}"
        );
        let e = s
            .clone()
            .with_shape(4, 2048)
            .validate(4, 1536)
            .unwrap_err()
            .to_string();
        assert!(e.contains("d_mlp = 2048") && e.contains("1536"), "{e}");
        assert!(s.validate(4, 64).is_ok());
    }

    #[test]
    fn random_like_matches_counts_and_can_exclude() {
        let scores: Vec<Vec<f64>> = (0..3)
            .map(|l| (0..50).map(|i| (i * (l + 1)) as f64).collect())
            .collect();
        let top = NeuronSet::top_percent_per_layer("top", &scores, 10.0).unwrap();
        let r1 = NeuronSet::random_like("r", &top, 50, 7, true).unwrap();
        let r2 = NeuronSet::random_like("r", &top, 50, 7, true).unwrap();
        assert_eq!(r1, r2);
        for l in 0..3 {
            assert_eq!(r1.neurons(l).len(), top.neurons(l).len());
            assert!(r1.neurons(l).iter().all(|n| !top.neurons(l).contains(n)));
        }
        assert_ne!(
            NeuronSet::random_like("r", &top, 50, 8, true)
                .unwrap()
                .layers,
            r1.layers
        );
    }

    #[test]
    fn set_algebra() {
        let a = NeuronSet::new("a", BTreeMap::from([(0, vec![1, 2]), (1, vec![3])]));
        let b = NeuronSet::new("b", BTreeMap::from([(0, vec![2, 4])]));
        assert_eq!(a.union(&b, "u").neurons(0), &[1, 2, 4]);
        let d = a.difference(&b, "d");
        assert_eq!(d.neurons(0), &[1]);
        assert_eq!(d.neurons(1), &[3]);
        let g = NeuronSet::global_top_k("g", &[vec![0.1, 0.9], vec![0.5, 0.2]], 2).unwrap();
        assert_eq!(g.neurons(0), &[1]);
        assert_eq!(g.neurons(1), &[0]);
    }
}
