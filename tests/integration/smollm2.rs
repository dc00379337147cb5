//! The real model: SmolLM2-135M-Instruct (GGUF Q4_1) against transformers loading the same file.

use negdiff_model::{LanguageModel, TokenBatch, device::default_device};
use serde_json::Value;

use crate::common::{fixture, smollm2};

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("smollm2_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_continuation_and_sentence_logprobs_match_transformers() {
    let Some(path) = smollm2() else { return };
    let model = LanguageModel::from_gguf(&path, &default_device()).unwrap();
    let r = reference();
    assert_eq!(
        r["hf_default_prepends_bos"].as_bool(),
        Some(model.tokenizer().prepends_bos())
    );

    let greedy = &r["greedy"];
    let prompt = model
        .tokenizer()
        .encode(greedy["prompt"].as_str().unwrap())
        .unwrap()
        .ids;
    assert_eq!(prompt, ids(&greedy["prompt_ids"]));
    let generated = model
        .generate_greedy(&prompt, 20, &mut model.hooks())
        .unwrap();
    assert_eq!(generated, ids(&greedy["generated_ids"]));
    assert_eq!(
        model.tokenizer().decode(&generated).unwrap(),
        greedy["text"].as_str().unwrap()
    );

    let sentences = r["sentences"].as_array().unwrap();
    let mut seqs = Vec::new();
    for s in sentences {
        let enc = model
            .tokenizer()
            .encode(s["text"].as_str().unwrap())
            .unwrap()
            .ids;
        assert_eq!(enc, ids(&s["token_ids"]), "token ids of {}", s["text"]);
        seqs.push(enc);
    }
    // Scored one by one and as one padded batch: both within 2e-3 of transformers.
    let batched = model
        .next_token_logprobs(&TokenBatch::new(seqs.clone()).unwrap(), &mut model.hooks())
        .unwrap();
    for (i, s) in sentences.iter().enumerate() {
        let alone = model
            .next_token_logprobs(
                &TokenBatch::single(seqs[i].clone()).unwrap(),
                &mut model.hooks(),
            )
            .unwrap();
        let expected = s["sum"].as_f64().unwrap();
        for got in [&alone[0], &batched[i]] {
            let sum: f64 = got.iter().map(|&v| v as f64).sum();
            assert!(
                (sum - expected).abs() <= 2e-3,
                "{}: sum {sum} vs transformers {expected}",
                s["text"]
            );
        }
    }
}
