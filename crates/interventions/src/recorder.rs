//! Capture sinks that feed the data-driven interventions (mean ablation, patching).

use std::collections::BTreeMap;

use negdiff_hooks::{CaptureSink, CapturedBatch, HookError};

/// Records the full captured tensors of each layer (last batch wins), for [`Patch`](crate::Patch).
#[derive(Debug, Default, Clone)]
pub struct ActivationRecorder {
    /// Layer → (row-major values, `[b, t, width]`).
    pub layers: BTreeMap<usize, (Vec<f32>, [usize; 3])>,
}

impl CaptureSink for &mut ActivationRecorder {
    fn consume(&mut self, batch: &CapturedBatch<'_>) -> Result<(), HookError> {
        self.layers.insert(
            batch.site.layer,
            (
                batch.data.to_vec(),
                [batch.batch_size, batch.seq_len, batch.width],
            ),
        );
        Ok(())
    }
}

/// Accumulates per-neuron means over real (non-padding) tokens, per layer, for
/// [`MeanAblation`](crate::MeanAblation).
#[derive(Debug, Default, Clone)]
pub struct MeanRecorder {
    sums: BTreeMap<usize, Vec<f64>>,
    counts: BTreeMap<usize, u64>,
}

impl MeanRecorder {
    /// Per-layer means (f32), one per neuron.
    pub fn means(&self) -> BTreeMap<usize, Vec<f32>> {
        self.sums
            .iter()
            .map(|(&l, s)| {
                let n = self.counts.get(&l).copied().unwrap_or(0).max(1) as f64;
                (l, s.iter().map(|&v| (v / n) as f32).collect())
            })
            .collect()
    }

    /// Number of tokens seen per layer.
    pub fn counts(&self) -> &BTreeMap<usize, u64> {
        &self.counts
    }
}

impl CaptureSink for &mut MeanRecorder {
    fn consume(&mut self, batch: &CapturedBatch<'_>) -> Result<(), HookError> {
        let sums = self
            .sums
            .entry(batch.site.layer)
            .or_insert_with(|| vec![0.0; batch.width]);
        let mut n = 0u64;
        for (_, _, row) in batch.rows() {
            for (s, &v) in sums.iter_mut().zip(row) {
                *s += v as f64;
            }
            n += 1;
        }
        *self.counts.entry(batch.site.layer).or_default() += n;
        Ok(())
    }
}
