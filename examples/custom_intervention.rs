//! A user-defined intervention in a few lines: add Gaussian noise to the negative part of
//! chosen neurons' pre-activations, then compare a sentence's log-probability with and without.
//!
//! Run: `cargo run --release --example custom_intervention [MODEL]` (default: SmolLM2 from
//! `scripts/setup.sh`).

use burn::tensor::{Distribution, Tensor, ops::IndexingUpdateOp};
use negdiff::hooks::{HookContext, HookSite};
use negdiff::interventions::{Intervention, InterventionError, NeuronIndex, NeuronSet, attach};
use negdiff::model::{LanguageModel, TokenBatch, default_model_path, device::default_device};

/// Adds N(0, sigma²) noise where the selected neurons' pre-activation is negative.
struct NoisyNegatives {
    index: NeuronIndex,
    sigma: f64,
}

impl Intervention for NoisyNegatives {
    fn name(&self) -> String {
        format!("noisy-negatives(sigma={})", self.sigma)
    }

    fn sites(&self) -> Vec<HookSite> {
        self.index.layers().map(HookSite::mlp_pre).collect()
    }

    fn apply(
        &self,
        site: HookSite,
        x: Tensor<3>,
        _: &HookContext<'_>,
    ) -> Result<Tensor<3>, InterventionError> {
        let Some((idx, _)) = self.index.get(site.layer) else {
            return Ok(x);
        };
        let sel = x.clone().select(2, idx.clone());
        let noise = sel.random_like(Distribution::Normal(0.0, self.sigma));
        let negative = sel.clone().lower_elem(0.0).float();
        let edited = sel + noise * negative;
        Ok(x.select_assign(2, idx.clone(), edited, IndexingUpdateOp::Assign))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default_model_path().display().to_string());
    let model = LanguageModel::load(&spec, &default_device())?;
    let layout = model.site_layout();
    // The first 16 neurons of every layer, for illustration; use `negdiff select` for real sets.
    let set = NeuronSet::new(
        "first16",
        (0..layout.n_layers)
            .map(|l| (l, (0..16).collect()))
            .collect(),
    );
    let noisy = NoisyNegatives {
        index: NeuronIndex::new(&set, &layout, model.device())?,
        sigma: 0.5,
    };

    let ids = model
        .tokenizer()
        .encode("The keys to the cabinet are on the table.")?
        .ids;
    let batch = TokenBatch::single(ids)?;
    let base: f32 = model.next_token_logprobs(&batch, &mut model.hooks())?[0]
        .iter()
        .sum();
    let mut hooks = model.hooks();
    attach(&mut hooks, &noisy)?;
    let edited: f32 = model.next_token_logprobs(&batch, &mut hooks)?[0]
        .iter()
        .sum();
    println!(
        "{}: sum log p {base:.4} -> {edited:.4} (change {:+.4})",
        noisy.name(),
        edited - base
    );
    Ok(())
}
