//! Causal multi-head attention with grouped-query key/value heads.

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

/// `softmax(q kᵀ · scale + causal) v` for `q: [b, h, t, d]`, `k, v: [b, kv_h, t, d]`, returning
/// `[b, t, h·d]`. Each group of `h / kv_h` query heads shares one key/value head. `blocked`
/// (`[b, 1, t, t]`, `true` = may not attend) further restricts the causal pattern, as packed
/// prefix trees need.
///
/// Batches are right-padded, so the causal mask alone keeps every real token from attending to
/// padding: padding only ever follows the real tokens of its row. The backend's fused attention
/// (burn-flex: tiled, online softmax for long sequences) does the work.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f64,
    blocked: Option<Tensor<4, Bool>>,
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
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal: true,
    };
    let blocked = blocked.map(|m| m.expand([b, h, t, t]));
    attention(q, k, v, blocked, None, options)
        .swap_dims(1, 2)
        .reshape([b, t, h * d])
}

/// The explicit form of [`causal_attention`] (materialised scores, masked softmax), kept as the
/// reference the fused path is tested against.
pub fn causal_attention_reference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f64,
    blocked: Option<Tensor<4, Bool>>,
) -> Tensor<3> {
    let [b, h, t, d] = q.dims();
    let kv_h = k.dims()[1];
    let rep = h / kv_h;
    let expand = |x: Tensor<4>| {
        x.unsqueeze_dim::<5>(2)
            .expand([b, kv_h, rep, t, d])
            .reshape([b, h, t, d])
    };
    let (k, v) = (expand(k), expand(v));
    let causal = Tensor::<2, Bool>::tril_mask([t, t], 0, &q.device()).unsqueeze::<4>();
    let mask = match blocked {
        Some(m) => m.bool_or(causal.expand([b, 1, t, t])),
        None => causal,
    };
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    let scores = scores.mask_fill(mask, f32::NEG_INFINITY);
    burn::tensor::activation::softmax(scores, 3)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([b, t, h * d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn fused_matches_reference_short_and_long() {
        let dev = Device::flex();
        for (b, h, kv, t, d) in [(2, 4, 2, 7, 8), (1, 9, 3, 600, 64), (3, 2, 2, 1, 4)] {
            let q = Tensor::<4>::random([b, h, t, d], Distribution::Normal(0.0, 1.0), &dev);
            let k = Tensor::<4>::random([b, kv, t, d], Distribution::Normal(0.0, 1.0), &dev);
            let v = Tensor::<4>::random([b, kv, t, d], Distribution::Normal(0.0, 1.0), &dev);
            let s = 1.0 / (d as f64).sqrt();
            let a: Vec<f32> = causal_attention(q.clone(), k.clone(), v.clone(), s, None)
                .try_into_vec_as::<f32>()
                .unwrap();
            let r: Vec<f32> = causal_attention_reference(q, k, v, s, None)
                .try_into_vec_as::<f32>()
                .unwrap();
            let err = a
                .iter()
                .zip(&r)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "shape {:?}: {err}", (b, h, kv, t, d));
        }
    }
}
