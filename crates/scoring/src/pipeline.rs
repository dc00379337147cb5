//! Scoring a model on a corpus, end to end: windows → activations → per-neuron tables.
//!
//! Exact scoring keeps every collected pre-activation (4 bytes × tokens × neurons); when that
//! exceeds the memory budget the layers are split into groups and the corpus is run once per
//! group, so exact scores are available at any corpus size at the cost of more passes. The
//! streaming estimator needs two passes (moments, then histograms) and memory independent of
//! the number of tokens.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;
use negdiff_hooks::HookSite;
use negdiff_model::LanguageModel;
use serde_json::{Value, json};

use crate::collect::{ActivationConsumer, collect, collected_tokens};
use crate::corpus::{Corpus, TokenStream, Window, WindowSpec};
use crate::exact::ExactStore;
use crate::md::{MdPair, MdSample, MdSpec};
use crate::scores::{ScoreTables, peak_rss_bytes};
use crate::stats::Moments;
use crate::streaming::{HistogramAccumulator, HistogramSpec};
use crate::w1::{NeuronScore, NormalQuantiles, score_layer, seeded_normal_sample};
use crate::{Result, ScoringError};

/// Where the authors' N(0,1) comparison sample comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum NormalSource {
    /// [`seeded_normal_sample`] with this seed.
    Seeded(u64),
    /// A 1-D `.npy` file (e.g. written by numpy); its first `n` values are used.
    File(PathBuf),
}

/// What to compute.
#[derive(Debug, Clone)]
pub struct ScoreSpec {
    /// How the corpus is cut.
    pub windows: WindowSpec,
    /// Windows per forward pass.
    pub batch_windows: usize,
    /// Exact W1 and the descriptive statistics (keeps all values, in layer groups).
    pub exact: bool,
    /// The authors' variant (needs `exact`).
    pub authors: bool,
    /// The authors' normal sample.
    pub normal: NormalSource,
    /// The bounded-memory estimator, if wanted.
    pub streaming: Option<HistogramSpec>,
    /// Mapping difficulty, if wanted.
    pub md: Option<MdSpec>,
    /// Bytes the exact store may use.
    pub memory_budget: usize,
}

impl Default for ScoreSpec {
    fn default() -> Self {
        ScoreSpec {
            windows: WindowSpec {
                window: 2048,
                stride: 2048,
                max_tokens: 30_000,
            },
            batch_windows: 1,
            exact: true,
            authors: true,
            normal: NormalSource::Seeded(0),
            streaming: None,
            md: Some(MdSpec::default()),
            memory_budget: 8 << 30,
        }
    }
}

/// The top neuron's data for the report's histogram.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopNeuron {
    /// Layer.
    pub layer: usize,
    /// Neuron.
    pub neuron: usize,
    /// Its scores.
    pub score: NeuronScore,
    /// Histogram of its standardised values.
    pub histogram: Histogram,
}

/// A density histogram.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Histogram {
    /// Bin edges.
    pub edges: Vec<f64>,
    /// Density per bin (integrates to the fraction of values inside the edges).
    pub density: Vec<f64>,
}

fn histogram(values: &[f32], mean: f64, std: f64, bins: usize) -> Histogram {
    let z: Vec<f64> = values.iter().map(|&v| (v as f64 - mean) / std).collect();
    let lo = z.iter().copied().fold(f64::INFINITY, f64::min).max(-8.0);
    let hi = z.iter().copied().fold(f64::NEG_INFINITY, f64::max).min(8.0);
    let (lo, hi) = (lo.min(-4.0), hi.max(4.0));
    let w = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in z {
        if v >= lo && v < hi {
            counts[(((v - lo) / w) as usize).min(bins - 1)] += 1;
        }
    }
    let n = values.len().max(1) as f64;
    Histogram {
        edges: (0..=bins).map(|i| lo + w * i as f64).collect(),
        density: counts.iter().map(|&c| c as f64 / (n * w)).collect(),
    }
}

