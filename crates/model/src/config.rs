//! Model configurations, mirroring Hugging Face `config.json` (serde defaults are HF's defaults).
//!
//! Two generations of HF configs exist in the wild: older ones (`rotary_pct`,
//! `rotary_emb_base`, `rope_theta`, `rope_scaling`) and transformers 5's `rope_parameters`
//! object. Both are read; [`RopeSpec`] is the resolved form the architectures use.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::weights::gguf::GgufFile;

/// The elementwise nonlinearity of an MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU, `x Φ(x)` (HF `gelu`).
    Gelu,
    /// Tanh-approximated GELU (HF `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// SiLU / swish, `x σ(x)` (HF `silu`, `swish`).
    Silu,
    /// ReLU.
    Relu,
}

impl Activation {
    /// Parses an HF `hidden_act` value.
    pub fn from_hf(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "relu" => Activation::Relu,
            _ => return None,
        })
    }

    /// The name printed by `negdiff info`.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Silu => "silu",
            Activation::Relu => "relu",
        }
    }
}

/// How rotary frequencies are adjusted beyond the plain `1 / theta^(2i/d)`.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// No adjustment.
    None,
    /// Positions divided by `factor` (HF `linear`).
    Linear {
        /// Divisor.
        factor: f64,
    },
    /// Llama 3.1's piecewise frequency scaling (HF `llama3`).
    Llama3 {
        /// Overall factor.
        factor: f64,
        /// Low-frequency factor.
        low_freq_factor: f64,
        /// High-frequency factor.
        high_freq_factor: f64,
        /// Context length the base model was trained at.
        original_max_position_embeddings: f64,
    },
    /// Per-frequency divisors stored in a GGUF `rope_freqs.weight` tensor (llama.cpp's form of
    /// the Llama 3 scaling).
    Factors(Vec<f32>),
}

/// Resolved rotary-embedding settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeSpec {
    /// Base `theta`.
    pub theta: f64,
    /// Number of leading head dimensions that rotate (GPT-NeoX `rotary_pct * head_dim`).
    pub rotary_dim: usize,
    /// Frequency adjustment.
    pub scaling: RopeScaling,
}

fn default_gelu() -> String {
    "gelu".into()
}
fn default_silu() -> String {
    "silu".into()
}
fn default_true() -> bool {
    true
}
fn default_2048() -> usize {
    2048
}
fn default_ln_eps() -> f64 {
    1e-5
}
fn default_rms_eps() -> f64 {
    1e-6
}

/// HF `GPTNeoXConfig` (Pythia).
#[derive(Debug, Clone, Deserialize)]
pub struct GptNeoxConfig {
    /// Vocabulary size (rows of `embed_in`).
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// MLP nonlinearity.
    #[serde(default = "default_gelu")]
    pub hidden_act: String,
    /// Fraction of each head that rotates (older configs).
    #[serde(default)]
    pub rotary_pct: Option<f64>,
    /// Same, transformers 5 name.
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    /// RoPE base (older configs).
    #[serde(default)]
    pub rotary_emb_base: Option<f64>,
    /// RoPE base (some configs).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE scaling (older configs).
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// RoPE settings (transformers 5).
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    /// Context length.
    #[serde(default = "default_2048")]
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Attention and MLP read the same input and add into the residual together.
    #[serde(default = "default_true")]
    pub use_parallel_residual: bool,
    /// Unembedding shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on the attention projections.
    #[serde(default = "default_true")]
    pub attention_bias: bool,
}

/// HF `LlamaConfig`, also read for `mistral` and `qwen2` (same computation, different defaults).
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    /// `llama`, `mistral` or `qwen2`.
    #[serde(default)]
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Gate nonlinearity.
    #[serde(default = "default_silu")]
    pub hidden_act: String,
    /// Context length.
    #[serde(default = "default_2048")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE scaling (older configs).
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// RoPE settings (transformers 5).
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    /// Biases on q/k/v/o projections (Llama); Qwen2 always has q/k/v biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Unembedding shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Mistral's sliding attention window.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Qwen2: whether the sliding window is used at all.
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
}

