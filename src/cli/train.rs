//! `seqnet train`: pick a network, a dataset and a recipe; train; save the run.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use seqnet::data::{self, Dataset, Split};
use seqnet::io::model::{self, ModelInfo, Normalize};
use seqnet::optim::{Optimizer, OptimizerKind};
use seqnet::presets::{self, Recipe};
use seqnet::train::{EpochReport, Observer, TrainConfig, TrainState};
use seqnet::{Init, Sequential};

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
    /// A preset network with its book recipe (see `seqnet summary --net NAME`).
    #[arg(long, conflicts_with_all = ["spec", "model"])]
    net: Option<String>,
    /// A network as text, e.g. 'Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten()
    /// -> LazyLinear(10)'; the input shape is taken from the data.
    #[arg(long, conflicts_with = "model")]
    spec: Option<String>,
    /// Start from a saved model's network and weights.
    #[arg(long)]
    model: Option<PathBuf>,

    /// A named dataset (mnist, fashion-mnist, kmnist, mnist-5k) or a folder with the four
    /// standard IDX files. Default: MNIST when installed, else the embedded sample.
    #[arg(long)]
    dataset: Option<String>,
    /// Where to look for named datasets first.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A safetensors batch file (`images`, `labels`) to train on instead; no
    /// validation or test split is made.
    #[arg(long, conflicts_with = "dataset")]
    train_data: Option<PathBuf>,
    /// official (60k/10k) or book (50k/10k validation/10k test). Default: book for the
    /// book's presets, official otherwise.
    #[arg(long, value_enum)]
    split: Option<SplitArg>,
    /// Train on the book's expanded data (each image plus four one-pixel shifts).
    #[arg(long)]
    expand: bool,
    /// Train on only the first N training images (quick experiments).
    #[arg(long, allow_negative_numbers = true)]
    limit: Option<usize>,

    #[arg(long, allow_negative_numbers = true)]
    epochs: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    batch_size: Option<usize>,
    /// Learning rate (η).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerArg,
    /// SGD momentum, as torch.optim.SGD.
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f32>,
    /// L2 penalty on every parameter, as torch.optim's weight_decay.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    weight_decay: f32,
    /// The book's λ: decay λ/(mini-batches per epoch) on weights only.
    #[arg(long, allow_negative_numbers = true)]
    l2: Option<f32>,
    /// Multiply the learning rate by this after each epoch.
    #[arg(long, allow_negative_numbers = true)]
    lr_decay: Option<f32>,
    /// Parameter initialisation. Default: the preset's (book for the book's presets),
    /// else pytorch.
    #[arg(long, value_enum)]
    init: Option<InitArg>,
    /// Normalise pixels as (x − MEAN)/STD after /255, e.g. 0.1307,0.3081; stored in the
    /// model and applied again by predict.
    #[arg(long)]
    normalize: Option<String>,
    /// Keep the training set in file order.
    #[arg(long)]
    no_shuffle: bool,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    seed: u64,
    /// Worker threads (default: all cores). Results are bitwise the same for any count.
    #[arg(long, allow_negative_numbers = true)]
    threads: Option<usize>,

    /// The run folder (default runs/NAME-TIMESTAMP).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (from its start if it
    /// has none yet), with the options it was started with.
    #[arg(long, conflicts_with_all = ["net", "spec", "model", "dataset", "train_data", "out"])]
    #[serde(skip)]
    resume: Option<PathBuf>,
    /// Write a checkpoint every STEPS mini-batches (always at the end of each epoch).
    #[arg(long, value_name = "STEPS")]
    checkpoint_every: Option<usize>,
    /// Also write the final model here.
    #[arg(long)]
    save: Option<PathBuf>,
    /// One JSON object per epoch on standard output, then a final one.
    #[arg(long)]
    json: bool,
    /// Nothing on standard error but errors: no progress bar, no per-epoch lines, no
    /// final summary (the run folder's files are the same).
    #[arg(long)]
    quiet: bool,
    /// Redraw curves.png (loss and accuracy per epoch) in the run folder after each epoch.
    #[arg(long)]
    #[serde(default)]
    plot: bool,
    /// The options typed on the command line, as (id, `--flag value`), for `--resume`
    /// to refuse those that would change the run (filled in by the command line).
    #[arg(skip)]
    #[serde(skip)]
    pub(super) typed: Vec<(String, String)>,
}

