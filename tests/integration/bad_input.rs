//! Bad input: each gives a typed error naming the file, tensor or setting, never a panic.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use negdiff_model::weights::WeightSource;
use negdiff_model::weights::gguf::GgufFile;
use negdiff_model::weights::safetensors::SafetensorsWeights;
use negdiff_model::{LanguageModel, ModelError, Tokenizer, device::default_device};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{fixture, smollm2};

/// A copy of a tiny model directory in a temp dir, to damage.
fn tiny_copy(variant: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture(&format!("models/{variant}"));
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

fn load(dir: &Path) -> Result<LanguageModel, ModelError> {
    LanguageModel::from_hf_dir(dir, &default_device())
}

#[test]
fn missing_files_are_named() {
    for (file, what) in [
        ("config.json", "config.json"),
        ("model.safetensors", "safetensors weights"),
        ("tokenizer.json", "tokenizer.json"),
    ] {
        let (_t, dir) = tiny_copy("gpt_neox_parallel");
        std::fs::remove_file(dir.join(file)).unwrap();
        match load(&dir) {
            Err(ModelError::MissingFile { what: w, path }) => {
                assert!(w.contains(what), "{w}");
                assert!(path.starts_with(&dir));
            }
            other => panic!("removing {file}: expected MissingFile, got {other:?}"),
        }
    }
    // A missing shard of a sharded checkpoint.
    let (_t, dir) = tiny_copy("llama3_scaled_bf16");
    std::fs::remove_file(dir.join("model-00002-of-00004.safetensors")).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        err.to_string().contains("model-00002-of-00004.safetensors"),
        "{err}"
    );
}

#[test]
fn unknown_model_type_and_bad_config() {
    let (_t, dir) = tiny_copy("llama_gqa_tied");
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("\"llama\"", "\"bert\"")).unwrap();
    match load(&dir) {
        Err(ModelError::UnsupportedModelType {
            model_type, path, ..
        }) => {
            assert_eq!(model_type, "bert");
            assert_eq!(path, cfg);
        }
        other => panic!("expected UnsupportedModelType, got {other:?}"),
    }
    std::fs::write(&cfg, "{ not json").unwrap();
    assert!(matches!(load(&dir), Err(ModelError::Config { .. })));
    std::fs::write(&cfg, text.replace("\"silu\"", "\"swiglu_of_doom\"")).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(err.to_string().contains("hidden_act"), "{err}");
}

/// Rewrites `model.safetensors` with `edit` applied to its tensor map.
fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, (Vec<usize>, Vec<f32>)>)) {
    let path = dir.join("model.safetensors");
    let w = SafetensorsWeights::open_dir(dir).unwrap();
    let mut map = HashMap::new();
    for name in w.names() {
        let t = w.tensor(&name).unwrap();
        map.insert(name, (t.shape, t.data));
    }
    drop(w);
    edit(&mut map);
    let bytes: HashMap<String, (Vec<usize>, Vec<u8>)> = map
        .into_iter()
        .map(|(k, (s, d))| (k, (s, d.iter().flat_map(|v| v.to_le_bytes()).collect())))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, (s, d))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

