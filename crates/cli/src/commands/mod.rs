//! One module per subcommand.

pub mod bench;
pub mod checkpoints;
pub mod generate;
pub mod info;
pub mod intervene;
pub mod logprobs;
pub mod progress;
pub mod reproduce;
pub mod score;

use anyhow::Context;
use negdiff_model::{Device, LanguageModel};

/// Loads a model, adding the model string to any error.
pub fn load_model(spec: &str, device: &Device) -> anyhow::Result<LanguageModel> {
    LanguageModel::load(spec, device).with_context(|| format!("loading model `{spec}`"))
}

/// Prints a JSON value on stdout, one line.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
