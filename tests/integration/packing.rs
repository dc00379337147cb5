//! Prefix-tree packing (`negdiff_model::packing`, the scorer's default) gives every sequence
//! the log-probabilities it gets in a plain row of its own, with and without an intervention,
//! on every tiny architecture and on SmolLM2.

use std::collections::BTreeMap;

use negdiff_eval::convention::BosPolicy;
use negdiff_eval::sentences::{SentenceScore, SentenceScorer};
use negdiff_interventions::{EditKind, Intervention, NeuronEdit, NeuronSet};
use negdiff_model::{LanguageModel, device::default_device};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{fixture, smollm2};

/// Sequences built to share prefixes of every length with each other, plus loners and repeats.
pub(crate) fn sequences(vocab: u32, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seqs: Vec<Vec<u32>> = Vec::new();
    for _ in 0..12 {
        let stem: Vec<u32> = (0..rng.random_range(1..9))
            .map(|_| rng.random_range(0..vocab))
            .collect();
        for _ in 0..rng.random_range(1..5) {
            let mut s = stem[..rng.random_range(1..=stem.len())].to_vec();
            s.extend((0..rng.random_range(0..7)).map(|_| rng.random_range(0..vocab)));
            seqs.push(s);
        }
    }
    seqs.push(seqs[0].clone());
    seqs.push(vec![3]);
    seqs
}

/// Largest |token log-prob diff| allowed between prefix trees and plain rows on one backend: the
/// tiny random-weight models, and SmolLM2 (30 layers, 49k-token vocabulary).
pub(crate) const TREE_TOL_TINY: f32 = 1e-5;
/// See [`TREE_TOL_TINY`].
pub(crate) const TREE_TOL_SMOLLM2: f32 = 2e-4;

pub(crate) fn max_token_diff(a: &[SentenceScore], b: &[SentenceScore]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.n_scored, y.n_scored);
        for (p, q) in x.token_logprobs.iter().zip(&y.token_logprobs) {
            worst = worst.max((p - q).abs());
        }
    }
    worst
}

fn check(model: &LanguageModel, name: &str, tol: f32) {
    let seqs = sequences(model.dims().vocab_size as u32, 7);
    let layers: BTreeMap<usize, Vec<usize>> = (0..model.dims().n_layers)
        .map(|l| (l, (0..model.dims().d_mlp).step_by(3).collect()))
        .collect();
    let edit = NeuronEdit::new(
        EditKind::ZeroNegative,
        &NeuronSet::new("every third", layers),
        &model.site_layout(),
        model.device(),
    )
    .unwrap();
    for iv in [None, Some(&edit as &dyn Intervention)] {
        let plain = SentenceScorer::new(model, BosPolicy::Never)
            .unwrap()
            .with_prefix_sharing(None)
            .score_ids(&seqs, iv)
            .unwrap();
        // Small rows and batches too, so that trees split across rows and batches.
        for (row, batch) in [(128, 2048), (7, 16)] {
            let packed = SentenceScorer::new(model, BosPolicy::Never)
                .unwrap()
                .with_prefix_sharing(Some(row))
                .with_batch_tokens(batch)
                .score_ids(&seqs, iv)
                .unwrap();
            let err = max_token_diff(&plain, &packed);
            assert!(
                err <= tol,
                "{name} (rows of {row}, edit {}): packed vs plain {err}",
                iv.is_some()
            );
        }
    }
}

#[test]
fn packed_prefix_trees_match_plain_rows_on_tiny_models() {
    for name in [
        "gpt_neox_parallel",
        "gpt_neox_sequential",
        "llama_gqa_tied",
        "llama3_scaled_bf16",
        "mistral",
        "qwen2_bias",
    ] {
        let model =
            LanguageModel::from_hf_dir(&fixture(&format!("models/{name}")), &default_device())
                .unwrap();
        check(&model, name, TREE_TOL_TINY);
    }
}

#[test]
fn packed_prefix_trees_match_plain_rows_on_smollm2() {
    let Some(path) = smollm2() else {
        return;
    };
    let model = LanguageModel::from_gguf(&path, &default_device()).unwrap();
    check(&model, "SmolLM2", TREE_TOL_SMOLLM2);
}
