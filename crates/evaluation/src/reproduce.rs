//! `negdiff reproduce`: the whole pipeline, resumable, ending in a report.
//!
//! score neurons on a corpus → select the top p% per layer → main table (BLiMP, TSE,
//! perplexity) with controls → excess surprisal by POS → per-layer sweep → report. Every step
//! leaves files in the output directory; a rerun skips what is complete.

use std::path::{Path, PathBuf};

use negdiff_interventions::NeuronSet;
use negdiff_model::LanguageModel;
use negdiff_scoring::corpus::{Corpus, CorpusFormat};
use negdiff_scoring::pipeline::{ScoreSpec, score_corpus};
use negdiff_scoring::scores::{ScoreTables, peak_rss_bytes, write_manifest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::datasets::blimp::load_blimp;
use crate::datasets::conllu::load_conllu;
use crate::datasets::tse::load_tse;
use crate::experiments::{
    BenchmarkData, EvalSpec, MainTableSpec, PplText, ProgressFactory, layer_sweep, main_table,
    pos_analysis,
};
use crate::neuron_table::top_pair_rows;
use crate::report::{ReportInput, ReportPaths, WdTables, write_report};
use crate::{EvalError, Result};

/// Everything `reproduce` needs to know.
#[derive(Debug, Clone)]
pub struct ReproduceSpec {
    /// Output directory.
    pub out: PathBuf,
    /// Corpus the neurons are scored on.
    pub score_corpus: PathBuf,
    /// Scoring settings.
    pub score: ScoreSpec,
    /// BLiMP directory.
    pub blimp_dir: PathBuf,
    /// First N pairs of each paradigm (`None`: all).
    pub blimp_per_paradigm: Option<usize>,
    /// TSE directory.
    pub tse_dir: PathBuf,
    /// First N pairs of each case (`None`: all).
    pub tse_per_case: Option<usize>,
    /// Perplexity / POS text: a CoNLL-U file (or plain text).
    pub ppl_corpus: PathBuf,
    /// Tokens of it to score.
    pub ppl_tokens: usize,
    /// Evaluation settings.
    pub eval: EvalSpec,
    /// Main-table settings.
    pub main: MainTableSpec,
    /// Layers per group in the sweep (0 skips the sweep).
    pub sweep_group: usize,
    /// BLiMP pairs per paradigm in the sweep.
    pub sweep_blimp_per_paradigm: Option<usize>,
    /// Perplexity tokens in the sweep.
    pub sweep_ppl_tokens: usize,
    /// Token pairs listed for the top neuron.
    pub top_pairs: usize,
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// SHA-256 over files (name and bytes), in the given order.
fn hash_files(files: &[PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| out_err(f, e))?;
        h.update(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_bytes(),
        );
        h.update(&bytes);
    }
    Ok(format!("{:x}", h.finalize()))
}

fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| out_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    Ok(v)
}

fn ppl_text(model: &LanguageModel, path: &Path, tokens: usize) -> Result<PplText> {
    let name = path.display().to_string();
    if path.extension().is_some_and(|e| e == "conllu") {
        let (sentences, _) = load_conllu(path, false)?;
        PplText::from_conllu(model, &name, &sentences, Some(tokens))
    } else {
        let text = crate::datasets::text::read_text(path)?;
        PplText::from_plain(model, &name, &text, Some(tokens))
    }
}

/// Scores (or reloads) the neurons; returns the tables.
fn scores_step(
    model: &LanguageModel,
    spec: &ReproduceSpec,
    progress: ProgressFactory<'_>,
) -> Result<ScoreTables> {
    let dir = spec.out.join("scores");
    if let Ok(t) = ScoreTables::load(&dir)
        && dir.join("manifest.json").is_file()
    {
        return Ok(t);
    }
    let format = CorpusFormat::infer(&spec.score_corpus);
    let corpus = Corpus::load(&spec.score_corpus, format.clone())?;
    let run = score_corpus(model, &corpus, &spec.score, progress)?;
    if let Some(top) = &run.top {
        let sentences = if format == CorpusFormat::Conllu {
            Some(load_conllu(&spec.score_corpus, false)?.0)
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
                spec.top_pairs,
            )?
        } else {
            Vec::new()
        };
        let mut v = serde_json::to_value(top.score).map_err(|e| out_err(&dir, e))?;
        v["layer"] = json!(top.layer);
        v["neuron"] = json!(top.neuron);
        v["histogram"] = serde_json::to_value(&top.histogram).map_err(|e| out_err(&dir, e))?;
        v["pairs"] = json!(pairs);
        std::fs::create_dir_all(&dir).map_err(|e| out_err(&dir, e))?;
        let p = dir.join("top_neuron.json");
        std::fs::write(
            &p,
            serde_json::to_string_pretty(&v).map_err(|e| out_err(&p, e))?,
        )
        .map_err(|e| out_err(&p, e))?;
    }
    // Tables first, manifest last: the manifest marks the step complete.
    run.tables.save(&dir)?;
    write_manifest(&dir, &run.manifest)?;
    Ok(run.tables)
}

