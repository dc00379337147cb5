//! GPT-NeoX (Pythia), as HF `GPTNeoXForCausalLM`.
//!
//! Per block, with parallel residual (Pythia's setting):
//!
//! ```text
//! x' = x + Attn(LN₁(x)) + MLP(LN₂(x)),   MLP(h) = W_out · GELU(W_in h + b_in) + b_out
//! ```
//!
//! and, without it, `m = x + Attn(LN₁(x)); x' = m + MLP(LN₂(m))`. The fused `query_key_value`
//! projection is laid out per head (`[h, (q|k|v), head_dim]`); RoPE rotates only the first
//! `rotary_pct · head_dim` dimensions of each head.

use std::path::Path;

use burn::tensor::{Bool, Device, Int, Tensor, module::embedding};
use negdiff_hooks::{BatchContext, HookPoint, HookRegistry, HookSite};

use super::attention::causal_attention;
use super::host_attention::{
    AttentionShape, HeadLayout, HostRotary, RotaryTables, attend_and_project,
};
use super::layers::{LayerNorm, Linear, activate, host_slice, read_host, upload};
use super::rope::Rotary;
use super::{CausalLm, ModelDims, TokenLayout};
use crate::config::{Activation, GptNeoxConfig};
use crate::error::{ModelError, Result};
use crate::weights::WeightSource;

/// Hook points GPT-NeoX calls (no `hook_pre_linear`: its MLP is not gated).
const POINTS: &[HookPoint] = &[
    HookPoint::ResidPre,
    HookPoint::AttnOut,
    HookPoint::MlpIn,
    HookPoint::MlpPre,
    HookPoint::MlpAct,
    HookPoint::MlpPost,
    HookPoint::MlpOut,
    HookPoint::ResidPost,
];

struct Attention {
    query_key_value: Linear,
    dense: Linear,
    n_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn forward(
        &self,
        x: Tensor<3>,
        rotary: &Rotary,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        blocked: Option<Tensor<4, Bool>>,
    ) -> Result<Tensor<3>> {
        let [b, t, _] = x.dims();
        let (h, d) = (self.n_heads, self.head_dim);
        // [b, t, 3·h·d] → [b, h, t, 3d] → q | k | v along the last axis (per-head layout).
        let qkv = self
            .query_key_value
            .forward(x)?
            .reshape([b, t, h, 3 * d])
            .swap_dims(1, 2);
        let q = qkv.clone().narrow(3, 0, d);
        let k = qkv.clone().narrow(3, d, d);
        let v = qkv.narrow(3, 2 * d, d);
        let q = rotary.apply(q, cos, sin);
        let k = rotary.apply(k, cos, sin);
        let scale = 1.0 / (d as f64).sqrt();
        self.dense
            .forward(causal_attention(q, k, v, scale, blocked))
    }

    /// Whether the projections run on the host, so that [`Attention::forward_host`] applies.
    fn on_host(&self) -> bool {
        self.query_key_value.is_packed() && self.dense.is_packed()
    }

    /// The same map as [`Attention::forward`] on the host (CPU device): the fused projection's
    /// `[tokens, heads · (q | k | v)]` output is rotated and attended in place.
    fn forward_host(
        &self,
        x: Tensor<3>,
        rotary: &HostRotary,
        blocked: Option<&[bool]>,
    ) -> Result<Tensor<3>> {
        let [b, t, _] = x.dims();
        let device = x.device();
        let (h, d) = (self.n_heads, self.head_dim);
        let data = read_host(x)?;
        let mut qkv = self
            .query_key_value
            .forward_host(host_slice(&data)?, b * t)?
            .pop()
            .ok_or_else(|| ModelError::InvalidInput("query_key_value has no output".into()))?;
        // Per head: q, k, v of `d` values each (HF's `view(..., heads, 3 * head_dim)`).
        let part = |i: usize| HeadLayout {
            row_stride: h * 3 * d,
            offset: i * d,
            head_stride: 3 * d,
        };
        rotary.apply(&mut qkv, part(0), h, b * t);
        rotary.apply(&mut qkv, part(1), h, b * t);
        let shape = AttentionShape {
            batch: b,
            seq_len: t,
            heads: h,
            kv_heads: h,
            head_dim: d,
        };
        attend_and_project(
            shape,
            (&qkv, part(0)),
            (&qkv, part(1)),
            (&qkv, part(2)),
            blocked,
            &self.dense,
            &device,
        )
    }
}

