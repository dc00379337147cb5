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

/// The device under test: `$NEGDIFF_TEST_DEVICE`, else wgpu.
fn gpu_device() -> burn::tensor::Device {
    parse_device(&std::env::var("NEGDIFF_TEST_DEVICE").unwrap_or_else(|_| "wgpu".into())).unwrap()
}

#[test]
fn wgpu_logits_match_the_cpu_backend() {
    let gpu = gpu_device();
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

/// The scorer's default path on the GPU: prefix trees (tree masks and per-token positions
/// through burn's attention, the chunked LM-head log-softmax) with a negative-side edit, against
/// the CPU's host kernels (tree attention, fused q/k/v and gate/up, fused log-softmax), and
/// against plain rows on the GPU.
#[test]
fn wgpu_prefix_tree_scores_match_the_cpu_backend() {
    use negdiff_eval::convention::BosPolicy;
    use negdiff_eval::sentences::SentenceScorer;
    use negdiff_interventions::{EditKind, Intervention, NeuronEdit, NeuronSet};
    use std::collections::BTreeMap;

    let gpu = gpu_device();
    let cpu = default_device();
    use crate::packing::{TREE_TOL_SMOLLM2, TREE_TOL_TINY};

    // (name, on the CPU, on the GPU, trees-vs-plain tolerance of tests/integration/packing.rs)
    let mut models: Vec<(String, LanguageModel, LanguageModel, f32)> =
        ["gpt_neox_parallel", "llama_gqa_tied", "qwen2_bias"]
            .iter()
            .map(|v| {
                let dir = fixture(&format!("models/{v}"));
                (
                    v.to_string(),
                    LanguageModel::from_hf_dir(&dir, &cpu).unwrap(),
                    LanguageModel::from_hf_dir(&dir, &gpu).unwrap(),
                    TREE_TOL_TINY,
                )
            })
            .collect();
    if let Some(path) = smollm2() {
        models.push((
            "SmolLM2".into(),
            LanguageModel::from_gguf(&path, &cpu).unwrap(),
            LanguageModel::from_gguf(&path, &gpu).unwrap(),
            TREE_TOL_SMOLLM2,
        ));
    }
    for (name, a, b, tree_tol) in &models {
        let seqs = crate::packing::sequences(a.dims().vocab_size as u32, 11);
        let layers: BTreeMap<usize, Vec<usize>> = (0..a.dims().n_layers)
            .map(|l| (l, (0..a.dims().d_mlp).step_by(5).collect()))
            .collect();
        let set = NeuronSet::new("every fifth", layers);
        let edit_a =
            NeuronEdit::new(EditKind::ZeroNegative, &set, &a.site_layout(), a.device()).unwrap();
        let edit_b =
            NeuronEdit::new(EditKind::ZeroNegative, &set, &b.site_layout(), b.device()).unwrap();
        // Trees against plain rows on the GPU itself, held to the CPU packing tests' tolerances:
        // this isolates the tree layout from the drift between backends, which the 1e-3 bound
        // on wgpu against the CPU covers.
        for edited in [false, true] {
            // Small rows, so that trees split across rows as in a long BLiMP run.
            let score = |m: &LanguageModel, edit: &NeuronEdit, rows: Option<usize>| {
                SentenceScorer::new(m, BosPolicy::Never)
                    .unwrap()
                    .with_prefix_sharing(rows)
                    .with_batch_tokens(96)
                    .score_ids(&seqs, edited.then_some(edit as &dyn Intervention))
                    .unwrap()
            };
            let gpu_tree = score(b, &edit_b, Some(24));
            let err = crate::packing::max_token_diff(&score(a, &edit_a, Some(24)), &gpu_tree);
            eprintln!(
                "{name} (edit {edited}): wgpu vs cpu prefix-tree max |token log-prob diff| = {err:.2e}"
            );
            assert!(err <= 1e-3, "{name} (edit {edited}): {err}");
            let err = crate::packing::max_token_diff(&gpu_tree, &score(b, &edit_b, None));
            eprintln!(
                "{name} (edit {edited}): wgpu prefix-tree vs wgpu plain rows max |token log-prob diff| = {err:.2e}"
            );
            assert!(
                err <= *tree_tol,
                "{name} (edit {edited}), trees vs plain: {err}"
            );
        }
    }
}
