//! Forward-pass throughput of SmolLM2-135M on the CPU backend, in tokens per second.
//!
//! Shapes: 16×64 and 1×512, random token ids (seed 0). Two measurements per shape:
//! `logits` (full `[batch, pos, vocab]` logits, what `model(input_ids)` returns in transformers)
//! and `logprobs` (next-token log-probabilities, what scoring needs). The PyTorch baseline on
//! the same model, shapes and thread count is `benches/torch_forward.py`; run both in one
//! session and compare (see docs/benchmarks.md).
//!
//! Run: `RAYON_NUM_THREADS=2 cargo bench --bench forward` (needs scripts/setup.sh's model).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use negdiff_model::{LanguageModel, TokenBatch, default_model_path, device::default_device};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_batch(batch: usize, len: usize, vocab: usize) -> TokenBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let seqs = (0..batch)
        .map(|_| {
            (0..len)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect()
        })
        .collect();
    TokenBatch::new(seqs).expect("non-empty batch")
}

fn forward(c: &mut Criterion) {
    let path = default_model_path();
    let model = match LanguageModel::load(path.to_str().unwrap_or_default(), &default_device()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping forward benchmark: {e} (run scripts/setup.sh)");
            return;
        }
    };
    let vocab = model.dims().vocab_size;
    let mut group = c.benchmark_group("smollm2_forward");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    for (b, t) in [(16usize, 64usize), (1, 512)] {
        let batch = random_batch(b, t, vocab);
        group.throughput(Throughput::Elements((b * t) as u64));
        let shape = format!("{b}x{t}");
        group.bench_with_input(
            BenchmarkId::new("logits", &shape),
            &batch,
            |bench, batch| {
                bench.iter(|| {
                    let logits = model.logits(batch, &mut model.hooks()).expect("forward");
                    // Read back so that lazy backends do the work inside the timing.
                    logits.try_into_vec_as::<f32>().expect("readback").len()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("logprobs", &shape),
            &batch,
            |bench, batch| {
                bench.iter(|| {
                    model
                        .next_token_logprobs(batch, &mut model.hooks())
                        .expect("forward")
                        .len()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