#[test]
fn missing_tensor_and_wrong_shape_name_the_tensor() {
    let (_t, dir) = tiny_copy("gpt_neox_parallel");
    let victim = "gpt_neox.layers.1.mlp.dense_h_to_4h.weight";
    rewrite_weights(&dir, |m| {
        m.remove(victim);
    });
    match load(&dir) {
        Err(ModelError::MissingTensor { name, .. }) => assert_eq!(name, victim),
        other => panic!("expected MissingTensor, got {other:?}"),
    }

    let (_t, dir) = tiny_copy("gpt_neox_parallel");
    rewrite_weights(&dir, |m| {
        let (shape, data) = m.get_mut(victim).unwrap();
        *shape = vec![shape[0] / 2, shape[1] * 2];
        data.truncate(shape.iter().product());
    });
    match load(&dir) {
        Err(ModelError::ShapeMismatch {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(name, victim);
            assert_eq!(expected, vec![256, 64]);
            assert_eq!(found, vec![128, 128]);
            let msg = load(&dir).unwrap_err().to_string();
            assert!(
                msg.contains("[128, 128]") && msg.contains("[256, 64]"),
                "{msg}"
            );
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn truncated_and_corrupt_safetensors_are_errors() {
    let (_t, dir) = tiny_copy("llama_gqa_tied");
    let path = dir.join("model.safetensors");
    let good = std::fs::read(&path).unwrap();
    for cut in [0, 4, 8, 100, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        match load(&dir) {
            Err(ModelError::Safetensors { path: p, .. }) => assert_eq!(p, path),
            other => panic!("cut at {cut}: expected Safetensors error, got {other:?}"),
        }
    }
    let mut bad = good.clone();
    bad[10] = b'!';
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(load(&dir), Err(ModelError::Safetensors { .. })));
}

#[test]
fn truncated_and_corrupt_gguf_are_errors() {
    let good = std::fs::read(fixture("gguf/quants.gguf.bin")).unwrap();
    let err = GgufFile::from_bytes("x.gguf", b"GGML\x03\0\0\0".to_vec()).unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
    let err = GgufFile::from_bytes("x.gguf", b"GGU".to_vec()).unwrap_err();
    assert!(err.to_string().contains("x.gguf"), "{err}");
    let mut v1 = good.clone();
    v1[4] = 1;
    let err = GgufFile::from_bytes("x.gguf", v1).unwrap_err();
    assert!(err.to_string().contains("version 1"), "{err}");
    // Header intact, data cut: the reader notices before any tensor is read.
    let err = GgufFile::from_bytes("cut.gguf", good[..good.len() - 10].to_vec()).unwrap_err();
    assert!(
        err.to_string().contains("past the end of the file"),
        "{err}"
    );
    // A tensor count far beyond what the file can hold.
    let mut huge = good.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        GgufFile::from_bytes("h.gguf", huge),
        Err(ModelError::Gguf { .. })
    ));
    // Through the public loader the file is named.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("broken.gguf");
    std::fs::write(&p, &good[..200]).unwrap();
    let err = LanguageModel::load(p.to_str().unwrap(), &default_device()).unwrap_err();
    assert!(err.to_string().contains("broken.gguf"), "{err}");
}

/// Everything the loader does with a GGUF image, short of building the model.
fn exercise_gguf(bytes: Vec<u8>) {
    if let Ok(file) = GgufFile::from_bytes("fuzz.gguf", bytes) {
        for t in file.tensors.clone() {
            let _ = file.tensor_f32(&t.name);
        }
        let _ = negdiff_model::config::LlamaConfig::from_gguf(&file);
        let _ = Tokenizer::from_gguf(&file);
    }
}

fn exercise_safetensors(path: &Path) {
    if let Ok(w) = SafetensorsWeights::open_files(&[path.to_path_buf()], "fuzz".into()) {
        for name in w.names() {
            let _ = w.tensor(&name);
        }
    }
}

#[test]
fn random_bytes_and_truncations_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let gguf = std::fs::read(fixture("gguf/quants.gguf.bin")).unwrap();
    let st = std::fs::read(fixture("models/llama_gqa_tied/model.safetensors")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let st_path = tmp.path().join("fuzz.safetensors");
    let mut cases = 0;
    let mut run = |what: String, f: &mut dyn FnMut()| {
        cases += 1;
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            panic!("panic on {what}");
        }
    };
    for i in 0..150 {
        // Random bytes, sometimes behind a valid magic so parsing goes deeper.
        let n = rng.random_range(0..2048);
        let mut bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        if i % 2 == 0 && bytes.len() >= 8 {
            bytes[..4].copy_from_slice(b"GGUF");
            bytes[4..8].copy_from_slice(&3u32.to_le_bytes());
        }
        run(format!("random gguf #{i}"), &mut || {
            exercise_gguf(bytes.clone())
        });
        std::fs::write(&st_path, &bytes).unwrap();
        run(format!("random safetensors #{i}"), &mut || {
            exercise_safetensors(&st_path)
        });
    }
    for i in 0..150 {
        let cut = rng.random_range(0..gguf.len());
        run(format!("gguf cut at {cut}"), &mut || {
            exercise_gguf(gguf[..cut].to_vec())
        });
        let cut = rng.random_range(0..st.len());
        std::fs::write(&st_path, &st[..cut]).unwrap();
        run(format!("safetensors cut at {cut}"), &mut || {
            exercise_safetensors(&st_path)
        });
        // Byte flips in the headers.
        let mut g = gguf.clone();
        for _ in 0..4 {
            let at = rng.random_range(0..g.len().min(1200));
            g[at] = rng.random();
        }
        run(format!("gguf flip #{i}"), &mut || exercise_gguf(g.clone()));
        let mut s = st.clone();
        for _ in 0..4 {
            let at = rng.random_range(0..s.len().min(3000));
            s[at] = rng.random();
        }
        std::fs::write(&st_path, &s).unwrap();
        run(format!("safetensors flip #{i}"), &mut || {
            exercise_safetensors(&st_path)
        });
    }
    // Truncations of the real model, mostly inside its 3 MB header (vocabulary and merges).
    if let Some(path) = smollm2() {
        let real = std::fs::read(path).unwrap();
        for i in 0..40 {
            let cut = if i < 30 {
                rng.random_range(0..4_000_000)
            } else {
                rng.random_range(0..real.len())
            };
            run(format!("SmolLM2 cut at {cut}"), &mut || {
                exercise_gguf(real[..cut].to_vec())
            });
        }
    }
    assert!(cases >= 900, "only {cases} cases");
}
