//! `seqnet viz`: pictures of a model and of a run, as PNG files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use seqnet::data::{self, Dataset, Split};
use seqnet::evaluate;
use seqnet::io::model::{self, Model};
use seqnet::viz::{self, FilterSlices, Mistake, Picture};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
    /// Worker threads for the forward passes (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Every kernel of a convolution layer, enlarged, blue < 0 < red.
    Filters(FiltersArgs),
    /// One image's way through the network: the input and every layer's output.
    Activations(ActivationsArgs),
    /// Loss and accuracy per epoch of a training run (its metrics.jsonl).
    Curves(CurvesArgs),
    /// The confusion matrix on a dataset's test images.
    Confusion(ConfusionArgs),
    /// The misclassified test images, with true and predicted labels.
    Mistakes(MistakesArgs),
    /// Training images as `seqnet train --augment` transforms them, epoch after epoch.
    Augment(AugmentArgs),
}

#[derive(clap::Args, Debug)]
struct AugmentArgs {
    /// A named dataset (mnist, fashion-mnist, kmnist, mnist-5k) or a folder with the four
    /// IDX files; its first training images are drawn. Default: MNIST when installed,
    /// else the embedded sample.
    #[arg(long)]
    dataset: Option<String>,
    /// Where to look for named datasets first.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The transforms, as `seqnet train --augment` takes them, e.g. "affine(degrees=20)".
    /// Default: what --augment alone picks for the data.
    #[arg(long, default_value = "auto")]
    augment: String,
    /// The run's seed: a run with this --seed draws exactly these.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many training images (rows), from the first.
    #[arg(long, default_value_t = 8)]
    images: usize,
    /// How many epochs' draws (columns).
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// The PNG to write.
    #[arg(short, long, default_value = "augment.png")]
    output: PathBuf,
}

/// A model file.
#[derive(clap::Args, Debug)]
struct ModelArg {
    /// The trained model (.safetensors).
    #[arg(long)]
    model: PathBuf,
}

