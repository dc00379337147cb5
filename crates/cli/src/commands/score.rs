//! `negdiff score` and `negdiff select`.

use std::path::PathBuf;

use anyhow::Context;
use negdiff_eval::datasets::conllu::load_conllu;
use negdiff_eval::neuron_table::top_pair_rows;
use negdiff_interventions::NeuronSet;
use negdiff_model::Device;
use negdiff_scoring::corpus::{Corpus, CorpusFormat, WindowSpec};
use negdiff_scoring::md::MdSpec;
use negdiff_scoring::pipeline::{NormalSource, ScoreSpec, score_corpus};
use negdiff_scoring::scores::{ScoreTables, peak_rss_bytes, write_manifest};
use negdiff_scoring::streaming::HistogramSpec;
use serde_json::json;

/// Which W1 computations to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Exact W1 and the authors' variant (keeps all values, in layer groups under the budget).
    Exact,
    /// Bounded-memory two-pass estimator only.
    Streaming,
    /// Both (for comparing them).
    Both,
}

/// Arguments of `negdiff score`.
#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// A GGUF file, an HF model directory, or a hub id org/name or org/name@rev.
    model: String,
    /// Plain text, CoNLL-U (`.conllu`) or JSON lines (`.jsonl`, field `text`).
    #[arg(long)]
    corpus: PathBuf,
    /// Tokens per window (the authors: 2048).
    #[arg(long, default_value_t = 2048)]
    window: usize,
    /// Start-to-start distance of windows (default: the window, no overlap; window/2 is the
    /// authors' 50% overlap).
    #[arg(long)]
    stride: Option<usize>,
    /// Token budget: stop after collecting this many positions.
    #[arg(long, default_value_t = 30_000)]
    tokens: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// What to compute.
    #[arg(long, value_enum, default_value = "exact")]
    method: Method,
    /// Seed of the authors' normal comparison sample.
    #[arg(long, default_value_t = 0)]
    normal_seed: u64,
    /// Read the authors' normal sample from a 1-D .npy file instead (e.g. written by numpy).
    #[arg(long)]
    normal_file: Option<PathBuf>,
    /// Tokens sampled for mapping difficulty (0 turns it off).
    #[arg(long, default_value_t = 1000)]
    md_tokens: usize,
    /// Random token pairs for mapping difficulty.
    #[arg(long, default_value_t = 20_000)]
    md_pairs: usize,
    /// Seed of the mapping-difficulty samples.
    #[arg(long, default_value_t = 0)]
    md_seed: u64,
    /// Memory budget of exact scoring, GiB (more passes when exceeded).
    #[arg(long, default_value_t = 8.0)]
    memory_gb: f64,
    /// Histogram bins of the streaming estimator.
    #[arg(long, default_value_t = 800)]
    bins: usize,
    /// Half-width (standard deviations) of the streaming histogram grid.
    #[arg(long, default_value_t = 8.0)]
    half_width: f64,
    /// Pairs listed for the top neuron.
    #[arg(long, default_value_t = 10)]
    top_pairs: usize,
    /// Output directory (scores.safetensors, manifest.json, top_neuron.json).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `negdiff score`.
