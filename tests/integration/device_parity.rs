//! The wgpu backend against the CPU backend (built with `--features wgpu`; without a GPU,
//! Debian's lavapipe software Vulkan driver runs it: `scripts/test-wgpu.sh`).

use negdiff_model::device::{default_device, parse_device};
use negdiff_model::{LanguageModel, TokenBatch};

use crate::common::{fixture, smollm2};

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn wgpu_logits_match_the_cpu_backend() {
    let gpu = parse_device(&std::env::var("NEGDIFF_TEST_DEVICE").unwrap_or_else(|_| "wgpu".into()))
        .unwrap();
    let cpu = default_device();
    let batch = TokenBatch::new(vec![(3..40).collect(), (50..61).collect()]).unwrap();
    for variant in ["gpt_neox_parallel", "llama_gqa_tied", "qwen2_bias"] {
        let dir = fixture(&format!("models/{variant}"));
        let a = LanguageModel::from_hf_dir(&dir, &cpu).unwrap();
        let b = LanguageModel::from_hf_dir(&dir, &gpu).unwrap();
        let la: Vec<f32> = a
            .logits(&batch, &mut a.hooks())
            .unwrap()
            .try_into_vec_as::<f32>()
            .unwrap();
        let lb: Vec<f32> = b
            .logits(&batch, &mut b.hooks())
            .unwrap()
            .try_into_vec_as::<f32>()
            .unwrap();
        // Padding positions hold unspecified values; compare the real ones.
        let (t, v) = (37, la.len() / (2 * 37));
        let valid: Vec<usize> = (0..37)
            .map(|p| p * v)
            .chain((0..11).map(|p| (t + p) * v))
            .collect();
        let err = valid
            .iter()
            .map(|&s| max_diff(&la[s..s + v], &lb[s..s + v]))
            .fold(0f32, f32::max);
        eprintln!("{variant}: wgpu vs cpu max |logit diff| = {err:.2e}");
        assert!(err <= 1e-3, "{variant}: {err}");
    }
    if let Some(path) = smollm2() {
        let a = LanguageModel::from_gguf(&path, &cpu).unwrap();
        let b = LanguageModel::from_gguf(&path, &gpu).unwrap();
        let ids = a
            .tokenizer()
            .encode("The keys to the cabinet are on the table.")
            .unwrap()
            .ids;
        let batch = TokenBatch::single(ids).unwrap();
        let la: Vec<f32> = a
            .logits(&batch, &mut a.hooks())
            .unwrap()
            .try_into_vec_as::<f32>()
            .unwrap();
        let lb: Vec<f32> = b
            .logits(&batch, &mut b.hooks())
            .unwrap()
            .try_into_vec_as::<f32>()
            .unwrap();
        let err = max_diff(&la, &lb);
        eprintln!("SmolLM2: wgpu vs cpu max |logit diff| = {err:.2e}");
        assert!(err <= 1e-3, "SmolLM2: {err}");
        let sa: f32 = a.next_token_logprobs(&batch, &mut a.hooks()).unwrap()[0]
            .iter()
            .sum();
        let sb: f32 = b.next_token_logprobs(&batch, &mut b.hooks()).unwrap()[0]
            .iter()
            .sum();
        assert!((sa - sb).abs() <= 1e-3, "summed log-prob {sa} vs {sb}");
    }
}
