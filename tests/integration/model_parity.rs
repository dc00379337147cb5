//! Tiny random-weight models against transformers: logits and every layer's MLP
//! pre-activation (plus up-projection, MLP output and block output) on padded batches.

use std::collections::HashMap;

use negdiff_hooks::{CapturedBatch, HookError, HookPoint, HookSite};
use negdiff_model::{LanguageModel, TokenBatch, device::default_device};

use crate::common::{fixture, max_abs_diff_valid, read_tensors};

const VARIANTS: &[&str] = &[
    "gpt_neox_parallel",
    "gpt_neox_sequential",
    "llama_gqa_tied",
    "llama3_scaled_bf16",
    "qwen2_bias",
    "mistral",
];

const TOL: f32 = 1e-4;

fn batch_from(ids: &[i64], shape: &[usize], lengths: &[i64]) -> TokenBatch {
    let t = shape[1];
    let seqs = lengths
        .iter()
        .enumerate()
        .map(|(b, &len)| (0..len as usize).map(|p| ids[b * t + p] as u32).collect())
        .collect();
    TokenBatch::new(seqs).unwrap()
}

#[test]
fn tiny_models_match_transformers() {
    let device = default_device();
    for variant in VARIANTS {
        let dir = fixture(&format!("models/{variant}"));
        let model =
            LanguageModel::from_hf_dir(&dir, &device).unwrap_or_else(|e| panic!("{variant}: {e}"));
        let expected = read_tensors(&dir.join("expected.safetensors"));
        let n_layers = model.dims().n_layers;
        let gated = model
            .model()
            .hook_points()
            .contains(&HookPoint::MlpPreLinear);
        for k in 0..3 {
            let key = |s: &str| format!("batch{k}.{s}");
            let ids = &expected[&key("input_ids")];
            let lengths: Vec<i64> = expected[&key("lengths")].i64.clone();
            let lens: Vec<usize> = lengths.iter().map(|&l| l as usize).collect();
            let batch = batch_from(&ids.i64, &ids.shape, &lengths);

            let mut captured: HashMap<HookSite, Vec<f32>> = HashMap::new();
            let mut sites = Vec::new();
            for l in 0..n_layers {
                sites.push(HookSite::new(l, HookPoint::MlpPre));
                sites.push(HookSite::new(l, HookPoint::MlpOut));
                sites.push(HookSite::new(l, HookPoint::ResidPost));
                if gated {
                    sites.push(HookSite::new(l, HookPoint::MlpPreLinear));
                }
            }
            let logits = {
                let mut hooks = model.hooks();
                hooks
                    .add_capture(
                        sites,
                        None,
                        |c: &CapturedBatch<'_>| -> Result<(), HookError> {
                            captured.insert(c.site, c.data.to_vec());
                            Ok(())
                        },
                    )
                    .unwrap();
                model.logits(&batch, &mut hooks).unwrap()
            };
            let logits: Vec<f32> = logits.try_into_vec_as::<f32>().unwrap();
            let exp = &expected[&key("logits")];
            let err = max_abs_diff_valid(&logits, &exp.f32, &exp.shape, &lens);
            assert!(err <= TOL, "{variant} batch{k} logits: max abs err {err}");

            for l in 0..n_layers {
                let mut checks = vec![
                    (HookPoint::MlpPre, format!("pre.{l}")),
                    (HookPoint::MlpOut, format!("mlp_out.{l}")),
                    (HookPoint::ResidPost, format!("resid_post.{l}")),
                ];
                if gated {
                    checks.push((HookPoint::MlpPreLinear, format!("up.{l}")));
                }
                for (point, name) in checks {
                    let exp = &expected[&key(&name)];
                    let got = &captured[&HookSite::new(l, point)];
                    let err = max_abs_diff_valid(got, &exp.f32, &exp.shape, &lens);
                    assert!(err <= TOL, "{variant} batch{k} {name}: max abs err {err}");
                }
            }
        }
    }
}

#[test]
fn a_sequence_scores_the_same_alone_and_in_a_padded_batch() {
    let device = default_device();
    for variant in ["gpt_neox_parallel", "llama_gqa_tied"] {
        let dir = fixture(&format!("models/{variant}"));
        let model = LanguageModel::from_hf_dir(&dir, &device).unwrap();
        let expected = read_tensors(&dir.join("expected.safetensors"));
        let ids = &expected["batch1.input_ids"];
        let lengths = expected["batch1.lengths"].i64.clone();
        let batch = batch_from(&ids.i64, &ids.shape, &lengths);
        let together = model
            .next_token_logprobs(&batch, &mut model.hooks())
            .unwrap();
        for (i, seq) in batch.sequences().iter().enumerate() {
            let alone = model
                .next_token_logprobs(
                    &TokenBatch::single(seq.clone()).unwrap(),
                    &mut model.hooks(),
                )
                .unwrap();
            assert_eq!(alone[0].len(), together[i].len());
            for (a, b) in alone[0].iter().zip(&together[i]) {
                assert!(
                    (a - b).abs() <= 1e-5,
                    "{variant} seq {i}: alone {a} vs batched {b}"
                );
            }
        }
    }
}

#[test]
fn config_field_generations_load_alike() {
    // transformers 5 writes `rope_parameters`; older hub configs use rotary_pct / rope_theta /
    // rope_scaling. The fixture script writes both; both must give the same model.
    let device = default_device();
    for variant in VARIANTS {
        let dir = fixture(&format!("models/{variant}"));
        let legacy = dir.join("config.legacy.json");
        if !legacy.is_file() {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_owned();
            if name != "config.json" {
                std::fs::copy(&p, tmp.path().join(&name)).unwrap();
            }
        }
        std::fs::copy(&legacy, tmp.path().join("config.json")).unwrap();
        let a = LanguageModel::from_hf_dir(&dir, &device).unwrap();
        let b = LanguageModel::from_hf_dir(tmp.path(), &device)
            .unwrap_or_else(|e| panic!("{variant} legacy config: {e}"));
        let batch = TokenBatch::single((3..40).collect()).unwrap();
        let la = a.next_token_logprobs(&batch, &mut a.hooks()).unwrap();
        let lb = b.next_token_logprobs(&batch, &mut b.hooks()).unwrap();
        assert_eq!(la, lb, "{variant}: legacy and v5 configs disagree");
    }
}
