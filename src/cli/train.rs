//! `seqnet train`: its options, and the recipe they make (the preset's, with the
//! options typed). Training itself is in `train_run.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use seqnet::Init;
use seqnet::io::model::Normalize;
use seqnet::presets;
use seqnet::recipe::{OptimizerChoice, Recipe};

#[derive(
    clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerArg {
    Sgd,
    Adam,
}

#[derive(
    clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum InitArg {
    Pytorch,
    Book,
}

#[derive(
    clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SplitArg {
    /// 60,000 training and 10,000 test images.
    Official,
    /// The book's: first 50,000 training, last 10,000 of the training file as
    /// validation, 10,000 test.
    Book,
}

#[derive(clap::Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Args {
    /// A preset network with its recipe, e.g. book-relu (see `seqnet summary --net NAME`
    /// for its layers and recipe). Default: seed, when neither --spec nor --model is given.
    #[arg(long, conflicts_with_all = ["spec", "model"])]
    pub(super) net: Option<String>,
    /// A network as text, e.g. 'Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten()
    /// -> LazyLinear(10)'; the input shape is taken from the data. It trains with the
    /// default recipe (the seed network's). Default: --net seed.
    #[arg(long, conflicts_with = "model")]
    pub(super) spec: Option<String>,
    /// Start from a saved model's network and weights, e.g.
    /// runs/latest/final.safetensors; it trains with the default recipe. Default: none
    /// (fresh weights).
    #[arg(long)]
    pub(super) model: Option<PathBuf>,

    /// A named dataset (mnist, fashion-mnist, kmnist, mnist-5k, cifar10), a folder with
    /// the four standard IDX files or CIFAR-10's .bin files, or a folder of class folders
    /// of PNG/JPEG images (torchvision's ImageFolder), e.g. --dataset fashion-mnist.
    /// Default: MNIST when installed, else the embedded sample.
    #[arg(long)]
    pub(super) dataset: Option<String>,
    /// Image folders: scale every image to H×W (bilinear, antialiased, as torchvision's
    /// Resize((H, W))), e.g. --resize 32x32. Default: none (all images must have one
    /// size).
    #[arg(long, value_name = "HxW")]
    pub(super) resize: Option<String>,
    /// Image folders: one grey channel (as transforms.Grayscale()) instead of RGB.
    /// Default: RGB, 3 channels, as torchvision's ImageFolder loads every image.
    #[arg(long)]
    #[serde(default)]
    pub(super) grey: bool,
    /// Image folders without train/ and test/ (or val/) subfolders: the fraction of each
    /// class held out for test (drawn with a fixed seed, so every run holds out the same
    /// files), e.g. --holdout 0.1. Default: 0.2.
    #[arg(long)]
    pub(super) holdout: Option<f32>,
    /// Where to look for named datasets first, e.g. ~/data (a folder holding mnist/ or
    /// the four files). Default: $SEQNET_DATA, ./data, ~/.cache/seqnet.
    #[arg(long)]
    pub(super) data_dir: Option<PathBuf>,
    /// A safetensors batch file (`images`, `labels`) to train on instead, e.g.
    /// batch.safetensors; no validation or test split is made. Default: none.
    #[arg(long, conflicts_with = "dataset")]
    pub(super) train_data: Option<PathBuf>,
    /// official (60k/10k) or book (50k/10k validation/10k test), e.g. --split book.
    /// Default: book for the book's presets, official otherwise.
    #[arg(long, value_enum)]
    pub(super) split: Option<SplitArg>,
    /// Train on the book's expanded data (each image plus four one-pixel shifts). Default:
    /// off (on for book-relu-expanded).
    #[arg(long)]
    pub(super) expand: bool,
    /// Train on only the first N training images, e.g. --limit 1000 for a quick
    /// experiment. Default: all.
    #[arg(long, allow_negative_numbers = true)]
    pub(super) limit: Option<usize>,

    /// Passes over the training images, e.g. --epochs 3. Default: the recipe's (5 for
    /// seed and for --spec/--model networks, 60 for the book's presets).
    #[arg(long, allow_negative_numbers = true)]
    pub(super) epochs: Option<usize>,
    /// Images per mini-batch (one gradient step each), e.g. --batch-size 64. Default:
    /// the recipe's (32, or the book's 10).
    #[arg(long, allow_negative_numbers = true)]
    pub(super) batch_size: Option<usize>,
    /// Learning rate (η) of the first epoch, e.g. --lr 0.01. Default: the recipe's (0.03
    /// for seed and --spec/--model networks; the book's η for its presets; 0.001 with
    /// --optimizer adam).
    #[arg(long, allow_negative_numbers = true)]
    pub(super) lr: Option<f32>,
    /// The update rule, e.g. --optimizer adam (torch.optim.Adam's defaults).
    #[arg(long, value_enum, default_value = "sgd")]
    pub(super) optimizer: OptimizerArg,
    /// SGD momentum, as torch.optim.SGD, e.g. --momentum 0. Default: the recipe's (0.9,
    /// or the book's 0).
    #[arg(long, allow_negative_numbers = true)]
    pub(super) momentum: Option<f32>,
    /// L2 penalty on every parameter, as torch.optim's weight_decay, e.g.
    /// --weight-decay 5e-4.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(super) weight_decay: f32,
    /// The book's λ: decay λ/(mini-batches per epoch) on weights only, e.g. --l2 0.1.
    /// Default: the recipe's (0, or the book's λ).
    #[arg(long, allow_negative_numbers = true)]
    l2: Option<f32>,
    /// The learning-rate schedule: multiply it by this after each epoch, e.g.
    /// --lr-decay 1 for a constant rate. Default: the recipe's (0.6 for seed and
    /// --spec/--model networks, 1 for the book's presets).
    #[arg(long, allow_negative_numbers = true)]
    pub(super) lr_decay: Option<f32>,
    /// Parameter initialisation, e.g. --init book. Default: the preset's (book for the
    /// book's presets), else pytorch.
    #[arg(long, value_enum)]
    pub(super) init: Option<InitArg>,
    /// Normalise pixels as (x − MEAN)/STD after /255, e.g. 0.1307,0.3081; stored in the
    /// model and applied again by predict. Default: none.
    #[arg(long)]
    pub(super) normalize: Option<String>,
    /// Randomly transform every training image, afresh each epoch (from --seed; never the
    /// validation or test images). Alone it picks by the images' channels: for grey
    /// images RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)), bilinear;
    /// for RGB RandomCrop(size, padding=4) and RandomHorizontalFlip(p=0.5). Or write
    /// torchvision's transforms, e.g. --augment "affine(degrees=15, translate=(0.1,
    /// 0.1))" or --augment "crop(padding=2), flip"; --augment none turns a preset's off.
    /// Default: none.
    #[arg(long, num_args = 0..=1, default_missing_value = "auto", value_name = "TRANSFORMS")]
    #[serde(default)]
    pub(super) augment: Option<String>,
    /// Keep the training set in file order. Default: shuffled every epoch (from --seed).
    #[arg(long)]
    pub(super) no_shuffle: bool,
    /// Seed of the initial weights and the shuffling; the same seed gives the same run,
    /// bitwise, e.g. --seed 2.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub(super) seed: u64,
    /// Worker threads, e.g. --threads 2. Default: all cores. Results are bitwise the same
    /// for any count.
    #[arg(long, allow_negative_numbers = true)]
    pub(super) threads: Option<usize>,

    /// The run folder, e.g. --out runs/try1. Default: runs/NAME-TIMESTAMP, with
    /// runs/latest pointing at it.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (from its start if it
    /// has none yet), with the options it was started with, e.g. --resume runs/latest.
    #[arg(long, conflicts_with_all = ["net", "spec", "model", "dataset", "train_data", "out"])]
    #[serde(skip)]
    pub(super) resume: Option<PathBuf>,
    /// Write a checkpoint every STEPS mini-batches, e.g. 500. Default: only at the end of
    /// each epoch.
    #[arg(long, value_name = "STEPS")]
    pub(super) checkpoint_every: Option<usize>,
    /// Also write the final model here, e.g. --save model.safetensors. Default: only the
    /// run folder's final.safetensors.
    #[arg(long)]
    pub(super) save: Option<PathBuf>,
    /// One JSON object per epoch on standard output, then a final one.
    #[arg(long)]
    pub(super) json: bool,
    /// Nothing on standard error but errors: no progress bar, no per-epoch lines, no
    /// final summary (the run folder's files are the same).
    #[arg(long)]
    pub(super) quiet: bool,
    /// Redraw curves.png (loss and accuracy per epoch) in the run folder after each epoch.
    #[arg(long)]
    #[serde(default)]
    pub(super) plot: bool,
    /// The options typed on the command line, as (id, `--flag value`), for `--resume`
    /// to refuse those that would change the run (filled in by the command line).
    #[arg(skip)]
    #[serde(skip)]
    pub(super) typed: Vec<(String, String)>,
}

