//! The paper's experiments as library functions: each condition's BLiMP, TSE, perplexity and
//! POS numbers, the main table with its controls, the per-layer sweep, and checkpoints.
//!
//! Every unit writes its per-item results as JSON lines while it runs (see [`crate::jsonl`])
//! and a summary when done; a rerun reuses finished summaries and complete chunks, so killing
//! a run loses at most one chunk of work and the final numbers are identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use negdiff_interventions::{EditKind, Intervention, NeuronEdit, NeuronSet};
use negdiff_model::LanguageModel;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::convention::{Aggregate, BosPolicy, Convention, LogBase, TieRule};
use crate::datasets::blimp::BlimpPair;
use crate::datasets::conllu::{Sentence, align_tokens_to_words, joined_text};
use crate::datasets::tse::TsePair;
use crate::jsonl::{read_complete_lines, run_chunked, unit_path};
use crate::pairs::score_pairs;
use crate::perplexity::{
    PerplexityResult, TokenizedText, perplexity_from, ppl_windows, window_nlls,
};
use crate::pos::{PosExcess, excess_by_pos};
use crate::sentences::SentenceScorer;
use crate::stats::{Accuracy, McNemar, mcnemar};
use crate::{EvalError, Result};

/// Makes a progress bar for a labelled step of `len` units (the CLI draws them; tests hide them).
pub type ProgressFactory<'a> = &'a dyn Fn(&str, u64) -> ProgressBar;

/// A progress factory that draws nothing.
pub fn no_progress(_: &str, _: u64) -> ProgressBar {
    ProgressBar::hidden()
}

/// A text for perplexity, tokenised once, with the gold UPOS of each token's word when the
/// text comes from a treebank.
#[derive(Debug, Clone)]
pub struct PplText {
    /// Where it came from.
    pub name: String,
    /// Tokens and their byte spans.
    pub text: TokenizedText,
    /// UPOS of the word each token belongs to (`None`: whitespace-only or no treebank).
    pub token_upos: Vec<Option<String>>,
}

impl PplText {
    /// From treebank sentences: their `# text` lines joined by one space, each token aligned
    /// to the word it overlaps most.
    pub fn from_conllu(
        model: &LanguageModel,
        name: &str,
        sentences: &[Sentence],
        max_tokens: Option<usize>,
    ) -> Result<Self> {
        let (joined, offsets) = joined_text(sentences);
        let text = TokenizedText::new(model, &joined, max_tokens)?;
        let mut spans = Vec::new();
        let mut tags = Vec::new();
        for (s, off) in sentences.iter().zip(&offsets) {
            for w in &s.words {
                spans.push((off + w.start, off + w.end));
                tags.push(w.upos.clone());
            }
        }
        let token_upos = align_tokens_to_words(&text.offsets, &spans)
            .into_iter()
            .map(|w| w.map(|i| tags[i].clone()))
            .collect();
        Ok(PplText {
            name: name.to_string(),
            text,
            token_upos,
        })
    }

    /// From plain text (no POS).
    pub fn from_plain(
        model: &LanguageModel,
        name: &str,
        text: &str,
        max_tokens: Option<usize>,
    ) -> Result<Self> {
        let text = TokenizedText::new(model, text, max_tokens)?;
        let token_upos = vec![None; text.ids.len()];
        Ok(PplText {
            name: name.to_string(),
            text,
            token_upos,
        })
    }
}

/// The benchmark items every condition is evaluated on.
#[derive(Debug, Clone, Default)]
pub struct BenchmarkData {
    /// BLiMP pairs (summed log-prob, strict `>`).
    pub blimp: Vec<BlimpPair>,
    /// TSE pairs (mean per-token log-prob).
    pub tse: Vec<TsePair>,
    /// Perplexity / POS text.
    pub ppl: Option<PplText>,
}

/// Settings shared by all evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalSpec {
    /// BOS policy for every sentence and window.
    pub bos: BosPolicy,
    /// Perplexity window in tokens.
    pub ppl_window: usize,
    /// Items per resumable chunk.
    pub chunk: usize,
    /// Padded tokens per forward pass.
    pub batch_tokens: usize,
    /// Tokens per prefix-tree row when sentences share prefixes
    /// ([`SentenceScorer::with_prefix_sharing`]); `None`: plain rows (files written before
    /// prefix sharing existed read as `None`, which is how they were computed).
    #[serde(default)]
    pub prefix_row_tokens: Option<usize>,
}

