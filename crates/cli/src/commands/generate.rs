//! `negdiff generate MODEL --prompt P -n N [--json]` (greedy)

use negdiff_model::Device;
use serde_json::json;

/// Arguments of `negdiff generate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A GGUF file, an HF model directory, or a hub id org/name or org/name@rev.
    model: String,
    /// The prompt.
    #[arg(long)]
    prompt: String,
    /// Number of tokens to generate.
    #[arg(short = 'n', long = "tokens", default_value_t = 20)]
    n: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: Args, device: &Device) -> anyhow::Result<()> {
    let model = super::load_model(&args.model, device)?;
    let prompt = model.tokenizer().encode(&args.prompt)?.ids;
    if prompt.is_empty() {
        anyhow::bail!("the prompt encodes to no tokens");
    }
    let generated = model.generate_greedy(&prompt, args.n, &mut model.hooks())?;
    let text = model.tokenizer().decode(&generated)?;
    if args.json {
        super::print_json(&json!({"token_ids": generated, "text": text}))?;
    } else {
        println!("{}{}", args.prompt, text);
    }
    Ok(())
}
