//! `seqnet export`: write a trained model in another format (ONNX).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use seqnet::io::{model, onnx};
use seqnet::shape::fmt_shape;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The trained model (.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Write an ONNX model (opset 17; 20 for a network with GELU) here: input `input` [N, C, H, W], output `logits`.
    #[arg(long)]
    onnx: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let m =
        model::load(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    let out = onnx::save(&args.onnx, &m.net, &m.info)
        .with_context(|| format!("exporting {} to ONNX", args.model.display()))?;
    let text = format!(
        "wrote {}: ONNX opset {}, {} nodes ({}), input N×{} → logits N×{}",
        args.onnx.display(),
        out.opset,
        out.ops.len(),
        out.ops.join(", "),
        fmt_shape(m.net.input_shape()),
        fmt_shape(m.net.output_shape())
    );
    eprintln!("{}", super::wrap(&text));
    for layer in &out.omitted {
        eprintln!("left out layer {layer}: the identity at inference");
    }
    if let Some(n) = m.info.normalize {
        let text = format!(
            "note: the model normalises its input; feed the ONNX model pixels/255 as x, then {}",
            n.describe()
        );
        eprintln!("{}", super::wrap(&text));
    }
    Ok(ExitCode::SUCCESS)
}
