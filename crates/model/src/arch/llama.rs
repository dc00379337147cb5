//! The Llama family (Llama 2/3, SmolLM, Mistral, Qwen2), as HF `LlamaForCausalLM`.
//!
//! Per block:
//!
//! ```text
//! m  = x + Attn(RMSNorm₁(x))
//! x' = m + W_down ( SiLU(W_gate h) ⊙ (W_up h) ),   h = RMSNorm₂(m)
//! ```
//!
//! The neuron pre-activation (`mlp.hook_pre`) is `W_gate h`, the input of SiLU; `W_up h` is
//! `mlp.hook_pre_linear`. Attention uses full RoPE and grouped-query key/value heads.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData, module::embedding};
use negdiff_hooks::{BatchContext, HookPoint, HookRegistry, HookSite};

use super::attention::causal_attention;
use super::host_attention::{
    AttentionShape, HeadLayout, HostRotary, RotaryTables, attend_and_project,
};
use super::layers::{Linear, RmsNorm, activate, host_slice, read_host, upload};
use super::rope::Rotary;
use super::{CausalLm, ModelDims, TokenLayout};
use crate::config::{Activation, LlamaConfig, RopeSpec};
use crate::error::{ModelError, Result};
use crate::fastmath;
use crate::weights::WeightSource;

/// Hook points the Llama family calls.
const POINTS: &[HookPoint] = &[
    HookPoint::ResidPre,
    HookPoint::AttnOut,
    HookPoint::MlpIn,
    HookPoint::MlpPre,
    HookPoint::MlpPreLinear,
    HookPoint::MlpAct,
    HookPoint::MlpPost,
    HookPoint::MlpOut,
    HookPoint::ResidPost,
];

struct Attention {
    /// `q_proj`, `k_proj` and `v_proj` in one layer (one pass over the input).
    qkv_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    n_kv_heads: usize,
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
        let d = self.head_dim;
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, t, n, d]).swap_dims(1, 2);
        let [q, k, v]: [Tensor<3>; 3] = self
            .qkv_proj
            .forward_parts(x)?
            .try_into()
            .map_err(|_| ModelError::InvalidInput("q/k/v projection parts".into()))?;
        let (q, k, v) = (
            heads(q, self.n_heads),
            heads(k, self.n_kv_heads),
            heads(v, self.n_kv_heads),
        );
        let q = rotary.apply(q, cos, sin);
        let k = rotary.apply(k, cos, sin);
        let scale = 1.0 / (d as f64).sqrt();
        self.o_proj
            .forward(causal_attention(q, k, v, scale, blocked))
    }
}

impl Attention {
    /// Whether the projections run on the host, so that [`Attention::forward_host`] applies.
    fn on_host(&self) -> bool {
        self.qkv_proj.is_packed() && self.o_proj.is_packed()
    }

