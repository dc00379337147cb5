//! Times forward passes of the default model at a given shape (a quick check; the benchmark
//! with statistics is `cargo bench --bench forward`).
//!
//! Run: `cargo run --release --example forward_timing -- [BATCH] [LEN] [REPEATS]`

use std::time::Instant;

// The same allocator as the `negdiff` binary: large tensors are reused instead of being
// returned to the OS and faulted in again on every operation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use negdiff::model::{LanguageModel, TokenBatch, default_model_path, device::default_device};

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
    let model = LanguageModel::load(
        &default_model_path().display().to_string(),
        &default_device(),
    )?;
    let vocab = model.dims().vocab_size as u32;
    let seqs = (0..b)
        .map(|i| {
            (0..t)
                .map(|j| ((i * 7919 + j * 104_729) as u32) % vocab)
                .collect()
        })
        .collect();
    let batch = TokenBatch::new(seqs)?;
    for r in 0..reps {
        let t0 = Instant::now();
        let h = model.forward_hidden(&batch, &mut model.hooks())?;
        let _ = h.clone().try_into_vec_as::<f32>()?;
        let t1 = Instant::now();
        let lp = model.logprobs_from_hidden(&batch, h)?;
        let t2 = Instant::now();
        println!(
            "rep {r}: hidden {:.3}s, logprobs {:.3}s, total {:.3}s, {:.0} tokens/s ({} rows)",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t2 - t0).as_secs_f64(),
            (b * t) as f64 / (t2 - t0).as_secs_f64(),
            lp.iter().map(Vec::len).sum::<usize>()
        );
    }
    Ok(())
}
