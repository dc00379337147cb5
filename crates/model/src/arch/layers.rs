//! Building blocks shared by the architectures: linear maps, norms, activations.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData, activation};

use crate::config::Activation;
use crate::error::{ModelError, Result};
use crate::fastmath;
use crate::gemm::PackedMatrix;
use crate::weights::{HostTensor, WeightSource};

/// Copies a host tensor to the device.
pub fn upload<const D: usize>(t: HostTensor, device: &Device) -> Tensor<D> {
    let shape: [usize; D] = std::array::from_fn(|i| t.shape.get(i).copied().unwrap_or(1));
    Tensor::from_data(TensorData::new(t.data, shape), device)
}

/// `y = x Wᵀ + b`: one linear map, or several of the same input computed in one pass
/// (*segments*: the query, key and value projections; gate and up), each with its own output.
///
/// On the CPU device the weights are packed once for [`crate::gemm`] (faster than burn's CPU
/// matmul, which re-packs them on every call); on other devices `W` is stored transposed
/// (`[in, Σ out]`) so that burn's matmul reads it row-major.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: LinearWeight,
    /// Biases of all segments, concatenated.
    bias: Option<LinearBias>,
    d_in: usize,
    widths: Vec<usize>,
}

#[derive(Debug, Clone)]
enum LinearWeight {
    Device(Box<Tensor<2>>),
    Packed(Arc<PackedMatrix>),
}

#[derive(Debug, Clone)]
enum LinearBias {
    Device(Box<Tensor<1>>),
    Host(Arc<Vec<f32>>),
}

impl Linear {
    /// Reads `{prefix}.weight` (`[d_out, d_in]`, PyTorch layout) and, if `bias`,
    /// `{prefix}.bias`.
    pub fn load(
        w: &dyn WeightSource,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        device: &Device,
    ) -> Result<Self> {
        Self::load_fused(w, &[(prefix, d_out)], d_in, bias, device)
    }

    /// Reads several maps of the same input (`{prefix}.weight`, `[d_out, d_in]` each, and
    /// `{prefix}.bias` if `bias`) into one layer whose [`forward_parts`](Self::forward_parts)
    /// returns one output per prefix.
    pub fn load_fused(
        w: &dyn WeightSource,
        parts: &[(&str, usize)],
        d_in: usize,
        bias: bool,
        device: &Device,
    ) -> Result<Self> {
        let mut weights = Vec::with_capacity(parts.len());
        let mut biases = Vec::with_capacity(parts.len());
        for &(prefix, d_out) in parts {
            weights.push(w.tensor_shaped(&format!("{prefix}.weight"), &[d_out, d_in])?);
            if bias {
                biases.push(w.tensor_shaped(&format!("{prefix}.bias"), &[d_out])?);
            }
        }
        Self::from_host_parts(weights, bias.then_some(biases), device, packs_on(device))
    }

    /// Builds the layer from a `[d_out, d_in]` weight and optional bias already on the host.
    pub fn from_host(
        weight: HostTensor,
        bias: Option<HostTensor>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_host_parts(
            vec![weight],
            bias.map(|b| vec![b]),
            device,
            packs_on(device),
        )
    }

