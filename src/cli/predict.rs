//! `seqnet predict`: classify image files, or a safetensors batch into a safetensors file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use safetensors::tensor::Dtype;
use seqnet::io::model::{self, Model};
use seqnet::io::safetensors_file::{self as stf, Entry};
use seqnet::shape::fmt_shape;
use seqnet::{Mode, Sequential, Tensor};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The trained model (.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// A safetensors file holding tensor `input`, f32 [N, C, H, W], fed to the network
    /// as it is (as PyTorch's model(input) would be).
    #[arg(long, requires = "output")]
    input: Option<PathBuf>,
    /// Where to write `logits` [N, classes] and `probabilities`.
    #[arg(long, requires = "input")]
    output: Option<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// Worker threads (default: all cores). Results are the same for any count.
    #[arg(long)]
    threads: Option<usize>,
    /// Image files (PNG, JPEG). For models trained on MNIST-like data: grey, inverted if
    /// light, fitted and centred like MNIST. For models trained on an image folder or
    /// CIFAR-10 (and every 3-channel model): RGB or grey as the model takes, scaled to its
    /// input size as `--resize` does, nothing else.
    images: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::in_pool(args.threads, |_| run_in_pool(args))
}

fn run_in_pool(args: Args) -> Result<ExitCode> {
    let mut m =
        model::load(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    // Activations are bounded per chunk of images, whatever the batch.
    let chunk = model::images_per_forward(&args.model, &m.net)
        .with_context(|| format!("reading {}", args.model.display()))?;
    match (&args.input, &args.output, args.images.is_empty()) {
        (Some(input), Some(output), true) => predict_tensor(&mut m, input, output, chunk),
        (None, None, false) => {
            if !matches!(m.net.input_shape(), [1 | 3, _, _]) {
                bail!(
                    "{}: the model takes inputs shaped {} (its 'seqnet.input' metadata), which \
                     is not an image's C×H×W with C = 1 (grey) or 3 (RGB), so image files \
                     cannot feed it; give it tensors with --input X.safetensors --output \
                     Y.safetensors",
                    args.model.display(),
                    seqnet::shape::fmt_shape(m.net.input_shape())
                );
            }
            predict_images(&mut m, &args.images, args.top as usize, chunk)
        }
        _ => bail!(
            "give either image files (seqnet predict --model M a.png b.png) or --input \
             X.safetensors --output Y.safetensors, not both and not neither"
        ),
    }
}

/// The network's outputs for a batch, `chunk` images at a time.
fn forward_in_chunks(net: &mut Sequential, x: &Tensor, chunk: usize) -> Result<Tensor> {
    let n = x.batch();
    let per = x.len() / n.max(1);
    let mut data = Vec::new();
    for images in x.data().chunks((chunk * per).max(1)) {
        let mut shape = vec![images.len() / per.max(1)];
        shape.extend(net.input_shape());
        let out = net.forward(&Tensor::from_vec(&shape, images.to_vec())?, Mode::Eval)?;
        data.extend(out.into_data());
    }
    let mut shape = vec![n];
    shape.extend(net.output_shape());
    Ok(Tensor::from_vec(&shape, data)?)
}

fn predict_tensor(m: &mut Model, input: &Path, output: &Path, chunk: usize) -> Result<ExitCode> {
    let x = read_input(input, m.net.input_shape())?;
    let logits = forward_in_chunks(&mut m.net, &x, chunk)?;
    let probs = seqnet::loss::probabilities(&logits, m.net.output_kind());
    if let Some(i) = first_not_finite(&probs) {
        bail!(
            "{}",
            not_finite_message(&format!("input {i} of {}", input.display()))
        );
    }
    stf::write_atomic(
        output,
        &[
            Entry::f32("logits", &logits),
            Entry::f32("probabilities", &probs),
        ],
        Default::default(),
    )
    .with_context(|| format!("writing {}", output.display()))?;
    eprintln!(
        "wrote logits and probabilities {} for {} input{} to {}",
        fmt_shape(logits.shape()),
        x.batch(),
        super::plural(x.batch()),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads tensor `input` (f32 [N, C, H, W]) and checks it fits the network.
fn read_input(path: &Path, per_image: &[usize]) -> Result<Tensor> {
    let bytes = stf::read_bounded(path)?;
    let file = stf::parse(path, &bytes)?;
    let view = file.tensor("input").map_err(|_| {
        let names: Vec<&str> = file.names();
        anyhow::anyhow!(
            "{}: has no tensor named 'input' (it holds: {}); save the batch as \
             save_file({{'input': x}}, path)",
            path.display(),
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        )
    })?;
    if view.dtype() != Dtype::F32 {
        bail!(
            "{}: tensor 'input' is {:?}; seqnet predict takes f32 (PyTorch: x.float())",
            path.display(),
            view.dtype()
        );
    }
    let want: Vec<usize> = std::iter::once(view.shape().first().copied().unwrap_or(0))
        .chain(per_image.iter().copied())
        .collect();
    if view.shape().first() == Some(&0) {
        bail!(
            "{}: tensor 'input' has shape {}: it holds no images; give at least one",
            path.display(),
            fmt_shape(view.shape())
        );
    }
    if view.shape() != want.as_slice() {
        bail!(
            "{}: tensor 'input' has shape {}, but the model takes N×{}; check the image size \
             and the channel dimension",
            path.display(),
            fmt_shape(view.shape()),
            fmt_shape(per_image)
        );
    }
    Ok(stf::to_f32(path, "input", &view)?)
}

/// The first input whose outputs are not all finite numbers.
fn first_not_finite(probs: &Tensor) -> Option<usize> {
    (0..probs.batch()).find(|&i| probs.item(i).iter().any(|p| !p.is_finite()))
}

fn not_finite_message(what: &str) -> String {
    format!(
        "the network's output for {what} is not a number: the model's weights hold NaN or \
         infinite values (a diverged training run?); retrain it, or use an earlier \
         checkpoint such as the run's best.safetensors"
    )
}

/// An image file as the model takes it, before its normalisation: for a model of
/// MNIST-like digits prepared as MNIST's were; for a three-channel model, or one trained
/// on an image folder or CIFAR-10, only scaled to its input size.
pub(super) fn load_for(m: &Model, path: &Path) -> Result<Vec<f32>> {
    let shape = m.net.input_shape();
    let resized = shape.first() == Some(&3)
        || m.info.extra.get(model::IMAGES_KEY).map(String::as_str) == Some(model::IMAGES_RESIZED);
    Ok(if resized {
        seqnet::data::image_folder::load_image(path, shape)?
    } else {
        seqnet::io::image::load_digit(path, shape)?
    })
}

fn predict_images(m: &mut Model, images: &[PathBuf], top: usize, chunk: usize) -> Result<ExitCode> {
    let shape = m.net.input_shape().to_vec();
    let per: usize = shape.iter().product();
    let mut data = Vec::with_capacity(per * images.len());
    for path in images {
        let mut values = load_for(m, path)?;
        if let Some(n) = m.info.normalize {
            n.apply(&mut values);
        }
        data.extend(values);
    }
    let mut batch_shape = vec![images.len()];
    batch_shape.extend(&shape);
    let x = Tensor::from_vec(&batch_shape, data)?;
    let logits = forward_in_chunks(&mut m.net, &x, chunk)?;
    let probs = seqnet::loss::probabilities(&logits, m.net.output_kind());
    if let Some(i) = first_not_finite(&probs) {
        bail!("{}", not_finite_message(&images[i].display().to_string()));
    }
    for (i, path) in images.iter().enumerate() {
        let row = probs.item(i);
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let shown: Vec<String> = order
            .iter()
            .take(top)
            .map(|&k| {
                let name = m
                    .info
                    .classes
                    .as_ref()
                    .and_then(|c| c.get(k))
                    .cloned()
                    .unwrap_or(k.to_string());
                format!("{name} ({:.1}%)", 100.0 * row[k])
            })
            .collect();
        println!("{}: {}", path.display(), shown.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
