//! Hook-site names: which tensor of which layer.
//!
//! Names follow TransformerLens so that results and notebooks carry over:
//!
//! | site | tensor | shape |
//! | --- | --- | --- |
//! | `blocks.{i}.hook_resid_pre` | residual stream entering block i | `[batch, pos, d_model]` |
//! | `blocks.{i}.hook_attn_out` | attention output (after the output projection) | `[batch, pos, d_model]` |
//! | `blocks.{i}.ln2.hook_normalized` | the MLP's input: the second norm's output | `[batch, pos, d_model]` |
//! | `blocks.{i}.mlp.hook_pre` | neuron pre-activation: GPT-NeoX `dense_h_to_4h`, Llama `gate_proj`, GPT-2 `c_fc` output | `[batch, pos, d_mlp]` |
//! | `blocks.{i}.mlp.hook_pre_linear` | gated MLPs only: Llama `up_proj` output | `[batch, pos, d_mlp]` |
//! | `blocks.{i}.mlp.hook_act` | activation function output `act(hook_pre)`, before the gate product (negdiff extension; the context carries `hook_pre` as input) | `[batch, pos, d_mlp]` |
//! | `blocks.{i}.mlp.hook_post` | input of the down projection: `act(pre)` or `act(gate) * up` | `[batch, pos, d_mlp]` |
//! | `blocks.{i}.hook_mlp_out` | MLP output (after the down projection) | `[batch, pos, d_model]` |
//! | `blocks.{i}.hook_resid_post` | residual stream leaving block i | `[batch, pos, d_model]` |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::HookError;

/// A position inside a transformer block where a hook can read or replace a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HookPoint {
    /// `hook_resid_pre`: the residual stream entering the block.
    ResidPre,
    /// `hook_attn_out`: attention output after its output projection.
    AttnOut,
    /// `ln2.hook_normalized`: the MLP's input (output of the block's second norm).
    MlpIn,
    /// `mlp.hook_pre`: the neuron pre-activation (input of the activation function).
    MlpPre,
    /// `mlp.hook_pre_linear`: the linear (up) branch of a gated MLP.
    MlpPreLinear,
    /// `mlp.hook_act`: the activation function's output, before any gate product.
    MlpAct,
    /// `mlp.hook_post`: the input of the MLP's down projection.
    MlpPost,
    /// `hook_mlp_out`: the MLP's output.
    MlpOut,
    /// `hook_resid_post`: the residual stream leaving the block.
    ResidPost,
}

impl HookPoint {
    /// Every point, in the order a forward pass meets them.
    pub const ALL: [HookPoint; 9] = [
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

    /// The suffix after `blocks.{i}.`.
    pub fn suffix(self) -> &'static str {
        match self {
            HookPoint::ResidPre => "hook_resid_pre",
            HookPoint::AttnOut => "hook_attn_out",
            HookPoint::MlpIn => "ln2.hook_normalized",
            HookPoint::MlpPre => "mlp.hook_pre",
            HookPoint::MlpPreLinear => "mlp.hook_pre_linear",
            HookPoint::MlpAct => "mlp.hook_act",
            HookPoint::MlpPost => "mlp.hook_post",
            HookPoint::MlpOut => "hook_mlp_out",
            HookPoint::ResidPost => "hook_resid_post",
        }
    }

    /// Whether the tensor at this point has the MLP width (`d_mlp`) rather than `d_model`.
    pub fn is_mlp_width(self) -> bool {
        matches!(
            self,
            HookPoint::MlpPre | HookPoint::MlpPreLinear | HookPoint::MlpAct | HookPoint::MlpPost
        )
    }

    /// Position of this point in [`HookPoint::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn known_list() -> String {
        HookPoint::ALL
            .iter()
            .map(|p| p.suffix())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

/// A hook point in a given layer, e.g. `blocks.3.mlp.hook_pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookSite {
    /// Zero-based block index.
    pub layer: usize,
    /// Which tensor inside the block.
    pub point: HookPoint,
}

impl HookSite {
    /// The site `point` of block `layer`.
    pub fn new(layer: usize, point: HookPoint) -> Self {
        HookSite { layer, point }
    }

    /// `blocks.{layer}.mlp.hook_pre`, the neuron pre-activation.
    pub fn mlp_pre(layer: usize) -> Self {
        HookSite::new(layer, HookPoint::MlpPre)
    }
}

impl fmt::Display for HookSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blocks.{}.{}", self.layer, self.point.suffix())
    }
}

impl FromStr for HookSite {
    type Err = HookError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || HookError::UnknownSite {
            name: s.to_string(),
            known: HookPoint::known_list(),
        };
        let rest = s.strip_prefix("blocks.").ok_or_else(unknown)?;
        let (layer, suffix) = rest.split_once('.').ok_or_else(unknown)?;
        // Reject signs, spaces and leading zeros so that a name prints back to itself.
        if layer.is_empty()
            || !layer.bytes().all(|b| b.is_ascii_digit())
            || (layer.len() > 1 && layer.starts_with('0'))
        {
            return Err(unknown());
        }
        let layer: usize = layer.parse().map_err(|_| unknown())?;
        let point = HookPoint::ALL
            .iter()
            .copied()
            .find(|p| p.suffix() == suffix)
            .ok_or_else(unknown)?;
        Ok(HookSite { layer, point })
    }
}

impl Serialize for HookSite {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HookSite {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_round_trips() {
        for layer in [0usize, 7, 31] {
            for point in HookPoint::ALL {
                let site = HookSite::new(layer, point);
                let parsed: HookSite = site.to_string().parse().unwrap();
                assert_eq!(parsed, site);
            }
        }
    }

    #[test]
    fn bad_names_are_errors() {
        for bad in [
            "",
            "blocks.",
            "blocks.1",
            "blocks.x.mlp.hook_pre",
            "blocks.-1.mlp.hook_pre",
            "blocks.01.mlp.hook_pre",
            "blocks.1.mlp.hook_nope",
            "layers.1.mlp.hook_pre",
            "blocks.1.mlp.hook_pre ",
            "blocks.99999999999999999999999.mlp.hook_pre",
        ] {
            assert!(bad.parse::<HookSite>().is_err(), "{bad:?} parsed");
        }
    }
}