fn check_positive(name: &str, v: f32) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        bail!("--{name} {v} must be a positive finite number");
    }
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    let args = match &args.resume {
        Some(dir) => super::resume::resumed_args(dir, &args)?,
        None => {
            if let Some(out) = &args.out {
                super::resume::refuse_to_overwrite(out)?;
            }
            args
        }
    };
    #[cfg(not(feature = "viz"))]
    if args.plot {
        bail!("--plot needs the viz feature, which this seqnet was built without");
    }
    if let (Some(_), Some(m), None) = (&args.init, &args.model, &args.resume) {
        bail!(
            "--init draws new weights, but --model {} starts from saved ones; leave one out",
            m.display()
        );
    }
    // Before training, not after: a bad --save path must not cost the run.
    if let Some(save) = &args.save {
        let dir = match save.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            bail!(
                "--save {}: the folder {} does not exist; create it first or save elsewhere",
                save.display(),
                dir.display()
            );
        }
        if save.is_dir() {
            bail!(
                "--save {} is a folder; give a file name, e.g. {}",
                save.display(),
                save.join("model.safetensors").display()
            );
        }
    }
    super::in_pool(args.threads, |threads| {
        super::train_run::run_in_pool(args, threads)
    })
}

/// The recipe of the preset (or the one for other networks), with the options typed.
pub(super) fn recipe(args: &Args, preset: Option<&presets::Preset>) -> Result<Recipe> {
    let mut r = preset.map_or(Recipe::CUSTOM, |p| p.recipe.clone());
    r.use_optimizer(match args.optimizer {
        OptimizerArg::Sgd => OptimizerChoice::Sgd,
        OptimizerArg::Adam => OptimizerChoice::Adam,
    });
    r.epochs = args.epochs.unwrap_or(r.epochs);
    r.batch_size = args.batch_size.unwrap_or(r.batch_size);
    r.lr = args.lr.unwrap_or(r.lr);
    r.momentum = args.momentum.unwrap_or(r.momentum);
    r.weight_decay = args.weight_decay;
    r.l2 = args.l2.unwrap_or(r.l2);
    r.lr_decay = args.lr_decay.unwrap_or(r.lr_decay);
    r.expand |= args.expand;
    r.shuffle = !args.no_shuffle;
    if let Some(split) = args.split {
        r.book_protocol = split == SplitArg::Book;
    }
    if let Some(init) = args.init {
        r.init = match init {
            InitArg::Book => Init::Book,
            InitArg::Pytorch => Init::PyTorch,
        };
    }
    if r.epochs == 0 {
        bail!("--epochs 0: give at least 1 epoch");
    }
    if r.batch_size == 0 {
        bail!("--batch-size 0: give at least 1 image per mini-batch");
    }
    check_positive("lr", r.lr)?;
    check_positive("lr-decay", r.lr_decay)?;
    for (flag, v) in [
        ("momentum", r.momentum),
        ("weight-decay", r.weight_decay),
        ("l2", r.l2),
    ] {
        if !v.is_finite() || v < 0.0 {
            bail!("--{flag} {v} must be a finite number ≥ 0");
        }
    }
    r.normalize = args.normalize.as_deref().map(parse_normalize).transpose()?;
    Ok(r)
}

