//! Syntactic evaluation and the paper's experiments.
//!
//! The layers, bottom up: [`datasets`] loads BLiMP, targeted syntactic evaluation (TSE), UD
//! treebanks, text and multiple-choice items; [`sentences`] scores sentences in
//! length-bucketed batches under a recorded [`convention`]; [`pairs`] turns that into
//! minimal-pair verdicts, [`perplexity`] into perplexity and per-token NLL, [`pos`] into excess
//! surprisal by gold part of speech; [`stats`] gives intervals and paired tests;
//! [`experiments`] runs conditions (baseline, sign-specific ablations, controls) resumably, and
//! [`report`] draws the tables and plots.
//!
//! ```no_run
//! use negdiff_eval::convention::{Aggregate, BosPolicy};
//! use negdiff_eval::pairs::score_pairs;
//! use negdiff_eval::sentences::SentenceScorer;
//! use negdiff_model::{LanguageModel, default_model_path, device::default_device};
//!
//! # fn main() -> Result<(), negdiff_eval::EvalError> {
//! let model = LanguageModel::load(&default_model_path().display().to_string(), &default_device())?;
//! let scorer = SentenceScorer::new(&model, BosPolicy::Tokenizer)?;
//! let verdicts = score_pairs(&scorer, &[("The cats sleep.", "The cats sleeps.")], Aggregate::Sum, None)?;
//! println!("correct: {}", verdicts[0].correct);
//! # Ok(())
//! # }
//! ```

pub mod convention;
pub mod datasets;
pub mod experiments;
pub mod jsonl;
pub mod multiple_choice;
pub mod neuron_table;
pub mod pairs;
pub mod perplexity;
pub mod pos;
pub mod report;
pub mod reproduce;
pub mod sentences;
mod serde_nan;
pub mod stats;

mod error;
pub use error::EvalError;

/// Result alias for this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
