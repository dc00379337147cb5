//! `negdiff blimp`, `negdiff tse`, `negdiff perplexity`: one benchmark, one condition.

use std::path::PathBuf;

use anyhow::Context;
use negdiff_eval::convention::BosPolicy;
use negdiff_eval::datasets::{blimp::load_blimp, tse::load_tse};
use negdiff_eval::experiments::{blimp_unit, no_progress, ppl_unit, tse_unit};
use negdiff_eval::perplexity::TokenizedText;
use negdiff_eval::sentences::SentenceScorer;
use negdiff_interventions::Intervention;
use negdiff_model::packing::DEFAULT_ROW_TOKENS;
use negdiff_model::{Device, LanguageModel};
use negdiff_scoring::corpus::{Corpus, CorpusFormat};
use serde_json::json;

/// Options every benchmark command shares.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// A GGUF file, an HF model directory, or a hub id org/name or org/name@rev.
    model: String,
    #[command(flatten)]
    intervene: super::intervene::InterveneArgs,
    /// BOS convention: tokenizer (prepend iff the tokenizer does), prepend, never.
    #[arg(long, default_value = "tokenizer")]
    bos: BosPolicy,
    /// Padded tokens per forward pass.
    #[arg(long, default_value_t = 2048)]
    batch_tokens: usize,
    /// Run every sentence in a plain row of its own instead of sharing prefixes between
    /// sentences (prefix trees; same scores up to float rounding, fewer tokens to run).
    #[arg(long)]
    no_prefix_sharing: bool,
}

impl Common {
    fn scorer<'m>(&self, model: &'m LanguageModel) -> anyhow::Result<SentenceScorer<'m>> {
        Ok(SentenceScorer::new(model, self.bos)?
            .with_batch_tokens(self.batch_tokens)
            .with_prefix_sharing((!self.no_prefix_sharing).then_some(DEFAULT_ROW_TOKENS)))
    }
}

/// Arguments of `negdiff blimp`.
#[derive(clap::Args, Debug)]
pub struct BlimpArgs {
    #[command(flatten)]
    common: Common,
    /// Directory of BLiMP `*.jsonl` paradigm files.
    #[arg(long)]
    data: PathBuf,
    /// Take the first N lines of each paradigm file.
    #[arg(long)]
    per_paradigm: Option<usize>,
    /// Per-pair results (JSON lines, written as they are computed).
    #[arg(long)]
    out: PathBuf,
    /// Continue an interrupted run into an existing --out file instead of starting over.
    #[arg(long)]
    resume: bool,
}

/// Arguments of `negdiff tse`.
#[derive(clap::Args, Debug)]
pub struct TseArgs {
    #[command(flatten)]
    common: Common,
    /// Directory of TSE `*.pickle` files.
    #[arg(long)]
    data: PathBuf,
    /// Take the first N pairs of each case.
    #[arg(long)]
    per_case: Option<usize>,
    /// Per-pair results (JSON lines, written as they are computed).
    #[arg(long)]
    out: PathBuf,
    /// Continue an interrupted run into an existing --out file instead of starting over.
    #[arg(long)]
    resume: bool,
}

/// Arguments of `negdiff perplexity`.
#[derive(clap::Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    common: Common,
    /// Plain text, or CoNLL-U (`.conllu`: its `# text =` lines joined by one space).
    #[arg(long)]
    corpus: PathBuf,
    /// Window size in tokens (non-overlapping).
    #[arg(long, default_value_t = 512)]
    window: usize,
    /// Score at most this many tokens of the corpus.
    #[arg(long)]
    tokens: Option<usize>,
    /// Per-window NLLs (JSON lines).
    #[arg(long)]
    nll_out: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn fresh(out: &std::path::Path, resume: bool) -> anyhow::Result<()> {
    if !resume && out.exists() {
        std::fs::remove_file(out).with_context(|| format!("removing old {}", out.display()))?;
    }
    Ok(())
}

