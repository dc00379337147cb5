//! Where the tokens of a batch sit: the position each one takes in the rotary embedding and the
//! keys each one may attend to.

use std::sync::Arc;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::rope::Rotary;
use crate::error::{ModelError, Result};

/// Positions and attention pattern of one forward pass.
///
/// Plain batches ([`TokenLayout::sequential`]) put token `i` of a row at position `i` and use the
/// causal mask. Packed prefix-tree batches give every token its depth as position and an explicit
/// mask on top of the causal one, so a token sees only its own ancestors.
#[derive(Debug, Clone)]
pub struct TokenLayout {
    tree: Option<TreeLayout>,
}

#[derive(Debug, Clone)]
struct TreeLayout {
    /// `[batch * seq_len]`, row-major.
    positions: Vec<usize>,
    batch: usize,
    seq_len: usize,
    /// `[batch, 1, seq_len, seq_len]`, `true` where the query may not attend to the key.
    blocked: Tensor<4, Bool>,
    /// The same mask on the host, `[batch, seq_len, seq_len]` row-major.
    blocked_host: Arc<Vec<bool>>,
}

impl TokenLayout {
    /// Token `i` at position `i`, causal attention.
    pub fn sequential() -> Self {
        TokenLayout { tree: None }
    }

    /// Explicit positions (`[batch * seq_len]`, row-major) and a `[batch, 1, seq_len, seq_len]`
    /// mask, `true` where the query may not attend to the key. The causal mask still applies.
    ///
    /// Errors if the lengths do not match `batch` and `seq_len`.
    pub fn tree(
        positions: Vec<usize>,
        batch: usize,
        seq_len: usize,
        blocked: Vec<bool>,
        device: &Device,
    ) -> Result<Self> {
        if positions.len() != batch * seq_len || blocked.len() != batch * seq_len * seq_len {
            return Err(ModelError::InvalidInput(format!(
                "token layout of {} positions and {} mask entries for a {batch}×{seq_len} batch",
                positions.len(),
                blocked.len()
            )));
        }
        let mask = Tensor::<4, Bool>::from_data(
            TensorData::new(blocked.clone(), [batch, 1, seq_len, seq_len]),
            device,
        );
        Ok(TokenLayout {
            tree: Some(TreeLayout {
                positions,
                batch,
                seq_len,
                blocked: mask,
                blocked_host: Arc::new(blocked),
            }),
        })
    }

    /// The extra attention mask, if any.
    pub fn blocked(&self) -> Option<Tensor<4, Bool>> {
        self.tree.as_ref().map(|t| t.blocked.clone())
    }

    /// The extra attention mask on the host, `[batch, seq_len, seq_len]` row-major, if any.
    pub fn blocked_host(&self) -> Option<&[bool]> {
        self.tree.as_ref().map(|t| &t.blocked_host[..])
    }

    /// The rotary position of every token, `[batch · seq_len]` row-major, if not sequential.
    pub fn positions(&self) -> Option<&[usize]> {
        self.tree.as_ref().map(|t| &t.positions[..])
    }

    /// `(cos, sin)` for every token, `[1 | batch, 1, seq_len, rotary_dim]`, ready to broadcast
    /// over the heads of `[batch, heads, seq_len, head_dim]`.
    pub fn rotary_tables(
        &self,
        rotary: &Rotary,
        seq_len: usize,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        match &self.tree {
            None => {
                let (cos, sin) = rotary.tables(seq_len, device);
                (cos.unsqueeze::<4>(), sin.unsqueeze::<4>())
            }
            Some(tree) => {
                let span = tree.positions.iter().copied().max().map_or(1, |m| m + 1);
                let (cos, sin) = rotary.tables(span, device);
                let n = tree.positions.len();
                let idx: Tensor<1, Int> = Tensor::from_data(
                    TensorData::new(tree.positions.iter().map(|&p| p as i64).collect(), [n]),
                    device,
                );
                let dim = rotary.rotary_dim();
                let shape = [tree.batch, 1, tree.seq_len, dim];
                (
                    cos.select(0, idx.clone()).reshape(shape),
                    sin.select(0, idx).reshape(shape),
                )
            }
        }
    }
}