    /// Builds a fused layer from `[d_out_i, d_in]` weights (and biases) on the host, packed
    /// for the host kernel if `pack` (CPU device only) or as a device tensor.
    fn from_host_parts(
        weights: Vec<HostTensor>,
        biases: Option<Vec<HostTensor>>,
        device: &Device,
        pack: bool,
    ) -> Result<Self> {
        let shape_error =
            || ModelError::InvalidInput("linear layer with inconsistent shapes".into());
        let d_in = *weights
            .first()
            .and_then(|w| w.shape.get(1))
            .ok_or_else(shape_error)?;
        if weights
            .iter()
            .any(|w| w.shape.len() != 2 || w.shape[1] != d_in)
        {
            return Err(shape_error());
        }
        let widths: Vec<usize> = weights.iter().map(|w| w.shape[0]).collect();
        let bias: Option<Vec<f32>> = biases.map(|b| b.into_iter().flat_map(|t| t.data).collect());
        if bias
            .as_ref()
            .is_some_and(|b| b.len() != widths.iter().sum::<usize>())
        {
            return Err(shape_error());
        }
        let total: usize = widths.iter().sum();
        if pack {
            let segments: Vec<(&[f32], usize)> =
                weights.iter().map(|w| (&w.data[..], w.shape[0])).collect();
            Ok(Linear {
                weight: LinearWeight::Packed(Arc::new(PackedMatrix::pack(d_in, &segments)?)),
                bias: bias.map(|b| LinearBias::Host(Arc::new(b))),
                d_in,
                widths,
            })
        } else {
            let mut data = Vec::with_capacity(d_in * total);
            for w in weights {
                data.extend(w.data);
            }
            let stacked = HostTensor {
                shape: vec![total, d_in],
                data,
            };
            Ok(Linear {
                weight: LinearWeight::Device(Box::new(upload(stacked.transposed(), device))),
                bias: bias.map(|b| {
                    LinearBias::Device(Box::new(Tensor::from_data(
                        TensorData::new(b, [total]),
                        device,
                    )))
                }),
                d_in,
                widths,
            })
        }
    }

    /// Applies the map to `[batch, pos, d_in]` (all segments, concatenated).
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>> {
        let mut parts = self.forward_parts(x)?;
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Tensor::cat(parts, 2)
        })
    }

    /// Applies the map to `[batch, pos, d_in]`, one output per segment.
    pub fn forward_parts(&self, x: Tensor<3>) -> Result<Vec<Tensor<3>>> {
        let [b, t, _] = x.dims();
        Ok(self
            .forward_rows(x.reshape([b * t, self.d_in]))?
            .into_iter()
            .zip(&self.widths)
            .map(|(y, &w)| y.reshape([b, t, w]))
            .collect())
    }

    /// Applies the map to `[rows, d_in]` (all segments, concatenated).
    pub fn forward_2d(&self, x: Tensor<2>) -> Result<Tensor<2>> {
        let mut parts = self.forward_rows(x)?;
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Tensor::cat(parts, 1)
        })
    }

    /// `[rows, d_in]` → one `[rows, width]` output per segment.
    fn forward_rows(&self, x: Tensor<2>) -> Result<Vec<Tensor<2>>> {
        let [rows, _] = x.dims();
        match &self.weight {
            LinearWeight::Device(w) => {
                let mut y = x.matmul(w.as_ref().clone());
                if let Some(LinearBias::Device(bias)) = &self.bias {
                    y = y + bias.as_ref().clone().unsqueeze_dim(0);
                }
                if self.widths.len() == 1 {
                    return Ok(vec![y]);
                }
                let mut start = 0;
                Ok(self
                    .widths
                    .iter()
                    .map(|&w| {
                        start += w;
                        y.clone().narrow(1, start - w, w)
                    })
                    .collect())
            }
            LinearWeight::Packed(_) => {
                let device = x.device();
                let data = read_host(x)?;
                Ok(self
                    .forward_host(host_slice(&data)?, rows)?
                    .into_iter()
                    .zip(&self.widths)
                    .map(|(o, &w)| Tensor::from_data(TensorData::new(o, [rows, w]), &device))
                    .collect())
            }
        }
    }

    /// Whether the weights are packed for the host kernel (CPU device), so that
    /// [`forward_host`](Self::forward_host) is available.
    pub fn is_packed(&self) -> bool {
        matches!(self.weight, LinearWeight::Packed(_))
    }

    /// `[rows, d_in]` row-major on the host → one `[rows, width]` buffer per segment, with the
    /// packed host kernel. An error for layers that are not [packed](Self::is_packed).
    pub fn forward_host(&self, x: &[f32], rows: usize) -> Result<Vec<Vec<f32>>> {
        let LinearWeight::Packed(packed) = &self.weight else {
            return Err(ModelError::InvalidInput(
                "forward_host on a linear layer stored on a device".into(),
            ));
        };
        let mut outs = packed.matmul_new(x, rows)?;
        if let Some(LinearBias::Host(bias)) = &self.bias {
            let mut start = 0;
            for (out, &w) in outs.iter_mut().zip(&self.widths) {
                let b = &bias[start..start + w];
                for row in out.chunks_exact_mut(w) {
                    row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
                }
                start += w;
            }
        }
        Ok(outs)
    }

    /// `log_softmax(x Wᵀ + b)[row, col]` for each `(row, col)` in `picks`, over all output
    /// columns, from `[rows, d_in]` row-major on the host, without storing the outputs (see
    /// [`PackedMatrix::log_softmax_at`]). An error for layers that are not
    /// [packed](Self::is_packed).
    pub fn log_softmax_at_host(
        &self,
        x: &[f32],
        rows: usize,
        picks: &[(usize, usize)],
    ) -> Result<Vec<f32>> {
        let LinearWeight::Packed(packed) = &self.weight else {
            return Err(ModelError::InvalidInput(
                "log_softmax_at_host on a linear layer stored on a device".into(),
            ));
        };
        let bias = match &self.bias {
            Some(LinearBias::Host(b)) => Some(&b[..]),
            _ => None,
        };
        packed.log_softmax_at(x, rows, bias, picks)
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        let out: usize = self.widths.iter().sum();
        self.d_in * out + if self.bias.is_some() { out } else { 0 }
    }

    /// Output width (all segments).
    pub fn d_out(&self) -> usize {
        self.widths.iter().sum()
    }
}

