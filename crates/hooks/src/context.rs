//! What a hook knows about the batch it sees.

use burn::tensor::{Device, Tensor, TensorData};

/// Facts about the current right-padded batch, shared by every hook call of one forward pass.
///
/// Sequences are right-padded: row `b` holds real tokens at positions `0..lengths[b]` and padding
/// after. Statistics must only use those positions; [`CapturedBatch::rows`](crate::CapturedBatch::rows)
/// does that for captures, and [`BatchContext::valid_mask`] gives the same on the device.
#[derive(Debug, Clone)]
pub struct BatchContext {
    lengths: Vec<usize>,
    seq_len: usize,
    device: Device,
}

impl BatchContext {
    /// A context for sequences of the given lengths, padded to `seq_len`.
    ///
    /// Lengths longer than `seq_len` are clamped to it (the caller built the padding).
    pub fn new(lengths: Vec<usize>, seq_len: usize, device: &Device) -> Self {
        let lengths = lengths.into_iter().map(|l| l.min(seq_len)).collect();
        BatchContext {
            lengths,
            seq_len,
            device: device.clone(),
        }
    }

    /// Number of sequences.
    pub fn batch_size(&self) -> usize {
        self.lengths.len()
    }

    /// Padded length.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Real length of each sequence.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// Number of real (non-padding) tokens in the batch.
    pub fn n_valid(&self) -> usize {
        self.lengths.iter().sum()
    }

    /// Whether any row is padded.
    pub fn has_padding(&self) -> bool {
        self.lengths.iter().any(|&l| l < self.seq_len)
    }

    /// The device the forward pass runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `[batch, pos]` with 1.0 at real tokens and 0.0 at padding, on the batch's device.
    pub fn valid_mask(&self) -> Tensor<2> {
        let mut values = vec![0f32; self.batch_size() * self.seq_len];
        for (b, &len) in self.lengths.iter().enumerate() {
            values[b * self.seq_len..b * self.seq_len + len].fill(1.0);
        }
        Tensor::from_data(
            TensorData::new(values, [self.batch_size(), self.seq_len]),
            &self.device,
        )
    }
}

/// Everything a hook receives besides the tensor itself.
#[derive(Clone, Copy)]
pub struct HookContext<'a> {
    /// The batch being run.
    pub batch: &'a BatchContext,
    /// The input of the operation whose output this site is, where that matters: at
    /// `mlp.hook_act` it is the (possibly edited) `mlp.hook_pre` tensor, so activation-function
    /// swaps such as positive-ReLU can see `x`. `None` elsewhere.
    pub input: Option<&'a Tensor<3>>,
}
