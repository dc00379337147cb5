//! Scoring on real and tiny models: streaming against exact, a numpy normal sample, and
//! non-finite activations.

use indicatif::ProgressBar;
use negdiff_interventions::NeuronSet;
use negdiff_model::{LanguageModel, device::default_device};
use negdiff_scoring::ScoringError;
use negdiff_scoring::corpus::{Corpus, CorpusFormat, WindowSpec};
use negdiff_scoring::npy::write_npy_f64;
use negdiff_scoring::pipeline::{NormalSource, ScoreSpec, score_corpus};
use negdiff_scoring::streaming::HistogramSpec;
use negdiff_scoring::w1::seeded_normal_sample;

use crate::common::{fixture, shared_data, smollm2};

fn hidden(_: &str, _: u64) -> ProgressBar {
    ProgressBar::hidden()
}

#[test]
fn streaming_matches_exact_on_smollm2_over_ud_ewt() {
    let (Some(path), Some(data)) = (smollm2(), shared_data()) else {
        return;
    };
    let model = LanguageModel::from_gguf(&path, &default_device()).unwrap();
    let corpus_path = data.join("ud_ewt/en_ewt-ud-dev.conllu");
    let corpus = Corpus::load(&corpus_path, CorpusFormat::Conllu).unwrap();
    let spec = ScoreSpec {
        windows: WindowSpec {
            window: 1024,
            stride: 1024,
            max_tokens: 4096,
        },
        streaming: Some(HistogramSpec::default()),
        md: None,
        ..ScoreSpec::default()
    };
    let run = score_corpus(&model, &corpus, &spec, &hidden).unwrap();
    let exact = run.tables.rows("w1_exact").unwrap();
    let stream = run.tables.rows("w1_streaming").unwrap();
    let mut max_err = 0f64;
    for (e, s) in exact.iter().flatten().zip(stream.iter().flatten()) {
        max_err = max_err.max((e - s).abs());
    }
    eprintln!("streaming vs exact over 46,080 neurons × 4,096 tokens: max |error| = {max_err:.2e}");
    assert!(max_err <= 0.005, "max error {max_err}");
    // Top-1% sets: any neuron in one set but not the other must sit at the selection boundary
    // (its exact score within the estimator's error of the layer's threshold).
    let a = NeuronSet::top_percent_per_layer("exact", &exact, 1.0).unwrap();
    let b = NeuronSet::top_percent_per_layer("streaming", &stream, 1.0).unwrap();
    let mut differing = 0;
    for (l, row) in exact.iter().enumerate() {
        let mut sorted = row.clone();
        sorted.sort_by(|x, y| x.total_cmp(y));
        let threshold = negdiff_interventions::percentile_linear(&sorted, 99.0);
        for &n in a
            .neurons(l)
            .iter()
            .filter(|n| !b.neurons(l).contains(n))
            .chain(b.neurons(l).iter().filter(|n| !a.neurons(l).contains(n)))
        {
            differing += 1;
            assert!(
                (row[n] - threshold).abs() <= 2.0 * max_err,
                "layer {l} neuron {n}: exact {} far from threshold {threshold}",
                row[n]
            );
        }
    }
    eprintln!(
        "top-1% sets differ in {differing} of {} neurons (all at the threshold)",
        a.len()
    );
}

