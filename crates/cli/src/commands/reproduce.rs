//! `negdiff reproduce MODEL` and `negdiff report DIR`.

use std::path::PathBuf;

use negdiff_eval::convention::BosPolicy;
use negdiff_eval::experiments::{EvalSpec, MainTableSpec, MatchSpec};
use negdiff_eval::report::{ReportInput, WdTables, write_report};
use negdiff_eval::reproduce::{ReproduceSpec, reproduce};
use negdiff_interventions::NeuronSet;
use negdiff_model::Device;
use negdiff_model::packing::DEFAULT_ROW_TOKENS;
use negdiff_scoring::corpus::WindowSpec;
use negdiff_scoring::md::MdSpec;
use negdiff_scoring::pipeline::{NormalSource, ScoreSpec};
use negdiff_scoring::scores::ScoreTables;

/// Arguments of `negdiff reproduce`. Defaults are a subset that finishes in about ten minutes
/// on a 2-core CPU with SmolLM2-135M; `--full` uses the paper-sized settings.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    /// A GGUF file, an HF model directory, or a hub id org/name or org/name@rev.
    model: String,
    /// Output directory (resumable: rerun to continue).
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Benchmark data directory (blimp/, tse/, ud_ewt/).
    #[arg(long, env = "NEGDIFF_DATA", default_value = "../shared/data")]
    data: PathBuf,
    /// Corpus to score neurons on (default: UD EWT dev).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Tokens to score neurons on.
    #[arg(long, default_value_t = 8192)]
    score_tokens: usize,
    /// Scoring window.
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// BLiMP pairs per paradigm (main table).
    #[arg(long, default_value_t = 5)]
    blimp_per_paradigm: usize,
    /// TSE pairs per case (main table).
    #[arg(long, default_value_t = 3)]
    tse_per_case: usize,
    /// Perplexity/POS tokens of UD EWT test.
    #[arg(long, default_value_t = 4000)]
    ppl_tokens: usize,
    /// Perplexity window.
    #[arg(long, default_value_t = 512)]
    ppl_window: usize,
    /// Run every sentence in a plain row of its own instead of sharing prefixes between
    /// sentences (prefix trees; same scores up to float rounding, fewer tokens to run).
    #[arg(long)]
    no_prefix_sharing: bool,
    /// Percent of neurons per layer selected as Wasserstein neurons.
    #[arg(long, default_value_t = 1.0)]
    top: f64,
    /// Random same-count control seeds.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    seeds: Vec<u64>,
    /// Relative tolerance of the perplexity-matched control.
    #[arg(long, default_value_t = 0.1)]
    match_tolerance: f64,
    /// Bisection steps of the perplexity-matched control.
    #[arg(long, default_value_t = 6)]
    match_steps: usize,
    /// Layers per group in the sweep (0: no sweep).
    #[arg(long, default_value_t = 6)]
    sweep_group: usize,
    /// BLiMP pairs per paradigm in the sweep.
    #[arg(long, default_value_t = 2)]
    sweep_blimp_per_paradigm: usize,
    /// Perplexity tokens in the sweep.
    #[arg(long, default_value_t = 1500)]
    sweep_ppl_tokens: usize,
    /// BOS convention.
    #[arg(long, default_value = "tokenizer")]
    bos: BosPolicy,
    /// Memory for exact scoring, GiB (more passes over the corpus beyond it).
    #[arg(long, default_value_t = 2.0)]
    memory_gb: f64,
    /// Paper-sized run: 30k scoring tokens (window 2048), 50 BLiMP pairs per paradigm, 20 TSE
    /// pairs per case, 20k perplexity tokens, 3 seeds, sweep per layer.
    #[arg(long)]
    full: bool,
}

