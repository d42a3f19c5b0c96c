//! `seqnet eval`: accuracy, per-class accuracy and confusion matrix of a model on a test
//! set (or `--on validation`, `--on train`), or of an ensemble of models (each model's
//! accuracy, the plurality vote and the averaged probabilities).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use seqnet::data::{self, Dataset, thousands};
use seqnet::evaluate::{self, EvalSet, Misfit, Report, TIE_BREAK};
use seqnet::io::model::{self, Model};
use seqnet::shape::fmt_shape;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    /// The files as published: 60,000 training images, 10,000 test images.
    Official,
    /// The book's split: the first 50,000 training images train, the last 10,000
    /// validate.
    Book,
}

/// Which of a dataset's sets to evaluate on (the JSON report names it as typed).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnArg {
    /// The test images (the same for both splits).
    Test,
    /// The validation images: the book's split holds them out of training.
    Validation,
    /// The training images (all of them, or the book split's first 50,000): how well
    /// the model fits what it learned from, to set beside the test figure.
    Train,
}

impl OnArg {
    /// The value as typed.
    fn name(self) -> &'static str {
        match self {
            OnArg::Test => "test",
            OnArg::Validation => "validation",
            OnArg::Train => "train",
        }
    }

    /// The set in words: "the training set".
    fn words(self) -> &'static str {
        EvalSet::from(self).words()
    }
}

