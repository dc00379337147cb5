//! Rotary position embeddings in Hugging Face's rotate-half layout.
//!
//! Frequencies are computed the way transformers computes them (f32 exponent, f32 reciprocal,
//! f32 position × frequency products), so that angles match bit for bit where possible.

use burn::tensor::{Device, Tensor, TensorData};

use crate::config::{RopeScaling, RopeSpec};

/// Precomputed inverse frequencies for one model.
#[derive(Debug, Clone)]
pub struct Rotary {
    rotary_dim: usize,
    inv_freq: Vec<f32>,
}

impl Rotary {
    /// Frequencies for `spec` (`spec.rotary_dim` leading dimensions of each head rotate).
    pub fn new(spec: &RopeSpec) -> Self {
        let dim = spec.rotary_dim;
        let half = dim / 2;
        let mut inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let exponent = (2 * i) as f32 / dim as f32;
                let p = (spec.theta).powf(exponent as f64) as f32;
                1.0f32 / p
            })
            .collect();
        match &spec.scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => {
                let f = *factor as f32;
                inv_freq.iter_mut().for_each(|v| *v /= f);
            }
            RopeScaling::Factors(factors) => {
                for (v, f) in inv_freq.iter_mut().zip(factors) {
                    *v /= *f;
                }
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                // transformers' `_compute_llama3_parameters`, in f32 like its tensor ops.
                let factor = *factor as f32;
                let low = *low_freq_factor as f32;
                let high = *high_freq_factor as f32;
                let old_ctx = *original_max_position_embeddings as f32;
                let low_freq_wavelen = old_ctx / low;
                let high_freq_wavelen = old_ctx / high;
                for v in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f32::consts::PI / *v;
                    let scaled = if wavelen > low_freq_wavelen {
                        *v / factor
                    } else {
                        *v
                    };
                    let smooth = (old_ctx / wavelen - low) / (high - low);
                    let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
                    // transformers: ~(wavelen < high) * ~(wavelen > low); the wavelengths are finite.
                    let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                    *v = if is_medium { smoothed } else { scaled };
                }
            }
        }
        Rotary {
            rotary_dim: dim,
            inv_freq,
        }
    }

    /// Number of rotating dimensions per head.
    pub fn rotary_dim(&self) -> usize {
        self.rotary_dim
    }

    /// `(cos, sin)` tables of shape `[seq_len, rotary_dim]` for positions `0..seq_len`.
    pub fn tables(&self, seq_len: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let dim = self.rotary_dim;
        let (cos, sin) = self.host_tables(seq_len);
        (
            Tensor::from_data(TensorData::new(cos, [seq_len, dim]), device),
            Tensor::from_data(TensorData::new(sin, [seq_len, dim]), device),
        )
    }

    /// The tables of [`tables`](Self::tables) on the host, row-major `[seq_len, rotary_dim]`.
    pub fn host_tables(&self, seq_len: usize) -> (Vec<f32>, Vec<f32>) {
        let dim = self.rotary_dim;
        let half = dim / 2;
        let mut cos = vec![0f32; seq_len * dim];
        let mut sin = vec![0f32; seq_len * dim];
        for pos in 0..seq_len {
            for (i, &f) in self.inv_freq.iter().enumerate() {
                let angle = pos as f32 * f;
                let (s, c) = (angle as f64).sin_cos();
                // emb = cat(freqs, freqs): both halves use the same angle.
                cos[pos * dim + i] = c as f32;
                cos[pos * dim + half + i] = c as f32;
                sin[pos * dim + i] = s as f32;
                sin[pos * dim + half + i] = s as f32;
            }
        }
        (cos, sin)
    }

    /// Rotates the first `rotary_dim` dimensions of `x: [batch, heads, pos, head_dim]`:
    /// `x·cos + rotate_half(x)·sin`, leaving the rest unchanged.
    /// `cos` and `sin` are `[1 | batch, 1, pos, rotary_dim]` (see
    /// [`TokenLayout::rotary_tables`](super::TokenLayout::rotary_tables)).
    pub fn apply(&self, x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let [_, _, _, head_dim] = x.dims();
        let dim = self.rotary_dim;
        if dim == 0 {
            return x;
        }
        let half = dim / 2;
        let (rot, pass) = if dim < head_dim {
            (
                x.clone().narrow(3, 0, dim),
                Some(x.narrow(3, dim, head_dim - dim)),
            )
        } else {
            (x, None)
        };
        let x1 = rot.clone().narrow(3, 0, half);
        let x2 = rot.clone().narrow(3, half, half);
        let rotated_half = Tensor::cat(vec![x2.neg(), x1], 3);
        let out = rot * cos.clone() + rotated_half * sin.clone();
        match pass {
            Some(pass) => Tensor::cat(vec![out, pass], 3),
            None => out,
        }
    }
}
