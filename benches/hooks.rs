//! Cost of the hook mechanism on SmolLM2-135M (CPU), measured in one run:
//!
//! 1. an inactive hook site: the table lookup every forward pass does at each of its 270 sites
//!    (ns per lookup, and that times 270 as a share of one forward pass);
//! 2. a forward pass with an empty registry against one with zero-negative on 1% of the
//!    neurons (15 per layer) in every layer, interleaved runs, medians and their ratio.
//!
//! Run: `RAYON_NUM_THREADS=2 cargo bench --bench hooks` (needs scripts/setup.sh's model).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use burn::tensor::Tensor;
use negdiff_hooks::{BatchContext, HookPoint, HookRegistry, HookSite, SiteLayout};
use negdiff_interventions::{EditKind, NeuronEdit, NeuronSet, attach};
use negdiff_model::{LanguageModel, TokenBatch, default_model_path, device::default_device};
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let path = default_model_path();
    let model = match LanguageModel::load(&path.display().to_string(), &default_device()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping: {e} (run scripts/setup.sh)");
            return;
        }
    };
    let dims = model.dims().clone();
    let device = default_device();

    // 1. Inactive sites.
    let layout = SiteLayout::new(
        "llama",
        dims.n_layers,
        dims.d_model,
        dims.d_mlp,
        HookPoint::ALL.to_vec(),
    );
    let mut empty = HookRegistry::new(layout);
    let x: Tensor<3> = Tensor::zeros([1, 1, 1], &device);
    let ctx = BatchContext::new(vec![1], 1, &device);
    let n = 10_000_000u64;
    let t0 = Instant::now();
    let mut x = x;
    for i in 0..n {
        let site = HookSite::new(
            (i as usize) % dims.n_layers,
            HookPoint::ALL[(i as usize) % 9],
        );
        x = empty.run(site, x, &ctx).expect("inactive site");
    }
    let ns_per_site = t0.elapsed().as_secs_f64() * 1e9 / n as f64;

    // 2. Forward with and without zero-negative on 15 neurons per layer.
    let vocab = dims.vocab_size as u32;
    let seqs: Vec<Vec<u32>> = (0..16)
        .map(|i| {
            (0..64)
                .map(|j| ((i * 7919 + j * 104_729) as u32) % vocab)
                .collect()
        })
        .collect();
    let batch = TokenBatch::new(seqs).expect("batch");
    let set = NeuronSet::new(
        "1pct",
        (0..dims.n_layers)
            .map(|l| (l, (0..15).map(|k| (k * 97 + l * 13) % dims.d_mlp).collect()))
            .collect(),
    );
    let edit =
        NeuronEdit::new(EditKind::ZeroNegative, &set, &model.site_layout(), &device).expect("edit");
    let run = |with: bool| {
        let mut hooks = model.hooks();
        if with {
            attach(&mut hooks, &edit).expect("attach");
        }
        let t = Instant::now();
        let h = model.forward_hidden(&batch, &mut hooks).expect("forward");
        h.try_into_vec_as::<f32>().expect("readback");
        t.elapsed().as_secs_f64()
    };
    run(false);
    run(true);
    let (mut plain, mut hooked) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        plain.push(run(false));
        hooked.push(run(true));
    }
    let (p, h) = (median(plain), median(hooked));
    let sites = dims.n_layers * 9;
    println!(
        "{}",
        json!({
            "bench": "hooks", "model": path, "shape": "16x64",
            "inactive_site_ns": ns_per_site,
            "inactive_sites_per_forward": sites,
            "inactive_share_of_forward": ns_per_site * sites as f64 * 1e-9 / p,
            "forward_no_hooks_s": p,
            "forward_zero_negative_1pct_s": h,
            "overhead_ratio": h / p,
            "neurons_edited": set.len(),
        })
    );
}
