//! Reports: tables and plots of a run, written as `report.md` and `report.html` beside the
//! results. Everything is read back from the run's files (never from memory), so a report can
//! be rebuilt at any time with `negdiff report DIR`.

pub mod doc;
pub mod plots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::experiments::{MainTable, SweepRow};
use crate::pos::PosExcess;
use crate::{EvalError, Result};
use doc::Block;
use plots::{BarPlot, HistogramPlot, LinePlot, render};

/// Draws one figure into a directory under a file stem, returning the SVG and PNG paths.
type PlotFn<'a> = dyn Fn(&Path, &str) -> Result<(PathBuf, PathBuf)> + 'a;

/// Where the report went.
#[derive(Debug, Clone)]
pub struct ReportPaths {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// Every plot file written (SVG and PNG).
    pub plots: Vec<PathBuf>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

fn pct(v: f64) -> String {
    f(100.0 * v, 1)
}

/// Per-layer Wasserstein distances and the selection, for the WD section.
#[derive(Debug, Clone)]
pub struct WdTables {
    /// `[layer][neuron]` scores used for selection.
    pub scores: Vec<Vec<f64>>,
    /// Name of that table.
    pub name: String,
    /// Selected neurons per layer.
    pub selected: BTreeMap<usize, Vec<usize>>,
}

/// Everything a report can show; each part is optional.
#[derive(Debug, Default)]
pub struct ReportInput {
    /// The run manifest.
    pub manifest: Option<Value>,
    /// WD tables.
    pub wd: Option<WdTables>,
    /// The top neuron's histogram and most separated pairs (`scores/top_neuron.json`).
    pub top_neuron: Option<Value>,
    /// The main table.
    pub main: Option<MainTable>,
    /// Excess surprisal by POS per condition.
    pub pos: Option<BTreeMap<String, (Vec<PosExcess>, usize)>>,
    /// The per-layer sweep.
    pub sweep: Option<Vec<SweepRow>>,
}

impl ReportInput {
    /// Reads what exists in a run directory (`wd` must be supplied by the caller, who knows
    /// where the scores are).
    pub fn from_dir(dir: &Path) -> Self {
        ReportInput {
            manifest: read_json(&dir.join("manifest.json")),
            wd: None,
            top_neuron: read_json(&dir.join("scores").join("top_neuron.json")),
            main: read_json(&dir.join("main_table.json")),
            pos: read_json(&dir.join("pos_excess.json")),
            sweep: read_json(&dir.join("layer_sweep.json")),
        }
    }
}

fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    negdiff_interventions::percentile_linear(sorted, q)
}