/// Runs `negdiff blimp`.
pub fn blimp(args: BlimpArgs, device: &Device) -> anyhow::Result<()> {
    let model = super::load_model(&args.common.model, device)?;
    let edit = args.common.intervene.build(&model)?;
    let iv = edit.as_ref().map(|e| e as &dyn Intervention);
    let pairs = load_blimp(&args.data, None, args.per_paradigm)?;
    let scorer = args.common.scorer(&model)?;
    fresh(&args.out, args.resume)?;
    let bar = super::progress::bar("BLiMP", pairs.len() as u64);
    let t0 = std::time::Instant::now();
    let (_, summary) = blimp_unit(&scorer, &pairs, iv, &args.out, 256, &bar)?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    super::print_json(&json!({
        "accuracy": summary.overall.accuracy,
        "n": summary.overall.n,
        "correct": summary.overall.correct,
        "ci95": [summary.overall.ci_low, summary.overall.ci_high],
        "skipped": summary.skipped,
        "ties": summary.ties,
        "convention": summary.convention,
        "intervention": edit.as_ref().map(|e| e.name()),
        "seconds": secs,
        "pairs_per_second": pairs.len() as f64 / secs.max(1e-9),
        "out": args.out,
    }))
}

/// Runs `negdiff tse`.
pub fn tse(args: TseArgs, device: &Device) -> anyhow::Result<()> {
    let model = super::load_model(&args.common.model, device)?;
    let edit = args.common.intervene.build(&model)?;
    let iv = edit.as_ref().map(|e| e as &dyn Intervention);
    let pairs = load_tse(&args.data, args.per_case)?;
    let scorer = args.common.scorer(&model)?;
    fresh(&args.out, args.resume)?;
    let bar = super::progress::bar("TSE", pairs.len() as u64);
    let t0 = std::time::Instant::now();
    let (_, summary) = tse_unit(&scorer, &pairs, iv, &args.out, 256, &bar)?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    super::print_json(&json!({
        "accuracy": summary.overall.accuracy,
        "n": summary.overall.n,
        "correct": summary.overall.correct,
        "ci95": [summary.overall.ci_low, summary.overall.ci_high],
        "skipped": summary.skipped,
        "ties": summary.ties,
        "convention": summary.convention,
        "intervention": edit.as_ref().map(|e| e.name()),
        "seconds": secs,
        "out": args.out,
    }))
}

/// Runs `negdiff perplexity`.
pub fn perplexity(args: PerplexityArgs, device: &Device) -> anyhow::Result<()> {
    let model = super::load_model(&args.common.model, device)?;
    let edit = args.common.intervene.build(&model)?;
    let iv = edit.as_ref().map(|e| e as &dyn Intervention);
    let corpus = Corpus::load(&args.corpus, CorpusFormat::infer(&args.corpus))?;
    let text = TokenizedText::new(&model, &corpus.text, args.tokens)?;
    let scorer = SentenceScorer::new(&model, args.common.bos)?
        .with_batch_tokens(args.common.batch_tokens.max(args.window));
    let tmp;
    let out = match &args.nll_out {
        Some(p) => {
            fresh(p, false)?;
            p.clone()
        }
        None => {
            tmp = tempdir_file()?;
            tmp.1.clone()
        }
    };
    let progress = |label: &str, n: u64| super::progress::bar(label, n);
    let _ = no_progress;
    let r = ppl_unit(
        &scorer,
        &text,
        args.window,
        iv,
        &out,
        64,
        &progress,
        "corpus",
    )?;
    let value = json!({
        "perplexity": r.perplexity,
        "tokens_scored": r.tokens_scored,
        "window": r.window,
        "nll_sum": r.nll_sum,
        "bos_prepended": scorer.bos_prepended(),
        "intervention": edit.as_ref().map(|e| e.name()),
        "corpus_sha256": corpus.sha256,
    });
    if args.json {
        super::print_json(&value)
    } else {
        println!(
            "perplexity {:.4} over {} tokens (window {})",
            r.perplexity, r.tokens_scored, r.window
        );
        Ok(())
    }
}

/// A scratch file for per-window NLLs the user did not ask to keep.
fn tempdir_file() -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nll.jsonl");
    Ok((dir, path))
}
