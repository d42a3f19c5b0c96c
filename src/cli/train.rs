//! `seqnet train`: its options, and the recipe they make (the preset's, with the
//! options typed). Training itself is in `train_run.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use seqnet::Init;
use seqnet::io::model::Normalize;
use seqnet::presets;
use seqnet::recipe::{OptimizerChoice, Recipe};
use seqnet::schedule::{OneCycle, Per, Schedule, Warmup};

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

/// `--schedule`: PyTorch's learning-rate schedulers.
#[derive(
    clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleArg {
    /// StepLR: lr × --gamma every --step-size epochs.
    Step,
    /// MultiStepLR: lr × --gamma at each epoch of --milestones.
    Multistep,
    /// CosineAnnealingLR: half a cosine from lr to --eta-min over the run (--t-max
    /// epochs), after a --warmup-epochs/--warmup-steps linear warm-up if given.
    Cosine,
    /// OneCycleLR: per mini-batch, up from --max-lr/--div-factor to --max-lr and down;
    /// momentum (Adam's β1) cycles the other way.
    Onecycle,
    /// LinearLR: from lr × --warmup-start-factor up to lr over --warmup-epochs or
    /// --warmup-steps, then constant.
    LinearWarmup,
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

    /// A named dataset (mnist, fashion-mnist, kmnist, mnist-5k) or a folder with the four
    /// standard IDX files, e.g. --dataset fashion-mnist. Default: MNIST when installed,
    /// else the embedded sample.
    #[arg(long)]
    pub(super) dataset: Option<String>,
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
    #[arg(long, value_enum, default_value = "sgd")]
    pub(super) optimizer: OptimizerArg,
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
    l2: Option<f32>,
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
        OptimizerArg::Adamw => OptimizerChoice::AdamW,
    });
    r.epochs = args.epochs.unwrap_or(r.epochs);
    r.batch_size = args.batch_size.unwrap_or(r.batch_size);
    r.lr = args.lr.unwrap_or(r.lr);
    r.momentum = args.momentum.unwrap_or(r.momentum);
    r.weight_decay = args.weight_decay.unwrap_or(r.weight_decay);
    r.l2 = args.l2.unwrap_or(r.l2);
    if let Some(gamma) = args.lr_decay {
        check_positive("lr-decay", gamma)?;
        r.schedule = Schedule::Exponential { gamma };
    }
    if let Some(kind) = args.schedule {
        r.schedule = schedule(args, kind, r.lr)?;
    }
    refuse_unused_schedule_options(args, &r.schedule)?;
    if args.nesterov {
        if r.optimizer != OptimizerChoice::Sgd {
            bail!(
                "--nesterov is SGD's (torch.optim.SGD(nesterov=True)); --optimizer {} has none",
                r.optimizer.name()
            );
        }
        if r.momentum <= 0.0 {
            bail!(
                "--nesterov needs a momentum above 0, as torch.optim.SGD ('Nesterov momentum \
                 requires a momentum and zero dampening'); this recipe has momentum {}: add \
                 e.g. --momentum 0.9",
                r.momentum
            );
        }
        r.nesterov = true;
    }
    if let (Some(m), Schedule::OneCycle(c)) = (args.momentum, &r.schedule) {
        if c.cycle_momentum {
            bail!(
                "--momentum {m} has no effect with --schedule onecycle, which cycles the \
                 momentum between --max-momentum {} and --base-momentum {} (PyTorch's \
                 cycle_momentum); set those, or add --no-cycle-momentum",
                c.max_momentum,
                c.base_momentum
            );
        }
    }
    if let Some(eps) = args.label_smoothing {
        if !(0.0..=1.0).contains(&eps) {
            bail!("--label-smoothing {eps} must be in [0, 1], e.g. 0.1");
        }
        r.label_smoothing = eps;
    }
    if let Some(p) = args.patience {
        if p == 0 {
            bail!("--patience 0: give at least 1 epoch without improvement, e.g. --patience 3");
        }
        r.patience = Some(p);
    }
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