impl From<OnArg> for EvalSet {
    fn from(on: OnArg) -> Self {
        match on {
            OnArg::Test => EvalSet::Test,
            OnArg::Validation => EvalSet::Validation,
            OnArg::Train => EvalSet::Train,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A trained model (.safetensors). Give several for an ensemble: each model's
    /// accuracy, their plurality vote and their averaged probabilities. Several files
    /// may follow one --model (`--model runs/drop{1,2,3}/best.safetensors`).
    #[arg(long = "model", value_name = "FILE", required = true, num_args = 1..)]
    models: Vec<PathBuf>,
    /// Worker threads (default: all cores). Results are the same for any count.
    #[arg(long)]
    threads: Option<usize>,
    /// A named dataset (mnist, fashion-mnist, kmnist, mnist-5k, cifar10), a folder with the
    /// four standard IDX files or CIFAR-10's .bin files, or a folder of class folders of
    /// images (read at the model's input size and channels, with the hold-out it was
    /// trained with); its test set is used (or the set --on names). Default: MNIST when
    /// installed, else the embedded 5,000-image sample.
    #[arg(long)]
    dataset: Option<String>,
    /// Where to look for named datasets first.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A safetensors batch file (`images`, `labels`) to evaluate on instead.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dataset", "data_dir", "split"])]
    test_data: Option<PathBuf>,
    /// Which set to evaluate on.
    #[arg(long, value_enum, default_value = "test", conflicts_with = "test_data")]
    on: OnArg,
    /// How the dataset's training file is split, for `--on train` (default: official,
    /// all 60,000 images; the book-* presets train on the book split's first 50,000, so
    /// add --split book for their training figure) and `--on validation` (which needs,
    /// and defaults to, the book's split). The test set is the same for both.
    #[arg(long, value_enum)]
    split: Option<SplitArg>,
    /// Print one JSON object with the same content on standard output.
    #[arg(long)]
    json: bool,
    /// How an image folder is read: from the (first) model, filled in after parsing.
    #[arg(skip)]
    folder: data::FolderOptions,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::in_pool(args.threads, |_| run_in_pool(args))
}

fn run_in_pool(args: Args) -> Result<ExitCode> {
    // Models first: their errors need no data.
    let mut models = Vec::with_capacity(args.models.len());
    for path in &args.models {
        let m = model::load(path).with_context(|| format!("reading {}", path.display()))?;
        for w in &m.warnings {
            eprintln!("warning: {}: {w}", path.display());
        }
        models.push(m);
    }
    check_models(&args.models, &models)?;
    // An image folder is read as the model was trained: its size, its channels, its
    // hold-out.
    let mut args = args;
    args.folder = data::FolderOptions::for_model(
        models[0].net.input_shape(),
        models[0]
            .info
            .trained_on
            .as_ref()
            .and_then(|t| t.split.as_deref()),
    );

    let (test, source, dataset) = match &args.test_data {
        Some(path) => {
            let ds = data::load_safetensors_batch(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let desc = format!("{} ({} images)", path.display(), thousands(ds.len()));
            (ds, desc, path.display().to_string())
        }
        None => load_set(&args)?,
    };
    for (path, m) in args.models.iter().zip(&models) {
        if let Some(w) = evaluate::overlap(m.info.trained_on.as_ref(), &dataset, args.on.into()) {
            // The warning names the data itself; `source` can be a paragraph (why MNIST
            // was not found and how to install it), which the data: line already says.
            eprintln!("warning: {}: {w}.", path.display());
        }
    }
    if test.is_empty() {
        bail!("{source}: no images to evaluate");
    }
    for (path, m) in args.models.iter().zip(&models) {
        check_fits(path, m, &test, &source)?;
    }

    let outputs = models[0].net.output_shape()[0];
    let ensemble = models.len() > 1;
    let mut runs = Vec::with_capacity(models.len());
    for (path, m) in args.models.iter().zip(models.iter_mut()) {
        let p = evaluate::predict(&mut m.net, &test, m.info.normalize, ensemble)
            .with_context(|| format!("running {}", path.display()))?;
        runs.push(p);
    }
    let names = evaluate::class_names(models.iter().map(|m| &m.info), outputs);
    let paths: Vec<String> = args
        .models
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let report = evaluate::report(&paths, &runs, &test, &source, args.on.into(), names);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// An ensemble's models must take the same input and give the same number of outputs,
/// one vector each.
fn check_models(paths: &[PathBuf], models: &[Model]) -> Result<()> {
    let first = &models[0];
    for (path, m) in paths.iter().zip(models) {
        let out = m.net.output_shape();
        if out.len() != 1 {
            bail!(
                "{}: the network outputs {} per image, not one score per class; end it with \
                 Flatten() and Linear(…, classes)",
                path.display(),
                fmt_shape(out)
            );
        }
    }
    for (path, m) in paths.iter().zip(models).skip(1) {
        if m.net.input_shape() != first.net.input_shape() {
            bail!(
                "the models of an ensemble must take the same images: {} takes {}, but {} \
                 takes {}",
                paths[0].display(),
                fmt_shape(first.net.input_shape()),
                path.display(),
                fmt_shape(m.net.input_shape())
            );
        }
        if m.net.output_shape() != first.net.output_shape() {
            bail!(
                "the models of an ensemble must score the same classes: {} outputs {} \
                 scores, but {} outputs {}",
                paths[0].display(),
                fmt_shape(first.net.output_shape()),
                path.display(),
                fmt_shape(m.net.output_shape())
            );
        }
    }
    Ok(())
}

/// The set `--on` and `--split` name, where it came from ("MNIST from … (10,000
/// test)", or "the validation set of MNIST from …" for another set than the test set),
/// and which data it is ([`data::Splits::dataset`]).
fn load_set(args: &Args) -> Result<(Dataset, String, String)> {
    let (dataset, data_dir) = (args.dataset.as_deref(), args.data_dir.as_deref());
    let split = match (args.on, args.split) {
        // Both splits share the test set, so only its files are read.
        (OnArg::Test, _) => {
            let s = data::load_test_splits_with(dataset, data_dir, &args.folder)?;
            let test = s.test.context("internal error: the data has no test set")?;
            return Ok((test, s.source, s.dataset));
        }
        (OnArg::Validation, Some(SplitArg::Official)) => bail!(
            "--on validation needs a validation set, and the official split has none (it \
             trains on all the training images); use --split book, which validates on the \
             last 10,000 training images, or leave --split out"
        ),
        (OnArg::Validation, _) | (OnArg::Train, Some(SplitArg::Book)) => data::Split::Book,
        (OnArg::Train, _) => data::Split::Official,
    };
    let words = args.on.words();
    let splits = data::load_with(dataset, data_dir, split, &args.folder).with_context(|| {
        if split == data::Split::Book {
            format!(
                "--on {} takes the {words} set of the book's split, which this data cannot \
                 have",
                args.on.name()
            )
        } else {
            format!("loading the {words} set")
        }
    })?;
    let ds = match args.on {
        OnArg::Validation => splits
            .val
            .context("internal error: the book's split gave no validation set")?,
        _ => splits.train,
    };
    Ok((
        ds,
        format!("the {words} set of {}", splits.source),
        splits.dataset,
    ))
}

/// The model must take the data's images and score at least its classes (the
/// library's check, said for evaluation).
fn check_fits(path: &Path, m: &Model, ds: &Dataset, source: &str) -> Result<()> {
    match evaluate::check_fits(&m.net, ds) {
        Ok(()) => Ok(()),
        Err(Misfit::Input { net, data }) => bail!(
            "{} takes images shaped {}, but the images of {source} are {}; evaluate it \
             on data of its own shape",
            path.display(),
            fmt_shape(&net),
            fmt_shape(&data)
        ),
        Err(Misfit::Output { net, classes }) => bail!(
            "{} outputs {} scores per image, but {source} has {classes} classes; it \
             cannot have been trained on this data",
            path.display(),
            // One number: check_models has made sure the output is a vector.
            net.iter().product::<usize>()
        ),
    }
}

fn pct(a: f64) -> String {
    format!("{:.2}%", 100.0 * a)
}

fn print_report(r: &Report) {
    let n = thousands(r.images);
    println!("{}", super::wrap(&format!("data: {}", r.data)));
    println!("{} images: {n}", r.set.words());
    match &r.ensemble {
        None => {
            let m = &r.models[0];
            println!("model: {}", m.path);
            println!(
                "accuracy: {} ({} / {n})",
                pct(m.accuracy),
                thousands(m.correct)
            );
        }
        Some(e) => {
            println!("models:");
            let width = r.models.iter().map(|m| m.path.len()).max().unwrap_or(0);
            for (i, m) in r.models.iter().enumerate() {
                println!(
                    "  {}. {:<width$}  {:>7} ({} / {n})",
                    i + 1,
                    m.path,
                    pct(m.accuracy),
                    thousands(m.correct)
                );
            }
            println!("ensemble of {}:", e.models);
            println!(
                "  plurality vote          {:>7} ({} / {n}); {} tied",
                pct(e.vote.accuracy),
                thousands(e.vote.correct),
                thousands(e.vote_ties)
            );
            println!("{}", super::wrap(&format!("    ({TIE_BREAK})")));
            println!(
                "  averaged probabilities  {:>7} ({} / {n})",
                pct(e.average.accuracy),
                thousands(e.average.correct)
            );
            println!(
                "  the models disagree on {} of the {n} images",
                thousands(e.disagreements)
            );
        }
    }
    let whose = if r.ensemble.is_some() {
        " (of the vote)"
    } else {
        ""
    };

    println!();
    println!("per-class accuracy{whose}:");
    let name_w = r
        .classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(1)
        .max("class".len());
    println!(
        "  {:>name_w$}  {:>7}  {:>7}  {:>8}",
        "class", "images", "correct", "accuracy"
    );
    for c in &r.per_class {
        println!(
            "  {:>name_w$}  {:>7}  {:>7}  {:>8}",
            c.class,
            thousands(c.images),
            thousands(c.correct),
            c.accuracy.map_or("-".to_string(), pct)
        );
    }

    println!();
    println!("confusion matrix{whose} (rows: true class, columns: predicted class):");
    let max_cell = r
        .confusion
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .to_string()
        .len();
    let cell_w = r
        .classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(1)
        .max(max_cell);
    let mut head = format!("  {:>name_w$} ", "");
    for c in &r.classes {
        head.push_str(&format!(" {c:>cell_w$}"));
    }
    println!("{}", head.trim_end());
    for (k, row) in r.confusion.iter().enumerate() {
        let mut line = format!("  {:>name_w$} ", r.classes[k]);
        for v in row {
            line.push_str(&format!(" {v:>cell_w$}"));
        }
        println!("{line}");
    }
}