/// A finished scoring run.
#[derive(Debug)]
pub struct ScoreRun {
    /// Per-neuron tables (`w1_exact`, `w1_authors`, `mean`, …).
    pub tables: ScoreTables,
    /// Settings, identities and measurements, for `manifest.json`.
    pub manifest: Value,
    /// The mapping-difficulty sample, for top-pair tables.
    pub md: Option<MdSample>,
    /// The corpus tokens.
    pub stream: TokenStream,
    /// The windows run.
    pub windows: Vec<Window>,
    /// Stream index of each collected token, in collection order.
    pub collected_stream_index: Vec<usize>,
    /// The neuron with the largest exact W1.
    pub top: Option<TopNeuron>,
}

impl ScoreRun {
    /// The top-k most separated pairs of a neuron, with stream token indices.
    pub fn top_pairs(
        &self,
        layer: usize,
        neuron: usize,
        k: usize,
    ) -> Result<Vec<(MdPair, usize, usize)>> {
        let md = self
            .md
            .as_ref()
            .ok_or_else(|| ScoringError::Settings("mapping difficulty was not computed".into()))?;
        Ok(md
            .top_pairs(layer, neuron, k)?
            .into_iter()
            .map(|p| {
                let (a, b) = (
                    self.collected_stream_index[p.a],
                    self.collected_stream_index[p.b],
                );
                (p, a, b)
            })
            .collect())
    }
}

fn load_normal(source: &NormalSource, n: usize) -> Result<(Vec<f64>, Value)> {
    match source {
        NormalSource::Seeded(seed) => Ok((
            seeded_normal_sample(n, *seed),
            json!({"kind": "seeded", "seed": seed, "generator": "ChaCha8 + Box-Muller"}),
        )),
        NormalSource::File(path) => {
            let mut v = crate::npy::read_npy_f64(path)?;
            if v.len() < n {
                return Err(ScoringError::NormalSample {
                    path: path.clone(),
                    message: format!("{} values, but {n} tokens were collected", v.len()),
                });
            }
            v.truncate(n);
            if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
                return Err(ScoringError::NormalSample {
                    path: path.clone(),
                    message: format!("value {bad} is not finite"),
                });
            }
            crate::sort::sort_f64(&mut v);
            Ok((v, json!({"kind": "file", "path": path, "values_used": n})))
        }
    }
}

struct MomentsConsumer {
    layers: Vec<Moments>,
}

impl ActivationConsumer for MomentsConsumer {
    fn sites(&self) -> Vec<HookSite> {
        (0..self.layers.len()).map(HookSite::mlp_pre).collect()
    }
    fn consume(&mut self, site: HookSite, _: usize, rows: &[f32], width: usize) -> Result<()> {
        self.layers[site.layer].update_rows(rows.chunks_exact(width))
    }
}

struct HistogramConsumer {
    layers: Vec<HistogramAccumulator>,
}

impl ActivationConsumer for HistogramConsumer {
    fn sites(&self) -> Vec<HookSite> {
        (0..self.layers.len()).map(HookSite::mlp_pre).collect()
    }
    fn consume(&mut self, site: HookSite, _: usize, rows: &[f32], width: usize) -> Result<()> {
        self.layers[site.layer].update_rows(rows.chunks_exact(width))
    }
}

