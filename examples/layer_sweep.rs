//! Zero-negative on a neuron set one layer at a time: how BLiMP accuracy and perplexity change
//! depending on where the ablated neurons sit.
//!
//! Run: `cargo run --release --example layer_sweep -- SET.json [MODEL] [GROUP]`

use std::path::{Path, PathBuf};

use negdiff::eval::datasets::blimp::load_blimp;
use negdiff::eval::datasets::conllu::load_conllu;
use negdiff::eval::experiments::{BenchmarkData, EvalSpec, PplText, layer_sweep, no_progress};
use negdiff::interventions::NeuronSet;
use negdiff::model::{LanguageModel, default_model_path, device::default_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let set_path = PathBuf::from(
        args.next()
            .ok_or("usage: layer_sweep SET.json [MODEL] [GROUP]")?,
    );
    let model_path = args
        .next()
        .unwrap_or_else(|| default_model_path().display().to_string());
    let group: usize = args.next().and_then(|g| g.parse().ok()).unwrap_or(5);

    let model = LanguageModel::load(&model_path, &default_device())?;
    let set = NeuronSet::load(&set_path)?;
    let (sentences, _) = load_conllu(
        Path::new("../shared/data/ud_ewt/en_ewt-ud-test.conllu"),
        false,
    )?;
    let data = BenchmarkData {
        blimp: load_blimp(Path::new("../shared/data/blimp"), None, Some(2))?,
        tse: Vec::new(),
        ppl: Some(PplText::from_conllu(
            &model,
            "ud_ewt test",
            &sentences,
            Some(1500),
        )?),
    };
    let dir = std::env::temp_dir().join("negdiff-layer-sweep");
    let rows = layer_sweep(
        &model,
        &data,
        &EvalSpec::default(),
        &set,
        group,
        &dir,
        &no_progress,
    )?;
    println!(
        "{:<11} {:>7} {:>8} {:>10}",
        "kind", "layers", "BLiMP %", "perplexity"
    );
    for r in rows {
        let layers = match (r.layers.first(), r.layers.last()) {
            (Some(first), Some(last)) => format!("{first}-{last}"),
            _ => "none".into(),
        };
        println!(
            "{:<11} {:>7} {:>8.1} {:>10.3}",
            r.kind,
            layers,
            r.summary
                .blimp
                .as_ref()
                .map_or(f64::NAN, |s| 100.0 * s.overall.accuracy),
            r.summary.perplexity.unwrap_or(f64::NAN)
        );
    }
    println!(
        "(results cached in {}; delete it to recompute)",
        dir.display()
    );
    Ok(())
}
