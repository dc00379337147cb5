//! The hook crate's error type.

use thiserror::Error;

/// Errors raised when registering or running hooks.
#[derive(Debug, Error)]
pub enum HookError {
    /// A site name that does not follow `blocks.{i}.<point>`.
    #[error(
        "unknown hook site `{name}`: expected `blocks.{{layer}}.<point>` with point one of {known}"
    )]
    UnknownSite {
        /// The string that failed to parse.
        name: String,
        /// The accepted point names, comma-separated.
        known: String,
    },
    /// A site whose layer index is beyond the model.
    #[error(
        "hook site `{site}` is out of range: the {architecture} model has {n_layers} layers (0..{n_layers})"
    )]
    LayerOutOfRange {
        /// The offending site, printed.
        site: String,
        /// The model's layer count.
        n_layers: usize,
        /// The architecture name.
        architecture: String,
    },
    /// A point this architecture does not have (e.g. `mlp.hook_pre_linear` on GPT-NeoX).
    #[error(
        "hook site `{site}` does not exist in the {architecture} architecture (it has: {available})"
    )]
    PointNotAvailable {
        /// The offending site, printed.
        site: String,
        /// The architecture name.
        architecture: String,
        /// The points it offers.
        available: String,
    },
    /// A neuron index beyond the site's width.
    #[error("neuron {neuron} requested at `{site}` is out of range: the site has width {width}")]
    NeuronOutOfRange {
        /// The site, printed.
        site: String,
        /// The offending neuron index.
        neuron: usize,
        /// The width of the site.
        width: usize,
    },
    /// Reading a tensor back from the device failed.
    #[error("reading `{site}` back from the device failed: {message}")]
    Readback {
        /// The site, printed.
        site: String,
        /// The backend's message.
        message: String,
    },
    /// A hook returned a tensor of another shape than it received.
    #[error("hook at `{site}` changed the shape from {before:?} to {after:?}")]
    ShapeChanged {
        /// The site, printed.
        site: String,
        /// Shape passed to the hook.
        before: [usize; 3],
        /// Shape it returned.
        after: [usize; 3],
    },
    /// A failure reported by a hook or a capture sink.
    #[error("hook `{hook}` failed at `{site}`: {message}")]
    Failed {
        /// Name of the hook or sink.
        hook: String,
        /// The site, printed.
        site: String,
        /// What went wrong.
        message: String,
    },
}

impl HookError {
    /// Convenience constructor for [`HookError::Failed`], for user hooks and sinks.
    pub fn failed(
        hook: impl Into<String>,
        site: impl ToString,
        message: impl Into<String>,
    ) -> Self {
        HookError::Failed {
            hook: hook.into(),
            site: site.to_string(),
            message: message.into(),
        }
    }
}
