//! Right-padded batches of token sequences.

use burn::tensor::{Device, Int, Tensor, TensorData};
use negdiff_hooks::BatchContext;

use crate::error::{ModelError, Result};

/// Token sequences of possibly different lengths, run together right-padded.
///
/// Row `b` holds its tokens at positions `0..len(b)`; the rest is padding, which never reaches
/// a real token (attention is causal and padding only follows real tokens) and which every
/// statistic skips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    seqs: Vec<Vec<u32>>,
    seq_len: usize,
}

impl TokenBatch {
    /// A batch of the given sequences. Empty batches and empty sequences are errors.
    pub fn new(seqs: Vec<Vec<u32>>) -> Result<Self> {
        if seqs.is_empty() {
            return Err(ModelError::InvalidInput("empty batch".into()));
        }
        if let Some(i) = seqs.iter().position(|s| s.is_empty()) {
            return Err(ModelError::InvalidInput(format!(
                "sequence {i} of the batch has no tokens"
            )));
        }
        let seq_len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        Ok(TokenBatch { seqs, seq_len })
    }

    /// One sequence.
    pub fn single(ids: Vec<u32>) -> Result<Self> {
        Self::new(vec![ids])
    }

    /// The sequences.
    pub fn sequences(&self) -> &[Vec<u32>] {
        &self.seqs
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Always false (empty batches are rejected); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Padded length.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Real length of each sequence.
    pub fn lengths(&self) -> Vec<usize> {
        self.seqs.iter().map(Vec::len).collect()
    }

    /// Total number of real tokens.
    pub fn n_tokens(&self) -> usize {
        self.seqs.iter().map(Vec::len).sum()
    }

    /// `[batch, seq_len]` ids with `pad` after each sequence.
    pub fn to_tensor(&self, pad: u32, device: &Device) -> Tensor<2, Int> {
        let mut ids = vec![pad as i64; self.seqs.len() * self.seq_len];
        for (b, s) in self.seqs.iter().enumerate() {
            for (p, &t) in s.iter().enumerate() {
                ids[b * self.seq_len + p] = t as i64;
            }
        }
        Tensor::from_data(
            TensorData::new(ids, [self.seqs.len(), self.seq_len]),
            device,
        )
    }

    /// The hook context for this batch.
    pub fn context(&self, device: &Device) -> BatchContext {
        BatchContext::new(self.lengths(), self.seq_len, device)
    }
}
