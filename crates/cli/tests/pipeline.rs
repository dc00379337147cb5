//! The scoring and experiment commands end to end on tiny fixture models (fast) with the real
//! benchmark data: score/select, determinism, bad corpora, checkpoints, reproduce, and a
//! reproduce killed mid-run and resumed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_negdiff"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny(name: &str) -> String {
    repo()
        .join("tests/fixtures/models")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `../shared/data` (or `$NEGDIFF_DATA`); in CI its absence fails the test.
fn data() -> Option<PathBuf> {
    let p = std::env::var_os("NEGDIFF_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"));
    if p.join("blimp").is_dir() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "benchmark data missing at {}; CI must not skip",
            p.display()
        );
    }
    eprintln!("SKIP: no benchmark data at {}", p.display());
    None
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn score(model: &str, corpus: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .args(["score", model, "--corpus"])
        .arg(corpus)
        .args([
            "--window",
            "128",
            "--tokens",
            "600",
            "--md-tokens",
            "200",
            "--md-pairs",
            "2000",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn score_select_is_deterministic_and_annotated() {
    let Some(data) = data() else { return };
    let corpus = data.join("ud_ewt/en_ewt-ud-dev.conllu");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(score(
        &tiny("llama_gqa_tied"),
        &corpus,
        &a,
        &["--method", "both"],
    ));
    ok(score(
        &tiny("llama_gqa_tied"),
        &corpus,
        &b,
        &["--method", "both"],
    ));
    let sa = std::fs::read(a.join("scores.safetensors")).unwrap();
    assert_eq!(
        sa,
        std::fs::read(b.join("scores.safetensors")).unwrap(),
        "two runs differ"
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["tokens_collected"], 600);
    for t in [
        "w1_exact",
        "w1_authors",
        "w1_streaming",
        "mean",
        "std",
        "skewness",
        "kurtosis",
        "frac_negative",
        "w1_negative_share",
        "md",
    ] {
        assert!(
            manifest["tables"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == t),
            "table {t} missing"
        );
    }
    let top: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("top_neuron.json")).unwrap()).unwrap();
    let pairs = top["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 10);
    assert!(
        pairs.iter().any(|p| p["upos_a"].is_string()),
        "CoNLL-U pairs carry gold UPOS"
    );

    let set = tmp.path().join("wn.json");
    ok(bin()
        .args(["select"])
        .arg(&a)
        .args(["--top", "1", "--per-layer", "--out"])
        .arg(&set)
        .output()
        .unwrap());
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&set).unwrap()).unwrap();
    for l in ["0", "1"] {
        let n = s["layers"][l].as_array().map_or(0, |v| v.len());
        assert!((1..=3).contains(&n), "layer {l}: {n} neurons for 1% of 192");
    }
    // The selected set drives an intervention.
    ok(bin()
        .args([
            "logprobs",
            &tiny("llama_gqa_tied"),
            "--text",
            "a test",
            "--intervene",
            "zero-negative",
            "--neurons",
        ])
        .arg(&set)
        .arg("--json")
        .output()
        .unwrap());
}

#[test]
fn bad_corpora_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "  \n").unwrap();
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    for (corpus, needle) in [(&empty, "no text"), (&short, "fewer than one window")] {
        let out = score(
            &tiny("gpt_neox_parallel"),
            corpus,
            &tmp.path().join("o"),
            &[],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn checkpoints_track_a_cohort() {
    let Some(data) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("cohort.json");
    std::fs::write(
        &set,
        r#"{"name": "cohort", "layers": {"0": [1, 2, 3], "1": [4]}}"#,
    )
    .unwrap();
    let out = ok(bin()
        .args([
            "checkpoints",
            &tiny("gpt_neox_parallel"),
            &tiny("gpt_neox_sequential"),
            "--neurons",
        ])
        .arg(&set)
        .arg("--corpus")
        .arg(data.join("ud_ewt/en_ewt-ud-dev.conllu"))
        .args([
            "--tokens",
            "300",
            "--window",
            "100",
            "--per-paradigm",
            "1",
            "--ppl-tokens",
            "300",
            "--ppl-window",
            "100",
            "--blimp",
        ])
        .arg(data.join("blimp"))
        .arg("--ppl-corpus")
        .arg(data.join("ud_ewt/en_ewt-ud-test.conllu"))
        .arg("--out")
        .arg(tmp.path().join("ck"))
        .output()
        .unwrap());
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r["cohort_wd_mean"].as_f64().unwrap() > 0.0);
        assert!(r["blimp_baseline"].as_f64().is_some() && r["ppl_ablated"].as_f64().is_some());
    }
}

