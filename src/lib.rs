//! negdiff: neuron-level interpretability of transformer language models.
//!
//! This facade re-exports the workspace's crates so that one dependency gives all of them:
//! [`hooks`] (hook sites), [`model`] (loading and running models), [`interventions`]
//! (sign-specific ablations and neuron sets), [`scoring`] (Wasserstein neurons) and [`eval`]
//! (syntactic evaluation and experiments).
//!
//! ```no_run
//! use negdiff::model::{LanguageModel, TokenBatch, device::default_device, default_model_path};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = LanguageModel::load(default_model_path().to_str().unwrap(), &default_device())?;
//! let ids = model.tokenizer().encode("The keys to the cabinet are on the table.")?.ids;
//! let lp = model.next_token_logprobs(&TokenBatch::single(ids)?, &mut model.hooks())?;
//! println!("{}", lp[0].iter().sum::<f32>());
//! # Ok(())
//! # }
//! ```

pub use negdiff_eval as eval;
pub use negdiff_hooks as hooks;
pub use negdiff_interventions as interventions;
pub use negdiff_model as model;
pub use negdiff_scoring as scoring;
