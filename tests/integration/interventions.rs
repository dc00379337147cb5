//! Built-in interventions against the same edits done with hooks in transformers, and their
//! exactness properties.

use std::collections::{BTreeMap, HashMap};

use negdiff_hooks::{CapturedBatch, HookError, HookPoint, HookSite};
use negdiff_interventions::{
    ActivationRecorder, Compose, EditKind, Intervention, InterventionError, MeanAblation,
    MeanRecorder, NeuronEdit, NeuronSet, Patch, attach,
};
use negdiff_model::{LanguageModel, TokenBatch, device::default_device};
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{fixture, max_abs_diff_valid, read_tensors, smollm2};

fn batch_from(ids: &[i64], t: usize, lengths: &[i64]) -> TokenBatch {
    TokenBatch::new(
        lengths
            .iter()
            .enumerate()
            .map(|(b, &len)| (0..len as usize).map(|p| ids[b * t + p] as u32).collect())
            .collect(),
    )
    .unwrap()
}

fn set_from_json(v: &Value, name: &str) -> NeuronSet {
    let layers = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, ns)| {
            (
                k.parse().unwrap(),
                ns.as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect();
    NeuronSet::new(name, layers)
}

fn logits_with<'a>(
    model: &LanguageModel,
    batch: &TokenBatch,
    iv: Option<Box<dyn Intervention + 'a>>,
) -> Vec<f32> {
    let mut hooks = model.hooks();
    if let Some(iv) = iv {
        attach(&mut hooks, iv).unwrap();
    }
    model
        .logits(batch, &mut hooks)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap()
}

#[test]
fn every_builtin_matches_transformers_on_tiny_models() {
    let device = default_device();
    for variant in ["gpt_neox_parallel", "llama_gqa_tied"] {
        let dir = fixture(&format!("models/{variant}"));
        let model = LanguageModel::from_hf_dir(&dir, &device).unwrap();
        let layout = model.site_layout();
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("interventions.json")).unwrap())
                .unwrap();
        let set = set_from_json(&spec["neurons"], "fixture");
        let exp = read_tensors(&dir.join("interventions.safetensors"));
        let inputs = read_tensors(&dir.join("expected.safetensors"));
        let ids = &inputs["batch1.input_ids"];
        let lengths = inputs["batch1.lengths"].i64.clone();
        let lens: Vec<usize> = lengths.iter().map(|&l| l as usize).collect();
        let batch = batch_from(&ids.i64, ids.shape[1], &lengths);
        let n_layers = model.dims().n_layers;
        let pre_sites: Vec<HookSite> = (0..n_layers).map(HookSite::mlp_pre).collect();

        // Means over the batch's real tokens, recorded by negdiff itself.
        let mut means = MeanRecorder::default();
        {
            let mut hooks = model.hooks();
            hooks
                .add_capture(pre_sites.clone(), None, &mut means)
                .unwrap();
            model.logits(&batch, &mut hooks).unwrap();
        }
        let means = means.means();
        for l in 0..n_layers {
            let e = &exp[&format!("mean-ablation.means.{l}")].f32;
            let err = means[&l]
                .iter()
                .zip(e)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "{variant} means layer {l}: {err}");
        }
        // Patch source: the pre-activations of another input of the same shape.
        let src_ids = &exp["patch.source_ids"];
        let src_batch = batch_from(&src_ids.i64, src_ids.shape[1], &lengths);
        let mut recorded = ActivationRecorder::default();
        {
            let mut hooks = model.hooks();
            hooks
                .add_capture(pre_sites.clone(), None, &mut recorded)
                .unwrap();
            model.logits(&src_batch, &mut hooks).unwrap();
        }

        let edit = |kind: &str| -> Box<dyn Intervention> {
            Box::new(NeuronEdit::new(kind.parse().unwrap(), &set, &layout, &device).unwrap())
        };
        let cases: Vec<(&str, Option<Box<dyn Intervention>>)> = vec![
            ("baseline", None),
            ("zero-negative", Some(edit("zero-negative"))),
            ("zero-positive", Some(edit("zero-positive"))),
            ("zero", Some(edit("zero"))),
            ("scale:0.5", Some(edit("scale:0.5"))),
            ("clamp:-0.1:0.2", Some(edit("clamp:-0.1:0.2"))),
            ("sign-flip", Some(edit("sign-flip"))),
            ("pos-relu", Some(edit("pos-relu"))),
            (
                "mean-ablation",
                Some(Box::new(
                    MeanAblation::new(&set, &means, &layout, &device).unwrap(),
                )),
            ),
            (
                "patch",
                Some(Box::new(
                    Patch::new(&set, &recorded.layers, &layout, &device).unwrap(),
                )),
            ),
            (
                "compose",
                Some(Box::new(Compose::new(vec![
                    edit("zero-negative"),
                    edit("scale:0.5"),
                ]))),
            ),
        ];
        for (name, iv) in cases {
            let got = logits_with(&model, &batch, iv);
            let e = &exp[&format!("{name}.logits")];
            let err = max_abs_diff_valid(&got, &e.f32, &e.shape, &lens);
            assert!(err <= 1e-4, "{variant} {name}: max abs err {err}");
        }
    }
}