/// Writes `report.md`, `report.html` and `plots/*.{svg,png}` into `dir`.
pub fn write_report(dir: &Path, input: &ReportInput) -> Result<ReportPaths> {
    let plot_dir = dir.join("plots");
    let mut plots_written = Vec::new();
    let mut figure = |stem: &str, caption: &str, plot: &PlotFn<'_>| -> Result<Block> {
        let (svg, png) = plot(&plot_dir, stem)?;
        plots_written.push(svg);
        plots_written.push(png);
        Ok(Block::Figure {
            svg: format!("plots/{stem}.svg"),
            png: format!("plots/{stem}.png"),
            caption: caption.to_string(),
        })
    };
    let mut b = vec![Block::Heading(1, "negdiff report".into())];

    if let Some(m) = &input.manifest {
        b.push(Block::Heading(2, "Run".into()));
        let rows: Vec<Vec<String>> = [
            ("model", m.pointer("/model/source")),
            ("architecture", m.pointer("/model/architecture")),
            ("model sha256", m.pointer("/model/sha256")),
            ("negdiff", m.pointer("/versions/negdiff")),
            ("score corpus", m.pointer("/data/corpus/path")),
            ("corpus sha256", m.pointer("/data/corpus/sha256")),
            ("BLiMP pairs", m.pointer("/data/blimp/pairs")),
            ("TSE pairs", m.pointer("/data/tse/pairs")),
            ("perplexity tokens", m.pointer("/data/ppl/tokens")),
            ("seeds", m.pointer("/settings/random_seeds")),
        ]
        .iter()
        .filter_map(|(k, v)| {
            v.map(|v| vec![k.to_string(), v.to_string().trim_matches('"').to_string()])
        })
        .collect();
        b.push(Block::Table(vec!["".into(), "".into()], rows));
        if let Some(conv) = m.get("conventions") {
            b.push(Block::Para(format!(
                "Conventions: {}",
                serde_json::to_string(conv).unwrap_or_default()
            )));
        }
    }

    if let Some(wd) = &input.wd {
        b.push(Block::Heading(2, "Wasserstein neurons".into()));
        let layers: Vec<f64> = (0..wd.scores.len()).map(|l| l as f64).collect();
        let mut med = Vec::new();
        let mut p90 = Vec::new();
        let mut p99 = Vec::new();
        let mut max = Vec::new();
        let mut rows = Vec::new();
        for (l, row) in wd.scores.iter().enumerate() {
            let mut s: Vec<f64> = row.iter().copied().filter(|v| v.is_finite()).collect();
            s.sort_by(|a, b| a.total_cmp(b));
            med.push(percentile_sorted(&s, 50.0));
            p90.push(percentile_sorted(&s, 90.0));
            p99.push(percentile_sorted(&s, 99.0));
            max.push(s.last().copied().unwrap_or(f64::NAN));
            let sel = wd.selected.get(&l).map(Vec::len).unwrap_or(0);
            rows.push(vec![
                l.to_string(),
                f(med[l], 4),
                f(p99[l], 4),
                f(max[l], 4),
                sel.to_string(),
                (row.len() - s.len()).to_string(),
            ]);
        }
        let plot = LinePlot {
            title: format!("{} by layer", wd.name),
            x_label: "layer".into(),
            y_label: "W1 to N(0,1)".into(),
            x: layers,
            series: vec![
                ("median".into(), med),
                ("90th pct".into(), p90),
                ("99th pct".into(), p99),
                ("max".into(), max),
            ],
        };
        b.push(figure("wd_by_layer", "Distribution of Wasserstein distances per layer (standardised pre-activation vs N(0,1)).", &|d, s| render(&plot, d, s, (900, 500)))?);
        b.push(Block::Table(
            vec![
                "layer".into(),
                "median W1".into(),
                "99th pct".into(),
                "max".into(),
                "selected".into(),
                "undefined (zero variance)".into(),
            ],
            rows,
        ));
    }

    if let Some(top) = &input.top_neuron {
        let layer = top["layer"].as_u64().unwrap_or(0);
        let neuron = top["neuron"].as_u64().unwrap_or(0);
        b.push(Block::Heading(2, format!("Top neuron {layer}:{neuron}")));
        b.push(Block::Para(format!(
            "W1 = {}, skewness = {}, fraction of negative pre-activations = {}, share of W1 where the pre-activation is negative = {}.",
            f(top["w1_exact"].as_f64().unwrap_or(f64::NAN), 4),
            f(top["skewness"].as_f64().unwrap_or(f64::NAN), 3),
            f(top["frac_negative"].as_f64().unwrap_or(f64::NAN), 3),
            f(top["w1_negative_share"].as_f64().unwrap_or(f64::NAN), 3),
        )));
        let edges: Vec<f64> = top["histogram"]["edges"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let density: Vec<f64> = top["histogram"]["density"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        if edges.len() == density.len() + 1 && !density.is_empty() {
            let plot = HistogramPlot {
                title: format!("neuron {layer}:{neuron}: standardised pre-activation"),
                edges,
                density,
            };
            b.push(figure("top_neuron", "Histogram of the top neuron's standardised pre-activations against the standard normal density.", &|d, s| render(&plot, d, s, (900, 500)))?);
        }
        if let Some(pairs) = top["pairs"].as_array() {
            let rows = pairs
                .iter()
                .map(|p| {
                    vec![
                        p["token_a"].as_str().unwrap_or("").to_string(),
                        p["context_a"].as_str().unwrap_or("").to_string(),
                        p["token_b"].as_str().unwrap_or("").to_string(),
                        p["context_b"].as_str().unwrap_or("").to_string(),
                        format!(
                            "{} / {}",
                            p["upos_a"].as_str().unwrap_or("–"),
                            p["upos_b"].as_str().unwrap_or("–")
                        ),
                        format!(
                            "{} / {}",
                            p["deprel_a"].as_str().unwrap_or("–"),
                            p["deprel_b"].as_str().unwrap_or("–")
                        ),
                        f(p["y_a"].as_f64().unwrap_or(f64::NAN), 3),
                        f(p["y_b"].as_f64().unwrap_or(f64::NAN), 3),
                        f(p["ratio"].as_f64().unwrap_or(f64::NAN), 2),
                    ]
                })
                .collect();
            b.push(Block::Para("Token pairs this neuron separates most (largest (Δy/Ny)/(Δx/Nx)): similar MLP inputs, very different pre-activations.".into()));
            b.push(Block::Table(
                [
                    "token A",
                    "context A",
                    "token B",
                    "context B",
                    "UPOS",
                    "deprel",
                    "pre-act A",
                    "pre-act B",
                    "ratio",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                rows,
            ));
        }
    }

    if let Some(main) = &input.main {
        b.push(Block::Heading(2, "Main table".into()));
        let base = main.rows.first();
        let rows = main
            .rows
            .iter()
            .map(|r| {
                let acc = |s: &Option<crate::experiments::BenchmarkSummary>| {
                    s.as_ref().map_or("–".into(), |s| {
                        format!(
                            "{} [{}, {}]",
                            pct(s.overall.accuracy),
                            pct(s.overall.ci_low),
                            pct(s.overall.ci_high)
                        )
                    })
                };
                let delta =
                    |get: &dyn Fn(&crate::experiments::ConditionSummary) -> Option<f64>| match (
                        base.and_then(get),
                        get(r),
                    ) {
                        (Some(b0), Some(v)) if r.name != "baseline" => {
                            format!("{:+.1}", 100.0 * (v - b0))
                        }
                        _ => "".into(),
                    };
                let blimp_acc = |c: &crate::experiments::ConditionSummary| {
                    c.blimp.as_ref().map(|s| s.overall.accuracy)
                };
                let tse_acc = |c: &crate::experiments::ConditionSummary| {
                    c.tse.as_ref().map(|s| s.overall.accuracy)
                };
                vec![
                    r.name.clone(),
                    r.n_neurons.to_string(),
                    acc(&r.blimp),
                    delta(&blimp_acc),
                    main.mcnemar_blimp
                        .get(&r.name)
                        .map_or("".into(), |m| format!("{:.2e}", m.p_value_exact)),
                    acc(&r.tse),
                    delta(&tse_acc),
                    main.mcnemar_tse
                        .get(&r.name)
                        .map_or("".into(), |m| format!("{:.2e}", m.p_value_exact)),
                    r.perplexity.map_or("–".into(), |p| f(p, 3)),
                ]
            })
            .collect();
        b.push(Block::Table(
            [
                "condition",
                "neurons",
                "BLiMP % [95% CI]",
                "Δ pts",
                "McNemar p",
                "TSE % [95% CI]",
                "Δ pts",
                "McNemar p",
                "perplexity",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            rows,
        ));
        if let Some(m) = &main.matched {
            b.push(Block::Para(format!(
                "Perplexity-matched control: zero-negative on the bottom {:.3}% WD neurons per layer ({} neurons) reached perplexity {} against the target {} (rise {} vs {}; {} after {} evaluations).",
                m.percent,
                m.n_neurons,
                f(m.achieved_perplexity, 3),
                f(m.target_perplexity, 3),
                f(m.achieved_perplexity - (m.target_perplexity - m.target_rise), 3),
                f(m.target_rise, 3),
                if m.converged { "within tolerance" } else { "NOT within tolerance" },
                m.steps.len()
            )));
        }
        // BLiMP by linguistic term: baseline against each edit.
        let terms: Vec<String> = main
            .rows
            .first()
            .and_then(|r| r.blimp.as_ref())
            .map(|s| {
                s.groups
                    .keys()
                    .filter_map(|k| k.strip_prefix("term:").map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if !terms.is_empty() {
            let shown: Vec<&crate::experiments::ConditionSummary> = main
                .rows
                .iter()
                .filter(|r| {
                    r.name == "baseline"
                        || r.name == "wd-zero-negative"
                        || r.name.starts_with("matched")
                        || r.name.starts_with("random")
                })
                .take(5)
                .collect();
            let series = shown
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        terms
                            .iter()
                            .map(|t| {
                                r.blimp
                                    .as_ref()
                                    .and_then(|s| s.groups.get(&format!("term:{t}")))
                                    .map_or(f64::NAN, |a| 100.0 * a.accuracy)
                            })
                            .collect(),
                    )
                })
                .collect();
            let plot = BarPlot {
                title: "BLiMP accuracy by phenomenon".into(),
                y_label: "accuracy (%)".into(),
                categories: terms.clone(),
                series,
            };
            b.push(figure(
                "blimp_by_term",
                "BLiMP accuracy per linguistics term, baseline against the ablations.",
                &|d, s| render(&plot, d, s, (1100, 600)),
            )?);
        }
    }

    if let Some(pos) = &input.pos
        && let Some((rows, skipped)) = pos.get("wd-zero-negative")
    {
        b.push(Block::Heading(
            2,
            "Excess surprisal by part of speech".into(),
        ));
        b.push(Block::Para(format!(
            "Per-token NLL under wd-zero-negative minus baseline, grouped by the gold UPOS of the word each token belongs to ({skipped} tokens outside any word skipped). Share = the tag's part of the total excess."
        )));
        b.push(Block::Table(
            [
                "UPOS",
                "tokens",
                "baseline NLL",
                "ablated NLL",
                "mean excess (nats)",
                "share of excess %",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            rows.iter()
                .map(|r| {
                    vec![
                        r.upos.clone(),
                        r.n_tokens.to_string(),
                        f(r.baseline_nll, 3),
                        f(r.ablated_nll, 3),
                        f(r.mean_excess, 4),
                        pct(r.share),
                    ]
                })
                .collect(),
        ));
        let tags: Vec<String> = rows.iter().map(|r| r.upos.clone()).collect();
        let series = pos
            .iter()
            .filter(|(name, _)| {
                name.as_str() == "wd-zero-negative"
                    || name.starts_with("matched")
                    || name.starts_with("random")
            })
            .take(4)
            .map(|(name, (rs, _))| {
                let by: BTreeMap<&str, f64> = rs
                    .iter()
                    .map(|r| (r.upos.as_str(), r.mean_excess))
                    .collect();
                (
                    name.clone(),
                    tags.iter()
                        .map(|t| by.get(t.as_str()).copied().unwrap_or(f64::NAN))
                        .collect(),
                )
            })
            .collect();
        let plot = BarPlot {
            title: "Mean excess surprisal per token by UPOS".into(),
            y_label: "Δ NLL (nats)".into(),
            categories: tags,
            series,
        };
        b.push(figure(
            "pos_excess",
            "Mean excess surprisal per token by gold part of speech.",
            &|d, s| render(&plot, d, s, (1100, 600)),
        )?);
    }

    if let Some(sweep) = &input.sweep
        && !sweep.is_empty()
    {
        b.push(Block::Heading(2, "Layer by layer".into()));
        let mut series_acc = Vec::new();
        let mut series_ppl = Vec::new();
        let mut x = Vec::new();
        for kind in ["single", "cumulative"] {
            let rows: Vec<&SweepRow> = sweep.iter().filter(|r| r.kind == kind).collect();
            if x.is_empty() {
                x = rows
                    .iter()
                    .map(|r| *r.layers.last().unwrap_or(&0) as f64)
                    .collect();
            }
            series_acc.push((
                kind.to_string(),
                rows.iter()
                    .map(|r| {
                        r.summary
                            .blimp
                            .as_ref()
                            .map_or(f64::NAN, |s| 100.0 * s.overall.accuracy)
                    })
                    .collect(),
            ));
            series_ppl.push((
                kind.to_string(),
                rows.iter()
                    .map(|r| r.summary.perplexity.unwrap_or(f64::NAN))
                    .collect(),
            ));
        }
        // The unedited model on the sweep's subsets, drawn as a flat reference line.
        if let Some(base) = sweep.iter().find(|r| r.kind == "baseline") {
            let acc = base
                .summary
                .blimp
                .as_ref()
                .map_or(f64::NAN, |s| 100.0 * s.overall.accuracy);
            let ppl = base.summary.perplexity.unwrap_or(f64::NAN);
            series_acc.push(("baseline (no edit)".into(), vec![acc; x.len()]));
            series_ppl.push(("baseline (no edit)".into(), vec![ppl; x.len()]));
        }
        let acc_plot = LinePlot {
            title: "BLiMP accuracy, zero-negative on WD neurons of these layers".into(),
            x_label: "last layer of the group".into(),
            y_label: "accuracy (%)".into(),
            x: x.clone(),
            series: series_acc,
        };
        let ppl_plot = LinePlot {
            title: "Perplexity, zero-negative on WD neurons of these layers".into(),
            x_label: "last layer of the group".into(),
            y_label: "perplexity".into(),
            x,
            series: series_ppl,
        };
        b.push(figure(
            "sweep_blimp",
            "Single: one group of layers alone; cumulative: all layers up to the group.",
            &|d, s| render(&acc_plot, d, s, (900, 500)),
        )?);
        b.push(figure(
            "sweep_ppl",
            "Perplexity for the same conditions.",
            &|d, s| render(&ppl_plot, d, s, (900, 500)),
        )?);
        b.push(Block::Table(
            ["kind", "layers", "neurons", "BLiMP %", "perplexity"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            sweep
                .iter()
                .map(|r| {
                    vec![
                        r.kind.clone(),
                        match (r.layers.first(), r.layers.last()) {
                            (Some(first), Some(last)) => format!("{first}-{last}"),
                            _ => "none".into(),
                        },
                        r.summary.n_neurons.to_string(),
                        r.summary
                            .blimp
                            .as_ref()
                            .map_or("–".into(), |s| pct(s.overall.accuracy)),
                        r.summary.perplexity.map_or("–".into(), |p| f(p, 3)),
                    ]
                })
                .collect(),
        ));
    }

    b.push(Block::Para("Numbers are measured on this run's subsets; intervals are Wilson 95% for accuracies and exact McNemar tests for paired differences against the baseline. Nothing was tuned toward the paper's finding: a null or reversed effect is reported as measured.".into()));

    let md = dir.join("report.md");
    let html = dir.join("report.html");
    let write = |p: &Path, text: String| {
        std::fs::write(p, text).map_err(|e| EvalError::Output {
            path: p.to_path_buf(),
            message: e.to_string(),
        })
    };
    write(&md, doc::to_markdown(&b))?;
    write(&html, doc::to_html("negdiff report", &b))?;
    Ok(ReportPaths {
        markdown: md,
        html,
        plots: plots_written,
    })
}