/// Reads a tensor's values to the host as f32 (no copy for an unshared contiguous CPU tensor).
pub fn read_host<const D: usize>(x: Tensor<D>) -> Result<TensorData> {
    x.try_into_data_as::<f32>()
        .map_err(|e| ModelError::Readback(e.to_string()))
}

/// The f32 values of data read by [`read_host`].
pub fn host_slice(data: &TensorData) -> Result<&[f32]> {
    data.as_slice::<f32>()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))
}

/// Whether linear layers on `device` use the packed host kernel ([`crate::gemm`]), and with it
/// the host attention and MLP: the CPU device, unless `NEGDIFF_BURN_KERNELS` is set (then the
/// CPU runs burn's own ops, the path the GPU backends take: for comparisons and for testing that
/// path against transformers without a GPU).
fn packs_on(device: &Device) -> bool {
    *device == Device::flex() && std::env::var_os("NEGDIFF_BURN_KERNELS").is_none()
}

/// LayerNorm over the last dimension with biased variance, as `torch.nn.LayerNorm`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
    width: usize,
}

impl LayerNorm {
    /// Reads `{prefix}.weight` and `{prefix}.bias`.
    pub fn load(
        w: &dyn WeightSource,
        prefix: &str,
        width: usize,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        Ok(LayerNorm {
            weight: upload(
                w.tensor_shaped(&format!("{prefix}.weight"), &[width])?,
                device,
            ),
            bias: upload(
                w.tensor_shaped(&format!("{prefix}.bias"), &[width])?,
                device,
            ),
            eps,
            width,
        })
    }

    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dimension.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let var = centered.clone().square().mean_dim(2);
        let normed = centered / var.add_scalar(self.eps).sqrt();
        normed * self.weight.clone().unsqueeze::<3>() + self.bias.clone().unsqueeze::<3>()
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        2 * self.width
    }
}

/// RMSNorm, as HF `LlamaRMSNorm`: `weight * x / sqrt(mean(x²) + eps)`.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor<1>,
    eps: f64,
    width: usize,
}