/// Runs `negdiff reproduce`.
pub fn run(mut a: ReproduceArgs, device: &Device) -> anyhow::Result<()> {
    if a.full {
        a.score_tokens = 30_000;
        a.window = 2048;
        a.blimp_per_paradigm = 50;
        a.tse_per_case = 20;
        a.ppl_tokens = 20_000;
        a.seeds = vec![1, 2, 3];
        a.sweep_group = 1;
        a.sweep_blimp_per_paradigm = 10;
        a.sweep_ppl_tokens = 5000;
        a.match_steps = 8;
    }
    let model = super::load_model(&a.model, device)?;
    let ud = a.data.join("ud_ewt");
    let spec = ReproduceSpec {
        out: a.out.clone(),
        score_corpus: a
            .corpus
            .clone()
            .unwrap_or_else(|| ud.join("en_ewt-ud-dev.conllu")),
        score: ScoreSpec {
            windows: WindowSpec {
                window: a.window,
                stride: a.window,
                max_tokens: a.score_tokens,
            },
            batch_windows: 1,
            exact: true,
            authors: true,
            normal: NormalSource::Seeded(0),
            streaming: None,
            md: Some(MdSpec::default()),
            // Exact scoring splits the layers into passes beyond this, so memory stays bounded
            // whatever the number of corpus tokens.
            memory_budget: (a.memory_gb * (1u64 << 30) as f64) as usize,
        },
        blimp_dir: a.data.join("blimp"),
        blimp_per_paradigm: Some(a.blimp_per_paradigm),
        tse_dir: a.data.join("tse"),
        tse_per_case: Some(a.tse_per_case),
        ppl_corpus: ud.join("en_ewt-ud-test.conllu"),
        ppl_tokens: a.ppl_tokens,
        eval: EvalSpec {
            bos: a.bos,
            ppl_window: a.ppl_window,
            prefix_row_tokens: (!a.no_prefix_sharing).then_some(DEFAULT_ROW_TOKENS),
            ..EvalSpec::default()
        },
        main: MainTableSpec {
            top_percent: a.top,
            score_table: "w1_exact".into(),
            random_seeds: a.seeds.clone(),
            matched: Some(MatchSpec {
                tolerance: a.match_tolerance,
                max_steps: a.match_steps,
                max_percent: 50.0,
            }),
        },
        sweep_group: a.sweep_group,
        sweep_blimp_per_paradigm: Some(a.sweep_blimp_per_paradigm),
        sweep_ppl_tokens: a.sweep_ppl_tokens,
        top_pairs: 10,
    };
    let progress = |label: &str, n: u64| super::progress::bar(label, n);
    let t0 = std::time::Instant::now();
    let paths = reproduce(&model, &spec, &progress)?;
    eprintln!("done in {:.0} s", t0.elapsed().as_secs_f64());
    if let Ok(text) = std::fs::read_to_string(a.out.join("main_table.json"))
        && let Ok(t) = serde_json::from_str::<negdiff_eval::experiments::MainTable>(&text)
    {
        eprintln!(
            "{:<28} {:>7} {:>8} {:>8} {:>11}",
            "condition", "neurons", "BLiMP %", "TSE %", "perplexity"
        );
        for r in &t.rows {
            let acc = |s: &Option<negdiff_eval::experiments::BenchmarkSummary>| {
                s.as_ref().map_or(f64::NAN, |s| 100.0 * s.overall.accuracy)
            };
            eprintln!(
                "{:<28} {:>7} {:>8.1} {:>8.1} {:>11.3}",
                r.name,
                r.n_neurons,
                acc(&r.blimp),
                acc(&r.tse),
                r.perplexity.unwrap_or(f64::NAN)
            );
        }
        if let Some(m) = &t.matched {
            eprintln!(
                "perplexity-matched control: bottom {:.3}% per layer ({} neurons) reached perplexity {:.3}, target {:.3} ({})",
                m.percent,
                m.n_neurons,
                m.achieved_perplexity,
                m.target_perplexity,
                if m.converged {
                    "within tolerance"
                } else {
                    "not within tolerance"
                }
            );
        }
    }
    println!("{}", paths.markdown.display());
    println!("{}", paths.html.display());
    Ok(())
}

/// Arguments of `negdiff report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// A `reproduce` output directory.
    dir: PathBuf,
}

/// Rebuilds the report of a run from its files.
pub fn report(a: ReportArgs, _device: &Device) -> anyhow::Result<()> {
    let mut input = ReportInput::from_dir(&a.dir);
    if let (Ok(t), Ok(set)) = (
        ScoreTables::load(&a.dir.join("scores")),
        NeuronSet::load(&a.dir.join("sets").join("wd.json")),
    ) {
        input.wd = t.rows("w1_exact").map(|scores| WdTables {
            scores,
            name: "w1_exact".into(),
            selected: set.layers.clone(),
        });
    }
    let paths = write_report(&a.dir, &input)?;
    println!("{}", paths.markdown.display());
    println!("{}", paths.html.display());
    Ok(())
}
