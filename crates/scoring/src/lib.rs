//! Wasserstein-neuron scoring: how far each MLP neuron's standardised pre-activation
//! distribution lies from a standard normal, plus the statistics the paper discusses.
//!
//! (Module docs and example are completed as the modules land.)

pub mod collect;
pub mod corpus;
mod error;
pub mod exact;
pub mod md;
pub mod normal;
pub mod npy;
pub mod pipeline;
pub mod scores;
pub mod sort;
pub mod stats;
pub mod streaming;
pub mod w1;

pub use error::{Result, ScoringError};
