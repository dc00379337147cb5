//! The shared `--intervene KIND --neurons SET.json` options.

use anyhow::Context;
use negdiff_interventions::{EditKind, NeuronEdit, NeuronSet};
use negdiff_model::LanguageModel;

/// Options selecting one built-in intervention on a neuron set.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct InterveneArgs {
    /// Built-in edit: zero-negative, zero-positive, zero, sign-flip, pos-relu, scale:K, clamp:LO:HI.
    #[arg(long, requires = "neurons")]
    pub intervene: Option<String>,
    /// Neuron set JSON (as written by `negdiff select`).
    #[arg(long, requires = "intervene")]
    pub neurons: Option<std::path::PathBuf>,
}

impl InterveneArgs {
    /// The prepared edit, or `None` when no `--intervene` was given.
    pub fn build(&self, model: &LanguageModel) -> anyhow::Result<Option<NeuronEdit>> {
        let (Some(kind), Some(path)) = (&self.intervene, &self.neurons) else {
            return Ok(None);
        };
        let kind: EditKind = kind.parse()?;
        let set = NeuronSet::load(path)?;
        let edit = NeuronEdit::new(kind, &set, &model.site_layout(), model.device())
            .with_context(|| format!("neuron set {}", path.display()))?;
        Ok(Some(edit))
    }
}
