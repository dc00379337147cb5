//! Zero the negative pre-activations of a neuron set and compare BLiMP accuracy with the
//! unmodified model, with a paired McNemar test.
//!
//! Run: `cargo run --release --example ablate_and_eval_blimp -- SET.json [MODEL] [PER_PARADIGM]`
//! (a set from `score_and_select` or `negdiff select`; BLiMP from ../shared/data/blimp).

use std::path::{Path, PathBuf};

use negdiff::eval::convention::{Aggregate, BosPolicy};
use negdiff::eval::datasets::blimp::load_blimp;
use negdiff::eval::pairs::score_pairs;
use negdiff::eval::sentences::SentenceScorer;
use negdiff::eval::stats::{Accuracy, mcnemar};
use negdiff::interventions::{EditKind, NeuronEdit, NeuronSet};
use negdiff::model::{LanguageModel, default_model_path, device::default_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let set_path = PathBuf::from(
        args.next()
            .ok_or("usage: ablate_and_eval_blimp SET.json [MODEL] [N]")?,
    );
    let model_path = args
        .next()
        .unwrap_or_else(|| default_model_path().display().to_string());
    let per_paradigm: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    let model = LanguageModel::load(&model_path, &default_device())?;
    let set = NeuronSet::load(&set_path)?;
    let edit = NeuronEdit::new(
        EditKind::ZeroNegative,
        &set,
        &model.site_layout(),
        model.device(),
    )?;
    let pairs = load_blimp(Path::new("../shared/data/blimp"), None, Some(per_paradigm))?;
    let texts: Vec<(&str, &str)> = pairs
        .iter()
        .map(|p| (p.sentence_good.as_str(), p.sentence_bad.as_str()))
        .collect();

    let scorer = SentenceScorer::new(&model, BosPolicy::Tokenizer)?;
    let base = score_pairs(&scorer, &texts, Aggregate::Sum, None)?;
    let ablated = score_pairs(&scorer, &texts, Aggregate::Sum, Some(&edit))?;
    let a: Vec<bool> = base.iter().map(|o| o.correct).collect();
    let b: Vec<bool> = ablated.iter().map(|o| o.correct).collect();
    let (acc_a, acc_b) = (
        Accuracy::from_bools(a.iter().copied()),
        Accuracy::from_bools(b.iter().copied()),
    );
    let test = mcnemar(&a, &b)?;
    println!(
        "BLiMP, {} pairs ({} per paradigm)",
        pairs.len(),
        per_paradigm
    );
    println!(
        "  baseline        {:.1}% [{:.1}, {:.1}]",
        100.0 * acc_a.accuracy,
        100.0 * acc_a.ci_low,
        100.0 * acc_a.ci_high
    );
    println!(
        "  zero-negative   {:.1}% [{:.1}, {:.1}] on {} neurons",
        100.0 * acc_b.accuracy,
        100.0 * acc_b.ci_low,
        100.0 * acc_b.ci_high,
        set.len()
    );
    println!(
        "  McNemar: {} lost, {} gained, exact p = {:.3e}",
        test.b10, test.b01, test.p_value_exact
    );
    Ok(())
}
