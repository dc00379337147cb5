//! Right-padded batches of token sequences, plain or packed as prefix trees.

use burn::tensor::{Device, Int, Tensor, TensorData};
use negdiff_hooks::BatchContext;

use crate::arch::TokenLayout;
use crate::error::{ModelError, Result};

/// Token sequences of possibly different lengths, run together right-padded.
///
/// Row `b` holds its tokens at positions `0..len(b)`; the rest is padding, which never reaches
/// a real token (attention is causal and padding only follows real tokens) and which every
/// statistic skips.
///
/// A batch built with [`TokenBatch::tree`] holds prefix trees instead: each token names its
/// parent (an earlier token of its row), takes its depth as position and attends only to its
/// ancestors, so that sequences sharing a prefix compute it once (see [`crate::packing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    seqs: Vec<Vec<u32>>,
    seq_len: usize,
    /// For tree rows: the parent of each token (an index into the same row), `None` for roots.
    parents: Option<Vec<Vec<Option<usize>>>>,
}

/// One row of a tree batch: tokens in an order where every parent precedes its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRow {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// `parents[i]`: the index of token `i`'s predecessor in its sequence, `None` at a start.
    pub parents: Vec<Option<usize>>,
}

impl TreeRow {
    /// A row with no tokens yet.
    pub fn empty() -> Self {
        TreeRow {
            tokens: Vec::new(),
            parents: Vec::new(),
        }
    }
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
        Ok(TokenBatch {
            seqs,
            seq_len,
            parents: None,
        })
    }

    /// A batch of prefix-tree rows. Each parent must come before its child in the row.
    pub fn tree(rows: Vec<TreeRow>) -> Result<Self> {
        for (r, row) in rows.iter().enumerate() {
            if row.parents.len() != row.tokens.len() {
                return Err(ModelError::InvalidInput(format!(
                    "tree row {r}: {} tokens but {} parents",
                    row.tokens.len(),
                    row.parents.len()
                )));
            }
            if let Some(i) = row
                .parents
                .iter()
                .enumerate()
                .position(|(i, p)| p.is_some_and(|p| p >= i))
            {
                return Err(ModelError::InvalidInput(format!(
                    "tree row {r}: token {i} names a parent that does not precede it"
                )));
            }
        }
        let (seqs, parents) = rows.into_iter().map(|r| (r.tokens, r.parents)).unzip();
        let mut batch = Self::new(seqs)?;
        batch.parents = Some(parents);
        Ok(batch)
    }

    /// Whether the rows are prefix trees ([`TokenBatch::tree`]).
    pub fn is_tree(&self) -> bool {
        self.parents.is_some()
    }

    /// Position of each real token: its index in a plain row, its depth in a tree row.
    pub fn positions(&self) -> Vec<Vec<usize>> {
        match &self.parents {
            None => self.seqs.iter().map(|s| (0..s.len()).collect()).collect(),
            Some(parents) => parents
                .iter()
                .map(|row| {
                    let mut depth = Vec::with_capacity(row.len());
                    for p in row {
                        let d = p.map_or(0, |p| depth[p] + 1);
                        depth.push(d);
                    }
                    depth
                })
                .collect(),
        }
    }

    /// One more than the largest position (the context length the batch needs).
    pub fn span(&self) -> usize {
        match &self.parents {
            None => self.seq_len,
            Some(_) => self
                .positions()
                .iter()
                .flat_map(|r| r.iter().copied())
                .max()
                .map_or(0, |m| m + 1),
        }
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

    /// Positions and attention pattern of the batch for the architectures.
    ///
    /// Tree rows: token `q` may attend to key `k` only if `k` is `q` or one of its ancestors.
    /// Padding queries attend causally (nothing reads them; a fully masked row would be NaN on
    /// some backends).
    pub fn layout(&self, device: &Device) -> Result<TokenLayout> {
        let (b, t) = (self.seqs.len(), self.seq_len);
        let Some(parents) = &self.parents else {
            return Ok(TokenLayout::sequential());
        };
        let mut positions = vec![0usize; b * t];
        let mut blocked = vec![true; b * t * t];
        for (r, (row, pos)) in parents.iter().zip(self.positions()).enumerate() {
            positions[r * t..r * t + pos.len()].copy_from_slice(&pos);
            for q in 0..t {
                let mask_row = &mut blocked[(r * t + q) * t..(r * t + q + 1) * t];
                if q < row.len() {
                    let mut node = Some(q);
                    while let Some(k) = node {
                        mask_row[k] = false;
                        node = row[k];
                    }
                } else {
                    mask_row[..=q].fill(false);
                }
            }
        }
        TokenLayout::tree(positions, b, t, blocked, device)
    }

    /// The hook context for this batch.
    pub fn context(&self, device: &Device) -> BatchContext {
        BatchContext::new(self.lengths(), self.seq_len, device)
    }
}