/// Where the test images come from.
#[derive(clap::Args, Debug)]
struct DataArgs {
    /// A named dataset (mnist, fashion-mnist, kmnist, mnist-5k, cifar10), a folder with the
    /// four IDX files or CIFAR-10's .bin files, or a folder of class folders of images;
    /// its test images are used. Default: MNIST when installed, else the embedded sample.
    #[arg(long)]
    dataset: Option<String>,
    /// Where to look for named datasets first.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct FiltersArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The index of the convolution layer (as in `seqnet summary`); default: the first.
    #[arg(long)]
    layer: Option<usize>,
    /// For filters reading several input channels: draw one tile per filter, the mean
    /// over its input channels, instead of one row per filter with every channel's slice.
    #[arg(long)]
    mean: bool,
    /// The PNG to write.
    #[arg(short, long, default_value = "filters.png")]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ActivationsArgs {
    #[command(flatten)]
    model: ModelArg,
    /// An image file (PNG, JPEG), prepared as `seqnet predict` prepares it.
    #[arg(long, conflicts_with_all = ["dataset", "index"])]
    image: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Which test image of --dataset (from 0).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// The PNG to write.
    #[arg(short, long, default_value = "activations.png")]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
struct CurvesArgs {
    /// The run folder (holding metrics.jsonl) or the metrics.jsonl file itself.
    #[arg(long)]
    run: PathBuf,
    /// The PNG to write (default: curves.png in the run folder).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ConfusionArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    data: DataArgs,
    /// The PNG to write.
    #[arg(short, long, default_value = "confusion.png")]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
struct MistakesArgs {
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    data: DataArgs,
    /// Draw at most this many mistakes (the most confident first).
    #[arg(long, default_value_t = 64)]
    max: usize,
    /// The PNG to write.
    #[arg(short, long, default_value = "mistakes.png")]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::in_pool(args.threads, |_| draw(args.what))
}

fn draw(what: What) -> Result<ExitCode> {
    match what {
        What::Filters(a) => filters(a),
        What::Activations(a) => activations(a),
        What::Curves(a) => curves(a),
        What::Confusion(a) => confusion(a),
        What::Mistakes(a) => mistakes(a),
        What::Augment(a) => augment(a),
    }
}

fn load_model(path: &Path) -> Result<Model> {
    let m = model::load(path).with_context(|| format!("reading {}", path.display()))?;
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    Ok(m)
}

fn save(pic: &Picture, path: &Path) -> Result<ExitCode> {
    pic.save_png(path)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {} ({}×{})",
        path.display(),
        pic.width(),
        pic.height()
    );
    Ok(ExitCode::SUCCESS)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn filters(a: FiltersArgs) -> Result<ExitCode> {
    let m = load_model(&a.model.model)?;
    let slices = if a.mean {
        FilterSlices::Mean
    } else {
        FilterSlices::Each
    };
    let pic = viz::filters(&m.net, a.layer, slices)
        .with_context(|| format!("drawing the filters of {}", a.model.model.display()))?;
    save(&pic, &a.output)
}

/// The test images of the chosen dataset, checked against the network's input shape;
/// says on standard error which data they are, and warns when the model may have been
/// trained on them.
fn test_set(d: &DataArgs, m: &Model) -> Result<Dataset> {
    // An image folder is read as the model was trained: its size, channels and hold-out.
    let folder = data::FolderOptions::for_model(
        m.net.input_shape(),
        m.info.trained_on.as_ref().and_then(|t| t.split.as_deref()),
    );
    let splits = data::load_with(
        d.dataset.as_deref(),
        d.data_dir.as_deref(),
        Split::Official,
        &folder,
    )?;
    eprintln!(
        "{}",
        super::wrap(&format!("data: the test set of {}", splits.source))
    );
    let trained = m.info.trained_on.as_ref();
    if let Some(w) = evaluate::overlap(trained, &splits.dataset, evaluate::EvalSet::Test) {
        eprintln!("warning: {w}.");
    }
    let Some(test) = splits.test else {
        bail!("{} has no test images", splits.source);
    };
    if m.net.input_shape() != test.shape.as_slice() {
        bail!(
            "the model takes images shaped {} but the test images of {} are {}",
            seqnet::shape::fmt_shape(m.net.input_shape()),
            splits.source,
            seqnet::shape::fmt_shape(&test.shape)
        );
    }
    if test.is_empty() {
        bail!("{} has no test images", splits.source);
    }
    Ok(test)
}

fn activations(a: ActivationsArgs) -> Result<ExitCode> {
    let mut m = load_model(&a.model.model)?;
    let (mut values, heading) = match &a.image {
        Some(path) => (super::predict::load_for(&m, path)?, file_name(path)),
        None => {
            let test = test_set(&a.data, &m)?;
            if a.index >= test.len() {
                bail!(
                    "--index {}: the test set ({}) has {} images, 0 to {}",
                    a.index,
                    test.name,
                    test.len(),
                    test.len() - 1
                );
            }
            let heading = format!(
                "{} image {} (label {})",
                test.name, a.index, test.labels[a.index]
            );
            (test.image(a.index).to_vec(), heading)
        }
    };
    if let Some(n) = m.info.normalize {
        n.apply(&mut values);
    }
    let heading = format!("{}: {heading}", file_name(&a.model.model));
    let pic = viz::activations(&mut m.net, &values, m.info.normalize, &heading)?;
    save(&pic, &a.output)
}

fn curves(a: CurvesArgs) -> Result<ExitCode> {
    let metrics = if a.run.is_dir() {
        a.run.join("metrics.jsonl")
    } else {
        a.run.clone()
    };
    if !metrics.exists() {
        bail!(
            "{}: no such file; give a run folder written by `seqnet train` (it holds \
             metrics.jsonl)",
            metrics.display()
        );
    }
    let output = a.output.unwrap_or_else(|| {
        metrics
            .parent()
            .unwrap_or(Path::new("."))
            .join("curves.png")
    });
    viz::curves_png(&metrics, &output)?;
    let (w, h) = viz::CURVES_SIZE;
    eprintln!("wrote {} ({w}×{h})", output.display());
    Ok(ExitCode::SUCCESS)
}

/// The test set's labels, predictions and the probability of each prediction.
fn classify(m: &mut Model, test: &Dataset) -> Result<(Vec<usize>, Vec<f32>)> {
    let probs = seqnet::train::probabilities_all(&mut m.net, test, m.info.normalize)?;
    let mut preds = Vec::with_capacity(probs.len());
    let mut p_best = Vec::with_capacity(probs.len());
    for p in &probs {
        let k = p
            .iter()
            .enumerate()
            .fold(0, |b, (i, &v)| if v > p[b] { i } else { b });
        preds.push(k);
        p_best.push(p.get(k).copied().unwrap_or(0.0));
    }
    Ok((preds, p_best))
}

fn confusion(a: ConfusionArgs) -> Result<ExitCode> {
    let mut m = load_model(&a.model.model)?;
    let test = test_set(&a.data, &m)?;
    let (preds, _) = classify(&mut m, &test)?;
    let classes = test.classes.max(preds.iter().max().map_or(0, |&p| p + 1));
    let matrix = viz::confusion_matrix(&test.labels, &preds, classes);
    let heading = format!("{} on {}", file_name(&a.model.model), test.name);
    save(&viz::confusion(&matrix, &heading)?, &a.output)
}

fn mistakes(a: MistakesArgs) -> Result<ExitCode> {
    if a.max == 0 {
        bail!("--max 0: draw at least 1 mistake");
    }
    let mut m = load_model(&a.model.model)?;
    let test = test_set(&a.data, &m)?;
    let (preds, probs) = classify(&mut m, &test)?;
    let mut wrong: Vec<usize> = (0..test.len())
        .filter(|&i| preds[i] != test.labels[i])
        .collect();
    let total_wrong = wrong.len();
    // Most confident first; the index breaks ties, so the order is always the same.
    wrong.sort_by(|&x, &y| probs[y].total_cmp(&probs[x]).then(x.cmp(&y)));
    wrong.truncate(a.max);
    let items: Vec<Mistake> = wrong
        .iter()
        .map(|&i| Mistake {
            index: i,
            image: test.image(i).to_vec(),
            label: test.labels[i],
            predicted: preds[i],
            probability: probs[i],
        })
        .collect();
    let heading = format!(
        "{} on {}: {total_wrong} of {} misclassified{}",
        file_name(&a.model.model),
        test.name,
        test.len(),
        if total_wrong > items.len() {
            format!(", the {} most confident shown", items.len())
        } else {
            String::new()
        }
    );
    save(&viz::mistakes(&items, test.shape, &heading)?, &a.output)
}

fn augment(a: AugmentArgs) -> Result<ExitCode> {
    if a.images == 0 || a.epochs == 0 {
        bail!("--images and --epochs must be at least 1");
    }
    let splits = data::load(a.dataset.as_deref(), a.data_dir.as_deref(), Split::Official)?;
    eprintln!(
        "{}",
        super::wrap(&format!("data: the training set of {}", splits.source))
    );
    let train = splits.train;
    let Some(aug) = data::augment::Augment::parse(&a.augment, train.shape)? else {
        bail!("--augment {}: nothing to draw", a.augment);
    };
    let indices: Vec<usize> = (0..a.images.min(train.len())).collect();
    let heading = format!(
        "{}: {} training images augmented, seed {}",
        splits.dataset,
        indices.len(),
        a.seed
    );
    let pic = viz::augmented(&train, &aug, a.seed, &indices, a.epochs, &heading)?;
    save(&pic, &a.output)
}
