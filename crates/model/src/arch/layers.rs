//! Building blocks shared by the architectures: linear maps, norms, activations.

use burn::tensor::{Device, Tensor, TensorData, activation};

use crate::config::Activation;
use crate::error::Result;
use crate::fastmath;
use crate::weights::{HostTensor, WeightSource};

/// Copies a host tensor to the device.
pub fn upload<const D: usize>(t: HostTensor, device: &Device) -> Tensor<D> {
    let shape: [usize; D] = std::array::from_fn(|i| t.shape.get(i).copied().unwrap_or(1));
    Tensor::from_data(TensorData::new(t.data, shape), device)
}

/// `y = x Wᵀ + b`, with `W` stored transposed (`[in, out]`) so the matmul reads it row-major.
#[derive(Debug, Clone)]
pub struct Linear {
    weight_t: Tensor<2>,
    bias: Option<Tensor<1>>,
    d_in: usize,
    d_out: usize,
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
        let weight = w.tensor_shaped(&format!("{prefix}.weight"), &[d_out, d_in])?;
        Ok(Self::from_host(
            weight,
            if bias {
                Some(w.tensor_shaped(&format!("{prefix}.bias"), &[d_out])?)
            } else {
                None
            },
            device,
        ))
    }

    /// Builds the layer from a `[d_out, d_in]` weight and optional bias already on the host.
    pub fn from_host(weight: HostTensor, bias: Option<HostTensor>, device: &Device) -> Self {
        let (d_out, d_in) = (weight.shape[0], weight.shape[1]);
        Linear {
            weight_t: upload(weight.transposed(), device),
            bias: bias.map(|b| upload(b, device)),
            d_in,
            d_out,
        }
    }

    /// Applies the map to `[batch, pos, d_in]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let y = x.reshape([b * t, self.d_in]).matmul(self.weight_t.clone());
        let y = match &self.bias {
            Some(bias) => y + bias.clone().unsqueeze_dim(0),
            None => y,
        };
        y.reshape([b, t, self.d_out])
    }

    /// Applies the map to `[rows, d_in]`.
    pub fn forward_2d(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight_t.clone());
        match &self.bias {
            Some(bias) => y + bias.clone().unsqueeze_dim(0),
            None => y,
        }
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.d_in * self.d_out + if self.bias.is_some() { self.d_out } else { 0 }
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.d_out
    }
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