/// The `--schedule` chosen, from its options and PyTorch's defaults; `lr` is the
/// recipe's rate (OneCycle's default max_lr).
fn schedule(args: &Args, kind: ScheduleArg, lr: f32) -> Result<Schedule> {
    let warmup = match (args.warmup_epochs, args.warmup_steps) {
        (Some(n), _) => Some(Warmup::new(n, Per::Epoch)),
        (None, Some(n)) => Some(Warmup::new(n, Per::Step)),
        (None, None) => None,
    }
    .map(|w| Warmup {
        start_factor: args.warmup_start_factor.unwrap_or(w.start_factor),
        ..w
    });
    if let Some(w) = &warmup {
        if w.iters == 0 {
            bail!("a warm-up of 0 epochs or mini-batches: give at least 1, e.g. --warmup-epochs 2");
        }
        if !(w.start_factor > 0.0 && w.start_factor <= 1.0) {
            bail!(
                "--warmup-start-factor {} must be in (0, 1], as LinearLR's start_factor, e.g. 0.1",
                w.start_factor
            );
        }
    }
    let gamma = args.gamma.unwrap_or(0.1);
    if !(gamma.is_finite() && gamma > 0.0) {
        bail!("--gamma {gamma} must be a positive finite number, e.g. 0.5");
    }
    Ok(match kind {
        ScheduleArg::Step => {
            let Some(step_size) = args.step_size else {
                bail!(
                    "--schedule step needs --step-size, the epochs between decays, e.g. --step-size 10"
                );
            };
            if step_size == 0 {
                bail!("--step-size 0: give at least 1 epoch between decays");
            }
            Schedule::Step { step_size, gamma }
        }
        ScheduleArg::Multistep => {
            let Some(text) = &args.milestones else {
                bail!(
                    "--schedule multistep needs --milestones, the epochs of each decay, e.g. --milestones 10,20"
                );
            };
            let milestones: Vec<usize> = text
                .split(',')
                .map(|m| m.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--milestones '{text}' is not epochs separated by commas, e.g. 10,20"
                    )
                })?;
            if milestones.windows(2).any(|p| p[0] >= p[1]) {
                bail!("--milestones {text} must increase, e.g. 10,20");
            }
            Schedule::MultiStep { milestones, gamma }
        }
        ScheduleArg::Cosine => {
            let eta_min = args.eta_min.unwrap_or(0.0);
            if !(eta_min.is_finite() && eta_min >= 0.0) {
                bail!("--eta-min {eta_min} must be a finite number ≥ 0, e.g. 1e-5");
            }
            if args.t_max == Some(0) {
                bail!("--t-max 0: give at least 1");
            }
            Schedule::Cosine {
                t_max: args.t_max,
                eta_min,
                warmup,
            }
        }
        ScheduleArg::Onecycle => {
            let d = OneCycle::new(args.max_lr.unwrap_or(seqnet::schedule::typed(lr)));
            let c = OneCycle {
                pct_start: args.pct_start.unwrap_or(d.pct_start),
                div_factor: args.div_factor.unwrap_or(d.div_factor),
                final_div_factor: args.final_div_factor.unwrap_or(d.final_div_factor),
                cycle_momentum: !args.no_cycle_momentum,
                base_momentum: args.base_momentum.unwrap_or(d.base_momentum),
                max_momentum: args.max_momentum.unwrap_or(d.max_momentum),
                ..d
            };
            for (flag, v) in [
                ("max-lr", c.max_lr),
                ("div-factor", c.div_factor),
                ("final-div-factor", c.final_div_factor),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    bail!("--{flag} {v} must be a positive finite number");
                }
            }
            if !(0.0..=1.0).contains(&c.pct_start) {
                bail!("--pct-start {} must be in [0, 1], e.g. 0.3", c.pct_start);
            }
            for (flag, v) in [
                ("base-momentum", c.base_momentum),
                ("max-momentum", c.max_momentum),
            ] {
                if !(0.0..1.0).contains(&v) {
                    bail!("--{flag} {v} must be in [0, 1)");
                }
            }
            Schedule::OneCycle(c)
        }
        ScheduleArg::LinearWarmup => match warmup {
            Some(w) => Schedule::LinearWarmup(w),
            None => bail!(
                "--schedule linear-warmup needs --warmup-epochs or --warmup-steps, e.g. \
                 --warmup-epochs 2"
            ),
        },
    })
}

/// A schedule option given for a schedule that does not use it is a mistake worth
/// saying, not something to ignore.
fn refuse_unused_schedule_options(args: &Args, s: &Schedule) -> Result<()> {
    let name = match s {
        Schedule::Exponential { .. } => "--lr-decay's (no --schedule)".to_string(),
        _ => format!("--schedule {}", s.name()),
    };
    let uses = |names: &[&str]| names.contains(&s.name());
    let given: [(&str, bool, &[&str]); 15] = [
        ("--step-size", args.step_size.is_some(), &["step"]),
        ("--gamma", args.gamma.is_some(), &["step", "multistep"]),
        ("--milestones", args.milestones.is_some(), &["multistep"]),
        ("--eta-min", args.eta_min.is_some(), &["cosine"]),
        ("--t-max", args.t_max.is_some(), &["cosine"]),
        (
            "--warmup-epochs",
            args.warmup_epochs.is_some(),
            &["cosine", "linear-warmup"],
        ),
        (
            "--warmup-steps",
            args.warmup_steps.is_some(),
            &["cosine", "linear-warmup"],
        ),
        (
            "--warmup-start-factor",
            args.warmup_start_factor.is_some(),
            &["cosine", "linear-warmup"],
        ),
        ("--max-lr", args.max_lr.is_some(), &["onecycle"]),
        ("--pct-start", args.pct_start.is_some(), &["onecycle"]),
        ("--div-factor", args.div_factor.is_some(), &["onecycle"]),
        (
            "--final-div-factor",
            args.final_div_factor.is_some(),
            &["onecycle"],
        ),
        (
            "--base-momentum",
            args.base_momentum.is_some(),
            &["onecycle"],
        ),
        ("--max-momentum", args.max_momentum.is_some(), &["onecycle"]),
        ("--no-cycle-momentum", args.no_cycle_momentum, &["onecycle"]),
    ];
    for (flag, typed, schedules) in given {
        if typed && !uses(schedules) {
            let with: Vec<String> = schedules
                .iter()
                .map(|s| format!("--schedule {s}"))
                .collect();
            bail!(
                "{flag} is an option of {}, but this run's schedule is {name}; give {} or leave \
                 {flag} out",
                with.join(" or "),
                with[0]
            );
        }
    }
    if let Schedule::Cosine { warmup: None, .. } = s {
        if args.warmup_start_factor.is_some() {
            bail!("--warmup-start-factor needs --warmup-epochs or --warmup-steps");
        }
    }
    Ok(())
}

fn parse_normalize(text: &str) -> Result<Normalize> {
    let parts: Vec<Option<f32>> = text.split(',').map(|p| p.trim().parse().ok()).collect();
    match parts[..] {
        [Some(mean), Some(std)] if mean.is_finite() && std.is_finite() && std > 0.0 => {
            Ok(Normalize { mean, std })
        }
        _ => bail!("--normalize '{text}' is not MEAN,STD with STD > 0, e.g. 0.1307,0.3081"),
    }
}