/// The image folder options typed: --resize, --grey, --holdout.
pub(super) fn folder_options(args: &Args) -> Result<seqnet::data::FolderOptions> {
    let mut o = seqnet::data::FolderOptions {
        grey: args.grey,
        ..Default::default()
    };
    if let Some(text) = &args.resize {
        o.resize = Some(parse_resize(text)?);
    }
    if let Some(f) = args.holdout {
        if !(f > 0.0 && f < 1.0) {
            bail!(
                "--holdout {f} must be a fraction between 0 and 1 (exclusive), e.g. 0.2 to \
                 test on a fifth of each class"
            );
        }
        o.holdout = f;
    }
    Ok(o)
}

/// `32x32` → (32, 32): height, then width.
pub(super) fn parse_resize(text: &str) -> Result<(usize, usize)> {
    let parts: Vec<Option<usize>> = text
        .split(['x', 'X', '×'])
        .map(|p| p.trim().parse().ok())
        .collect();
    match parts[..] {
        [Some(h), Some(w)] if h > 0 && w > 0 && h <= 4096 && w <= 4096 => Ok((h, w)),
        _ => bail!(
            "--resize '{text}' is not HxW (height x width, 1 to 4096 each), e.g. --resize \
             32x32"
        ),
    }
}

fn parse_normalize(text: &str) -> Result<Normalize> {
    Normalize::parse(text).map_err(|why| {
        anyhow::anyhow!(
            "--normalize '{text}' is not MEAN,STD with STD > 0, e.g. 0.1307,0.3081, nor the \
             means then the stds, one per channel, e.g. \
             0.4914,0.4822,0.4465,0.2470,0.2435,0.2616 ({why})"
        )
    })
}
