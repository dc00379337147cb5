//! The scoring crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// Errors from collecting activations and scoring neurons.
#[derive(Debug, Error)]
pub enum ScoringError {
    /// The corpus has no text, or too little for what was asked.
    #[error("corpus {path}: {message}")]
    Corpus {
        /// The corpus file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An activation was NaN or infinite.
    #[error("non-finite activation {value} at layer {layer}, neuron {neuron}, token {token}")]
    NonFinite {
        /// Layer.
        layer: usize,
        /// Neuron.
        neuron: usize,
        /// Token index in the collected stream.
        token: usize,
        /// The value.
        value: f32,
    },
    /// Settings that cannot work.
    #[error("invalid scoring settings: {0}")]
    Settings(String),
    /// A normal sample file that does not fit.
    #[error("normal sample {path}: {message}")]
    NormalSample {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] negdiff_model::ModelError),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] negdiff_hooks::HookError),
    /// Neuron-set selection failed.
    #[error(transparent)]
    Selection(#[from] negdiff_interventions::InterventionError),
}

/// Result alias for this crate.
pub type Result<T, E = ScoringError> = std::result::Result<T, E>;
