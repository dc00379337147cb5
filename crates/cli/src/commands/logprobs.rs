//! `negdiff logprobs MODEL --text S [--json]`

use negdiff_model::{Device, TokenBatch};
use serde_json::json;

/// Arguments of `negdiff logprobs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A GGUF file, an HF model directory, or a hub id org/name or org/name@rev.
    model: String,
    /// The text to score.
    #[arg(long)]
    text: String,
    #[command(flatten)]
    intervene: super::intervene::InterveneArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: Args, device: &Device) -> anyhow::Result<()> {
    let model = super::load_model(&args.model, device)?;
    let enc = model.tokenizer().encode(&args.text)?;
    if enc.ids.is_empty() {
        anyhow::bail!("the text encodes to no tokens");
    }
    let batch = TokenBatch::single(enc.ids.clone())?;
    let edit = args.intervene.build(&model)?;
    let mut hooks = model.hooks();
    if let Some(edit) = &edit {
        negdiff_interventions::attach(&mut hooks, edit)?;
    }
    let lps = model.next_token_logprobs(&batch, &mut hooks)?;
    let lps = &lps[0];
    // Token 0 has no context to be predicted from: it is not scored.
    let mut per_token: Vec<Option<f32>> = vec![None];
    per_token.extend(lps.iter().map(|&v| Some(v)));
    let sum: f64 = lps.iter().map(|&v| v as f64).sum();
    let tokens: Vec<String> = enc
        .ids
        .iter()
        .map(|&id| model.tokenizer().token(id).unwrap_or_default())
        .collect();
    if args.json {
        super::print_json(&json!({
            "token_ids": enc.ids,
            "tokens": tokens,
            "logprobs": per_token,
            "sum": sum,
        }))?;
    } else {
        for (i, (tok, lp)) in tokens.iter().zip(&per_token).enumerate() {
            match lp {
                Some(v) => println!("{i:>4} {tok:<20} {v:>10.4}"),
                None => println!("{i:>4} {tok:<20} {:>10}", "-"),
            }
        }
        println!("sum {sum:.4}");
    }
    Ok(())
}
