//! Score every MLP neuron of a model on a corpus, then select the Wasserstein neurons (top 1%
//! per layer) and save them as a neuron set.
//!
//! Run: `cargo run --release --example score_and_select -- [MODEL] [CORPUS] [TOKENS]`
//! (defaults: SmolLM2 from scripts/setup.sh, UD EWT dev from ../shared/data, 4096 tokens).

use std::path::PathBuf;

use indicatif::ProgressBar;
use negdiff::interventions::NeuronSet;
use negdiff::model::{LanguageModel, default_model_path, device::default_device};
use negdiff::scoring::corpus::{Corpus, CorpusFormat, WindowSpec};
use negdiff::scoring::pipeline::{ScoreSpec, score_corpus};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_path = args
        .next()
        .unwrap_or_else(|| default_model_path().display().to_string());
    let corpus_path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/ud_ewt/en_ewt-ud-dev.conllu"));
    let tokens: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(4096);

    let model = LanguageModel::load(&model_path, &default_device())?;
    let corpus = Corpus::load(&corpus_path, CorpusFormat::infer(&corpus_path))?;
    let spec = ScoreSpec {
        windows: WindowSpec {
            window: 1024,
            stride: 1024,
            max_tokens: tokens,
        },
        ..ScoreSpec::default()
    };
    let run = score_corpus(&model, &corpus, &spec, &|label, n| {
        let bar = ProgressBar::new(n);
        bar.set_message(label.to_string());
        bar
    })?;
    let w1 = run.tables.rows("w1_exact").ok_or("no exact scores")?;
    let set = NeuronSet::top_percent_per_layer("wasserstein-top1", &w1, 1.0)?;
    let out = std::env::temp_dir().join("negdiff-wasserstein-top1.json");
    set.save(&out)?;
    if let Some(top) = &run.top {
        println!(
            "top neuron {}:{} W1 = {:.4} (skewness {:.2}, {:.0}% negative)",
            top.layer,
            top.neuron,
            top.score.w1_exact,
            top.score.skewness,
            100.0 * top.score.frac_negative
        );
    }
    println!(
        "{} neurons selected over {} layers → {}",
        set.len(),
        set.layers.len(),
        out.display()
    );
    Ok(())
}
