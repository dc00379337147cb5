//! Reading checkpoint tensors into host f32 arrays, whatever the file format.
//!
//! Architectures ask for tensors by their Hugging Face names (`model.layers.0.mlp.gate_proj.weight`)
//! through [`WeightSource`]; each format translates: safetensors directly, GGUF through the name
//! table in [`gguf_names`] (which also undoes llama.cpp's Q/K row permutation).

pub mod gguf;
pub mod gguf_names;
pub mod safetensors;

use crate::error::{ModelError, Result};

/// A dense row-major f32 tensor on the host, as read from a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape, slowest dimension first (PyTorch order).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Transposes a 2-D tensor (`[r, c]` → `[c, r]`); used to store `Linear` weights as `[in, out]`.
    pub fn transposed(&self) -> HostTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = vec![0f32; r * c];
        // Blocked so that both reads and writes stay in cache.
        const B: usize = 32;
        for i0 in (0..r).step_by(B) {
            for j0 in (0..c).step_by(B) {
                for i in i0..(i0 + B).min(r) {
                    for j in j0..(j0 + B).min(c) {
                        out[j * r + i] = self.data[i * c + j];
                    }
                }
            }
        }
        HostTensor {
            shape: vec![c, r],
            data: out,
        }
    }
}

/// A checkpoint that can hand out tensors by Hugging Face name.
pub trait WeightSource {
    /// Where the tensors come from (a file or directory), for error messages.
    fn describe(&self) -> String;

    /// Whether the checkpoint has a tensor of this (HF) name.
    fn contains(&self, name: &str) -> bool;

    /// Reads and converts the tensor to f32.
    fn tensor(&self, name: &str) -> Result<HostTensor>;

    /// A short summary of the stored element types, e.g. `"bf16"` or `"Q4_1+F32+Q8_0"`.
    fn dtype_summary(&self) -> String;

    /// Reads the tensor and checks its shape.
    fn tensor_shaped(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        let t = self.tensor(name)?;
        if t.shape != expected {
            return Err(ModelError::ShapeMismatch {
                source_desc: self.describe(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }
}

/// Decodes little-endian IEEE half floats.
pub(crate) fn f16_bits_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Decodes little-endian bfloat16 values.
pub(crate) fn bf16_bits_to_f32(bits: u16) -> f32 {
    half::bf16::from_bits(bits).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_is_exact() {
        let t = HostTensor {
            shape: vec![3, 70],
            data: (0..210).map(|v| v as f32).collect(),
        };
        let tt = t.transposed();
        assert_eq!(tt.shape, vec![70, 3]);
        for i in 0..3 {
            for j in 0..70 {
                assert_eq!(tt.data[j * 3 + i], t.data[i * 70 + j]);
            }
        }
        assert_eq!(tt.transposed(), t);
    }
}
