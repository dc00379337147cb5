//! Times forward passes of the default model at a given shape (a quick check; the benchmark
//! with statistics is `cargo bench --bench forward`).
//!
//! Run: `cargo run --release --example forward_timing -- [BATCH] [LEN] [REPEATS]`
//! (`NEGDIFF_DEVICES=cpu,ndarray` with `--features ndarray` compares the two CPU backends).

use std::time::Instant;

// The same allocator as the `negdiff` binary: large tensors are reused instead of being
// returned to the OS and faulted in again on every operation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use negdiff::model::{LanguageModel, TokenBatch, default_model_path, device::parse_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (b, t, reps) = (
        args.first().copied().unwrap_or(16),
        args.get(1).copied().unwrap_or(64),
        args.get(2).copied().unwrap_or(3),
    );
    // NEGDIFF_DEVICES=cpu,ndarray (with `--features ndarray`) times several backends, interleaved
    // repeat by repeat so that machine noise hits them alike.
    let names = std::env::var("NEGDIFF_DEVICES").unwrap_or_else(|_| "cpu".into());
    let mut models = Vec::new();
    for name in names.split(',') {
        let model = LanguageModel::load(
            &default_model_path().display().to_string(),
            &parse_device(name)?,
        )?;
        models.push((name, model));
    }
    let vocab = models[0].1.dims().vocab_size as u32;
    let seqs: Vec<Vec<u32>> = (0..b)
        .map(|i| {
            (0..t)
                .map(|j| ((i * 7919 + j * 104_729) as u32) % vocab)
                .collect()
        })
        .collect();
    let batch = TokenBatch::new(seqs)?;
    let mut totals = vec![Vec::new(); models.len()];
    for r in 0..reps {
        for ((name, model), total) in models.iter().zip(&mut totals) {
            let t0 = Instant::now();
            let h = model.forward_hidden(&batch, &mut model.hooks())?;
            let _ = h.clone().try_into_vec_as::<f32>()?;
            let t1 = Instant::now();
            let lp = model.logprobs_from_hidden(&batch, h)?;
            let t2 = Instant::now();
            println!(
                "{name} rep {r}: hidden {:.3}s, logprobs {:.3}s, total {:.3}s, {:.0} tokens/s ({} rows)",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t2 - t0).as_secs_f64(),
                (b * t) as f64 / (t2 - t0).as_secs_f64(),
                lp.iter().map(Vec::len).sum::<usize>()
            );
            // The first repeat warms caches and the allocator; it is not counted.
            if r > 0 {
                total.push((t2 - t0).as_secs_f64());
            }
        }
    }
    for ((name, _), total) in models.iter().zip(&mut totals) {
        total.sort_by(f64::total_cmp);
        if let Some(median) = total.get(total.len() / 2) {
            println!(
                "{name}: median {:.3}s per {b}x{t} forward + log-probs, {:.0} tokens/s",
                median,
                (b * t) as f64 / median
            );
        }
    }
    Ok(())
}
