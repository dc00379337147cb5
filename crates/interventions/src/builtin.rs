//! The built-in neuron edits: sign-specific ablations and their controls.
//!
//! All act on the selected neurons only, as device tensor ops on the selected columns
//! (`select`, the edit, `select_assign`): per-layer index tensors are built once, when the
//! intervention is made, and no value travels to the host during a forward pass.

use std::collections::BTreeMap;
use std::str::FromStr;

use burn::tensor::{Device, Int, Tensor, TensorData, ops::IndexingUpdateOp};
use negdiff_hooks::{HookContext, HookPoint, HookSite, SiteLayout};

use crate::{Intervention, InterventionError, NeuronSet};

/// What happens to a selected neuron's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EditKind {
    /// `max(x, 0)` on the pre-activation: only the negative side is removed (the paper's edit).
    ZeroNegative,
    /// `min(x, 0)` on the pre-activation: only the positive side is removed.
    ZeroPositive,
    /// `0` on the pre-activation: the whole neuron.
    Zero,
    /// After the activation, negative outputs flip sign: `|act(x)|` (the authors'
    /// `SelectiveSignFlip`).
    SignFlip,
    /// After the activation: `x` where `x > 0`, `act(x)` elsewhere (the authors'
    /// `SelectivePosReLU`).
    PosRelu,
    /// `k · x` on the pre-activation.
    Scale(f64),
    /// `clamp(x, lo, hi)` on the pre-activation.
    Clamp {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
}

impl EditKind {
    /// The hook point the edit acts at by default: the pre-activation, or the activation output
    /// for the activation-function swaps.
    pub fn default_point(self) -> HookPoint {
        match self {
            EditKind::SignFlip | EditKind::PosRelu => HookPoint::MlpAct,
            _ => HookPoint::MlpPre,
        }
    }

    /// The CLI spelling (`zero-negative`, `scale:0.5`, …).
    pub fn label(self) -> String {
        match self {
            EditKind::ZeroNegative => "zero-negative".into(),
            EditKind::ZeroPositive => "zero-positive".into(),
            EditKind::Zero => "zero".into(),
            EditKind::SignFlip => "sign-flip".into(),
            EditKind::PosRelu => "pos-relu".into(),
            EditKind::Scale(k) => format!("scale:{k}"),
            EditKind::Clamp { lo, hi } => format!("clamp:{lo}:{hi}"),
        }
    }
}

impl FromStr for EditKind {
    type Err = InterventionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InterventionError::UnknownKind(s.to_string());
        let num = |t: &str| t.parse::<f64>().ok().filter(|v| v.is_finite());
        Ok(match s {
            "zero-negative" => EditKind::ZeroNegative,
            "zero-positive" => EditKind::ZeroPositive,
            "zero" => EditKind::Zero,
            "sign-flip" => EditKind::SignFlip,
            "pos-relu" => EditKind::PosRelu,
            _ => {
                if let Some(k) = s.strip_prefix("scale:") {
                    EditKind::Scale(num(k).ok_or_else(bad)?)
                } else if let Some(rest) = s.strip_prefix("clamp:") {
                    let (lo, hi) = rest.split_once(':').ok_or_else(bad)?;
                    let (lo, hi) = (num(lo).ok_or_else(bad)?, num(hi).ok_or_else(bad)?);
                    if lo > hi {
                        return Err(InterventionError::Invalid(format!(
                            "clamp range [{lo}, {hi}] is empty"
                        )));
                    }
                    EditKind::Clamp { lo, hi }
                } else {
                    return Err(bad());
                }
            }
        })
    }
}

/// Per-layer device index tensors for a neuron set, checked against a model's layout.
#[derive(Debug, Clone)]
pub struct NeuronIndex {
    index: BTreeMap<usize, (Tensor<1, Int>, usize)>,
}

impl NeuronIndex {
    /// Validates `set` against `layout` and uploads its indices to `device`.
    pub fn new(
        set: &NeuronSet,
        layout: &SiteLayout,
        device: &Device,
    ) -> Result<Self, InterventionError> {
        set.validate(layout.n_layers, layout.d_mlp)?;
        let index = set
            .layers
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(&l, v)| {
                let ids: Vec<i64> = v.iter().map(|&i| i as i64).collect();
                (
                    l,
                    (
                        Tensor::from_data(TensorData::new(ids, [v.len()]), device),
                        v.len(),
                    ),
                )
            })
            .collect();
        Ok(NeuronIndex { index })
    }

    /// Layers with at least one neuron.
    pub fn layers(&self) -> impl Iterator<Item = usize> + '_ {
        self.index.keys().copied()
    }

    /// The index tensor and count for a layer.
    pub fn get(&self, layer: usize) -> Option<(&Tensor<1, Int>, usize)> {
        self.index.get(&layer).map(|(t, n)| (t, *n))
    }
}

