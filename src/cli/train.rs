//! `seqnet train`: its options, and the recipe they make (the preset's, with the
//! options typed in `train_recipe.rs`). Training itself is in `train_run.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::schedule_args::ScheduleArg;
use anyhow::{Result, bail};

#[derive(
    clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerArg {
    /// torch.optim.SGD (with --momentum, --nesterov).
    Sgd,
    /// torch.optim.Adam: β = (0.9, 0.999), ε = 1e-8, --weight-decay added to the gradient.
    Adam,
    /// torch.optim.AdamW: Adam with --weight-decay decoupled (default 0.01).
    Adamw,
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
    /// The update rule, e.g. --optimizer adamw: sgd (torch.optim.SGD), adam
    /// (torch.optim.Adam's defaults) or adamw (torch.optim.AdamW's, weight decay 0.01).
    /// Default: the recipe's (sgd, or adamw for fast-mnist).
    #[arg(long, value_enum)]
    pub(super) optimizer: Option<OptimizerArg>,
    /// SGD momentum, as torch.optim.SGD, e.g. --momentum 0. Default: the recipe's (0.9,
    /// or the book's 0). With --schedule onecycle the momentum is cycled instead (see
    /// --base-momentum).
    #[arg(long, allow_negative_numbers = true)]
    pub(super) momentum: Option<f32>,
    /// SGD's Nesterov momentum, as torch.optim.SGD(nesterov=True): the step is
    /// lr·(g + momentum·buf); needs a momentum above 0, e.g. --momentum 0.9 --nesterov.
    /// Default: off.
    #[arg(long)]
    #[serde(default)]
    pub(super) nesterov: bool,
    /// PyTorch's weight_decay of the chosen optimizer, on every parameter: for sgd and
    /// adam an L2 penalty added to the gradient (wd·p), for adamw the decoupled decay
    /// p ← p·(1 − lr·wd) before each step, e.g. --weight-decay 5e-4. Default: 0, or
    /// 0.01 with --optimizer adamw (torch.optim.AdamW's).
    #[arg(long, allow_negative_numbers = true)]
    pub(super) weight_decay: Option<f32>,
    /// The book's λ: decay λ/(mini-batches per epoch) on weights only, added to the
    /// gradient whatever the optimizer (not decoupled, even with adamw), e.g. --l2 0.1.
    /// Default: the recipe's (0, or the book's λ).
    #[arg(long, allow_negative_numbers = true)]
    pub(super) l2: Option<f32>,
    /// seqnet's per-epoch schedule: multiply the learning rate by this after each epoch
    /// (as ExponentialLR), e.g. --lr-decay 1 for a constant rate. Default: the recipe's
    /// (0.6 for seed and --spec/--model networks, 1 for the book's presets); not used
    /// with --schedule.
    #[arg(long, allow_negative_numbers = true, conflicts_with = "schedule")]
    pub(super) lr_decay: Option<f32>,
    /// A PyTorch learning-rate scheduler instead of --lr-decay, e.g. --schedule onecycle:
    /// step (StepLR), multistep (MultiStepLR), cosine (CosineAnnealingLR), onecycle
    /// (OneCycleLR, per mini-batch) or linear-warmup (LinearLR, then constant). Default:
    /// the recipe's --lr-decay.
    #[arg(long, value_enum)]
    #[serde(default)]
    pub(super) schedule: Option<ScheduleArg>,
    /// The epochs between decays of --schedule step (StepLR's step_size), e.g.
    /// --step-size 10. Default: none, --schedule step needs it.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) step_size: Option<usize>,
    /// The factor of each decay of --schedule step or multistep (gamma), e.g. --gamma
    /// 0.5. Default: 0.1, as PyTorch's.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) gamma: Option<f64>,
    /// The epochs (from 0, increasing) at which --schedule multistep multiplies the rate
    /// by --gamma, e.g. --milestones 10,20. Default: none, multistep needs them.
    #[arg(long)]
    #[serde(default)]
    pub(super) milestones: Option<String>,
    /// The lowest rate of --schedule cosine (eta_min), e.g. --eta-min 1e-5. Default: 0.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) eta_min: Option<f64>,
    /// The half period of --schedule cosine in epochs (T_max; in mini-batches after a
    /// --warmup-steps warm-up), e.g. --t-max 30. Default: the run's epochs (or
    /// mini-batches) left after the warm-up.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) t_max: Option<usize>,
    /// A linear warm-up over this many epochs, for --schedule linear-warmup or cosine,
    /// e.g. --warmup-epochs 2. Default: no warm-up for cosine; linear-warmup needs this or
    /// --warmup-steps.
    #[arg(long, allow_negative_numbers = true, conflicts_with = "warmup_steps")]
    #[serde(default)]
    pub(super) warmup_epochs: Option<usize>,
    /// A linear warm-up over this many mini-batches, for --schedule linear-warmup or
    /// cosine (the cosine after it then counts mini-batches too), e.g. --warmup-steps
    /// 500. Default: none.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) warmup_steps: Option<usize>,
    /// The warm-up's first rate as a fraction of lr (LinearLR's start_factor, in (0, 1]),
    /// e.g. --warmup-start-factor 0.1. Default: 1/3, as PyTorch's.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) warmup_start_factor: Option<f64>,
    /// The peak rate of --schedule onecycle (max_lr), e.g. --max-lr 0.1. Default: --lr
    /// (the recipe's).
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) max_lr: Option<f64>,
    /// The fraction of --schedule onecycle's mini-batches spent rising (pct_start), e.g.
    /// --pct-start 0.25. Default: 0.3.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) pct_start: Option<f64>,
    /// The first rate of --schedule onecycle is max_lr/div_factor, e.g. --div-factor 10.
    /// Default: 25.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) div_factor: Option<f64>,
    /// The last rate of --schedule onecycle is max_lr/div_factor/final_div_factor, e.g.
    /// --final-div-factor 100. Default: 1e4.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) final_div_factor: Option<f64>,
    /// The momentum (Adam's β1) of --schedule onecycle at its peak rate, e.g.
    /// --base-momentum 0.8. Default: 0.85, as PyTorch's (cycle_momentum=True).
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) base_momentum: Option<f64>,
    /// The momentum (Adam's β1) of --schedule onecycle at its lowest rates, e.g.
    /// --max-momentum 0.9. Default: 0.95, as PyTorch's.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) max_momentum: Option<f64>,
    /// Keep the momentum (or β1) of --schedule onecycle fixed (cycle_momentum=False), as
    /// --momentum gives it. Default: cycled, as PyTorch's.
    #[arg(long)]
    #[serde(default)]
    pub(super) no_cycle_momentum: bool,
    /// Label smoothing ε of the loss, as nn.CrossEntropyLoss(label_smoothing=ε): the
    /// target is (1 − ε)·one-hot + ε/classes, e.g. --label-smoothing 0.1. Default: 0.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) label_smoothing: Option<f32>,
    /// Early stopping: end the run when the validation accuracy has not improved for N
    /// epochs (needs a validation set, e.g. --split book), e.g. --patience 3. The final
    /// model is the last epoch's; best.safetensors holds the best one. Default: off.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    #[serde(default)]
    pub(super) patience: Option<usize>,
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