/// Captures `mlp.hook_pre` of every layer as seen after any intervention registered before it.
fn pre_after(
    model: &LanguageModel,
    batch: &TokenBatch,
    iv: Option<&NeuronEdit>,
) -> HashMap<usize, Vec<f32>> {
    let mut out = HashMap::new();
    {
        let mut hooks = model.hooks();
        if let Some(iv) = iv {
            attach(&mut hooks, iv).unwrap();
        }
        let sites: Vec<HookSite> = (0..model.dims().n_layers).map(HookSite::mlp_pre).collect();
        hooks
            .add_capture(
                sites,
                None,
                |c: &CapturedBatch<'_>| -> Result<(), HookError> {
                    out.insert(c.site.layer, c.data.to_vec());
                    Ok(())
                },
            )
            .unwrap();
        model.logits(batch, &mut hooks).unwrap();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Only selected neurons change; zero-negative zeroes exactly the negative values of the
    /// selected neurons and leaves every other value bit-identical.
    #[test]
    fn zero_negative_changes_only_negative_values_of_selected_neurons(
        picks in proptest::collection::btree_set(0usize..256, 0..40),
        layer_mask in 0u8..4,
        len in 2usize..20,
        seed in 0u32..1000,
    ) {
        let model = LanguageModel::from_hf_dir(&fixture("models/gpt_neox_parallel"), &default_device()).unwrap();
        let mut layers = BTreeMap::new();
        for l in 0..2 {
            if layer_mask & (1 << l) != 0 {
                layers.insert(l, picks.iter().copied().collect::<Vec<_>>());
            }
        }
        let set = NeuronSet::new("prop", layers);
        let ids: Vec<u32> = (0..len).map(|i| 3 + ((i as u32 * 7919 + seed) % 290)).collect();
        let batch = TokenBatch::single(ids).unwrap();
        // The edit at layer 0 changes what layer 1 sees, so compare layer by layer against a run
        // where only the layers before it are edited.
        for l in 0..2usize {
            let upstream = set.restrict_to_layers(&(0..l).collect::<Vec<_>>(), "up");
            let here = set.restrict_to_layers(&(0..=l).collect::<Vec<_>>(), "here");
            let up_edit = NeuronEdit::new(EditKind::ZeroNegative, &upstream, &model.site_layout(), &default_device()).unwrap();
            let edit = NeuronEdit::new(EditKind::ZeroNegative, &here, &model.site_layout(), &default_device()).unwrap();
            let before = &pre_after(&model, &batch, Some(&up_edit))[&l];
            let after = &pre_after(&model, &batch, Some(&edit))[&l];
            let width = 256;
            for (i, (b, a)) in before.iter().zip(after).enumerate() {
                let neuron = i % width;
                if set.neurons(l).contains(&neuron) {
                    if *b < 0.0 { prop_assert_eq!(*a, 0.0); } else { prop_assert_eq!(a.to_bits(), b.to_bits()); }
                } else {
                    prop_assert_eq!(a.to_bits(), b.to_bits());
                }
            }
        }
    }
}

#[test]
fn empty_set_is_exactly_the_identity() {
    let model =
        LanguageModel::from_hf_dir(&fixture("models/llama_gqa_tied"), &default_device()).unwrap();
    let batch = TokenBatch::new(vec![(3..30).collect(), (40..50).collect()]).unwrap();
    let base = logits_with(&model, &batch, None);
    for kind in ["zero-negative", "zero", "sign-flip", "pos-relu", "scale:3"] {
        let edit = NeuronEdit::new(
            kind.parse().unwrap(),
            &NeuronSet::empty("none"),
            &model.site_layout(),
            &default_device(),
        )
        .unwrap();
        assert!(edit.sites().is_empty());
        let got = logits_with(&model, &batch, Some(Box::new(edit)));
        assert!(
            got.iter()
                .zip(&base)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{kind}"
        );
    }
}