fn check_point(point: HookPoint) -> Result<(), InterventionError> {
    if point.is_mlp_width() {
        Ok(())
    } else {
        Err(InterventionError::Invalid(format!(
            "neuron edits act on MLP-width sites (mlp.hook_pre, mlp.hook_pre_linear, mlp.hook_act, mlp.hook_post), not `{point}`"
        )))
    }
}

/// A built-in [`EditKind`] applied to the neurons of a [`NeuronSet`].
#[derive(Debug, Clone)]
pub struct NeuronEdit {
    kind: EditKind,
    set_name: String,
    point: HookPoint,
    index: NeuronIndex,
}

impl NeuronEdit {
    /// Prepares `kind` on `set` for a model with `layout`, at the kind's default point.
    pub fn new(
        kind: EditKind,
        set: &NeuronSet,
        layout: &SiteLayout,
        device: &Device,
    ) -> Result<Self, InterventionError> {
        Self::at_point(kind, set, kind.default_point(), layout, device)
    }

    /// Prepares `kind` on `set` at another MLP-width point (e.g. `mlp.hook_post`).
    pub fn at_point(
        kind: EditKind,
        set: &NeuronSet,
        point: HookPoint,
        layout: &SiteLayout,
        device: &Device,
    ) -> Result<Self, InterventionError> {
        check_point(point)?;
        if matches!(kind, EditKind::PosRelu) && point != HookPoint::MlpAct {
            return Err(InterventionError::Invalid(
                "pos-relu needs the pre-activation and acts at mlp.hook_act".into(),
            ));
        }
        Ok(NeuronEdit {
            kind,
            set_name: set.name.clone(),
            point,
            index: NeuronIndex::new(set, layout, device)?,
        })
    }

    /// The edit.
    pub fn kind(&self) -> EditKind {
        self.kind
    }
}

impl Intervention for NeuronEdit {
    fn name(&self) -> String {
        format!("{}[{}]", self.kind.label(), self.set_name)
    }

    fn sites(&self) -> Vec<HookSite> {
        self.index
            .layers()
            .map(|l| HookSite::new(l, self.point))
            .collect()
    }

    fn apply(
        &self,
        site: HookSite,
        value: Tensor<3>,
        ctx: &HookContext<'_>,
    ) -> Result<Tensor<3>, InterventionError> {
        let Some((idx, _)) = self.index.get(site.layer) else {
            return Ok(value);
        };
        let selected = value.clone().select(2, idx.clone()); // [b, t, k]
        let edited = match self.kind {
            EditKind::ZeroNegative => selected.clamp_min(0.0),
            EditKind::ZeroPositive => selected.clamp_max(0.0),
            EditKind::Zero => selected.zeros_like(),
            EditKind::SignFlip => selected.abs(),
            EditKind::Scale(k) => selected.mul_scalar(k),
            EditKind::Clamp { lo, hi } => selected.clamp(lo, hi),
            EditKind::PosRelu => {
                let pre = ctx.input.ok_or_else(|| {
                    InterventionError::Invalid(format!(
                        "pos-relu at `{site}` got no pre-activation input"
                    ))
                })?;
                let x = pre.clone().select(2, idx.clone());
                selected.mask_where(x.clone().greater_elem(0.0), x)
            }
        };
        Ok(value.select_assign(2, idx.clone(), edited, IndexingUpdateOp::Assign))
    }
}

/// Replaces the selected neurons by fixed per-neuron values (e.g. their mean over a corpus).
#[derive(Debug, Clone)]
pub struct MeanAblation {
    set_name: String,
    point: HookPoint,
    index: NeuronIndex,
    /// Per layer: `[k]` replacement values in the set's neuron order.
    values: BTreeMap<usize, Tensor<1>>,
}

