//! Choosing where tensors live: the CPU backend by default, wgpu and CUDA behind features.

use burn::tensor::Device;

use crate::error::{ModelError, Result};

/// The default device: burn's CPU backend (burn-flex).
pub fn default_device() -> Device {
    Device::flex()
}

/// Parses a device name: `cpu` (alias `flex`), `wgpu` (feature `wgpu`; `wgpu:cpu` forces a
/// software adapter), `cuda` or `cuda:N` (feature `cuda`), `ndarray` (feature `ndarray`: burn's
/// older CPU backend, for comparisons).
pub fn parse_device(name: &str) -> Result<Device> {
    let unknown = |why: &str| {
        ModelError::InvalidInput(format!(
            "unknown device `{name}`: {why} (available in this build: {})",
            available_devices().join(", ")
        ))
    };
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "wgpu")]
        "wgpu:cpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::Cpu)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        #[cfg(feature = "cuda")]
        s if s.starts_with("cuda:") => {
            let index: usize = s[5..]
                .parse()
                .map_err(|_| unknown("the CUDA index is not a number"))?;
            Ok(Device::cuda(index))
        }
        s if s.starts_with("wgpu") => Err(unknown("built without the `wgpu` feature")),
        s if s.starts_with("cuda") => Err(unknown("built without the `cuda` feature")),
        #[cfg(not(feature = "ndarray"))]
        "ndarray" => Err(unknown("built without the `ndarray` feature")),
        _ => Err(unknown("not a device name")),
    }
}

/// Device names [`parse_device`] accepts in this build.
pub fn available_devices() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v = vec!["cpu"];
    #[cfg(feature = "wgpu")]
    v.extend(["wgpu", "wgpu:cpu"]);
    #[cfg(feature = "cuda")]
    v.extend(["cuda", "cuda:N"]);
    #[cfg(feature = "ndarray")]
    v.push("ndarray");
    v
}
