//! `negdiff checkpoints MODEL... --neurons SET.json --out DIR`: the same measures across
//! training checkpoints (hub revisions such as `EleutherAI/pythia-160m@step3000`, or local
//! directories).

use std::path::PathBuf;

use negdiff_eval::convention::BosPolicy;
use negdiff_eval::datasets::blimp::load_blimp;
use negdiff_eval::experiments::{BenchmarkData, EvalSpec, PplText, checkpoint_sweep};
use negdiff_interventions::NeuronSet;
use negdiff_model::Device;
use negdiff_model::packing::DEFAULT_ROW_TOKENS;
use negdiff_scoring::corpus::{Corpus, CorpusFormat, WindowSpec};
use negdiff_scoring::pipeline::{NormalSource, ScoreSpec};

/// Arguments of `negdiff checkpoints`.
#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    /// Checkpoints in training order.
    #[arg(required = true)]
    models: Vec<String>,
    /// The fixed neuron cohort (e.g. the WD set of the final checkpoint).
    #[arg(long)]
    neurons: PathBuf,
    /// Corpus to score the cohort on.
    #[arg(long)]
    corpus: PathBuf,
    /// Tokens to score.
    #[arg(long, default_value_t = 8192)]
    tokens: usize,
    /// Scoring window.
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// BLiMP directory (optional).
    #[arg(long)]
    blimp: Option<PathBuf>,
    /// BLiMP pairs per paradigm.
    #[arg(long, default_value_t = 5)]
    per_paradigm: usize,
    /// Perplexity text (optional; CoNLL-U or plain).
    #[arg(long)]
    ppl_corpus: Option<PathBuf>,
    /// Perplexity tokens.
    #[arg(long, default_value_t = 4000)]
    ppl_tokens: usize,
    /// Perplexity window.
    #[arg(long, default_value_t = 512)]
    ppl_window: usize,
    /// Run every sentence in a plain row of its own instead of sharing prefixes between
    /// sentences (prefix trees; same scores up to float rounding, fewer tokens to run).
    #[arg(long)]
    no_prefix_sharing: bool,
    /// BOS convention.
    #[arg(long, default_value = "tokenizer")]
    bos: BosPolicy,
    /// Output directory (resumable).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `negdiff checkpoints`.
pub fn run(a: CheckpointArgs, device: &Device) -> anyhow::Result<()> {
    let cohort = NeuronSet::load(&a.neurons)?;
    let corpus = Corpus::load(&a.corpus, CorpusFormat::infer(&a.corpus))?;
    let score = ScoreSpec {
        windows: WindowSpec {
            window: a.window,
            stride: a.window,
            max_tokens: a.tokens,
        },
        batch_windows: 1,
        exact: true,
        authors: false,
        normal: NormalSource::Seeded(0),
        streaming: None,
        md: None,
        memory_budget: 8 << 30,
    };
    // The perplexity text is tokenised per model (tokenizers may differ across checkpoints of
    // other families); for one family they agree, so the first model's tokenisation is used.
    let first = super::load_model(&a.models[0], device)?;
    let ppl = match &a.ppl_corpus {
        Some(p) if p.extension().is_some_and(|e| e == "conllu") => {
            let (s, _) = negdiff_eval::datasets::conllu::load_conllu(p, false)?;
            Some(PplText::from_conllu(
                &first,
                &p.display().to_string(),
                &s,
                Some(a.ppl_tokens),
            )?)
        }
        Some(p) => {
            let text = negdiff_eval::datasets::text::read_text(p)?;
            Some(PplText::from_plain(
                &first,
                &p.display().to_string(),
                &text,
                Some(a.ppl_tokens),
            )?)
        }
        None => None,
    };
    drop(first);
    let data = BenchmarkData {
        blimp: match &a.blimp {
            Some(d) => load_blimp(d, None, Some(a.per_paradigm))?,
            None => Vec::new(),
        },
        tse: Vec::new(),
        ppl,
    };
    let spec = EvalSpec {
        bos: a.bos,
        ppl_window: a.ppl_window,
        prefix_row_tokens: (!a.no_prefix_sharing).then_some(DEFAULT_ROW_TOKENS),
        ..EvalSpec::default()
    };
    let progress = |label: &str, n: u64| super::progress::bar(label, n);
    let rows = checkpoint_sweep(
        &a.models, device, &cohort, &corpus, &score, &data, &spec, &a.out, &progress,
    )?;
    for r in &rows {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "model": r.model,
                "cohort_wd_mean": r.cohort_wd_mean,
                "all_wd_mean": r.all_wd_mean,
                "cohort_rank_pct": r.cohort_rank_pct,
                "blimp_baseline": r.baseline.blimp.as_ref().map(|s| s.overall.accuracy),
                "blimp_ablated": r.ablated.blimp.as_ref().map(|s| s.overall.accuracy),
                "ppl_baseline": r.baseline.perplexity,
                "ppl_ablated": r.ablated.perplexity,
            }))?
        );
    }
    Ok(())
}