fn reproduce(dir: &Path, data: &Path) -> Command {
    let mut c = bin();
    c.args(["reproduce", &tiny("llama_gqa_tied"), "--out"])
        .arg(dir)
        .arg("--data")
        .arg(data)
        .args([
            "--score-tokens",
            "400",
            "--window",
            "100",
            "--blimp-per-paradigm",
            "4",
            "--tse-per-case",
            "2",
            "--ppl-tokens",
            "800",
            "--ppl-window",
            "100",
            "--seeds",
            "1",
            "--match-steps",
            "3",
            "--sweep-group",
            "1",
            "--sweep-blimp-per-paradigm",
            "1",
            "--sweep-ppl-tokens",
            "200",
        ]);
    c
}

#[test]
fn reproduce_resumes_after_a_kill_and_gives_the_same_report() {
    let Some(data) = data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (full, killed) = (tmp.path().join("full"), tmp.path().join("killed"));
    ok(reproduce(&full, &data).output().unwrap());
    for f in [
        "report.md",
        "report.html",
        "manifest.json",
        "main_table.json",
        "pos_excess.json",
        "layer_sweep.json",
        "plots/wd_by_layer.png",
        "plots/blimp_by_term.svg",
    ] {
        assert!(full.join(f).is_file(), "{f} missing");
    }
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("main_table.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "baseline",
            "wd-zero-negative",
            "wd-zero-positive",
            "wd-zero",
            "random1-zero-negative",
            "matched-zero-negative"
        ]
    );
    assert!(table["matched"]["achieved_perplexity"].as_f64().is_some());

    // Kill once two conditions are finished, then run again.
    let mut child = reproduce(&killed, &data)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = killed.join("summary/wd-zero-negative.json");
    let t0 = Instant::now();
    while !marker.is_file() {
        assert!(t0.elapsed() < Duration::from_secs(600), "no progress");
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let finished_before_kill = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();
    let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).unwrap();
    let base_summary = killed.join("summary/baseline.json");
    let before = (stamp(&base_summary), stamp(&marker));
    ok(reproduce(&killed, &data).output().unwrap());
    assert_eq!(
        (stamp(&base_summary), stamp(&marker)),
        before,
        "finished units were recomputed"
    );
    assert!(!finished_before_kill || killed.join("report.md").is_file());
    assert_eq!(
        std::fs::read_to_string(full.join("report.md")).unwrap(),
        std::fs::read_to_string(killed.join("report.md")).unwrap(),
        "resumed run's report differs"
    );
}

/// The SmolLM2 GGUF (`scripts/setup.sh`), or `None` outside CI when absent.
fn smollm2() -> Option<PathBuf> {
    let p = std::env::var_os("NEGDIFF_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("NEGDIFF_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/negdiff")
                })
                .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("SmolLM2 missing at {}; CI must not skip", p.display());
    }
    eprintln!("SKIP: SmolLM2 not found at {}", p.display());
    None
}

#[test]
fn reproduce_runs_on_smollm2_with_a_small_subset() {
    let (Some(model), Some(data)) = (smollm2(), data()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let stdout = ok(bin()
        .arg("reproduce")
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .arg("--data")
        .arg(&data)
        .args([
            "--score-tokens",
            "1024",
            "--window",
            "512",
            "--blimp-per-paradigm",
            "1",
            "--tse-per-case",
            "1",
            "--ppl-tokens",
            "512",
            "--ppl-window",
            "256",
            "--seeds",
            "1",
            "--match-steps",
            "3",
            "--sweep-group",
            "10",
            "--sweep-blimp-per-paradigm",
            "1",
            "--sweep-ppl-tokens",
            "256",
        ])
        .output()
        .unwrap());
    assert!(stdout.contains("report.md"));
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("main_table.json")).unwrap())
            .unwrap();
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        assert_eq!(r["blimp"]["overall"]["n"], 67, "{}", r["name"]);
        assert_eq!(r["tse"]["overall"]["n"], 72, "{}", r["name"]);
        assert!(r["perplexity"].as_f64().unwrap() > 1.0);
    }
    // 1% of 1536 per layer, strictly above the 99th percentile: 16 per layer.
    assert_eq!(rows[1]["n_neurons"], 480);
    let pos: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("pos_excess.json")).unwrap())
            .unwrap();
    assert!(
        pos["wd-zero-negative"][0]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["upos"] == "DET")
    );
    let sweep: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("layer_sweep.json")).unwrap())
            .unwrap();
    // The unedited model on the sweep's subsets, then 3 groups alone and 3 cumulative.
    let sweep = sweep.as_array().unwrap();
    assert_eq!(sweep.len(), 7);
    assert_eq!(sweep[0]["kind"], "baseline");
    assert_eq!(sweep[0]["summary"]["n_neurons"], 0);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in [
        "## Wasserstein neurons",
        "## Main table",
        "## Excess surprisal by part of speech",
        "## Layer by layer",
        "Perplexity-matched control",
    ] {
        assert!(report.contains(section), "report lacks {section}");
    }
}
