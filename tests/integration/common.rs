//! Shared helpers: fixture paths, reading expected tensors, locating the real model and data.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(rel)
}

/// Whether we run in CI, where missing data must fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The SmolLM2 GGUF, or `None` (skip) outside CI when it is absent. In CI its absence fails.
pub fn smollm2() -> Option<PathBuf> {
    let p = negdiff_model::default_model_path();
    if p.is_file() {
        return Some(p);
    }
    if in_ci() {
        panic!(
            "the SmolLM2 model is missing at {} (run scripts/setup.sh); CI must not skip",
            p.display()
        );
    }
    eprintln!(
        "SKIP: SmolLM2 not found at {} (run scripts/setup.sh)",
        p.display()
    );
    None
}

/// `../shared/data` (or `$NEGDIFF_DATA`), or `None` outside CI when absent.
pub fn shared_data() -> Option<PathBuf> {
    let p = std::env::var_os("NEGDIFF_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("..").join("shared").join("data"));
    if p.is_dir() {
        return Some(p);
    }
    if in_ci() {
        panic!(
            "benchmark data missing at {}; CI must not skip",
            p.display()
        );
    }
    eprintln!("SKIP: benchmark data not found at {}", p.display());
    None
}

/// A tensor read from a fixture file.
#[derive(Debug, Clone)]
pub struct Array {
    pub shape: Vec<usize>,
    pub f32: Vec<f32>,
    pub i64: Vec<i64>,
}

/// All tensors of a safetensors fixture file (F32 and I64 only).
pub fn read_tensors(path: &Path) -> HashMap<String, Array> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let (f, i) = match view.dtype() {
            safetensors::Dtype::F32 => (
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                vec![],
            ),
            safetensors::Dtype::I64 => (
                vec![],
                data.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            d => panic!("unexpected dtype {d:?} for {name}"),
        };
        out.insert(
            name,
            Array {
                shape: view.shape().to_vec(),
                f32: f,
                i64: i,
            },
        );
    }
    out
}

/// Max |a - b| over the valid positions of `[b, t, w]` arrays (`a` from Rust, `b` expected).
pub fn max_abs_diff_valid(a: &[f32], b: &[f32], shape: &[usize], lengths: &[usize]) -> f32 {
    let (t, w) = (shape[1], shape[2]);
    let mut m = 0f32;
    for (row, &len) in lengths.iter().enumerate() {
        for pos in 0..len {
            let s = (row * t + pos) * w;
            for k in 0..w {
                let d = (a[s + k] - b[s + k]).abs();
                if d.is_nan() || d > m {
                    m = if d.is_nan() { f32::INFINITY } else { d };
                }
            }
        }
    }
    m
}