/// A parsed configuration of any supported architecture.
#[derive(Debug, Clone)]
pub enum ArchConfig {
    /// GPT-NeoX / Pythia.
    GptNeox(GptNeoxConfig),
    /// Llama, Mistral, Qwen2, SmolLM.
    Llama(LlamaConfig),
}

/// `model_type` values negdiff loads.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["gpt_neox", "llama", "mistral", "qwen2"];

fn config_err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl ArchConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                what: "config.json".into(),
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses the text of a `config.json` (`path` is used in messages).
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| config_err(path, e.to_string()))?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| config_err(path, "no `model_type` field"))?
            .to_string();
        let cfg = match model_type.as_str() {
            "gpt_neox" => ArchConfig::GptNeox(
                serde_json::from_value(value).map_err(|e| config_err(path, e.to_string()))?,
            ),
            "llama" | "mistral" | "qwen2" => ArchConfig::Llama(
                serde_json::from_value(value).map_err(|e| config_err(path, e.to_string()))?,
            ),
            other => {
                return Err(ModelError::UnsupportedModelType {
                    path: path.to_path_buf(),
                    model_type: other.to_string(),
                    supported: SUPPORTED_MODEL_TYPES.join(", "),
                });
            }
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The HF `model_type`.
    pub fn model_type(&self) -> &str {
        match self {
            ArchConfig::GptNeox(_) => "gpt_neox",
            ArchConfig::Llama(c) => {
                if c.model_type.is_empty() {
                    "llama"
                } else {
                    &c.model_type
                }
            }
        }
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let (hidden, heads, layers, act) = match self {
            ArchConfig::GptNeox(c) => (
                c.hidden_size,
                c.num_attention_heads,
                c.num_hidden_layers,
                &c.hidden_act,
            ),
            ArchConfig::Llama(c) => (
                c.hidden_size,
                c.num_attention_heads,
                c.num_hidden_layers,
                &c.hidden_act,
            ),
        };
        if hidden == 0 || heads == 0 || layers == 0 {
            return Err(config_err(
                path,
                "hidden_size, num_attention_heads and num_hidden_layers must be positive",
            ));
        }
        if Activation::from_hf(act).is_none() {
            return Err(ModelError::UnsupportedSetting {
                path: path.to_path_buf(),
                setting: "hidden_act".into(),
                value: act.clone(),
                reason:
                    "supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish, relu"
                        .into(),
            });
        }
        match self {
            ArchConfig::GptNeox(c) => {
                if c.hidden_size % c.num_attention_heads != 0 {
                    return Err(config_err(
                        path,
                        "hidden_size is not a multiple of num_attention_heads",
                    ));
                }
                c.rope(path)?;
            }
            ArchConfig::Llama(c) => {
                let kv = c.kv_heads();
                if kv == 0 || c.num_attention_heads % kv != 0 {
                    return Err(config_err(
                        path,
                        format!(
                            "num_attention_heads {} is not a multiple of num_key_value_heads {kv}",
                            c.num_attention_heads
                        ),
                    ));
                }
                if c.head_dim.is_none() && c.hidden_size % c.num_attention_heads != 0 {
                    return Err(config_err(
                        path,
                        "hidden_size is not a multiple of num_attention_heads and no head_dim is given",
                    ));
                }
                if c.head_dim() % 2 != 0 {
                    return Err(config_err(path, "head_dim must be even for RoPE"));
                }
                c.rope(path)?;
            }
        }
        Ok(())
    }
}