#[test]
fn neuron_sets_that_do_not_fit_the_model_are_typed_errors() {
    let model =
        LanguageModel::from_hf_dir(&fixture("models/llama_gqa_tied"), &default_device()).unwrap();
    let layout = model.site_layout();
    let dev = default_device();
    let kind = EditKind::ZeroNegative;
    let too_deep = NeuronSet::new("deep", BTreeMap::from([(2, vec![1])]));
    match NeuronEdit::new(kind, &too_deep, &layout, &dev) {
        Err(InterventionError::LayerOutOfRange {
            set,
            layer,
            n_layers,
        }) => {
            assert_eq!((set.as_str(), layer, n_layers), ("deep", 2, 2));
        }
        other => panic!("{other:?}"),
    }
    let too_wide = NeuronSet::new("wide", BTreeMap::from([(1, vec![5, 192])]));
    match NeuronEdit::new(kind, &too_wide, &layout, &dev) {
        Err(InterventionError::NeuronOutOfRange {
            set,
            layer,
            neuron,
            d_mlp,
        }) => {
            assert_eq!((set.as_str(), layer, neuron, d_mlp), ("wide", 1, 192, 192));
        }
        other => panic!("{other:?}"),
    }
    let other_model = NeuronSet::new("pythia", BTreeMap::from([(0, vec![1])])).with_shape(2, 2048);
    let err = NeuronEdit::new(kind, &other_model, &layout, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pythia") && err.contains("2048") && err.contains("192"),
        "{err}"
    );
    // Edits must target MLP-width sites.
    let ok_set = NeuronSet::new("ok", BTreeMap::from([(0, vec![1])]));
    assert!(NeuronEdit::at_point(kind, &ok_set, HookPoint::ResidPost, &layout, &dev).is_err());
    // An unknown site name is an error at registration.
    let mut hooks = model.hooks();
    assert!(
        hooks
            .add_capture(
                ["blocks.9.mlp.hook_pre".parse().unwrap()],
                None,
                |_: &CapturedBatch<'_>| Ok(())
            )
            .is_err()
    );
    let neox = LanguageModel::from_hf_dir(&fixture("models/gpt_neox_parallel"), &dev).unwrap();
    let mut hooks = neox.hooks();
    let err = hooks
        .add_capture(
            ["blocks.0.mlp.hook_pre_linear".parse().unwrap()],
            None,
            |_: &CapturedBatch<'_>| Ok(()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("gpt_neox"), "{err}");
}

#[test]
fn smollm2_zero_negative_of_16_neurons_per_layer_matches_transformers() {
    let Some(path) = smollm2() else { return };
    let model = LanguageModel::from_gguf(&path, &default_device()).unwrap();
    let set = NeuronSet::load(&fixture("smollm2_neurons16.json")).unwrap();
    assert_eq!(set.len(), 16 * 30);
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("smollm2_intervention_reference.json")).unwrap(),
    )
    .unwrap();
    let ids: Vec<u32> = r["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        model
            .tokenizer()
            .encode(r["sentence"].as_str().unwrap())
            .unwrap()
            .ids,
        ids
    );
    let batch = TokenBatch::single(ids).unwrap();
    let sum = |iv: Option<NeuronEdit>| -> f64 {
        let mut hooks = model.hooks();
        if let Some(iv) = iv {
            attach(&mut hooks, iv).unwrap();
        }
        model.next_token_logprobs(&batch, &mut hooks).unwrap()[0]
            .iter()
            .map(|&v| v as f64)
            .sum()
    };
    let base = sum(None);
    let ablated = sum(Some(
        NeuronEdit::new(
            EditKind::ZeroNegative,
            &set,
            &model.site_layout(),
            &default_device(),
        )
        .unwrap(),
    ));
    let want = r["diff"].as_f64().unwrap();
    let got = ablated - base;
    assert!(
        (got - want).abs() <= 2e-3,
        "change {got} vs transformers {want}"
    );
    assert!(
        got.abs() > 1e-3,
        "the edit should change the log-prob at all ({got})"
    );
}