    /// The same map as [`Attention::forward`] computed on the host (CPU device): packed
    /// projections, rotary and attention over `[tokens, features]` buffers, no reshapes.
    fn forward_host(
        &self,
        x: Tensor<3>,
        rotary: &HostRotary,
        blocked: Option<&[bool]>,
    ) -> Result<Tensor<3>> {
        let [b, t, _] = x.dims();
        let device = x.device();
        let (h, kv, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let data = read_host(x)?;
        let [mut q, mut k, v]: [Vec<f32>; 3] = self
            .qkv_proj
            .forward_host(host_slice(&data)?, b * t)?
            .try_into()
            .map_err(|_| ModelError::InvalidInput("q/k/v projection parts".into()))?;
        let (q_heads, kv_heads) = (HeadLayout::dense(h, d), HeadLayout::dense(kv, d));
        rotary.apply(&mut q, q_heads, h, b * t);
        rotary.apply(&mut k, kv_heads, kv, b * t);
        let shape = AttentionShape {
            batch: b,
            seq_len: t,
            heads: h,
            kv_heads: kv,
            head_dim: d,
        };
        attend_and_project(
            shape,
            (&q, q_heads),
            (&k, kv_heads),
            (&v, kv_heads),
            blocked,
            &self.o_proj,
            &device,
        )
    }
}

struct Mlp {
    /// `gate_proj` and `up_proj` in one layer (one pass over the input).
    gate_up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// `W_down (act(W_gate h) ⊙ W_up h)` with the hook sites `mlp.hook_pre` (the neuron
    /// pre-activation, `W_gate h`), `hook_pre_linear`, `hook_act` and `hook_post`.
    fn forward(
        &self,
        h: Tensor<3>,
        activation: Activation,
        layer: usize,
        batch: &BatchContext,
        hooks: &mut HookRegistry<'_>,
    ) -> Result<Tensor<3>> {
        let site = |point| HookSite::new(layer, point);
        let [b, t, _] = h.dims();
        let device = h.device();
        let on_host = self.gate_up_proj.is_packed() && self.down_proj.is_packed();
        // [b, t, d_mlp]: the neuron pre-activation (gate_proj output) and the linear branch.
        let (pre, up) = if on_host {
            // CPU: the values stay in host buffers; only hook sites with hooks get tensors.
            let data = read_host(h)?;
            let [gate, up]: [Vec<f32>; 2] = self
                .gate_up_proj
                .forward_host(host_slice(&data)?, b * t)?
                .try_into()
                .map_err(|_| ModelError::InvalidInput("gate/up projection parts".into()))?;
            let shape = [b, t, gate.len() / (b * t).max(1)];
            let gate = through_hooks(hooks, site(HookPoint::MlpPre), gate, shape, batch, &device)?;
            let mut up = through_hooks(
                hooks,
                site(HookPoint::MlpPreLinear),
                up,
                shape,
                batch,
                &device,
            )?;
            let fused = activation == Activation::Silu
                && !hooks.is_active(site(HookPoint::MlpAct))
                && !hooks.is_active(site(HookPoint::MlpPost));
            if fused {
                // act ⊙ up in one pass, into `up`.
                fastmath::silu_mul_in_place(&gate, &mut up);
                let out = self
                    .down_proj
                    .forward_host(&up, b * t)?
                    .pop()
                    .ok_or_else(|| ModelError::InvalidInput("down_proj has no output".into()))?;
                let width = self.down_proj.d_out();
                return Ok(Tensor::from_data(
                    TensorData::new(out, [b, t, width]),
                    &device,
                ));
            }
            let tensor = |v: Vec<f32>| Tensor::<3>::from_data(TensorData::new(v, shape), &device);
            (tensor(gate), tensor(up))
        } else {
            let [pre, up]: [Tensor<3>; 2] = self
                .gate_up_proj
                .forward_parts(h)?
                .try_into()
                .map_err(|_| ModelError::InvalidInput("gate/up projection parts".into()))?;
            let pre = hooks.run(site(HookPoint::MlpPre), pre, batch)?;
            let up = hooks.run(site(HookPoint::MlpPreLinear), up, batch)?;
            (pre, up)
        };
        let act_site = site(HookPoint::MlpAct);
        let act = activate(pre.clone(), activation);
        let act = if hooks.is_active(act_site) {
            hooks.run_with_input(act_site, act, batch, Some(&pre))?
        } else {
            act
        };
        let post = hooks.run(site(HookPoint::MlpPost), act * up, batch)?;
        self.down_proj.forward(post)
    }
}

/// Runs the hooks at `site` on host values (as a `shape` tensor) and returns the values they
/// leave; without hooks there the values pass untouched, with no tensor made.
fn through_hooks(
    hooks: &mut HookRegistry<'_>,
    site: HookSite,
    values: Vec<f32>,
    shape: [usize; 3],
    batch: &BatchContext,
    device: &Device,
) -> Result<Vec<f32>> {
    if !hooks.is_active(site) {
        return Ok(values);
    }
    let x = Tensor::<3>::from_data(TensorData::new(values, shape), device);
    let y = hooks.run(site, x, batch)?;
    if y.dims() != shape {
        return Err(ModelError::InvalidInput(format!(
            "hook at {site:?} changed the shape {shape:?} to {:?}",
            y.dims()
        )));
    }
    read_host(y)?
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))
}

struct Block {
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
    self_attn: Attention,
    mlp: Mlp,
}

/// A loaded Llama-family model.
pub struct Llama {
    model_type: String,
    dims: ModelDims,
    activation: Activation,
    embed_tokens: Tensor<2>,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: Rotary,
    n_params: usize,
    sliding_window: Option<usize>,
}