impl MeanAblation {
    /// `means[layer]` holds one value per neuron of the layer (full width, `d_mlp`).
    pub fn new(
        set: &NeuronSet,
        means: &BTreeMap<usize, Vec<f32>>,
        layout: &SiteLayout,
        device: &Device,
    ) -> Result<Self, InterventionError> {
        let index = NeuronIndex::new(set, layout, device)?;
        let mut values = BTreeMap::new();
        for (&l, neurons) in &set.layers {
            let row = means.get(&l).ok_or_else(|| {
                InterventionError::Invalid(format!("no means recorded for layer {l}"))
            })?;
            if row.len() != layout.d_mlp {
                return Err(InterventionError::Invalid(format!(
                    "means of layer {l} have {} values, expected d_mlp = {}",
                    row.len(),
                    layout.d_mlp
                )));
            }
            let picked: Vec<f32> = neurons.iter().map(|&n| row[n]).collect();
            let k = picked.len();
            values.insert(l, Tensor::from_data(TensorData::new(picked, [k]), device));
        }
        Ok(MeanAblation {
            set_name: set.name.clone(),
            point: HookPoint::MlpPre,
            index,
            values,
        })
    }
}

impl Intervention for MeanAblation {
    fn name(&self) -> String {
        format!("mean-ablation[{}]", self.set_name)
    }

    fn sites(&self) -> Vec<HookSite> {
        self.index
            .layers()
            .map(|l| HookSite::new(l, self.point))
            .collect()
    }

    fn apply(
        &self,
        site: HookSite,
        value: Tensor<3>,
        _ctx: &HookContext<'_>,
    ) -> Result<Tensor<3>, InterventionError> {
        let (Some((idx, k)), Some(v)) = (self.index.get(site.layer), self.values.get(&site.layer))
        else {
            return Ok(value);
        };
        let [b, t, _] = value.dims();
        let fill = v.clone().reshape([1, 1, k]).expand([b, t, k]);
        Ok(value.select_assign(2, idx.clone(), fill, IndexingUpdateOp::Assign))
    }
}

/// Replaces the selected neurons by the values another input produced (activation patching).
#[derive(Debug, Clone)]
pub struct Patch {
    set_name: String,
    point: HookPoint,
    index: NeuronIndex,
    /// Per layer: `[b, t, k]` source values in the set's neuron order.
    values: BTreeMap<usize, Tensor<3>>,
}

impl Patch {
    /// `source[layer]` holds the full-width `[b, t, d_mlp]` values recorded on the source input
    /// (row-major, with its `[b, t]`), e.g. by [`ActivationRecorder`](crate::ActivationRecorder).
    pub fn new(
        set: &NeuronSet,
        source: &BTreeMap<usize, (Vec<f32>, [usize; 3])>,
        layout: &SiteLayout,
        device: &Device,
    ) -> Result<Self, InterventionError> {
        let index = NeuronIndex::new(set, layout, device)?;
        let mut values = BTreeMap::new();
        for (&l, neurons) in &set.layers {
            let (data, dims) = source.get(&l).ok_or_else(|| {
                InterventionError::Invalid(format!("no patch source recorded for layer {l}"))
            })?;
            if dims[2] != layout.d_mlp || data.len() != dims.iter().product::<usize>() {
                return Err(InterventionError::Invalid(format!(
                    "patch source of layer {l} has shape {dims:?}, expected [b, t, {}]",
                    layout.d_mlp
                )));
            }
            let full: Tensor<3> = Tensor::from_data(TensorData::new(data.clone(), *dims), device);
            let ids: Vec<i64> = neurons.iter().map(|&n| n as i64).collect();
            let k = ids.len();
            let idx: Tensor<1, Int> = Tensor::from_data(TensorData::new(ids, [k]), device);
            values.insert(l, full.select(2, idx));
        }
        Ok(Patch {
            set_name: set.name.clone(),
            point: HookPoint::MlpPre,
            index,
            values,
        })
    }
}

impl Intervention for Patch {
    fn name(&self) -> String {
        format!("patch[{}]", self.set_name)
    }

    fn sites(&self) -> Vec<HookSite> {
        self.index
            .layers()
            .map(|l| HookSite::new(l, self.point))
            .collect()
    }

    fn apply(
        &self,
        site: HookSite,
        value: Tensor<3>,
        _ctx: &HookContext<'_>,
    ) -> Result<Tensor<3>, InterventionError> {
        let (Some((idx, _)), Some(src)) =
            (self.index.get(site.layer), self.values.get(&site.layer))
        else {
            return Ok(value);
        };
        let [b, t, _] = value.dims();
        let [sb, st, _] = src.dims();
        if (b, t) != (sb, st) {
            return Err(InterventionError::Invalid(format!(
                "patch at `{site}`: the source was recorded on a [{sb}, {st}] batch, this batch is [{b}, {t}]"
            )));
        }
        Ok(value.select_assign(2, idx.clone(), src.clone(), IndexingUpdateOp::Assign))
    }
}