impl Default for EvalSpec {
    fn default() -> Self {
        EvalSpec {
            bos: BosPolicy::Tokenizer,
            ppl_window: 512,
            chunk: 256,
            batch_tokens: crate::sentences::DEFAULT_BATCH_TOKENS,
            prefix_row_tokens: Some(negdiff_model::packing::DEFAULT_ROW_TOKENS),
        }
    }
}

/// A model condition: unmodified, or one built-in edit on a neuron set.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Unique name, used for file names (`[a-z0-9._-]`).
    pub name: String,
    /// The edit, if any.
    pub edit: Option<(EditKind, NeuronSet)>,
}

impl Condition {
    /// The unmodified model.
    pub fn baseline() -> Self {
        Condition {
            name: "baseline".into(),
            edit: None,
        }
    }

    /// `kind` on `set`.
    pub fn edit(name: impl Into<String>, kind: EditKind, set: NeuronSet) -> Self {
        Condition {
            name: name.into(),
            edit: Some((kind, set)),
        }
    }

    fn prepare(&self, model: &LanguageModel) -> Result<Option<NeuronEdit>> {
        match &self.edit {
            None => Ok(None),
            Some((kind, set)) => Ok(Some(NeuronEdit::new(
                *kind,
                set,
                &model.site_layout(),
                model.device(),
            )?)),
        }
    }
}

/// Accuracy numbers for a benchmark, overall and by group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchmarkSummary {
    /// Overall accuracy with its Wilson 95% interval.
    pub overall: Accuracy,
    /// Items skipped (reported, never silently dropped).
    pub skipped: usize,
    /// Scored items whose two scores were exactly equal (counted wrong, see the convention).
    pub ties: usize,
    /// Accuracy by group (BLiMP: `term:*`, `field:*`, `paradigm:*`; TSE: `file:*`, `case:*`).
    pub groups: BTreeMap<String, Accuracy>,
    /// The scoring convention.
    pub convention: Convention,
}

/// Everything measured for one condition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConditionSummary {
    /// Condition name.
    pub name: String,
    /// The edit (`zero-negative` …), if any.
    pub edit: Option<String>,
    /// The neuron set's name, if any.
    pub set_name: Option<String>,
    /// Neurons edited.
    pub n_neurons: usize,
    /// BLiMP results.
    pub blimp: Option<BenchmarkSummary>,
    /// TSE results.
    pub tse: Option<BenchmarkSummary>,
    /// Perplexity.
    pub perplexity: Option<f64>,
    /// Tokens scored for perplexity.
    pub ppl_tokens: usize,
}

fn accuracy_groups(items: impl Iterator<Item = (Vec<String>, bool)>) -> BTreeMap<String, Accuracy> {
    let mut acc: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for (keys, ok) in items {
        for k in keys {
            acc.entry(k).or_default().push(ok);
        }
    }
    acc.into_iter()
        .map(|(k, v)| (k, Accuracy::from_bools(v)))
        .collect()
}

fn summary_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("summary").join(format!("{name}.json"))
}