struct Mlp {
    dense_h_to_4h: Linear,
    dense_4h_to_h: Linear,
}

struct Block {
    input_layernorm: LayerNorm,
    post_attention_layernorm: LayerNorm,
    attention: Attention,
    mlp: Mlp,
}

/// A loaded GPT-NeoX model.
pub struct GptNeox {
    dims: ModelDims,
    activation: Activation,
    parallel_residual: bool,
    embed_in: Tensor<2>,
    blocks: Vec<Block>,
    final_layer_norm: LayerNorm,
    embed_out: Linear,
    rotary: Rotary,
    n_params: usize,
}

impl GptNeox {
    /// Loads from HF-named weights (`gpt_neox.layers.{i}....`, `embed_out.weight`).
    pub fn load(
        cfg: &GptNeoxConfig,
        w: &dyn WeightSource,
        device: &Device,
        config_path: &Path,
    ) -> Result<Self> {
        let d = cfg.hidden_size;
        let d_mlp = cfg.intermediate_size;
        let h = cfg.num_attention_heads;
        let hd = cfg.head_dim();
        let eps = cfg.layer_norm_eps;
        let activation =
            Activation::from_hf(&cfg.hidden_act).ok_or_else(|| ModelError::UnsupportedSetting {
                path: config_path.to_path_buf(),
                setting: "hidden_act".into(),
                value: cfg.hidden_act.clone(),
                reason: "unknown activation".into(),
            })?;
        let rope = cfg.rope(config_path)?;
        let embed = w.tensor_shaped("gpt_neox.embed_in.weight", &[cfg.vocab_size, d])?;
        let mut n_params = embed.len();
        let embed_in = upload(embed.clone(), device);
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("gpt_neox.layers.{i}");
            let block = Block {
                input_layernorm: LayerNorm::load(
                    w,
                    &format!("{p}.input_layernorm"),
                    d,
                    eps,
                    device,
                )?,
                post_attention_layernorm: LayerNorm::load(
                    w,
                    &format!("{p}.post_attention_layernorm"),
                    d,
                    eps,
                    device,
                )?,
                attention: Attention {
                    query_key_value: Linear::load(
                        w,
                        &format!("{p}.attention.query_key_value"),
                        d,
                        3 * d,
                        cfg.attention_bias,
                        device,
                    )?,
                    dense: Linear::load(
                        w,
                        &format!("{p}.attention.dense"),
                        d,
                        d,
                        cfg.attention_bias,
                        device,
                    )?,
                    n_heads: h,
                    head_dim: hd,
                },
                mlp: Mlp {
                    dense_h_to_4h: Linear::load(
                        w,
                        &format!("{p}.mlp.dense_h_to_4h"),
                        d,
                        d_mlp,
                        true,
                        device,
                    )?,
                    dense_4h_to_h: Linear::load(
                        w,
                        &format!("{p}.mlp.dense_4h_to_h"),
                        d_mlp,
                        d,
                        true,
                        device,
                    )?,
                },
            };
            n_params += block.input_layernorm.n_params()
                + block.post_attention_layernorm.n_params()
                + block.attention.query_key_value.n_params()
                + block.attention.dense.n_params()
                + block.mlp.dense_h_to_4h.n_params()
                + block.mlp.dense_4h_to_h.n_params();
            blocks.push(block);
        }
        let final_layer_norm = LayerNorm::load(w, "gpt_neox.final_layer_norm", d, eps, device)?;
        n_params += final_layer_norm.n_params();
        let embed_out = if cfg.tie_word_embeddings && !w.contains("embed_out.weight") {
            Linear::from_host(embed, None, device)?
        } else {
            let l = Linear::load(w, "embed_out", d, cfg.vocab_size, false, device)?;
            n_params += l.n_params();
            l
        };
        Ok(GptNeox {
            dims: ModelDims {
                n_layers: cfg.num_hidden_layers,
                d_model: d,
                d_mlp,
                n_heads: h,
                n_kv_heads: h,
                head_dim: hd,
                vocab_size: cfg.vocab_size,
                max_positions: cfg.max_position_embeddings,
            },
            activation,
            parallel_residual: cfg.use_parallel_residual,
            embed_in,
            blocks,
            final_layer_norm,
            embed_out,
            rotary: Rotary::new(&rope),
            n_params,
        })
    }
}

