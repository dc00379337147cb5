//! The command-line contract (docs/cli.md): machine-readable outputs and one-line errors.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn negdiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_negdiff"))
        .args(args)
        .output()
        .expect("run negdiff")
}

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn json_stdout(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn assert_one_line_error(out: &Output) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stderr should be one line: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err}");
}

#[test]
fn info_json_has_the_contract_fields() {
    let v = json_stdout(&negdiff(&[
        "info",
        &fixture("models/gpt_neox_parallel"),
        "--json",
    ]));
    for key in [
        "architecture",
        "n_layers",
        "d_model",
        "d_mlp",
        "activation",
        "n_params",
        "bos_prepended",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["architecture"], "gpt_neox");
    assert_eq!(v["n_layers"], 2);
    assert_eq!(v["d_mlp"], 256);
    assert_eq!(v["activation"], "gelu");
    assert_eq!(v["bos_prepended"], false);
}

#[test]
fn logprobs_json_follows_the_contract() {
    let v = json_stdout(&negdiff(&[
        "logprobs",
        &fixture("models/llama_gqa_tied"),
        "--text",
        "the cat sat on the mat",
        "--json",
    ]));
    let ids = v["token_ids"].as_array().unwrap();
    let lps = v["logprobs"].as_array().unwrap();
    assert_eq!(ids.len(), lps.len());
    assert_eq!(v["tokens"].as_array().unwrap().len(), ids.len());
    assert!(lps[0].is_null());
    let sum: f64 = lps[1..].iter().map(|x| x.as_f64().unwrap()).sum();
    assert!((sum - v["sum"].as_f64().unwrap()).abs() < 1e-6);
    assert!(lps[1..].iter().all(|x| x.as_f64().unwrap() <= 0.0));
}

#[test]
fn generate_json_returns_only_the_continuation() {
    let v = json_stdout(&negdiff(&[
        "generate",
        &fixture("models/qwen2_bias"),
        "--prompt",
        "the cat",
        "-n",
        "5",
        "--json",
    ]));
    assert_eq!(v["token_ids"].as_array().unwrap().len(), 5);
    assert!(v["text"].is_string());
}

#[test]
fn bad_input_exits_non_zero_with_one_line() {
    assert_one_line_error(&negdiff(&["info", "/no/such/model", "--json"]));
    assert_one_line_error(&negdiff(&["info", &fixture("smollm2_reference.json")]));
    assert_one_line_error(&negdiff(&[
        "--device",
        "tpu",
        "info",
        &fixture("models/gpt_neox_parallel"),
    ]));
    // A hub id that is not cached, with downloads off.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_negdiff"))
        .args(["info", "nobody/nothing@main", "--json"])
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_one_line_error(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody/nothing"));
}

#[test]
fn hub_id_loads_from_a_cache_named_by_the_environment() {
    let cache = tempfile::tempdir().unwrap();
    let commit = "1111111111111111111111111111111111111111";
    let snap = cache
        .path()
        .join("models--org--tiny-neox/snapshots")
        .join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(
            PathBuf::from(fixture("models/gpt_neox_parallel")).join(f),
            snap.join(f),
        )
        .unwrap();
    }
    let refs = cache.path().join("models--org--tiny-neox/refs");
    std::fs::create_dir_all(&refs).unwrap();
    std::fs::write(refs.join("step3000"), commit).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_negdiff"))
        .args(["info", "org/tiny-neox@step3000", "--json"])
        .env("HF_HOME", "/nonexistent")
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(json_stdout(&out)["architecture"], "gpt_neox");
}

#[test]
fn logprobs_with_an_intervention_changes_the_scores_and_checks_the_set() {
    let model = fixture("models/llama_gqa_tied");
    let base = json_stdout(&negdiff(&[
        "logprobs",
        &model,
        "--text",
        "the dog ran home",
        "--json",
    ]));
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.json");
    let neurons: Vec<usize> = (0..192).step_by(3).collect();
    std::fs::write(
        &set,
        serde_json::json!({"name": "every-third", "layers": {"0": neurons, "1": neurons}})
            .to_string(),
    )
    .unwrap();
    let set = set.to_string_lossy().into_owned();
    let ablated = json_stdout(&negdiff(&[
        "logprobs",
        &model,
        "--text",
        "the dog ran home",
        "--intervene",
        "zero-negative",
        "--neurons",
        &set,
        "--json",
    ]));
    assert_eq!(base["token_ids"], ablated["token_ids"]);
    assert_ne!(base["sum"], ablated["sum"]);
    // A set beyond the model: one-line error naming the set.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name": "too-deep", "layers": {"7": [1]}}"#).unwrap();
    let out = negdiff(&[
        "logprobs",
        &model,
        "--text",
        "x",
        "--intervene",
        "zero",
        "--neurons",
        bad.to_str().unwrap(),
    ]);
    assert_one_line_error(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("too-deep"));
    // An unknown kind.
    assert_one_line_error(&negdiff(&[
        "logprobs",
        &model,
        "--text",
        "x",
        "--intervene",
        "zero-sideways",
        "--neurons",
        &set,
    ]));
}
