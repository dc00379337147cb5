//! Architectures: one file each, each a [`CausalLm`].
//!
//! To add an architecture: write `arch/<name>.rs` with its config → attention → MLP → block →
//! model, reading weights by HF names through [`WeightSource`]; add its `model_type` to
//! [`ArchConfig`] and one arm to [`build`].

pub mod attention;
pub mod gpt_neox;
pub mod host_attention;
pub mod layers;
pub mod layout;
pub mod llama;
pub mod rope;

use burn::tensor::{Device, Int, Tensor};
use negdiff_hooks::{BatchContext, HookPoint, HookRegistry};

pub use layout::TokenLayout;

use crate::config::{Activation, ArchConfig, RopeSpec};
use crate::error::Result;
use crate::weights::WeightSource;

/// Sizes of a model, as `negdiff info` reports them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelDims {
    /// Number of blocks.
    pub n_layers: usize,
    /// Residual width.
    pub d_model: usize,
    /// Neurons per MLP.
    pub d_mlp: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Context length from the config.
    pub max_positions: usize,
}

/// A decoder-only language model with hook sites.
pub trait CausalLm: Send + Sync {
    /// Architecture name (the HF `model_type`).
    fn architecture(&self) -> &str;

    /// Sizes.
    fn dims(&self) -> &ModelDims;

    /// The MLP nonlinearity (applied to `mlp.hook_pre`).
    fn activation(&self) -> Activation;

    /// The hook points this architecture calls in every block.
    fn hook_points(&self) -> &'static [HookPoint];

    /// Number of parameters (tied matrices counted once).
    fn n_params(&self) -> usize;

    /// The longest sequence this implementation computes faithfully, if limited
    /// (e.g. Mistral's sliding window).
    fn max_faithful_len(&self) -> Option<usize> {
        None
    }

    /// Runs embedding, every block and the final norm on right-padded `tokens: [batch, pos]`
    /// placed as `layout` says, calling `hooks` at each site; returns `[batch, pos, d_model]`.
    fn forward_hidden(
        &self,
        tokens: Tensor<2, Int>,
        layout: &TokenLayout,
        batch: &BatchContext,
        hooks: &mut HookRegistry<'_>,
    ) -> Result<Tensor<3>>;

    /// Maps final hidden states `[rows, d_model]` to logits `[rows, vocab]`.
    fn unembed(&self, hidden: Tensor<2>) -> Result<Tensor<2>>;

    /// The unembedding as a [`Linear`](layers::Linear) layer, where it is one (what
    /// [`unembed`](Self::unembed) applies). With it the CPU backend computes next-token
    /// log-probabilities without writing out the logits; `None` (the default) always goes
    /// through [`unembed`](Self::unembed).
    fn unembedding(&self) -> Option<&layers::Linear> {
        None
    }
}

/// Builds the architecture `config` describes from `weights` on `device`. `rope` overrides the
/// config's rotary settings (GGUF files carry them outside the config).
pub fn build(
    config: &ArchConfig,
    rope: Option<RopeSpec>,
    weights: &dyn WeightSource,
    device: &Device,
    config_path: &std::path::Path,
) -> Result<Box<dyn CausalLm>> {
    Ok(match config {
        ArchConfig::GptNeox(c) => {
            Box::new(gpt_neox::GptNeox::load(c, weights, device, config_path)?)
        }
        ArchConfig::Llama(c) => {
            let rope = match rope {
                Some(r) => r,
                None => c.rope(config_path)?,
            };
            Box::new(llama::Llama::load(c, rope, weights, device)?)
        }
    })
}