/// Runs the pipeline and writes `report.md` / `report.html`.
pub fn reproduce(
    model: &LanguageModel,
    spec: &ReproduceSpec,
    progress: ProgressFactory<'_>,
) -> Result<ReportPaths> {
    let out = &spec.out;
    std::fs::create_dir_all(out).map_err(|e| out_err(out, e))?;
    let tables = scores_step(model, spec, progress)?;
    let rows = tables.rows(&spec.main.score_table).ok_or_else(|| {
        EvalError::Settings(format!("no score table `{}`", spec.main.score_table))
    })?;

    let blimp = load_blimp(&spec.blimp_dir, None, spec.blimp_per_paradigm)?;
    let tse = load_tse(&spec.tse_dir, spec.tse_per_case)?;
    let ppl = ppl_text(model, &spec.ppl_corpus, spec.ppl_tokens)?;
    let data = BenchmarkData {
        blimp,
        tse,
        ppl: Some(ppl),
    };

    let table = main_table(model, &data, &spec.eval, &rows, &spec.main, out, progress)?;
    let edited: Vec<String> = table.rows.iter().skip(1).map(|r| r.name.clone()).collect();
    pos_analysis(&data, &edited, out)?;

    let wd = NeuronSet::load(&out.join("sets").join("wd.json"))?;
    if spec.sweep_group > 0 {
        let sweep_data = BenchmarkData {
            blimp: load_blimp(&spec.blimp_dir, None, spec.sweep_blimp_per_paradigm)?,
            tse: Vec::new(),
            ppl: Some(ppl_text(model, &spec.ppl_corpus, spec.sweep_ppl_tokens)?),
        };
        layer_sweep(
            model,
            &sweep_data,
            &spec.eval,
            &wd,
            spec.sweep_group,
            out,
            progress,
        )?;
    }

    let score_manifest: Value = std::fs::read_to_string(out.join("scores").join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let blimp_files = files_with_ext(&spec.blimp_dir, "jsonl")?;
    let tse_files = files_with_ext(&spec.tse_dir, "pickle")?;
    // A resumed run reports the peak over the invocations that built this directory (the
    // scoring step's, from its manifest, and the previous completed run's), not just the last one.
    let previous_peak = std::fs::read_to_string(out.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m["peak_rss_bytes"].as_u64());
    let peak_rss = peak_rss_bytes()
        .into_iter()
        .chain(previous_peak)
        .chain(score_manifest["peak_rss_bytes"].as_u64())
        .max();
    let manifest = json!({
        "model": {
            "source": model.info().source,
            "architecture": model.info().architecture,
            "n_params": model.info().n_params,
            "dtype": model.info().dtype,
            "sha256": model.fingerprint()?,
            "bos_prepended": model.info().bos_prepended,
        },
        "data": {
            "corpus": {"path": spec.score_corpus, "sha256": score_manifest["corpus"]["sha256"], "tokens": score_manifest["tokens_collected"]},
            "blimp": {"dir": spec.blimp_dir, "files_sha256": hash_files(&blimp_files)?, "per_paradigm": spec.blimp_per_paradigm, "pairs": data.blimp.len()},
            "tse": {"dir": spec.tse_dir, "files_sha256": hash_files(&tse_files)?, "per_case": spec.tse_per_case, "pairs": data.tse.len()},
            "ppl": {"path": spec.ppl_corpus, "sha256": hash_files(std::slice::from_ref(&spec.ppl_corpus))?, "tokens": spec.ppl_tokens},
        },
        "settings": {
            "score": score_manifest["settings"],
            "eval": spec.eval,
            "main": spec.main,
            "random_seeds": spec.main.random_seeds,
            "sweep_group": spec.sweep_group,
            "sweep_blimp_per_paradigm": spec.sweep_blimp_per_paradigm,
            "sweep_ppl_tokens": spec.sweep_ppl_tokens,
        },
        "conventions": {
            "blimp": "summed natural-log probability of the full sentence; correct iff good > bad (ties wrong)",
            "tse": "mean per-token log-probability; correct iff good > bad",
            "bos": spec.eval.bos,
            "perplexity": format!("non-overlapping windows of {} tokens", spec.eval.ppl_window),
            "selection": format!("top {}% per layer by {}, strictly above the numpy-linear percentile", spec.main.top_percent, spec.main.score_table),
            "scores": score_manifest["conventions"],
        },
        "versions": {"negdiff": env!("CARGO_PKG_VERSION")},
        "peak_rss_bytes": peak_rss,
    });
    write_manifest(out, &manifest)?;

    let mut input = ReportInput::from_dir(out);
    input.wd = Some(WdTables {
        scores: rows,
        name: spec.main.score_table.clone(),
        selected: wd.layers.clone(),
    });
    write_report(out, &input)
}