/// Reads a rope-scaling object (`rope_scaling` or `rope_parameters`) into [`RopeScaling`].
fn parse_rope_scaling(v: Option<&Value>, path: &Path) -> Result<RopeScaling> {
    let Some(obj) = v.and_then(|v| v.as_object()) else {
        return Ok(RopeScaling::None);
    };
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let num = |key: &str| -> Result<f64> {
        obj.get(key).and_then(|x| x.as_f64()).ok_or_else(|| {
            config_err(
                path,
                format!("rope scaling `{kind}` needs a numeric `{key}`"),
            )
        })
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: num("factor")?,
        }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        }),
        other => Err(ModelError::UnsupportedSetting {
            path: path.to_path_buf(),
            setting: "rope_scaling.rope_type".into(),
            value: other.to_string(),
            reason: "supported: default, linear, llama3".into(),
        }),
    }
}

fn theta_from_parameters(p: Option<&Value>) -> Option<f64> {
    p.and_then(|p| p.get("rope_theta")).and_then(|t| t.as_f64())
}

impl GptNeoxConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The resolved rotary settings.
    pub fn rope(&self, path: &Path) -> Result<RopeSpec> {
        let pct = self
            .partial_rotary_factor
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("partial_rotary_factor"))
                    .and_then(|v| v.as_f64())
            })
            .or(self.rotary_pct)
            .unwrap_or(0.25);
        if !(0.0..=1.0).contains(&pct) {
            return Err(ModelError::UnsupportedSetting {
                path: path.to_path_buf(),
                setting: "rotary_pct".into(),
                value: pct.to_string(),
                reason: "must lie in [0, 1]".into(),
            });
        }
        let theta = theta_from_parameters(self.rope_parameters.as_ref())
            .or(self.rope_theta)
            .or(self.rotary_emb_base)
            .unwrap_or(10000.0);
        // HF: int(head_dim * rotary_pct)
        let rotary_dim = (self.head_dim() as f64 * pct) as usize;
        let scaling = parse_rope_scaling(
            self.rope_parameters.as_ref().or(self.rope_scaling.as_ref()),
            path,
        )?;
        Ok(RopeSpec {
            theta,
            rotary_dim,
            scaling,
        })
    }
}

impl LlamaConfig {
    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether q/k/v projections carry biases.
    pub fn qkv_bias(&self) -> bool {
        self.model_type == "qwen2" || self.attention_bias
    }

