//! `negdiff info MODEL [--json]`

use negdiff_model::Device;
use serde_json::json;

/// Arguments of `negdiff info`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A GGUF file, an HF model directory, or a hub id org/name or org/name@rev.
    model: String,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: Args, device: &Device) -> anyhow::Result<()> {
    let model = super::load_model(&args.model, device)?;
    let info = model.info();
    let mut value = serde_json::to_value(info)?;
    value["device"] = json!(format!("{device:?}"));
    if args.json {
        super::print_json(&value)?;
    } else {
        println!("architecture   {}", info.architecture);
        println!("layers         {}", info.n_layers);
        println!("d_model        {}", info.d_model);
        println!("d_mlp          {}", info.d_mlp);
        println!("heads          {} (kv {})", info.n_heads, info.n_kv_heads);
        println!("vocab          {}", info.vocab_size);
        println!("activation     {}", info.activation);
        println!("parameters     {}", info.n_params);
        println!("stored dtype   {} (computed in f32)", info.dtype);
        println!("format         {}", info.format);
        println!("source         {}", info.source);
        println!(
            "BOS            {}",
            if info.bos_prepended {
                "prepended by the tokenizer"
            } else {
                "not prepended (the first token is not scored)"
            }
        );
        println!("device         {device:?}");
    }
    Ok(())
}
