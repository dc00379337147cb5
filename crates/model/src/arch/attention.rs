//! Causal multi-head attention with grouped-query key/value heads.

use burn::tensor::{Bool, Device, Tensor, activation::softmax};

/// The causal mask for `seq_len` positions: `true` where a query would see a later key.
pub fn causal_mask(seq_len: usize, device: &Device) -> Tensor<2, Bool> {
    Tensor::<2, Bool>::tril_mask([seq_len, seq_len], 0, device)
}

/// `softmax(q kᵀ · scale + causal) v` for `q: [b, h, t, d]`, `k, v: [b, kv_h, t, d]`, returning
/// `[b, t, h·d]`. Each group of `h / kv_h` query heads shares one key/value head.
///
/// Batches are right-padded, so with the causal mask alone no real token ever attends to a
/// padding position: padding only ever follows the real tokens of its row.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f64,
    mask: &Tensor<2, Bool>,
) -> Tensor<3> {
    let [b, h, t, d] = q.dims();
    let kv_h = k.dims()[1];
    let (k, v) = if kv_h == h {
        (k, v)
    } else {
        let rep = h / kv_h;
        let expand = |x: Tensor<4>| {
            x.unsqueeze_dim::<5>(2)
                .expand([b, kv_h, rep, t, d])
                .reshape([b, h, t, d])
        };
        (expand(k), expand(v))
    };
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    let scores = scores.mask_fill(mask.clone().unsqueeze::<4>(), f32::NEG_INFINITY);
    let probs = softmax(scores, 3);
    probs.matmul(v).swap_dims(1, 2).reshape([b, t, h * d])
}