impl Llama {
    /// Loads from HF-named weights (`model.layers.{i}....`, `lm_head.weight`).
    pub fn load(
        cfg: &LlamaConfig,
        rope: RopeSpec,
        w: &dyn WeightSource,
        device: &Device,
    ) -> Result<Self> {
        let d = cfg.hidden_size;
        let d_mlp = cfg.intermediate_size;
        let (h, kv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        let eps = cfg.rms_norm_eps;
        let activation = Activation::from_hf(&cfg.hidden_act).ok_or_else(|| {
            ModelError::InvalidInput(format!("unknown activation {}", cfg.hidden_act))
        })?;
        let embed = w.tensor_shaped("model.embed_tokens.weight", &[cfg.vocab_size, d])?;
        let mut n_params = embed.len();
        let embed_tokens = upload(embed.clone(), device);
        let mut blocks = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let lin = |name: &str, d_in: usize, d_out: usize, bias: bool| {
                Linear::load(w, &format!("{p}.{name}"), d_in, d_out, bias, device)
            };
            let (q, k, v) = (
                format!("{p}.self_attn.q_proj"),
                format!("{p}.self_attn.k_proj"),
                format!("{p}.self_attn.v_proj"),
            );
            let (gate, up) = (format!("{p}.mlp.gate_proj"), format!("{p}.mlp.up_proj"));
            let block = Block {
                input_layernorm: RmsNorm::load(w, &format!("{p}.input_layernorm"), d, eps, device)?,
                post_attention_layernorm: RmsNorm::load(
                    w,
                    &format!("{p}.post_attention_layernorm"),
                    d,
                    eps,
                    device,
                )?,
                self_attn: Attention {
                    qkv_proj: Linear::load_fused(
                        w,
                        &[(&q, h * hd), (&k, kv * hd), (&v, kv * hd)],
                        d,
                        cfg.qkv_bias(),
                        device,
                    )?,
                    o_proj: lin("self_attn.o_proj", h * hd, d, cfg.o_bias())?,
                    n_heads: h,
                    n_kv_heads: kv,
                    head_dim: hd,
                },
                mlp: Mlp {
                    gate_up_proj: Linear::load_fused(
                        w,
                        &[(&gate, d_mlp), (&up, d_mlp)],
                        d,
                        cfg.mlp_bias,
                        device,
                    )?,
                    down_proj: lin("mlp.down_proj", d_mlp, d, cfg.mlp_bias)?,
                },
            };
            n_params += block.input_layernorm.n_params()
                + block.post_attention_layernorm.n_params()
                + block.self_attn.qkv_proj.n_params()
                + block.self_attn.o_proj.n_params()
                + block.mlp.gate_up_proj.n_params()
                + block.mlp.down_proj.n_params();
            blocks.push(block);
        }
        let norm = RmsNorm::load(w, "model.norm", d, eps, device)?;
        n_params += norm.n_params();
        // A tied model shares the embedding; some checkpoints still store lm_head: prefer it.
        let lm_head = if cfg.tie_word_embeddings && !w.contains("lm_head.weight") {
            Linear::from_host(embed, None, device)?
        } else {
            let l = Linear::load(w, "lm_head", d, cfg.vocab_size, false, device)?;
            if !cfg.tie_word_embeddings {
                n_params += l.n_params();
            }
            l
        };
        let model_type = if cfg.model_type.is_empty() {
            "llama".to_string()
        } else {
            cfg.model_type.clone()
        };
        Ok(Llama {
            model_type,
            dims: ModelDims {
                n_layers: cfg.num_hidden_layers,
                d_model: d,
                d_mlp,
                n_heads: h,
                n_kv_heads: kv,
                head_dim: hd,
                vocab_size: cfg.vocab_size,
                max_positions: cfg.max_position_embeddings,
            },
            activation,
            embed_tokens,
            blocks,
            norm,
            lm_head,
            rotary: Rotary::new(&rope),
            n_params,
            sliding_window: cfg.effective_sliding_window(),
        })
    }
}

impl CausalLm for Llama {
    fn architecture(&self) -> &str {
        &self.model_type
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

    fn max_faithful_len(&self) -> Option<usize> {
        self.sliding_window
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
        let on_host = self.blocks.iter().all(|b| b.self_attn.on_host());
        let tables = RotaryTables::new(on_host, &self.rotary, layout, t, &device);
        let mut x = embedding(self.embed_tokens.clone(), tokens); // [b, t, d_model]
        for (i, block) in self.blocks.iter().enumerate() {
            let site = |point| HookSite::new(i, point);
            // [b, t, d_model]
            let resid_pre = hooks.run(site(HookPoint::ResidPre), x, batch)?;
            let attn_in = block.input_layernorm.forward(resid_pre.clone());
            let attn_out = match &tables {
                RotaryTables::Host(rotary) => {
                    block
                        .self_attn
                        .forward_host(attn_in, rotary, layout.blocked_host())?
                }
                RotaryTables::Device(cos_sin) => {
                    let (cos, sin) = cos_sin.as_ref();
                    block
                        .self_attn
                        .forward(attn_in, &self.rotary, cos, sin, layout.blocked())?
                }
            };
            let attn_out = hooks.run(site(HookPoint::AttnOut), attn_out, batch)?;
            let mid = resid_pre + attn_out;
            let h = block.post_attention_layernorm.forward(mid.clone());
            let h = hooks.run(site(HookPoint::MlpIn), h, batch)?; // [b, t, d_model]
            // [b, t, d_model]
            let mlp_out = block.mlp.forward(h, self.activation, i, batch, hooks)?;
            let mlp_out = hooks.run(site(HookPoint::MlpOut), mlp_out, batch)?;
            x = hooks.run(site(HookPoint::ResidPost), mid + mlp_out, batch)?;
        }
        Ok(self.norm.forward(x))
    }

    fn unembed(&self, hidden: Tensor<2>) -> Result<Tensor<2>> {
        self.lm_head.forward_2d(hidden)
    }

    fn unembedding(&self) -> Option<&Linear> {
        Some(&self.lm_head)
    }
}
