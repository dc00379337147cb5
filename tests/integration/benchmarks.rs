//! BLiMP and TSE on SmolLM2 against the committed transformers reference
//! (`tests/fixtures/make_smollm2_benchmark_reference.py`): the first 50 pairs of every BLiMP
//! paradigm and the first 20 of every TSE case, every pair's scores and verdict.

use negdiff_eval::convention::{Aggregate, BosPolicy};
use negdiff_eval::datasets::{blimp::load_blimp, tse::load_tse};
use negdiff_eval::pairs::score_pairs;
use negdiff_eval::sentences::SentenceScorer;
use negdiff_model::{LanguageModel, device::default_device};
use serde_json::Value;

use crate::common::{fixture, shared_data, smollm2};

fn reference(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Tolerance on a sentence's summed (BLiMP) or mean (TSE) log-probability.
const TOL: f64 = 2e-3;

#[test]
fn blimp_and_tse_match_transformers_pair_by_pair() {
    let (Some(path), Some(data)) = (smollm2(), shared_data()) else {
        return;
    };
    let model = LanguageModel::from_gguf(&path, &default_device()).unwrap();
    let scorer = SentenceScorer::new(&model, BosPolicy::Tokenizer).unwrap();

    let blimp = load_blimp(&data.join("blimp"), None, Some(50)).unwrap();
    let refs = reference("smollm2_blimp50.jsonl");
    assert_eq!(blimp.len(), refs.len());
    let texts: Vec<(&str, &str)> = blimp
        .iter()
        .map(|p| (p.sentence_good.as_str(), p.sentence_bad.as_str()))
        .collect();
    let ours = score_pairs(&scorer, &texts, Aggregate::Sum, None).unwrap();
    check("BLiMP", &ours, &refs, ("logp_good", "logp_bad"), |i| {
        format!("{} {}", blimp[i].uid, blimp[i].pair_id)
    });

    let tse = load_tse(&data.join("tse"), Some(20)).unwrap();
    let refs = reference("smollm2_tse20.jsonl");
    assert_eq!(tse.len(), refs.len());
    let texts: Vec<(&str, &str)> = tse
        .iter()
        .map(|p| (p.good.as_str(), p.bad.as_str()))
        .collect();
    let ours = score_pairs(&scorer, &texts, Aggregate::Mean, None).unwrap();
    check("TSE", &ours, &refs, ("score_good", "score_bad"), |i| {
        format!("{} {} {}", tse[i].file, tse[i].case, tse[i].index)
    });
}

fn check(
    what: &str,
    ours: &[negdiff_eval::pairs::PairOutcome],
    refs: &[Value],
    keys: (&str, &str),
    name: impl Fn(usize) -> String,
) {
    let mut max_err = 0f64;
    let mut flips = Vec::new();
    for (i, (o, r)) in ours.iter().zip(refs).enumerate() {
        assert!(o.skipped.is_none(), "{what} {} skipped", name(i));
        let (g, b) = (r[keys.0].as_f64().unwrap(), r[keys.1].as_f64().unwrap());
        let err = (o.score_good - g).abs().max((o.score_bad - b).abs());
        max_err = max_err.max(err);
        assert!(
            err <= TOL,
            "{what} {}: scores ({}, {}) vs transformers ({g}, {b})",
            name(i),
            o.score_good,
            o.score_bad
        );
        if o.correct != r["correct"].as_bool().unwrap() {
            flips.push((name(i), (g - b).abs()));
        }
    }
    let acc = ours.iter().filter(|o| o.correct).count();
    let ref_acc = refs.iter().filter(|r| r["correct"] == true).count();
    eprintln!(
        "{what}: {} pairs, max |score diff| {max_err:.2e}, accuracy {acc} vs transformers {ref_acc}, verdict flips {flips:?}",
        ours.len()
    );
    assert!(
        flips.is_empty(),
        "{what}: verdicts differ from transformers on {flips:?}"
    );
    assert_eq!(acc, ref_acc);
}
