//! Wasserstein-neuron scoring: how far each MLP neuron's standardised pre-activation
//! distribution lies from a standard normal, plus the statistics the paper discusses.
//!
//! A [`corpus::Corpus`] is tokenised once and cut into windows; [`collect`] runs the model and
//! streams `mlp.hook_pre` (and the MLP input, for mapping difficulty) to consumers;
//! [`w1`] scores neurons exactly (closed-form W1 against N(0,1)) and in the authors' Monte-Carlo
//! variant; [`streaming`] estimates W1 in memory independent of the token count; [`md`]
//! computes mapping difficulty; [`pipeline::score_corpus`] ties it together and
//! [`scores::ScoreTables`] saves the per-neuron tables.
//!
//! ```
//! use negdiff_scoring::w1::{NormalQuantiles, score_neuron, ScoreScratch};
//!
//! // A bimodal neuron: far from Gaussian.
//! let x: Vec<f32> = (0..1000).map(|i| if i % 2 == 0 { -1.0 } else { 1.0 } + (i as f32) * 1e-4).collect();
//! let table = NormalQuantiles::new(x.len());
//! let s = score_neuron(&x, &table, None, &mut ScoreScratch::new());
//! assert!(s.w1_exact > 0.15);
//! ```

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
