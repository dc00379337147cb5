//! GGUF checkpoints seen through Hugging Face tensor names.
//!
//! One table per GGUF architecture maps llama.cpp names to HF names. llama.cpp's converter
//! permutes the rows of `attn_q`/`attn_k` of `llama`-architecture models so that its
//! interleaved-pair RoPE works; negdiff's Llama uses HF's rotate-half RoPE, so those rows are put
//! back here, at load, and nowhere else.

use std::collections::{BTreeMap, HashMap};

use super::gguf::GgufFile;
use super::{HostTensor, WeightSource};
use crate::error::{ModelError, Result};

/// How one GGUF tensor becomes one HF tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixup {
    /// Same values, same (reversed-dims) shape.
    None,
    /// Undo llama.cpp's interleaved-RoPE row permutation, with this many heads.
    UnpermuteRows { n_heads: usize },
}

/// Per-layer name pairs `(gguf suffix, hf suffix)` for the Llama family.
const LLAMA_LAYER_NAMES: &[(&str, &str)] = &[
    ("attn_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.bias", "self_attn.v_proj.bias"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// Model-level name pairs for the Llama family.
const LLAMA_GLOBAL_NAMES: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// A GGUF file answering to HF tensor names.
pub struct GgufWeights<'a> {
    file: &'a GgufFile,
    /// HF name → (GGUF name, fixup).
    table: HashMap<String, (String, Fixup)>,
}

impl<'a> GgufWeights<'a> {
    /// The Llama-family view (GGUF architectures `llama` and `qwen2`): `n_heads`/`n_kv_heads`
    /// are needed to undo the Q/K permutation, which only `llama` files carry.
    pub fn llama(file: &'a GgufFile, n_layers: usize, n_heads: usize, n_kv_heads: usize) -> Self {
        let permuted = file
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .is_some_and(|a| a == "llama");
        let mut table = HashMap::new();
        for (g, h) in LLAMA_GLOBAL_NAMES {
            table.insert(h.to_string(), (g.to_string(), Fixup::None));
        }
        for layer in 0..n_layers {
            for (g, h) in LLAMA_LAYER_NAMES {
                let fix = match (*g, permuted) {
                    ("attn_q.weight" | "attn_q.bias", true) => Fixup::UnpermuteRows { n_heads },
                    ("attn_k.weight" | "attn_k.bias", true) => Fixup::UnpermuteRows {
                        n_heads: n_kv_heads,
                    },
                    _ => Fixup::None,
                };
                table.insert(
                    format!("model.layers.{layer}.{h}"),
                    (format!("blk.{layer}.{g}"), fix),
                );
            }
        }
        GgufWeights { file, table }
    }

    fn lookup(&self, name: &str) -> Option<&(String, Fixup)> {
        self.table
            .get(name)
            .filter(|(g, _)| self.file.info(g).is_some())
    }
}

/// Puts back the rows llama.cpp permuted: GGUF row `h*hd + 2i + j` holds HF row
/// `h*hd + j*hd/2 + i` (for `j` in {0, 1}, `i` < hd/2).
fn unpermute_rows(t: &HostTensor, n_heads: usize) -> Option<HostTensor> {
    let rows = *t.shape.first()?;
    if n_heads == 0 || !rows.is_multiple_of(n_heads) || !(rows / n_heads).is_multiple_of(2) {
        return None;
    }
    let cols: usize = t.shape[1..].iter().product();
    let head_dim = rows / n_heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; t.data.len()];
    for h in 0..n_heads {
        for i in 0..half {
            for j in 0..2 {
                let src = h * head_dim + 2 * i + j;
                let dst = h * head_dim + j * half + i;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&t.data[src * cols..(src + 1) * cols]);
            }
        }
    }
    Some(HostTensor {
        shape: t.shape.clone(),
        data: out,
    })
}

impl WeightSource for GgufWeights<'_> {
    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }

    fn contains(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }

    fn tensor(&self, name: &str) -> Result<HostTensor> {
        let (gguf_name, fix) = self.lookup(name).ok_or_else(|| ModelError::MissingTensor {
            source_desc: self.describe(),
            name: match self.table.get(name) {
                Some((g, _)) => format!("{name}` (GGUF `{g}`"),
                None => name.to_string(),
            },
        })?;
        let t = self.file.tensor_f32(gguf_name)?;
        match *fix {
            Fixup::None => Ok(t),
            Fixup::UnpermuteRows { n_heads } => {
                unpermute_rows(&t, n_heads).ok_or_else(|| ModelError::Gguf {
                    path: self.file.path().to_path_buf(),
                    message: format!(
                        "tensor `{gguf_name}` with shape {:?} cannot be split into {n_heads} heads of even size",
                        t.shape
                    ),
                })
            }
        }
    }

    fn dtype_summary(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for t in &self.file.tensors {
            *counts.entry(t.ggml_type.name()).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(k, v)| format!("{k}x{v}"))
            .collect::<Vec<_>>()
            .join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's permutation, written the way its converter does it, to check we invert it.
    fn permute_like_llama_cpp(t: &HostTensor, n_heads: usize) -> HostTensor {
        let rows = t.shape[0];
        let cols: usize = t.shape[1..].iter().product();
        let hd = rows / n_heads;
        // reshape(n_heads, 2, hd/2, cols).swapaxes(1, 2): new row (h, i, j) = old row (h, j, i)
        let mut out = vec![0f32; t.data.len()];
        for h in 0..n_heads {
            for i in 0..hd / 2 {
                for j in 0..2 {
                    let new_row = h * hd + i * 2 + j;
                    let old_row = h * hd + j * (hd / 2) + i;
                    out[new_row * cols..(new_row + 1) * cols]
                        .copy_from_slice(&t.data[old_row * cols..(old_row + 1) * cols]);
                }
            }
        }
        HostTensor {
            shape: t.shape.clone(),
            data: out,
        }
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        for (heads, hd, cols) in [(3, 8, 5), (1, 2, 1), (4, 64, 3)] {
            let t = HostTensor {
                shape: vec![heads * hd, cols],
                data: (0..heads * hd * cols).map(|v| v as f32).collect(),
            };
            let p = permute_like_llama_cpp(&t, heads);
            // With head_dim 2 the permutation is the identity.
            if hd > 2 {
                assert_ne!(p, t);
            }
            assert_eq!(unpermute_rows(&p, heads).unwrap(), t);
        }
        // 1-D (bias) tensors too.
        let b = HostTensor {
            shape: vec![16],
            data: (0..16).map(|v| v as f32).collect(),
        };
        assert_eq!(
            unpermute_rows(&permute_like_llama_cpp(&b, 2), 2).unwrap(),
            b
        );
        assert!(unpermute_rows(&b, 3).is_none());
    }
}
