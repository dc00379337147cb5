//! Exact Wasserstein scoring speed on real activations, against the authors' numpy/scipy
//! computation on the same activations, in one run.
//!
//! Collects SmolLM2's `mlp.hook_pre` over `TOKENS` (default 30,000) tokens of UD EWT dev
//! (window 2048) for all 30 layers, times `score_layer` on every layer (exact W1, statistics,
//! and the authors' variant against one shared normal sample), writes one layer neuron-major
//! to a temporary `.npy`, and runs `benches/w1_scipy.py` on it (`NEGDIFF_PYTHON`, default
//! `python3`, needs numpy and scipy), printing per-neuron times and their ratio.
//!
//! Run: `RAYON_NUM_THREADS=2 cargo bench --bench w1 [-- TOKENS]`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use indicatif::ProgressBar;
use negdiff_scoring::collect::{ActivationConsumer, collect, collected_tokens};
use negdiff_scoring::corpus::{Corpus, CorpusFormat, TokenStream, WindowSpec};
use negdiff_scoring::exact::ExactStore;
use negdiff_scoring::w1::{NormalQuantiles, score_layer, seeded_normal_sample};
use serde_json::json;

#[allow(dead_code)]
mod common;

/// Writes a 2-D little-endian f32 `.npy` (C order).
fn write_npy_2d(path: &Path, data: &[f32], rows: usize, cols: usize) -> std::io::Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in data {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()
}

fn main() {
    let tokens: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30_000);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = common::data_dir();
    let Some(model) = common::default_model_or_skip() else {
        return;
    };
    let corpus_path = Path::new(&data).join("ud_ewt/en_ewt-ud-dev.conllu");
    let corpus = Corpus::load(&corpus_path, CorpusFormat::Conllu).expect("UD EWT dev");
    let stream = TokenStream::new(&corpus, model.tokenizer()).expect("tokenise");
    let spec = WindowSpec {
        window: 2048,
        stride: 2048,
        max_tokens: tokens,
    };
    let windows = stream.windows(&spec, None).expect("windows");
    let n = collected_tokens(&windows);
    let n_layers = model.dims().n_layers;
    let mut store = ExactStore::new(0..n_layers);
    let t0 = Instant::now();
    {
        let mut consumers: Vec<&mut dyn ActivationConsumer> = vec![&mut store];
        collect(&model, &windows, 1, &mut consumers, &ProgressBar::hidden()).expect("collect");
    }
    let collect_s = t0.elapsed().as_secs_f64();
    let table = NormalQuantiles::new(n);
    let normal = seeded_normal_sample(n, 0);
    let npy = std::env::temp_dir().join("negdiff_w1_layer.npy");
    let (mut exact_s, mut both_s, mut neurons) = (0.0, 0.0, 0usize);
    for l in 0..n_layers {
        let (values, t) = store.take_neuron_major(l).expect("layer");
        let d = values.len() / t;
        let t1 = Instant::now();
        let a = score_layer(&values, t, &table, None).expect("score");
        exact_s += t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let b = score_layer(&values, t, &table, Some(&normal)).expect("score");
        both_s += t2.elapsed().as_secs_f64();
        assert_eq!(a.len(), b.len());
        neurons += d;
        if l == n_layers / 2 {
            write_npy_2d(&npy, &values, d, t).expect("write npy");
        }
    }
    let rust_exact = exact_s / neurons as f64;
    let rust_both = both_s / neurons as f64;
    println!(
        "{}",
        json!({"impl": "negdiff", "layers": n_layers, "neurons": neurons, "tokens": n,
               "collect_s": collect_s, "exact_s": exact_s, "exact_and_authors_s": both_s,
               "seconds_per_neuron_exact": rust_exact, "seconds_per_neuron_exact_and_authors": rust_both,
               "threads": rayon::current_num_threads()})
    );
    let python = std::env::var("NEGDIFF_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = repo.join("benches/w1_scipy.py");
    match std::process::Command::new(&python)
        .arg(&script)
        .arg(&npy)
        .args(["--neurons", "200"])
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().last().unwrap_or_default();
            println!("{line}");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(s) = v["seconds_per_neuron"].as_f64()
            {
                println!(
                    "{}",
                    json!({"ratio_scipy_over_negdiff_exact": s / rust_exact,
                           "ratio_scipy_over_negdiff_exact_and_authors": s / rust_both})
                );
            }
        }
        Ok(out) => eprintln!(
            "scipy baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("scipy baseline not run ({python}: {e}); set NEGDIFF_PYTHON"),
    }
    let _ = std::fs::remove_file(&npy);
}