/// Reads a finished unit's summary, if there is one.
pub fn load_summary(dir: &Path, name: &str) -> Option<ConditionSummary> {
    let text = std::fs::read_to_string(summary_path(dir, name)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| EvalError::Output {
            path: d.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| EvalError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| EvalError::Output {
        path: tmp.clone(),
        message: e.to_string(),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| EvalError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Per-pair verdicts of a condition's BLiMP or TSE unit, in item order (for McNemar tests).
pub fn verdicts(dir: &Path, bench: &str, name: &str) -> Result<Vec<bool>> {
    Ok(read_complete_lines(&unit_path(&dir.join(bench), name))?
        .iter()
        .map(|v| v["correct"].as_bool().unwrap_or(false))
        .collect())
}

/// Per-token NLLs of a condition's perplexity unit: `(token index, NLL)`.
pub fn token_nlls(dir: &Path, name: &str) -> Result<Vec<(usize, f32)>> {
    let mut out = Vec::new();
    for line in read_complete_lines(&unit_path(&dir.join("ppl"), name))? {
        let start = line["first_token"].as_u64().unwrap_or(0) as usize;
        if let Some(nll) = line["nll"].as_array() {
            for (i, v) in nll.iter().enumerate() {
                out.push((start + i, v.as_f64().unwrap_or(f64::NAN) as f32));
            }
        }
    }
    Ok(out)
}

/// Evaluates one condition on `data`, writing `dir/{blimp,tse,ppl}/<name>.jsonl` as it goes
/// and `dir/summary/<name>.json` at the end. A finished condition is read back, not rerun.
pub fn evaluate_condition(
    model: &LanguageModel,
    data: &BenchmarkData,
    spec: &EvalSpec,
    cond: &Condition,
    dir: &Path,
    progress: ProgressFactory<'_>,
) -> Result<ConditionSummary> {
    if let Some(done) = load_summary(dir, &cond.name) {
        return Ok(done);
    }
    let edit = cond.prepare(model)?;
    let iv: Option<&dyn Intervention> = edit.as_ref().map(|e| e as &dyn Intervention);
    let scorer = SentenceScorer::new(model, spec.bos)?
        .with_batch_tokens(spec.batch_tokens)
        .with_prefix_sharing(spec.prefix_row_tokens);

    let blimp = if data.blimp.is_empty() {
        None
    } else {
        let bar = progress(&format!("{} · BLiMP", cond.name), data.blimp.len() as u64);
        let out = blimp_unit(
            &scorer,
            &data.blimp,
            iv,
            &unit_path(&dir.join("blimp"), &cond.name),
            spec.chunk,
            &bar,
        )?;
        bar.finish_and_clear();
        Some(out.1)
    };
    let tse = if data.tse.is_empty() {
        None
    } else {
        let bar = progress(&format!("{} · TSE", cond.name), data.tse.len() as u64);
        let out = tse_unit(
            &scorer,
            &data.tse,
            iv,
            &unit_path(&dir.join("tse"), &cond.name),
            spec.chunk,
            &bar,
        )?;
        bar.finish_and_clear();
        Some(out.1)
    };
    let (perplexity, ppl_tokens) = match &data.ppl {
        None => (None, 0),
        Some(text) => {
            let r = ppl_unit(
                &scorer,
                &text.text,
                spec.ppl_window,
                iv,
                &unit_path(&dir.join("ppl"), &cond.name),
                spec.chunk,
                progress,
                &cond.name,
            )?;
            (Some(r.perplexity), r.tokens_scored)
        }
    };

    let summary = ConditionSummary {
        name: cond.name.clone(),
        edit: cond.edit.as_ref().map(|(k, _)| k.label()),
        set_name: cond.edit.as_ref().map(|(_, s)| s.name.clone()),
        n_neurons: cond.edit.as_ref().map_or(0, |(_, s)| s.len()),
        blimp,
        tse,
        perplexity,
        ppl_tokens,
    };
    write_json(&summary_path(dir, &cond.name), &summary)?;
    Ok(summary)
}

fn convention(scorer: &SentenceScorer<'_>, aggregate: Aggregate) -> Convention {
    Convention {
        bos: scorer.policy(),
        bos_prepended: scorer.bos_prepended(),
        aggregate,
        log_base: LogBase::E,
        ties: TieRule::Wrong,
    }
}

/// Scores BLiMP pairs (summed log-prob, ties wrong) into `out` (resumable JSON lines:
/// `{"uid", "pair_id", "logp_good", "logp_bad", "correct", "skipped"}`), returning the lines
/// and the summary.
pub fn blimp_unit(
    scorer: &SentenceScorer<'_>,
    pairs: &[BlimpPair],
    iv: Option<&dyn Intervention>,
    out: &Path,
    chunk: usize,
    bar: &ProgressBar,
) -> Result<(Vec<Value>, BenchmarkSummary)> {
    let lines = run_chunked(
        out,
        pairs,
        chunk,
        |items| {
            let texts: Vec<(&str, &str)> = items
                .iter()
                .map(|p| (p.sentence_good.as_str(), p.sentence_bad.as_str()))
                .collect();
            let verdicts = score_pairs(scorer, &texts, Aggregate::Sum, iv)?;
            Ok(items
                .iter()
                .zip(verdicts)
                .map(|(p, o)| {
                    json!({"uid": p.uid, "pair_id": p.pair_id, "logp_good": o.score_good,
                           "logp_bad": o.score_bad, "correct": o.correct, "skipped": o.skipped})
                })
                .collect())
        },
        |done| bar.set_position(done as u64),
    )?;
    let summary = summarize(
        pairs.iter().zip(&lines).map(|(p, l)| {
            (
                vec![
                    format!("term:{}", p.linguistics_term),
                    // BLiMP spells one field two ways (`syntax_semantics` in 13 paradigms,
                    // `syntax/semantics` in principle_A_case_2): group them as one.
                    format!("field:{}", p.field.replace('/', "_")),
                    format!("paradigm:{}", p.uid),
                ],
                l,
                ("logp_good", "logp_bad"),
            )
        }),
        convention(scorer, Aggregate::Sum),
    );
    Ok((lines, summary))
}

/// Scores TSE pairs (mean per-token log-prob, ties wrong) into `out` (resumable JSON lines:
/// `{"file", "case", "index", "score_good", "score_bad", "correct", "skipped"}`).
pub fn tse_unit(
    scorer: &SentenceScorer<'_>,
    pairs: &[TsePair],
    iv: Option<&dyn Intervention>,
    out: &Path,
    chunk: usize,
    bar: &ProgressBar,
) -> Result<(Vec<Value>, BenchmarkSummary)> {
    let lines = run_chunked(
        out,
        pairs,
        chunk,
        |items| {
            let texts: Vec<(&str, &str)> = items
                .iter()
                .map(|p| (p.good.as_str(), p.bad.as_str()))
                .collect();
            let verdicts = score_pairs(scorer, &texts, Aggregate::Mean, iv)?;
            Ok(items
                .iter()
                .zip(verdicts)
                .map(|(p, o)| {
                    json!({"file": p.file, "case": p.case, "index": p.index,
                           "score_good": o.score_good, "score_bad": o.score_bad,
                           "correct": o.correct, "skipped": o.skipped})
                })
                .collect())
        },
        |done| bar.set_position(done as u64),
    )?;
    let summary = summarize(
        pairs.iter().zip(&lines).map(|(p, l)| {
            (
                vec![
                    format!("file:{}", p.file),
                    format!("case:{}:{}", p.file, p.case),
                ],
                l,
                ("score_good", "score_bad"),
            )
        }),
        convention(scorer, Aggregate::Mean),
    );
    Ok((lines, summary))
}

fn summarize<'a>(
    items: impl Iterator<Item = (Vec<String>, &'a Value, (&'a str, &'a str))>,
    convention: Convention,
) -> BenchmarkSummary {
    let mut all = Vec::new();
    let mut skipped = 0;
    let mut ties = 0;
    let mut keyed = Vec::new();
    for (keys, line, (g, b)) in items {
        if !line["skipped"].is_null() {
            skipped += 1;
            continue;
        }
        let ok = line["correct"].as_bool().unwrap_or(false);
        if line[g].as_f64().is_some() && line[g].as_f64() == line[b].as_f64() {
            ties += 1;
        }
        all.push(ok);
        keyed.push((keys, ok));
    }
    BenchmarkSummary {
        overall: Accuracy::from_bools(all.iter().copied()),
        skipped,
        ties,
        groups: accuracy_groups(keyed.into_iter()),
        convention,
    }
}

/// Perplexity of `text` in windows, per-window NLLs written to `out` as resumable JSON lines
/// (`{"first_token", "nll": [...]}`).
#[allow(clippy::too_many_arguments)]
pub fn ppl_unit(
    scorer: &SentenceScorer<'_>,
    text: &TokenizedText,
    window: usize,
    iv: Option<&dyn Intervention>,
    out: &Path,
    chunk: usize,
    progress: ProgressFactory<'_>,
    label: &str,
) -> Result<PerplexityResult> {
    let windows = ppl_windows(scorer, text, window)?;
    let bar = progress(&format!("{label} · perplexity"), windows.len() as u64);
    let lines = run_chunked(
        out,
        &windows,
        chunk.div_ceil(8).max(1),
        |ws| {
            let nlls = window_nlls(scorer, ws, iv)?;
            Ok(ws
                .iter()
                .zip(nlls)
                .map(|(w, nll)| json!({"first_token": w.scored_token(0), "nll": nll}))
                .collect())
        },
        |done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let nlls: Vec<Vec<f32>> = lines
        .iter()
        .map(|l| {
            l["nll"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    Ok(perplexity_from(&windows, &nlls, window))
}

/// Settings of the main table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MainTableSpec {
    /// Per-layer top percent of Wasserstein neurons (the paper: 1).
    pub top_percent: f64,
    /// Score table used for selection (`w1_exact` or `w1_authors`).
    pub score_table: String,
    /// Seeds of the random same-count controls.
    pub random_seeds: Vec<u64>,
    /// Perplexity-matched control, if wanted.
    pub matched: Option<MatchSpec>,
}

/// The perplexity-matched control: zero-negative on the bottom-m% WD neurons, m found by
/// bisection until the perplexity rise matches the WD condition's.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MatchSpec {
    /// Accept when |rise − target| ≤ tolerance × target.
    pub tolerance: f64,
    /// Bisection steps at most.
    pub max_steps: usize,
    /// Largest m tried (percent of each layer).
    pub max_percent: f64,
}

impl Default for MatchSpec {
    fn default() -> Self {
        MatchSpec {
            tolerance: 0.1,
            max_steps: 8,
            max_percent: 50.0,
        }
    }
}

/// How the matched control was found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchedInfo {
    /// The perplexity rise to match (WD zero-negative minus baseline).
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub target_rise: f64,
    /// Perplexity the WD condition reached.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub target_perplexity: f64,
    /// Chosen m (percent).
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub percent: f64,
    /// Neurons in the matched set.
    pub n_neurons: usize,
    /// Perplexity the matched set reached.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub achieved_perplexity: f64,
    /// Whether the tolerance was met.
    pub converged: bool,
    /// Every step: (m, neurons, perplexity).
    pub steps: Vec<(f64, usize, f64)>,
}

/// The main table's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MainTable {
    /// One row per condition, baseline first.
    pub rows: Vec<ConditionSummary>,
    /// Paired McNemar tests of each condition's BLiMP verdicts against the baseline's.
    pub mcnemar_blimp: BTreeMap<String, McNemar>,
    /// The same on TSE.
    pub mcnemar_tse: BTreeMap<String, McNemar>,
    /// The matched control's search.
    pub matched: Option<MatchedInfo>,
}

/// The perplexity of one condition alone (used by the bisection), cached in the run dir.
fn perplexity_only(
    model: &LanguageModel,
    data: &BenchmarkData,
    spec: &EvalSpec,
    cond: &Condition,
    dir: &Path,
    progress: ProgressFactory<'_>,
) -> Result<f64> {
    let only = BenchmarkData {
        blimp: Vec::new(),
        tse: Vec::new(),
        ppl: data.ppl.clone(),
    };
    let s = evaluate_condition(model, &only, spec, cond, &dir.join("bisection"), progress)?;
    s.perplexity
        .ok_or_else(|| EvalError::Settings("the matched control needs a perplexity text".into()))
}

/// Runs the main table: baseline, zero-negative / zero-positive / zero on the top-p% WD
/// neurons, zero-negative on random same-count sets, and the perplexity-matched control.
pub fn main_table(
    model: &LanguageModel,
    data: &BenchmarkData,
    spec: &EvalSpec,
    scores: &[Vec<f64>],
    table: &MainTableSpec,
    dir: &Path,
    progress: ProgressFactory<'_>,
) -> Result<MainTable> {
    let d_mlp = model.dims().d_mlp;
    let wd = NeuronSet::top_percent_per_layer(
        format!("wd-top{}", table.top_percent),
        scores,
        table.top_percent,
    )?
    .with_shape(model.dims().n_layers, d_mlp);
    let sets_dir = dir.join("sets");
    std::fs::create_dir_all(&sets_dir).map_err(|e| EvalError::Output {
        path: sets_dir.clone(),
        message: e.to_string(),
    })?;
    wd.save(&sets_dir.join("wd.json"))?;
    let mut conditions = vec![
        Condition::baseline(),
        Condition::edit("wd-zero-negative", EditKind::ZeroNegative, wd.clone()),
        Condition::edit("wd-zero-positive", EditKind::ZeroPositive, wd.clone()),
        Condition::edit("wd-zero", EditKind::Zero, wd.clone()),
    ];
    for &seed in &table.random_seeds {
        let r = NeuronSet::random_like(format!("random-seed{seed}"), &wd, d_mlp, seed, true)?;
        r.save(&sets_dir.join(format!("random-seed{seed}.json")))?;
        conditions.push(Condition::edit(
            format!("random{seed}-zero-negative"),
            EditKind::ZeroNegative,
            r,
        ));
    }
    let mut rows = Vec::new();
    for c in &conditions {
        rows.push(evaluate_condition(model, data, spec, c, dir, progress)?);
    }

    let matched = match (table.matched, rows[0].perplexity, rows[1].perplexity) {
        (Some(m), Some(base), Some(target)) => {
            let info = find_matched(
                model,
                data,
                spec,
                scores,
                base,
                target,
                table.top_percent,
                &m,
                dir,
                progress,
            )?;
            let set = NeuronSet::bottom_percent_per_layer(
                format!("bottom{:.3}", info.percent),
                scores,
                info.percent,
            )?
            .with_shape(model.dims().n_layers, d_mlp);
            set.save(&sets_dir.join("matched.json"))?;
            rows.push(evaluate_condition(
                model,
                data,
                spec,
                &Condition::edit("matched-zero-negative", EditKind::ZeroNegative, set),
                dir,
                progress,
            )?);
            Some(info)
        }
        _ => None,
    };

    let mut mcnemar_blimp = BTreeMap::new();
    let mut mcnemar_tse = BTreeMap::new();
    for (bench, out) in [("blimp", &mut mcnemar_blimp), ("tse", &mut mcnemar_tse)] {
        let base = verdicts(dir, bench, "baseline")?;
        if base.is_empty() {
            continue;
        }
        for r in rows.iter().skip(1) {
            let v = verdicts(dir, bench, &r.name)?;
            if v.len() == base.len() {
                out.insert(r.name.clone(), mcnemar(&base, &v)?);
            }
        }
    }
    let result = MainTable {
        rows,
        mcnemar_blimp,
        mcnemar_tse,
        matched,
    };
    write_json(&dir.join("main_table.json"), &result)?;
    Ok(result)
}

#[allow(clippy::too_many_arguments)]
fn find_matched(
    model: &LanguageModel,
    data: &BenchmarkData,
    spec: &EvalSpec,
    scores: &[Vec<f64>],
    base: f64,
    target: f64,
    start_percent: f64,
    m: &MatchSpec,
    dir: &Path,
    progress: ProgressFactory<'_>,
) -> Result<MatchedInfo> {
    let rise_target = target - base;
    let mut steps = Vec::new();
    let eval = |p: f64| -> Result<(usize, f64)> {
        let set = NeuronSet::bottom_percent_per_layer(format!("bottom{p:.3}"), scores, p)?;
        let n = set.len();
        let name = format!("bottom{:.4}-zero-negative", p);
        let ppl = perplexity_only(
            model,
            data,
            spec,
            &Condition::edit(name, EditKind::ZeroNegative, set),
            dir,
            progress,
        )?;
        Ok((n, ppl))
    };
    let ok =
        |ppl: f64| ((ppl - base) - rise_target).abs() <= m.tolerance * rise_target.abs().max(1e-12);
    // Bracket: m doubles from the WD set's percent (the same neuron count) until the rise
    // reaches the target; then bisection inside the bracket.
    let start = start_percent.clamp(
        100.0 / scores.first().map_or(1, Vec::len).max(1) as f64,
        100.0,
    );
    let (mut lo, mut hi) = (0.0f64, start);
    let mut best = (start, 0usize, f64::NAN);
    loop {
        let (n, ppl) = eval(hi)?;
        steps.push((hi, n, ppl));
        best = pick(best, (hi, n, ppl), base, rise_target);
        if ok(ppl) || ppl - base >= rise_target || hi >= m.max_percent || steps.len() >= m.max_steps
        {
            break;
        }
        lo = hi;
        hi = (hi * 2.0).min(m.max_percent);
    }
    while !ok(best.2) && steps.len() < m.max_steps && rise_target > 0.0 {
        let mid = (lo + hi) / 2.0;
        let (n, ppl) = eval(mid)?;
        steps.push((mid, n, ppl));
        best = pick(best, (mid, n, ppl), base, rise_target);
        if ppl - base < rise_target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(MatchedInfo {
        target_rise: rise_target,
        target_perplexity: target,
        percent: best.0,
        n_neurons: best.1,
        achieved_perplexity: best.2,
        converged: ok(best.2),
        steps,
    })
}

fn pick(a: (f64, usize, f64), b: (f64, usize, f64), base: f64, target: f64) -> (f64, usize, f64) {
    let err = |x: (f64, usize, f64)| {
        if x.2.is_nan() {
            f64::INFINITY
        } else {
            ((x.2 - base) - target).abs()
        }
    };
    if err(b) < err(a) { b } else { a }
}

/// One row of the per-layer sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRow {
    /// `baseline` (no edit, on the sweep's own subsets), `single` (these layers alone) or
    /// `cumulative` (all layers up to the last).
    pub kind: String,
    /// The layers edited.
    pub layers: Vec<usize>,
    /// The condition's results.
    pub summary: ConditionSummary,
}

/// Zero-negative on the WD set one group of `group` layers at a time, and on the first k
/// groups cumulatively; the first row is the unedited model on the same data, since the sweep
/// usually runs on smaller subsets than the main table.
pub fn layer_sweep(
    model: &LanguageModel,
    data: &BenchmarkData,
    spec: &EvalSpec,
    wd: &NeuronSet,
    group: usize,
    dir: &Path,
    progress: ProgressFactory<'_>,
) -> Result<Vec<SweepRow>> {
    let n_layers = model.dims().n_layers;
    let group = group.max(1);
    let baseline = evaluate_condition(
        model,
        data,
        spec,
        &Condition::baseline(),
        &dir.join("sweep"),
        progress,
    )?;
    let mut rows = vec![SweepRow {
        kind: "baseline".into(),
        layers: Vec::new(),
        summary: baseline,
    }];
    let groups: Vec<Vec<usize>> = (0..n_layers)
        .collect::<Vec<_>>()
        .chunks(group)
        .map(<[usize]>::to_vec)
        .collect();
    for (kind, make) in [("single", false), ("cumulative", true)] {
        for g in &groups {
            let layers: Vec<usize> = if make {
                (0..=*g.last().unwrap_or(&0)).collect()
            } else {
                g.clone()
            };
            let first = layers.first().copied().unwrap_or(0);
            let last = layers.last().copied().unwrap_or(0);
            let name = format!("{kind}-{first}-{last}");
            let set = wd.restrict_to_layers(&layers, name.clone());
            let summary = evaluate_condition(
                model,
                data,
                spec,
                &Condition::edit(name, EditKind::ZeroNegative, set),
                &dir.join("sweep"),
                progress,
            )?;
            rows.push(SweepRow {
                kind: kind.to_string(),
                layers,
                summary,
            });
        }
    }
    write_json(&dir.join("layer_sweep.json"), &rows)?;
    Ok(rows)
}

/// Excess surprisal by gold UPOS of each edited condition against the baseline.
pub fn pos_analysis(
    data: &BenchmarkData,
    conditions: &[String],
    dir: &Path,
) -> Result<BTreeMap<String, (Vec<PosExcess>, usize)>> {
    let Some(text) = &data.ppl else {
        return Ok(BTreeMap::new());
    };
    let base = token_nlls(dir, "baseline")?;
    let mut out = BTreeMap::new();
    for c in conditions {
        let abl = token_nlls(dir, c)?;
        if abl.is_empty() {
            continue;
        }
        out.insert(c.clone(), excess_by_pos(&base, &abl, &text.token_upos));
    }
    write_json(&dir.join("pos_excess.json"), &out)?;
    Ok(out)
}

/// One checkpoint's row: how a fixed neuron cohort's WD and ablation effect change over
/// training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointRow {
    /// The model string (hub id with revision, or a directory).
    pub model: String,
    /// Mean W1 of the cohort's neurons.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub cohort_wd_mean: f64,
    /// Mean W1 of all neurons.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub all_wd_mean: f64,
    /// Mean percentile rank (within its layer, 0–100) of the cohort's neurons.
    #[serde(deserialize_with = "crate::serde_nan::de")]
    pub cohort_rank_pct: f64,
    /// Baseline results.
    pub baseline: ConditionSummary,
    /// Zero-negative on the cohort.
    pub ablated: ConditionSummary,
}

/// Runs the same measures over a list of checkpoints (revisions or directories): the W1 of a
/// fixed cohort of neurons on `corpus`, and baseline vs zero-negative on the cohort.
#[allow(clippy::too_many_arguments)]
pub fn checkpoint_sweep(
    models: &[String],
    device: &negdiff_model::Device,
    cohort: &NeuronSet,
    corpus: &negdiff_scoring::corpus::Corpus,
    score: &negdiff_scoring::pipeline::ScoreSpec,
    data: &BenchmarkData,
    spec: &EvalSpec,
    dir: &Path,
    progress: ProgressFactory<'_>,
) -> Result<Vec<CheckpointRow>> {
    let mut rows = Vec::new();
    for (i, m) in models.iter().enumerate() {
        let unit = dir.join(format!("checkpoint-{i:03}"));
        let done = unit.join("row.json");
        if let Ok(text) = std::fs::read_to_string(&done)
            && let Ok(row) = serde_json::from_str::<CheckpointRow>(&text)
            && row.model == *m
        {
            rows.push(row);
            continue;
        }
        let model = LanguageModel::load(m, device)?;
        cohort.validate(model.dims().n_layers, model.dims().d_mlp)?;
        let tables = match negdiff_scoring::scores::ScoreTables::load(&unit.join("scores")) {
            Ok(t) => t,
            Err(_) => {
                let run = negdiff_scoring::pipeline::score_corpus(&model, corpus, score, progress)?;
                run.tables.save(&unit.join("scores"))?;
                run.tables
            }
        };
        let w1 = tables
            .rows("w1_exact")
            .or_else(|| tables.rows("w1_streaming"))
            .ok_or_else(|| EvalError::Settings("checkpoint scoring produced no W1 table".into()))?;
        let mut cohort_vals = Vec::new();
        let mut ranks = Vec::new();
        for (&l, ns) in &cohort.layers {
            let row = &w1[l];
            for &n in ns {
                let v = row[n];
                cohort_vals.push(v);
                let below = row.iter().filter(|&&x| x < v).count();
                ranks.push(100.0 * below as f64 / row.len().max(1) as f64);
            }
        }
        let mean = |v: &[f64]| {
            let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            f.iter().sum::<f64>() / f.len().max(1) as f64
        };
        let all: Vec<f64> = w1.iter().flatten().copied().collect();
        let baseline =
            evaluate_condition(&model, data, spec, &Condition::baseline(), &unit, progress)?;
        let ablated = evaluate_condition(
            &model,
            data,
            spec,
            &Condition::edit(
                "cohort-zero-negative",
                EditKind::ZeroNegative,
                cohort.clone(),
            ),
            &unit,
            progress,
        )?;
        let row = CheckpointRow {
            model: m.clone(),
            cohort_wd_mean: mean(&cohort_vals),
            all_wd_mean: mean(&all),
            cohort_rank_pct: mean(&ranks),
            baseline,
            ablated,
        };
        write_json(&done, &row)?;
        rows.push(row);
    }
    write_json(&dir.join("checkpoints.json"), &rows)?;
    Ok(rows)
}