/// Everything a run was made with, written to config.json when it starts. `args` is
/// what `--resume` reads back.
#[derive(serde::Serialize, Debug)]
struct RunConfig {
    args: Args,
    name: String,
    spec: String,
    input: Vec<usize>,
    data: String,
    train_images: usize,
    epochs: usize,
    batch_size: usize,
    optimizer: String,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    l2: f32,
    lr_decay: f32,
    init: String,
    expand: bool,
    shuffle: bool,
    seed: u64,
    threads: usize,
    normalize: Option<(f32, f32)>,
    seqnet_version: &'static str,
}

fn check_positive(name: &str, v: f32) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        bail!("--{name} {v} must be a positive finite number");
    }
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    let args = match &args.resume {
        Some(dir) => resumed_args(dir, &args)?,
        None => {
            if let Some(out) = &args.out {
                refuse_to_overwrite(out)?;
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
    super::in_pool(args.threads, |threads| run_in_pool(args, threads))
}

fn run_in_pool(args: Args, threads: usize) -> Result<ExitCode> {
    // The network's name and its default recipe.
    let preset = match (&args.net, &args.spec, &args.model) {
        (Some(name), _, _) => Some(presets::get(name)?),
        (None, None, None) => Some(presets::get("seed")?),
        _ => None,
    };
    let recipe = preset.as_ref().map(|p| p.recipe.clone()).unwrap_or(Recipe {
        epochs: 10,
        batch_size: 32,
        lr: 0.05,
        momentum: 0.9,
        l2: 0.0,
        expand: false,
        book_protocol: false,
        lr_decay: 1.0,
        init: Init::PyTorch,
    });
    let name = match (&preset, &args.model) {
        (Some(p), _) => p.name.to_string(),
        (None, Some(m)) => m
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
        _ => "spec".to_string(),
    };

    let epochs = args.epochs.unwrap_or(recipe.epochs);
    let batch_size = args.batch_size.unwrap_or(recipe.batch_size);
    let lr = args.lr.unwrap_or(match args.optimizer {
        OptimizerArg::Sgd => recipe.lr,
        OptimizerArg::Adam => 1e-3,
    });
    let momentum = args.momentum.unwrap_or(recipe.momentum);
    let l2 = args.l2.unwrap_or(recipe.l2);
    let lr_decay = args.lr_decay.unwrap_or(recipe.lr_decay);
    let expand = args.expand || recipe.expand;
    if epochs == 0 {
        bail!("--epochs 0: give at least 1 epoch");
    }
    if batch_size == 0 {
        bail!("--batch-size 0: give at least 1 image per mini-batch");
    }
    check_positive("lr", lr)?;
    check_positive("lr-decay", lr_decay)?;
    for (flag, v) in [
        ("momentum", momentum),
        ("weight-decay", args.weight_decay),
        ("l2", l2),
    ] {
        if !v.is_finite() || v < 0.0 {
            bail!("--{flag} {v} must be a finite number ≥ 0");
        }
    }
    let normalize = args.normalize.as_deref().map(parse_normalize).transpose()?;

    // Data.
    let quiet = args.quiet;
    let (mut train_set, val, test, data_desc) = if let Some(path) = &args.train_data {
        let ds = data::load_safetensors_batch(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let desc = format!("{} ({} images)", path.display(), ds.len());
        (ds, None, None, desc)
    } else {
        let split = match args.split {
            Some(SplitArg::Book) => Split::Book,
            Some(SplitArg::Official) => Split::Official,
            None if recipe.book_protocol => Split::Book,
            None => Split::Official,
        };
        let splits = data::load(args.dataset.as_deref(), args.data_dir.as_deref(), split)?;
        (splits.train, splits.val, splits.test, splits.source)
    };
    if let Some(limit) = args.limit {
        if limit == 0 {
            bail!("--limit 0: give at least 1 image");
        }
        train_set = train_set.subset(0..limit.min(train_set.len()));
    }
    if expand {
        train_set = data::expand_book(&train_set);
    }
    if !quiet {
        eprintln!("data: {data_desc}; training on {} images", train_set.len());
    }

    // Network.
    let input = train_set.shape.to_vec();
    let mut net = match (&args.model, &args.spec, &preset) {
        (Some(path), _, _) => {
            let m = model::load(path).with_context(|| format!("reading {}", path.display()))?;
            for w in &m.warnings {
                eprintln!("warning: {w}");
            }
            m.net
        }
        (None, Some(spec), _) => seqnet::spec::build(spec, &input, args.seed)?,
        (None, None, Some(p)) => seqnet::spec::build(p.spec, &input, args.seed)?,
        _ => unreachable!("a preset is chosen when neither --spec nor --model is given"),
    };
    check_fits(&net, &train_set)?;
    let init = match (args.init, &args.model) {
        (_, Some(_)) => "from model".to_string(),
        (Some(InitArg::Book), None) => {
            net.init(Init::Book, args.seed);
            "book".into()
        }
        (Some(InitArg::Pytorch), None) => "pytorch".into(),
        (None, None) if recipe.init == Init::Book => {
            net.init(Init::Book, args.seed);
            "book".into()
        }
        (None, None) => "pytorch".into(),
    };
    if net.layers().last().map(|l| l.kind()) == Some("Softmax") && !quiet {
        eprintln!(
            "warning: the network ends in Softmax, but training applies cross-entropy to its \
             output as logits; end in Linear (or LogSoftmax) instead, as in PyTorch"
        );
    }

    let steps_per_epoch = train_set.len().div_ceil(batch_size);
    let kind = match args.optimizer {
        OptimizerArg::Sgd => OptimizerKind::Sgd { momentum },
        OptimizerArg::Adam => OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
    };
    let optimizer = Optimizer::new(kind, lr, args.weight_decay, l2 / steps_per_epoch as f32);

    let out_dir = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the run folder {}", dir.display()))?;
            dir.clone()
        }
        None => new_run_folder(Path::new("runs"), &format!("{name}-{}", timestamp()))?,
    };
    let config = RunConfig {
        args: args.clone(),
        name: name.clone(),
        spec: net.spec(),
        input: input.clone(),
        data: data_desc,
        train_images: train_set.len(),
        epochs,
        batch_size,
        optimizer: format!("{:?}", args.optimizer).to_lowercase(),
        lr,
        momentum,
        weight_decay: args.weight_decay,
        l2,
        lr_decay,
        init,
        expand,
        shuffle: !args.no_shuffle,
        seed: args.seed,
        threads,
        normalize: normalize.map(|n| (n.mean, n.std)),
        seqnet_version: env!("CARGO_PKG_VERSION"),
    };
    // Atomically, as the checkpoint: `--resume` reads this file, and a run killed while
    // writing it must leave no config.json or a whole one, never an empty one. A new run
    // also claims its folder with it: of two runs started with the same --out, the one
    // that gets here second stops.
    let config_path = out_dir.join("config.json");
    let config_text = serde_json::to_string_pretty(&config)? + "\n";
    if args.resume.is_some() {
        seqnet::io::safetensors_file::write_bytes_atomic(&config_path, config_text.as_bytes())
            .with_context(|| format!("writing {}", config_path.display()))?;
    } else {
        match seqnet::io::safetensors_file::create_new_atomic(&config_path, config_text.as_bytes())
        {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                refuse_to_overwrite(&out_dir)?;
                bail!("{} already holds a run", out_dir.display());
            }
            r => r.with_context(|| format!("writing {}", config_path.display()))?,
        }
    }

    let mut info = ModelInfo::for_net(&net);
    info.normalize = normalize;
    info.seed = Some(args.seed);
    let cfg = TrainConfig {
        epochs,
        batch_size,
        shuffle: !args.no_shuffle,
        lr_decay,
        normalize,
    };
    let mut state = TrainState::new(optimizer, args.seed);
    let checkpoint_path = out_dir.join("checkpoint.safetensors");
    let mut best = None;
    if args.resume.is_some() && checkpoint_path.exists() {
        let extra = seqnet::checkpoint::load(&checkpoint_path, &mut net, &mut state)
            .with_context(|| format!("resuming from {}", checkpoint_path.display()))?;
        best = serde_json::from_value(extra["best"].clone()).unwrap_or(None);
        let final_path = out_dir.join("final.safetensors");
        if state.epoch >= epochs && state.step_in_epoch == 0 && final_path.exists() {
            if let Some(save) = &args.save {
                model::save(save, &net, &info)
                    .with_context(|| format!("writing {}", save.display()))?;
            }
            if args.json {
                let last = read_last_metrics(&out_dir.join("metrics.jsonl"))?;
                println!("{}", final_json(&best, &last, &final_path));
            }
            if !quiet {
                eprintln!(
                    "{} already finished its {epochs} epoch{}: the trained model is {}; \
                     nothing to resume. To train further, start a new run from it: seqnet \
                     train --model {} --out NEW_FOLDER",
                    out_dir.display(),
                    super::plural(epochs),
                    final_path.display(),
                    final_path.display()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !quiet {
            eprintln!(
                "resuming {} at epoch {}, step {} of {steps_per_epoch}",
                out_dir.display(),
                state.epoch + 1,
                state.step_in_epoch
            );
        }
    } else if args.resume.is_some() && !quiet {
        eprintln!(
            "{} has no checkpoint yet: starting the run from its beginning",
            out_dir.display()
        );
    }
    let metrics = open_metrics(&out_dir.join("metrics.jsonl"), state.epoch)?;
    let interrupted = install_signal_handler();
    let show_bar = !quiet && std::io::stderr().is_terminal();
    let mut observer = RunObserver {
        out_dir: out_dir.clone(),
        info: info.clone(),
        json: args.json,
        quiet,
        plot: args.plot,
        epochs,
        batch_size,
        bar: show_bar.then(|| new_bar(steps_per_epoch)),
        best,
        metrics,
        checkpoint_path: checkpoint_path.clone(),
        checkpoint_every: args.checkpoint_every.unwrap_or(0),
        interrupted,
        resume_hint: format!("seqnet train --resume {}", out_dir.display()),
    };
    let result = seqnet::train::train(
        &mut net,
        &mut state,
        &train_set,
        val.as_ref(),
        test.as_ref(),
        &cfg,
        &mut observer,
    );
    if let Some(bar) = &observer.bar {
        bar.finish_and_clear();
    }
    if let Err(seqnet::Error::Interrupted(msg)) = &result {
        eprintln!("{msg}");
        return Err(super::Interrupted.into());
    }
    result?;

    let final_path = out_dir.join("final.safetensors");
    model::save(&final_path, &net, &info)
        .with_context(|| format!("writing {}", final_path.display()))?;
    if let Some(save) = &args.save {
        model::save(save, &net, &info).with_context(|| format!("writing {}", save.display()))?;
    }
    let last = read_last_metrics(&out_dir.join("metrics.jsonl"))?;
    let best = observer.best;
    // Every run folder holds a digit to try `seqnet predict` on, --quiet or not.
    let sample = write_sample_digit(&out_dir, test.as_ref().unwrap_or(&train_set));
    if args.json {
        println!("{}", final_json(&best, &last, &final_path));
    }
    if !quiet {
        if let Some(acc) = last.test_accuracy {
            eprintln!(
                "test accuracy after {} epoch{}: {:.2}%",
                last.epoch,
                super::plural(last.epoch),
                100.0 * acc
            );
        }
        if let Some((epoch, val_acc, Some(test_acc))) = &best {
            eprintln!(
                "best validation accuracy {:.2}% at epoch {epoch}; test accuracy then: {:.2}% \
                 (the book's protocol)",
                100.0 * val_acc,
                100.0 * test_acc
            );
        }
        eprintln!("model saved to {}", final_path.display());
        match sample {
            Some(png) => eprintln!(
                "try it:  seqnet predict --model {} {}",
                final_path.display(),
                png.display()
            ),
            None => eprintln!(
                "try it:  seqnet predict --model {} digit.png",
                final_path.display()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The options a run was started with, read back from its config.json; display options
/// (--quiet, --json, --threads) may change on resume, nothing that changes the result.
fn resumed_args(dir: &Path, now: &Args) -> Result<Args> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is {} a seqnet run folder?)",
            path.display(),
            dir.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let mut args: Args = serde_json::from_value(value["args"].clone())
        .with_context(|| format!("{} does not hold the run's options", path.display()))?;
    let changed = changed_on_resume(now);
    if !changed.is_empty() {
        bail!(
            "--resume continues {} with the options it was started with (its config.json), \
             so {} cannot apply: {} would change the run. Leave {} out, or start a new run \
             from the run's weights with --model {} and the options you want",
            dir.display(),
            changed.join(", "),
            if changed.len() == 1 { "it" } else { "they" },
            if changed.len() == 1 { "it" } else { "them" },
            dir.join("final.safetensors").display()
        );
    }
    args.out = Some(dir.to_path_buf());
    args.resume = Some(dir.to_path_buf());
    args.quiet = now.quiet;
    args.json = now.json;
    args.plot = now.plot;
    if now.threads.is_some() {
        args.threads = now.threads;
    }
    if now.checkpoint_every.is_some() {
        args.checkpoint_every = now.checkpoint_every;
    }
    if now.save.is_some() {
        args.save.clone_from(&now.save);
    }
    if now.data_dir.is_some() {
        args.data_dir.clone_from(&now.data_dir);
    }
    // The initialisation the run began with, as recorded, rather than the one a preset's
    // recipe gives today (presets may change between versions).
    if args.init.is_none() {
        args.init = match value["init"].as_str() {
            Some("book") => Some(InitArg::Book),
            Some("pytorch") => Some(InitArg::Pytorch),
            _ => None,
        };
    }
    Ok(args)
}

/// Opens metrics.jsonl for appending, first dropping lines of epochs after `done`
/// (written after the last checkpoint by a run that was then killed).
fn open_metrics(path: &Path, done: usize) -> Result<std::fs::File> {
    let kept: String = match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["epoch"].as_u64())
                    .is_some_and(|e| e as usize <= done)
            })
            .map(|l| format!("{l}\n"))
            .collect(),
        Err(_) => String::new(),
    };
    seqnet::io::safetensors_file::write_bytes_atomic(path, kept.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The final `--json` object: the book's figure (test accuracy at the best validation
/// epoch), the last epoch's, and where the model is.
fn final_json(
    best: &Option<(usize, f64, Option<f64>)>,
    last: &EpochReport,
    final_path: &Path,
) -> serde_json::Value {
    serde_json::json!({
        "final": true,
        "best_epoch": best.as_ref().map(|b| b.0),
        "test_accuracy_at_best_val": best.as_ref().and_then(|b| b.2),
        "val_accuracy_best": best.as_ref().map(|b| b.1),
        "test_accuracy": last.test_accuracy,
        "model": final_path.display().to_string(),
    })
}

/// The last epoch's figures, from metrics.jsonl (a resumed run has only some in memory).
fn read_last_metrics(path: &Path) -> Result<EpochReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let last = text.lines().last().context("metrics.jsonl is empty")?;
    serde_json::from_str(last).with_context(|| format!("{} has a malformed line", path.display()))
}

/// SIGINT and SIGTERM set a flag; the training loop checks it after each step.
fn install_signal_handler() -> &'static AtomicBool {
    static FLAG: AtomicBool = AtomicBool::new(false);
    // Fails only if a handler is already installed (a second run in one process).
    let _ = ctrlc::set_handler(|| FLAG.store(true, Ordering::SeqCst));
    &FLAG
}

/// The network's input must be the data's image shape, and its output must have a
/// logit for every class.
fn check_fits(net: &Sequential, ds: &Dataset) -> Result<()> {
    if net.input_shape() != ds.shape.as_slice() {
        bail!(
            "the network takes images shaped {} but the data's are {}; rebuild it with \
             --spec, or use data of that shape",
            seqnet::shape::fmt_shape(net.input_shape()),
            seqnet::shape::fmt_shape(&ds.shape)
        );
    }
    let out = net.output_shape();
    if out.len() != 1 || out[0] < ds.classes {
        bail!(
            "the network outputs {} per image but the data has {} classes; end the network \
             with Linear(…, {})",
            seqnet::shape::fmt_shape(out),
            ds.classes,
            ds.classes
        );
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

fn new_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

struct RunObserver {
    out_dir: PathBuf,
    info: ModelInfo,
    json: bool,
    quiet: bool,
    #[cfg_attr(not(feature = "viz"), allow(dead_code))]
    plot: bool,
    epochs: usize,
    batch_size: usize,
    bar: Option<ProgressBar>,
    /// (epoch, validation accuracy, test accuracy then) of the best validation epoch.
    best: Option<(usize, f64, Option<f64>)>,
    metrics: std::fs::File,
    checkpoint_path: PathBuf,
    /// Mini-batches between checkpoints (0: only at the end of each epoch).
    checkpoint_every: usize,
    interrupted: &'static AtomicBool,
    resume_hint: String,
}

impl RunObserver {
    fn checkpoint(&self, net: &mut Sequential, state: &TrainState) -> seqnet::Result<()> {
        seqnet::checkpoint::save(
            &self.checkpoint_path,
            net,
            state,
            serde_json::json!({ "best": self.best }),
        )
    }
}

impl Observer for RunObserver {
    fn on_step(
        &mut self,
        net: &mut Sequential,
        state: &TrainState,
        steps: usize,
        loss: f32,
    ) -> seqnet::Result<()> {
        if self.interrupted.load(Ordering::SeqCst) {
            self.checkpoint(net, state)?;
            return Err(seqnet::Error::Interrupted(format!(
                "interrupted in epoch {}, step {} of {steps}; checkpoint saved. Continue with:\n  {}",
                state.epoch + 1,
                state.step_in_epoch,
                self.resume_hint
            )));
        }
        let global_step = state.epoch * steps + state.step_in_epoch;
        if self.checkpoint_every > 0 && global_step % self.checkpoint_every == 0 {
            self.checkpoint(net, state)?;
        }
        if let Some(bar) = &self.bar {
            if state.step_in_epoch == 1 {
                bar.reset();
                bar.set_length(steps as u64);
                bar.set_prefix(format!("epoch {}/{}", state.epoch + 1, self.epochs));
            }
            bar.set_position(state.step_in_epoch as u64);
            if state.step_in_epoch % 20 == 0 || state.step_in_epoch == steps {
                let rate = bar.per_sec() * self.batch_size as f64;
                bar.set_message(format!("loss {loss:.4} {rate:.0} img/s"));
            }
        }
        Ok(())
    }

    fn on_epoch(
        &mut self,
        r: &EpochReport,
        net: &mut Sequential,
        state: &TrainState,
    ) -> seqnet::Result<()> {
        let line = serde_json::to_string(r).unwrap_or_default();
        let io = |e| seqnet::Error::io(self.out_dir.join("metrics.jsonl"), e);
        writeln!(self.metrics, "{line}").map_err(io)?;
        #[cfg(feature = "viz")]
        if self.plot {
            seqnet::viz::curves_png(
                self.out_dir.join("metrics.jsonl"),
                self.out_dir.join("curves.png"),
            )?;
        }
        if self.json {
            println!("{line}");
        }
        if let Some(val) = r.val_accuracy {
            if is_new_best(val, self.best.as_ref().map(|b| b.1)) {
                self.best = Some((r.epoch, val, r.test_accuracy));
                model::save(&self.out_dir.join("best.safetensors"), net, &self.info)?;
            }
        }
        self.checkpoint(net, state)?;
        if !self.quiet {
            let pct = |a: Option<f64>, what: &str| {
                a.map_or(String::new(), |a| format!("  {what} {:.2}%", 100.0 * a))
            };
            let msg = format!(
                "epoch {}/{}  loss {:.4}{}{}  {:.1} s  {:.0} img/s",
                r.epoch,
                self.epochs,
                r.train_loss,
                pct(r.val_accuracy, "val"),
                pct(r.test_accuracy, "test"),
                r.seconds,
                r.images_per_second
            );
            match &self.bar {
                Some(bar) => bar.println(msg),
                None => eprintln!("{msg}"),
            }
        }
        Ok(())
    }
}

/// Writes one test digit as a PNG into the run folder, so the suggested predict
/// command works as printed.
fn write_sample_digit(dir: &Path, ds: &Dataset) -> Option<PathBuf> {
    if ds.is_empty() || ds.shape[0] != 1 {
        return None;
    }
    let (h, w) = (ds.shape[1], ds.shape[2]);
    let (x, y) = ds.batch(&[0]);
    let pixels: Vec<u8> = x
        .data()
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let path = dir.join(format!("sample-{}.png", y[0]));
    image::save_buffer(
        &path,
        &pixels,
        w as u32,
        h as u32,
        image::ExtendedColorType::L8,
    )
    .ok()?;
    Some(path)
}

/// The files a run writes into its folder; `--out` refuses a folder holding any of them.
const RUN_FILES: [&str; 4] = [
    "config.json",
    "metrics.jsonl",
    "checkpoint.safetensors",
    "final.safetensors",
];

/// `--out DIR` must not overwrite another run's results.
fn refuse_to_overwrite(dir: &Path) -> Result<()> {
    if let Some(file) = RUN_FILES.iter().find(|f| dir.join(f).exists()) {
        bail!(
            "--out {}: the folder already holds a run ({file}), which this one would \
             overwrite; continue it with `seqnet train --resume {}`, or give another --out",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Creates and returns a new folder `parent/stem`, or `stem-2`, `stem-3`… when that
/// exists already: runs started within the same second (a loop over seeds) each get
/// their own. `create_dir` is atomic, so two processes never get the same folder.
fn new_run_folder(parent: &Path, stem: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(parent)
        .with_context(|| format!("creating the folder {}", parent.display()))?;
    for n in 1.. {
        let dir = match n {
            1 => parent.join(stem),
            _ => parent.join(format!("{stem}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating the run folder {}", dir.display()));
            }
        }
    }
    unreachable!("the loop returns")
}

/// The options typed with `--resume` that would change the run, as typed: all but the
/// display options, the thread count (results are bitwise the same for any count), and
/// where to look for the data or save a copy of the model.
fn changed_on_resume(now: &Args) -> Vec<String> {
    now.typed
        .iter()
        .filter(|(id, _)| !MAY_CHANGE_ON_RESUME.contains(&id.as_str()) && id != "resume")
        .map(|(_, shown)| shown.clone())
        .collect()
}

/// The options `--resume` takes from the command line rather than from config.json.
const MAY_CHANGE_ON_RESUME: [&str; 7] = [
    "quiet",
    "json",
    "plot",
    "threads",
    "checkpoint_every",
    "save",
    "data_dir",
];

/// UTC `YYYYMMDD-HHMMSS`, for run folder names.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The book's rule for the best epoch (network3.py: `if validation_accuracy >=
/// best_validation_accuracy`): a later epoch that ties the best validation accuracy
/// replaces it, so the reported test accuracy is the latest of the tied epochs'.
fn is_new_best(val: f64, best_so_far: Option<f64>) -> bool {
    best_so_far.is_none_or(|best| val >= best)
}

#[cfg(test)]
mod best_epoch_tests {
    use super::is_new_best;

    #[test]
    fn a_tie_with_the_best_validation_accuracy_moves_the_best_epoch_later() {
        assert!(is_new_best(0.9, None));
        assert!(is_new_best(0.95, Some(0.9)));
        assert!(is_new_best(0.95, Some(0.95)));
        assert!(!is_new_best(0.94, Some(0.95)));
    }
}
