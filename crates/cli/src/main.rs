//! `negdiff`: the command-line face of the negdiff crates.
//!
//! Machine-readable outputs follow the CLI contract (docs/cli.md); human output and progress go
//! to stderr. Every failure exits non-zero with a one-line message on stderr.

mod commands;

// mimalloc keeps freed tensor buffers for reuse; glibc returns large ones to the OS and every
// forward pass then pays for faulting and zeroing fresh pages (measured: ~5% of a forward).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Neuron-level interpretability of transformer language models.
#[derive(Parser, Debug)]
#[command(name = "negdiff", version, about)]
struct Cli {
    /// Where to run: cpu (default), wgpu, cuda or cuda:N (GPU backends need the matching build feature).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a model's architecture and sizes.
    Info(commands::info::Args),
    /// Per-token log-probabilities of a text.
    Logprobs(commands::logprobs::Args),
    /// Greedy continuation of a prompt.
    Generate(commands::generate::Args),
    /// BLiMP minimal pairs (summed log-prob).
    Blimp(commands::bench::BlimpArgs),
    /// Targeted syntactic evaluation pairs (mean log-prob).
    Tse(commands::bench::TseArgs),
    /// Perplexity of a corpus.
    Perplexity(commands::bench::PerplexityArgs),
    /// Score every MLP neuron (Wasserstein distance, statistics, mapping difficulty).
    Score(commands::score::ScoreArgs),
    /// Select a neuron set from scores.
    Select(commands::score::SelectArgs),
    /// The whole pipeline: score, select, main table, POS, layer sweep, report.
    Reproduce(commands::reproduce::ReproduceArgs),
    /// Rebuild the report of a `reproduce` directory.
    Report(commands::reproduce::ReportArgs),
    /// The same measures across training checkpoints, for a fixed neuron cohort.
    Checkpoints(commands::checkpoints::CheckpointArgs),
}

/// Asks mimalloc to keep freed memory a second before handing it back to the OS (its default is
/// 10 ms): every forward pass frees and re-allocates multi-megabyte activations within a few
/// milliseconds, and each re-allocation would otherwise fault in and zero fresh pages (~3.5% of
/// a forward at 16×64 by `perf`, ~1% with the longer delay). Peak memory is unchanged.
fn keep_freed_memory_a_while() {
    /// `mi_option_purge_delay` in mimalloc.h (v2 and v3 alike).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets one integer option; mimalloc reads it at every purge decision.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
}

fn main() {
    keep_freed_memory_a_while();
    let cli = Cli::parse();
    let result = negdiff_model::device::parse_device(&cli.device)
        .map_err(anyhow::Error::from)
        .and_then(|device| match cli.command {
            Command::Info(a) => commands::info::run(a, &device),
            Command::Logprobs(a) => commands::logprobs::run(a, &device),
            Command::Generate(a) => commands::generate::run(a, &device),
            Command::Blimp(a) => commands::bench::blimp(a, &device),
            Command::Tse(a) => commands::bench::tse(a, &device),
            Command::Perplexity(a) => commands::bench::perplexity(a, &device),
            Command::Score(a) => commands::score::score(a, &device),
            Command::Select(a) => commands::score::select(a, &device),
            Command::Reproduce(a) => commands::reproduce::run(a, &device),
            Command::Report(a) => commands::reproduce::report(a, &device),
            Command::Checkpoints(a) => commands::checkpoints::run(a, &device),
        });
    if let Err(e) = result {
        // One line: the error and its causes joined.
        let msg = e
            .chain()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        eprintln!("error: {}", msg.replace('\n', " "));
        std::process::exit(1);
    }
}
