//! Interventions on neuron activations, and the neuron sets they act on.
//!
//! An [`Intervention`] edits activations at hook sites; [`attach`] registers it with a model's
//! [`HookRegistry`](negdiff_hooks::HookRegistry). The built-ins are the paper's sign-specific
//! ablations and their controls ([`NeuronEdit`] with an [`EditKind`]: zero-negative,
//! zero-positive, zero, sign-flip, positive-ReLU, scale, clamp), plus [`MeanAblation`] and
//! [`Patch`]; [`Compose`] chains several. Your own intervention is one type implementing the
//! trait (see `examples/custom_intervention.rs`). A [`NeuronSet`] says which neurons of which
//! layers an edit touches, and is built from scores with the paper's selection rules.
//!
//! ```
//! use std::collections::BTreeMap;
//! use negdiff_hooks::{HookPoint, HookRegistry, SiteLayout};
//! use negdiff_interventions::{EditKind, NeuronEdit, NeuronSet, attach};
//!
//! let layout = SiteLayout::new("llama", 2, 8, 32, HookPoint::ALL.to_vec());
//! let scores = vec![(0..32).map(|i| i as f64).collect::<Vec<_>>(); 2];
//! let top = NeuronSet::top_percent_per_layer("top-10%", &scores, 10.0).unwrap();
//! let device = burn::tensor::Device::flex();
//! let edit = NeuronEdit::new("zero-negative".parse().unwrap(), &top, &layout, &device).unwrap();
//! assert_eq!(edit.kind(), EditKind::ZeroNegative);
//! let mut hooks = HookRegistry::new(layout);
//! attach(&mut hooks, edit).unwrap();
//! ```

mod builtin;
mod error;
mod intervention;
mod neuron_set;
mod recorder;

pub use builtin::{EditKind, MeanAblation, NeuronEdit, NeuronIndex, Patch};
pub use error::InterventionError;
pub use intervention::{Compose, Intervention, attach};
pub use neuron_set::{NeuronSet, percentile_linear};
pub use recorder::{ActivationRecorder, MeanRecorder};