#[test]
fn authors_variant_reads_a_numpy_normal_sample() {
    let model = LanguageModel::from_hf_dir(&fixture("models/gpt_neox_parallel"), &default_device())
        .unwrap();
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    let corpus = Corpus::from_text("fox", text);
    let base = ScoreSpec {
        windows: WindowSpec {
            window: 100,
            stride: 100,
            max_tokens: 300,
        },
        md: None,
        normal: NormalSource::Seeded(7),
        ..ScoreSpec::default()
    };
    let seeded = score_corpus(&model, &corpus, &base, &hidden).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let npy = tmp.path().join("normal.npy");
    // Unsorted on disk: the reader sorts, as the authors' scipy call does internally.
    let mut sample = seeded_normal_sample(300, 7);
    sample.reverse();
    write_npy_f64(&npy, &sample).unwrap();
    let from_file = score_corpus(
        &model,
        &corpus,
        &ScoreSpec {
            normal: NormalSource::File(npy.clone()),
            ..base.clone()
        },
        &hidden,
    )
    .unwrap();
    assert_eq!(
        seeded.tables.tables["w1_authors"],
        from_file.tables.tables["w1_authors"]
    );
    // A file that is too short is a typed error naming it.
    write_npy_f64(&npy, &sample[..10]).unwrap();
    match score_corpus(
        &model,
        &corpus,
        &ScoreSpec {
            normal: NormalSource::File(npy.clone()),
            ..base
        },
        &hidden,
    ) {
        Err(ScoringError::NormalSample { path, .. }) => assert_eq!(path, npy),
        other => panic!("expected NormalSample error, got {other:?}"),
    }
}

#[test]
fn non_finite_activations_are_typed_errors() {
    // A copy of a tiny model whose gate projection carries a NaN.
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("models/llama_gqa_tied");
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    let st_path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&st_path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    for (name, _, data) in &mut owned {
        if name == "model.layers.1.mlp.gate_proj.weight" {
            data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &st_path).unwrap();
    let model = LanguageModel::from_hf_dir(tmp.path(), &default_device()).unwrap();
    let corpus = Corpus::from_text("t", "some words here and there ".repeat(30));
    let spec = ScoreSpec {
        windows: WindowSpec {
            window: 64,
            stride: 64,
            max_tokens: 128,
        },
        md: None,
        ..ScoreSpec::default()
    };
    match score_corpus(&model, &corpus, &spec, &hidden) {
        Err(ScoringError::NonFinite { layer, neuron, .. }) => {
            assert_eq!(layer, 1);
            assert_eq!(neuron, 0);
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn multiple_choice_scores_continuations_given_the_context() {
    use negdiff_eval::convention::BosPolicy;
    use negdiff_eval::datasets::multiple_choice::load_multiple_choice;
    use negdiff_eval::multiple_choice::score_multiple_choice;
    use negdiff_eval::sentences::SentenceScorer;
    let items = load_multiple_choice(&fixture("eval/mc_small.jsonl")).unwrap();
    let model =
        LanguageModel::from_hf_dir(&fixture("models/llama_gqa_tied"), &default_device()).unwrap();
    let scorer = SentenceScorer::new(&model, BosPolicy::Tokenizer).unwrap();
    let out = score_multiple_choice(&scorer, &items, None).unwrap();
    assert_eq!(out.len(), items.len());
    // Each choice's log-likelihood equals the difference of the full sequence's and the
    // context's summed log-probabilities.
    let item = &items[0];
    let ctx = scorer.encode(&item.context).unwrap();
    for (c, choice) in item.choices.iter().enumerate() {
        let mut ids = ctx.clone();
        ids.extend(model.tokenizer().encode_plain(choice).unwrap().ids);
        let full = scorer.score_ids(&[ids, ctx.clone()], None).unwrap();
        let want = full[0].sum - full[1].sum;
        assert!(
            (out[0].loglik[c] - want).abs() < 1e-4,
            "{} vs {want}",
            out[0].loglik[c]
        );
    }
    if let Some(path) = smollm2() {
        let model = LanguageModel::from_gguf(&path, &default_device()).unwrap();
        let scorer = SentenceScorer::new(&model, BosPolicy::Tokenizer).unwrap();
        let out = score_multiple_choice(&scorer, &items, None).unwrap();
        let acc = out.iter().filter(|o| o.correct).count();
        eprintln!("SmolLM2 on the 10 self-written items: {acc}/10");
        assert!(acc >= 6, "SmolLM2 gets only {acc}/10 of easy items");
    }
}
