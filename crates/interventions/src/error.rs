//! The interventions crate's error type.

use thiserror::Error;

/// Errors from building, loading or applying interventions and neuron sets.
#[derive(Debug, Error)]
pub enum InterventionError {
    /// A neuron set names a layer the model does not have.
    #[error(
        "neuron set `{set}` names layer {layer}, but the model has {n_layers} layers (0..{n_layers})"
    )]
    LayerOutOfRange {
        /// The set's name.
        set: String,
        /// The offending layer.
        layer: usize,
        /// The model's layer count.
        n_layers: usize,
    },
    /// A neuron set names a neuron beyond the MLP width.
    #[error(
        "neuron set `{set}` names neuron {neuron} in layer {layer}, but the MLP has {d_mlp} neurons (0..{d_mlp})"
    )]
    NeuronOutOfRange {
        /// The set's name.
        set: String,
        /// The layer.
        layer: usize,
        /// The offending neuron.
        neuron: usize,
        /// The model's MLP width.
        d_mlp: usize,
    },
    /// A neuron set made for a model of another MLP width.
    #[error(
        "neuron set `{set}` was made for d_mlp = {set_d_mlp}, but the model has d_mlp = {d_mlp} (layer {layer} and every other)"
    )]
    WidthMismatch {
        /// The set's name.
        set: String,
        /// The width recorded in the set.
        set_d_mlp: usize,
        /// The model's width.
        d_mlp: usize,
        /// The first layer listed in the set.
        layer: usize,
    },
    /// A neuron set file could not be read or written.
    #[error("neuron set file {path}: {message}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An intervention name (`--intervene KIND`) that does not parse.
    #[error(
        "unknown intervention `{0}` (built-ins: zero-negative, zero-positive, zero, sign-flip, pos-relu, scale:K, clamp:LO:HI)"
    )]
    UnknownKind(String),
    /// Arguments that cannot work together.
    #[error("invalid intervention: {0}")]
    Invalid(String),
    /// Scores given to a selection rule are malformed.
    #[error("invalid scores for selection: {0}")]
    Scores(String),
    /// A hook failure while applying an intervention.
    #[error(transparent)]
    Hook(#[from] negdiff_hooks::HookError),
}