    /// Whether the output projection carries a bias (Llama's `attention_bias`; never for Qwen2).
    pub fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias
    }

    /// The sliding window that applies, if any: sequences longer than it would need windowed
    /// attention, which negdiff does not implement.
    pub fn effective_sliding_window(&self) -> Option<usize> {
        match self.model_type.as_str() {
            "mistral" => self.sliding_window,
            "qwen2" if self.use_sliding_window == Some(true) => self.sliding_window,
            _ => None,
        }
    }

    /// The resolved rotary settings.
    pub fn rope(&self, path: &Path) -> Result<RopeSpec> {
        let theta = theta_from_parameters(self.rope_parameters.as_ref())
            .or(self.rope_theta)
            .unwrap_or(10000.0);
        let scaling = parse_rope_scaling(
            self.rope_parameters.as_ref().or(self.rope_scaling.as_ref()),
            path,
        )?;
        Ok(RopeSpec {
            theta,
            rotary_dim: self.head_dim(),
            scaling,
        })
    }

    /// Builds the config from a GGUF file's `{arch}.*` metadata (architectures `llama` and
    /// `qwen2`). Returns the config and, when the file carries `rope_freqs.weight`, the rope spec
    /// with those per-frequency factors.
    pub fn from_gguf(file: &GgufFile) -> Result<(LlamaConfig, RopeSpec)> {
        let path: PathBuf = file.path().to_path_buf();
        let arch = file
            .require("general.architecture")?
            .as_str()
            .unwrap_or_default()
            .to_string();
        if arch != "llama" && arch != "qwen2" {
            return Err(ModelError::UnsupportedModelType {
                path,
                model_type: format!("{arch} (GGUF general.architecture)"),
                supported: "llama, qwen2".into(),
            });
        }
        let key = |k: &str| format!("{arch}.{k}");
        let usize_key = |k: &str| -> Result<usize> { Ok(file.require_u64(&key(k))? as usize) };
        let hidden = usize_key("embedding_length")?;
        let heads = usize_key("attention.head_count")?;
        let kv = match file.get(&key("attention.head_count_kv")) {
            Some(v) => v.as_u64().ok_or_else(|| ModelError::Gguf {
                path: path.clone(),
                message: format!("{} should be an integer", key("attention.head_count_kv")),
            })? as usize,
            None => heads,
        };
        let eps = file
            .require(&key("attention.layer_norm_rms_epsilon"))?
            .as_f64()
            .ok_or_else(|| ModelError::Gguf {
                path: path.clone(),
                message: "layer_norm_rms_epsilon is not a number".into(),
            })?;
        let theta = file
            .get(&key("rope.freq_base"))
            .and_then(|v| v.as_f64())
            .unwrap_or(10000.0);
        let vocab = match file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
            Some(tokens) => tokens.len(),
            None => file
                .info("token_embd.weight")
                .and_then(|t| t.dims.get(1).copied())
                .ok_or_else(|| ModelError::Gguf {
                    path: path.clone(),
                    message: "cannot tell the vocabulary size (no tokenizer.ggml.tokens)".into(),
                })? as usize,
        };
        if heads == 0 || kv == 0 || hidden % heads != 0 {
            return Err(ModelError::Gguf {
                path,
                message: format!(
                    "inconsistent head counts: embedding {hidden}, heads {heads}, kv heads {kv}"
                ),
            });
        }
        let head_dim = match file.get(&key("attention.key_length")) {
            Some(v) => v.as_u64().unwrap_or(0) as usize,
            None => hidden / heads,
        };
        if let Some(rot) = file
            .get(&key("rope.dimension_count"))
            .and_then(|v| v.as_u64())
            && rot as usize != head_dim
        {
            return Err(ModelError::UnsupportedSetting {
                path,
                setting: key("rope.dimension_count"),
                value: rot.to_string(),
                reason: format!(
                    "partial rotary in a Llama GGUF (head_dim {head_dim}) is not supported"
                ),
            });
        }
        if let Some(kind) = file.get(&key("rope.scaling.type")).and_then(|v| v.as_str())
            && kind != "none"
        {
            return Err(ModelError::UnsupportedSetting {
                path,
                setting: key("rope.scaling.type"),
                value: kind.to_string(),
                reason: "GGUF rope scaling other than rope_freqs is not supported".into(),
            });
        }
        let cfg = LlamaConfig {
            model_type: arch.clone(),
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: usize_key("feed_forward_length")?,
            num_hidden_layers: usize_key("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: Some(kv),
            head_dim: Some(head_dim),
            hidden_act: "silu".into(),
            max_position_embeddings: file
                .get(&key("context_length"))
                .and_then(|v| v.as_u64())
                .unwrap_or(2048) as usize,
            rms_norm_eps: eps,
            rope_theta: Some(theta),
            rope_scaling: None,
            rope_parameters: None,
            attention_bias: arch == "llama" && file.info("blk.0.attn_q.bias").is_some(),
            mlp_bias: false,
            tie_word_embeddings: file.info("output.weight").is_none(),
            sliding_window: None,
            use_sliding_window: None,
        };
        let scaling = if file.info("rope_freqs.weight").is_some() {
            let f = file.tensor_f32("rope_freqs.weight")?;
            if f.len() != head_dim / 2 {
                return Err(ModelError::ShapeMismatch {
                    source_desc: file.path().display().to_string(),
                    name: "rope_freqs.weight".into(),
                    expected: vec![head_dim / 2],
                    found: f.shape,
                });
            }
            RopeScaling::Factors(f.data)
        } else {
            RopeScaling::None
        };
        let rope = RopeSpec {
            theta,
            rotary_dim: head_dim,
            scaling,
        };
        Ok((cfg, rope))
    }
}