impl RmsNorm {
    /// Reads `{prefix}.weight`.
    pub fn load(
        w: &dyn WeightSource,
        prefix: &str,
        width: usize,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        Ok(RmsNorm {
            weight: upload(
                w.tensor_shaped(&format!("{prefix}.weight"), &[width])?,
                device,
            ),
            eps,
            width,
        })
    }

    /// Normalises the last dimension of `[batch, pos, width]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let inv_rms = x
            .clone()
            .square()
            .mean_dim(2)
            .add_scalar(self.eps)
            .sqrt()
            .recip();
        x * inv_rms * self.weight.clone().unsqueeze::<3>()
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.width
    }
}

/// Applies an MLP nonlinearity elementwise.
pub fn activate(x: Tensor<3>, act: Activation) -> Tensor<3> {
    match act {
        Activation::Gelu => activation::gelu(x),
        Activation::GeluTanh => activation::gelu_approximate(x),
        Activation::Silu => silu(x),
        Activation::Relu => activation::relu(x),
    }
}

/// SiLU; on the CPU device the vectorised host kernel of [`crate::fastmath`] (burn's CPU
/// backend calls scalar `expf` per element), elsewhere burn's.
fn silu(x: Tensor<3>) -> Tensor<3> {
    let device = x.device();
    if device != Device::flex() {
        return activation::silu(x);
    }
    let shape = x.dims();
    // Reading a CPU tensor cannot fail; should it ever, burn's own SiLU on a copy still
    // gives the right values.
    match x.clone().try_into_vec_as::<f32>() {
        Ok(mut values) => {
            fastmath::silu_in_place(&mut values);
            Tensor::from_data(TensorData::new(values, shape), &device)
        }
        Err(_) => activation::silu(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn host(shape: &[usize], seed: usize) -> HostTensor {
        let n = shape.iter().product::<usize>();
        HostTensor {
            shape: shape.to_vec(),
            data: (0..n)
                .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0) - 1.0)
                .collect(),
        }
    }

    #[test]
    fn packed_and_device_linear_agree_with_segments_and_bias() {
        let dev = Device::flex();
        let weights = || vec![host(&[40, 24], 1), host(&[8, 24], 2), host(&[33, 24], 3)];
        let biases = || Some(vec![host(&[40], 4), host(&[8], 5), host(&[33], 6)]);
        let packed = Linear::from_host_parts(weights(), biases(), &dev, true).unwrap();
        let device = Linear::from_host_parts(weights(), biases(), &dev, false).unwrap();
        assert_eq!(packed.n_params(), 81 * 24 + 81);
        let x = Tensor::<3>::random([3, 5, 24], Distribution::Normal(0.0, 1.0), &dev);
        let a = packed.forward_parts(x.clone()).unwrap();
        let b = device.forward_parts(x.clone()).unwrap();
        assert_eq!(a.len(), 3);
        for (a, b) in a.into_iter().zip(b) {
            assert_eq!(a.dims(), b.dims());
            let a: Vec<f32> = a.try_into_vec_as().unwrap();
            let b: Vec<f32> = b.try_into_vec_as().unwrap();
            let err = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "{err}");
        }
        let whole: Vec<f32> = packed.forward(x).unwrap().try_into_vec_as().unwrap();
        assert_eq!(whole.len(), 3 * 5 * 81);
        let rows: Vec<f32> = device
            .forward_2d(Tensor::<2>::random([2, 24], Distribution::Default, &dev))
            .unwrap()
            .try_into_vec_as()
            .unwrap();
        assert_eq!(rows.len(), 2 * 81);
    }

    #[test]
    fn inconsistent_linear_shapes_are_errors() {
        let dev = Device::flex();
        for pack in [true, false] {
            let bad = vec![host(&[4, 3], 1), host(&[4, 2], 2)];
            assert!(Linear::from_host_parts(bad, None, &dev, pack).is_err());
            let bias = Some(vec![host(&[5], 1)]);
            assert!(Linear::from_host_parts(vec![host(&[4, 3], 1)], bias, &dev, pack).is_err());
        }
    }
}