/// Scores every neuron of `model` on `corpus`. `progress(label, n_windows)` makes one bar per
/// pass over the corpus.
pub fn score_corpus(
    model: &LanguageModel,
    corpus: &Corpus,
    spec: &ScoreSpec,
    progress: &dyn Fn(&str, u64) -> ProgressBar,
) -> Result<ScoreRun> {
    let t0 = Instant::now();
    let dims = model.dims().clone();
    let (n_layers, d_mlp) = (dims.n_layers, dims.d_mlp);
    if spec.authors && !spec.exact {
        return Err(ScoringError::Settings(
            "the authors' variant needs exact scoring".into(),
        ));
    }
    if !spec.exact && spec.streaming.is_none() {
        return Err(ScoringError::Settings(
            "nothing to compute: enable exact or streaming".into(),
        ));
    }
    let stream = TokenStream::new(corpus, model.tokenizer())?;
    let bos = model
        .tokenizer()
        .prepends_bos()
        .then(|| model.tokenizer().bos_id())
        .flatten();
    let windows = stream.windows(&spec.windows, bos)?;
    let n = collected_tokens(&windows);
    let collected_stream_index: Vec<usize> = windows
        .iter()
        .flat_map(|w| (0..w.ids.len() - w.first_scored).map(move |i| w.stream_start + i))
        .collect();
    let mut tables = ScoreTables::new(n_layers, d_mlp);
    let mut md = spec
        .md
        .map(|m| MdSample::new(m, n, n_layers, dims.d_model, d_mlp));
    let mut passes = 0usize;
    let mut normal_info = Value::Null;
    let mut top: Option<TopNeuron> = None;

    if spec.exact {
        let table = NormalQuantiles::new(n);
        let normal = if spec.authors {
            let (v, info) = load_normal(&spec.normal, n)?;
            normal_info = info;
            Some(v)
        } else {
            None
        };
        let per_layer = ExactStore::bytes_needed(1, n, d_mlp);
        let group = (spec.memory_budget / per_layer.max(1))
            .saturating_sub(1)
            .clamp(1, n_layers);
        let layers: Vec<usize> = (0..n_layers).collect();
        for chunk in layers.chunks(group) {
            let mut store = ExactStore::new(chunk.iter().copied());
            let bar = progress(
                &format!("collect layers {}-{}", chunk[0], chunk[chunk.len() - 1]),
                windows.len() as u64,
            );
            {
                let mut consumers: Vec<&mut dyn ActivationConsumer> = vec![&mut store];
                if passes == 0
                    && let Some(m) = md.as_mut()
                {
                    consumers.push(m);
                }
                collect(model, &windows, spec.batch_windows, &mut consumers, &bar)?;
            }
            bar.finish_and_clear();
            passes += 1;
            let bar = progress("score neurons", chunk.len() as u64);
            for &l in chunk {
                let Some((values, tokens)) = store.take_neuron_major(l) else {
                    continue;
                };
                let scores = score_layer(&values, tokens, &table, normal.as_deref())?;
                let col =
                    |f: &dyn Fn(&NeuronScore) -> f64| scores.iter().map(f).collect::<Vec<f64>>();
                tables.set_layer("w1_exact", l, &col(&|s| s.w1_exact));
                if spec.authors {
                    tables.set_layer("w1_authors", l, &col(&|s| s.w1_authors.unwrap_or(f64::NAN)));
                }
                tables.set_layer("w1_negative_share", l, &col(&|s| s.w1_negative_share));
                tables.set_layer("mean", l, &col(&|s| s.mean));
                tables.set_layer("std", l, &col(&|s| s.std));
                tables.set_layer("skewness", l, &col(&|s| s.skewness));
                tables.set_layer("kurtosis", l, &col(&|s| s.kurtosis));
                tables.set_layer("frac_negative", l, &col(&|s| s.frac_negative));
                if let Some((j, s)) = scores
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.w1_exact.is_finite())
                    .max_by(|a, b| a.1.w1_exact.total_cmp(&b.1.w1_exact))
                    && top.as_ref().is_none_or(|t| s.w1_exact > t.score.w1_exact)
                {
                    top = Some(TopNeuron {
                        layer: l,
                        neuron: j,
                        score: *s,
                        histogram: histogram(
                            &values[j * tokens..(j + 1) * tokens],
                            s.mean,
                            s.std,
                            120,
                        ),
                    });
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
    }

    if let Some(hspec) = spec.streaming {
        let mut moments = MomentsConsumer {
            layers: (0..n_layers).map(|_| Moments::new(d_mlp)).collect(),
        };
        let bar = progress("streaming pass 1 (moments)", windows.len() as u64);
        {
            let mut consumers: Vec<&mut dyn ActivationConsumer> = vec![&mut moments];
            if passes == 0
                && let Some(m) = md.as_mut()
            {
                consumers.push(m);
            }
            collect(model, &windows, spec.batch_windows, &mut consumers, &bar)?;
        }
        bar.finish_and_clear();
        passes += 1;
        let mut hist = HistogramConsumer {
            layers: moments
                .layers
                .iter()
                .map(|m| HistogramAccumulator::from_moments(m, hspec))
                .collect::<Result<_>>()?,
        };
        let bar = progress("streaming pass 2 (histograms)", windows.len() as u64);
        {
            let mut consumers: Vec<&mut dyn ActivationConsumer> = vec![&mut hist];
            collect(model, &windows, spec.batch_windows, &mut consumers, &bar)?;
        }
        bar.finish_and_clear();
        passes += 1;
        for (l, (h, m)) in hist.layers.iter().zip(&moments.layers).enumerate() {
            let w = h.w1_all();
            tables.set_layer(
                "w1_streaming",
                l,
                &w.iter().map(|x| x.0).collect::<Vec<_>>(),
            );
            tables.set_layer(
                "w1_streaming_negative_share",
                l,
                &w.iter()
                    .map(|x| if x.0 > 0.0 { x.1 / x.0 } else { f64::NAN })
                    .collect::<Vec<_>>(),
            );
            if !spec.exact {
                tables.set_layer("mean", l, &m.mean());
                tables.set_layer("std", l, &m.std());
                tables.set_layer("skewness", l, &m.skewness());
                tables.set_layer("kurtosis", l, &m.excess_kurtosis());
                tables.set_layer("frac_negative", l, &m.frac_negative());
            }
        }
    }

    if let Some(m) = &md {
        for (l, row) in m.mapping_difficulty().iter().enumerate() {
            tables.set_layer("md", l, row);
        }
    }

    let manifest = json!({
        "negdiff_version": env!("CARGO_PKG_VERSION"),
        "model": {
            "source": model.info().source,
            "architecture": model.info().architecture,
            "n_layers": n_layers,
            "d_mlp": d_mlp,
        },
        "corpus": {
            "path": corpus.path,
            "format": corpus.format,
            "sha256": corpus.sha256,
            "chars": corpus.text.len(),
            "stream_tokens": stream.ids.len(),
        },
        "settings": {
            "window": spec.windows.window,
            "stride": spec.windows.stride,
            "max_tokens": spec.windows.max_tokens,
            "batch_windows": spec.batch_windows,
            "exact": spec.exact,
            "authors": spec.authors,
            "normal_sample": normal_info,
            "streaming": spec.streaming.map(|h| json!({"half_width": h.half_width, "bins": h.bins})),
            "md": spec.md,
            "memory_budget_bytes": spec.memory_budget,
        },
        "conventions": {
            "site": "blocks.{i}.mlp.hook_pre (input of the MLP activation)",
            "standardisation": "(x - mean) / population std (ddof = 0)",
            "w1_exact": "W1 between the standardised empirical distribution and N(0,1), closed form",
            "w1_authors": "scipy.stats.wasserstein_distance(standardised x, shared sorted N(0,1) sample of equal size)",
            "zero_variance": "W1 and shares are NaN (never selected)",
            "bos": if bos.is_some() { "prepended to each window, not collected" } else { "none" },
            "overlap": "with stride < window, overlapping positions are collected once per window (as the authors)",
        },
        "tokens_collected": n,
        "windows": windows.len(),
        "passes": passes,
        "tables": tables.tables.keys().collect::<Vec<_>>(),
        "seconds": t0.elapsed().as_secs_f64(),
        "peak_rss_bytes": peak_rss_bytes(),
    });
    Ok(ScoreRun {
        tables,
        manifest,
        md,
        stream,
        windows,
        collected_stream_index,
        top,
    })
}