impl CausalLm for GptNeox {
    fn architecture(&self) -> &str {
        "gpt_neox"
    }

    fn dims(&self) -> &ModelDims {
        &self.dims
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn hook_points(&self) -> &'static [HookPoint] {
        POINTS
    }

    fn n_params(&self) -> usize {
        self.n_params
    }

    fn forward_hidden(
        &self,
        tokens: Tensor<2, Int>,
        layout: &TokenLayout,
        batch: &BatchContext,
        hooks: &mut HookRegistry<'_>,
    ) -> Result<Tensor<3>> {
        let device = tokens.device();
        let t = tokens.dims()[1];
        // The CPU device runs attention on the host; other devices through burn.
        let on_host = self.blocks.iter().all(|b| b.attention.on_host());
        let tables = RotaryTables::new(on_host, &self.rotary, layout, t, &device);
        let mut x = embedding(self.embed_in.clone(), tokens); // [b, t, d_model]
        for (i, block) in self.blocks.iter().enumerate() {
            let site = |point| HookSite::new(i, point);
            // [b, t, d_model]
            let resid_pre = hooks.run(site(HookPoint::ResidPre), x, batch)?;
            let attn_in = block.input_layernorm.forward(resid_pre.clone());
            let attn_out = match &tables {
                RotaryTables::Host(rotary) => {
                    block
                        .attention
                        .forward_host(attn_in, rotary, layout.blocked_host())?
                }
                RotaryTables::Device(cos_sin) => {
                    let (cos, sin) = cos_sin.as_ref();
                    block
                        .attention
                        .forward(attn_in, &self.rotary, cos, sin, layout.blocked())?
                }
            };
            let attn_out = hooks.run(site(HookPoint::AttnOut), attn_out, batch)?;
            // Parallel residual: the MLP reads the block input; otherwise the attention-updated stream.
            let (mlp_in, mid) = if self.parallel_residual {
                (
                    block.post_attention_layernorm.forward(resid_pre.clone()),
                    None,
                )
            } else {
                let mid = resid_pre.clone() + attn_out.clone();
                (
                    block.post_attention_layernorm.forward(mid.clone()),
                    Some(mid),
                )
            };
            let mlp_in = hooks.run(site(HookPoint::MlpIn), mlp_in, batch)?;
            // [b, t, d_mlp]: the neuron pre-activation (dense_h_to_4h output).
            let pre = block.mlp.dense_h_to_4h.forward(mlp_in)?;
            let pre = hooks.run(site(HookPoint::MlpPre), pre, batch)?;
            let act_site = site(HookPoint::MlpAct);
            let act = activate(pre.clone(), self.activation);
            let act = if hooks.is_active(act_site) {
                hooks.run_with_input(act_site, act, batch, Some(&pre))?
            } else {
                act
            };
            let post = hooks.run(site(HookPoint::MlpPost), act, batch)?;
            // [b, t, d_model]
            let mlp_out = block.mlp.dense_4h_to_h.forward(post)?;
            let mlp_out = hooks.run(site(HookPoint::MlpOut), mlp_out, batch)?;
            let resid_post = match mid {
                None => mlp_out + attn_out + resid_pre,
                Some(mid) => mid + mlp_out,
            };
            x = hooks.run(site(HookPoint::ResidPost), resid_post, batch)?;
        }
        Ok(self.final_layer_norm.forward(x))
    }

    fn unembed(&self, hidden: Tensor<2>) -> Result<Tensor<2>> {
        self.embed_out.forward_2d(hidden)
    }

    fn unembedding(&self) -> Option<&Linear> {
        Some(&self.embed_out)
    }
}