pub fn score(args: ScoreArgs, device: &Device) -> anyhow::Result<()> {
    let model = super::load_model(&args.model, device)?;
    let format = CorpusFormat::infer(&args.corpus);
    let corpus = Corpus::load(&args.corpus, format.clone())?;
    let spec = ScoreSpec {
        windows: WindowSpec {
            window: args.window,
            stride: args.stride.unwrap_or(args.window),
            max_tokens: args.tokens,
        },
        batch_windows: args.batch,
        exact: args.method != Method::Streaming,
        authors: args.method != Method::Streaming,
        normal: match &args.normal_file {
            Some(p) => NormalSource::File(p.clone()),
            None => NormalSource::Seeded(args.normal_seed),
        },
        streaming: (args.method != Method::Exact).then_some(HistogramSpec {
            half_width: args.half_width,
            bins: args.bins,
        }),
        md: (args.md_tokens > 0).then_some(MdSpec {
            tokens: args.md_tokens,
            pairs: args.md_pairs,
            seed: args.md_seed,
        }),
        memory_budget: (args.memory_gb * (1u64 << 30) as f64) as usize,
    };
    let progress = |label: &str, n: u64| super::progress::bar(label, n);
    let run = score_corpus(&model, &corpus, &spec, &progress)?;
    let scores = run.tables.save(&args.out)?;
    let mut manifest = run.manifest.clone();
    manifest["model"]["sha256"] = json!(model.fingerprint()?);
    manifest["peak_rss_bytes"] = json!(peak_rss_bytes());
    write_manifest(&args.out, &manifest)?;
    if let Some(top) = &run.top {
        let sentences = if format == CorpusFormat::Conllu {
            Some(load_conllu(&args.corpus, false)?.0)
        } else {
            None
        };
        let pairs = if run.md.is_some() {
            top_pair_rows(
                &run,
                &corpus.text,
                sentences.as_deref(),
                top.layer,
                top.neuron,
                args.top_pairs,
            )?
        } else {
            Vec::new()
        };
        let mut v = serde_json::to_value(top.score)?;
        v["layer"] = json!(top.layer);
        v["neuron"] = json!(top.neuron);
        v["histogram"] = serde_json::to_value(&top.histogram)?;
        v["pairs"] = json!(pairs);
        std::fs::write(
            args.out.join("top_neuron.json"),
            serde_json::to_string_pretty(&v)?,
        )
        .context("writing top_neuron.json")?;
    }
    eprintln!(
        "scored {} tokens × {} layers × {} neurons in {:.1} s → {}",
        manifest["tokens_collected"],
        model.dims().n_layers,
        model.dims().d_mlp,
        manifest["seconds"].as_f64().unwrap_or(0.0),
        scores.display()
    );
    Ok(())
}

/// Arguments of `negdiff select`.
#[derive(clap::Args, Debug)]
pub struct SelectArgs {
    /// A score directory (or scores.safetensors file) written by `negdiff score`.
    scores: PathBuf,
    /// Percent of neurons per layer (the paper: 1).
    #[arg(long)]
    top: Option<f64>,
    /// Select the lowest-scoring percent instead.
    #[arg(long, conflicts_with = "top")]
    bottom: Option<f64>,
    /// Select within each layer (the paper's rule; the only mode with --top/--bottom).
    #[arg(long, default_value_t = true)]
    per_layer: bool,
    /// Select the k highest-scoring neurons over all layers instead.
    #[arg(long, conflicts_with_all = ["top", "bottom"])]
    global_top_k: Option<usize>,
    /// Score table to rank by.
    #[arg(long, default_value = "w1_exact")]
    score: String,
    /// Name of the set (default: derived from the rule).
    #[arg(long)]
    name: Option<String>,
    /// Output JSON.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `negdiff select`.
pub fn select(args: SelectArgs, _device: &Device) -> anyhow::Result<()> {
    let tables = ScoreTables::load(&args.scores)?;
    let rows = tables.rows(&args.score).with_context(|| {
        format!(
            "no table `{}` in {} (tables: {})",
            args.score,
            args.scores.display(),
            tables.tables.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let set = match (args.top, args.bottom, args.global_top_k) {
        (Some(p), None, None) => NeuronSet::top_percent_per_layer(
            args.name
                .clone()
                .unwrap_or(format!("{}-top{p}", args.score)),
            &rows,
            p,
        )?,
        (None, Some(p), None) => NeuronSet::bottom_percent_per_layer(
            args.name
                .clone()
                .unwrap_or(format!("{}-bottom{p}", args.score)),
            &rows,
            p,
        )?,
        (None, None, Some(k)) => NeuronSet::global_top_k(
            args.name
                .clone()
                .unwrap_or(format!("{}-global-top{k}", args.score)),
            &rows,
            k,
        )?,
        _ => anyhow::bail!("give exactly one of --top P, --bottom P, --global-top-k K"),
    };
    let mut prov = set.provenance.clone();
    prov["scores"] = json!(args.scores);
    prov["table"] = json!(args.score);
    let manifest = if args.scores.is_dir() {
        args.scores.join("manifest.json")
    } else {
        args.scores.with_file_name("manifest.json")
    };
    if let Ok(text) = std::fs::read_to_string(&manifest)
        && let Ok(m) = serde_json::from_str::<serde_json::Value>(&text)
    {
        prov["model"] = m["model"].clone();
        prov["corpus_sha256"] = m["corpus"]["sha256"].clone();
    }
    let set = set.with_provenance(prov);
    set.save(&args.out)?;
    eprintln!(
        "{}: {} neurons in {} layers → {}",
        set.name,
        set.len(),
        set.layers.len(),
        args.out.display()
    );
    Ok(())
}
