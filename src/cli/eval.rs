//! `seqnet eval`: accuracy, per-class accuracy and confusion matrix of a model on a test
//! set (or `--on validation`, `--on train`), or of an ensemble of models (each model's
//! accuracy, the plurality vote and the averaged probabilities).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use seqnet::data::{self, Dataset};
use seqnet::io::model::{self, Model};
use seqnet::shape::fmt_shape;
use seqnet::{Mode, Tensor};
use serde::Serialize;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    /// The files as published: 60,000 training images, 10,000 test images.
    Official,
    /// The book's split: the first 50,000 training images train, the last 10,000
    /// validate.
    Book,
}

/// Which of a dataset's sets to evaluate on (the JSON report names it as typed).
#[derive(clap::ValueEnum, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
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
        match self {
            OnArg::Train => "training",
            other => other.name(),
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
    /// A named dataset (mnist, fashion-mnist, kmnist, mnist-5k) or a folder with the four
    /// standard IDX files; its test set is used (or the set --on names). Default: MNIST
    /// when installed, else the embedded 5,000-image sample.
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
}

/// How the plurality vote breaks ties, for the report.
const TIE_BREAK: &str = "ties go to the tied class with the highest averaged probability \
                         (then the lowest class index)";

/// Images per forward pass.
const CHUNK: usize = 500;

/// One model's predictions on the evaluated set.
struct Run {
    path: PathBuf,
    preds: Vec<usize>,
    /// `[N × outputs]` probabilities, kept only for ensembles.
    probs: Vec<f32>,
}

/// How a classifier did: counts per true class and the confusion matrix.
struct Score {
    correct: usize,
    /// Per true class: (images, correct).
    per_class: Vec<(usize, usize)>,
    /// `classes × outputs`: rows are true classes, columns predicted ones.
    confusion: Vec<Vec<usize>>,
}

fn score(preds: &[usize], labels: &[usize], classes: usize, outputs: usize) -> Score {
    let mut s = Score {
        correct: 0,
        per_class: vec![(0, 0); classes],
        confusion: vec![vec![0; outputs]; classes],
    };
    for (&p, &y) in preds.iter().zip(labels) {
        s.confusion[y][p] += 1;
        s.per_class[y].0 += 1;
        if p == y {
            s.correct += 1;
            s.per_class[y].1 += 1;
        }
    }
    s
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// `60000` → `"60,000"`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
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

    let (test, source) = match &args.test_data {
        Some(path) => {
            let ds = data::load_safetensors_batch(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let desc = format!("{} ({} images)", path.display(), thousands(ds.len()));
            (ds, desc)
        }
        None => load_set(&args)?,
    };
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
        runs.push(predict(path, m, &test, ensemble)?);
    }
    let names = class_names(&models, outputs);
    let report = build_report(&runs, &test, &source, args.on, names, outputs);
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

/// The set `--on` and `--split` name, and where it came from: "MNIST from … (10,000
/// test)", or "the validation set of MNIST from …" for another set than the test set.
fn load_set(args: &Args) -> Result<(Dataset, String)> {
    let (dataset, data_dir) = (args.dataset.as_deref(), args.data_dir.as_deref());
    let split = match (args.on, args.split) {
        // Both splits share the test set, so only its files are read.
        (OnArg::Test, _) => return Ok(data::load_test_set(dataset, data_dir)?),
        (OnArg::Validation, Some(SplitArg::Official)) => bail!(
            "--on validation needs a validation set, and the official split has none (it \
             trains on all the training images); use --split book, which validates on the \
             last 10,000 training images, or leave --split out"
        ),
        (OnArg::Validation, _) | (OnArg::Train, Some(SplitArg::Book)) => data::Split::Book,
        (OnArg::Train, _) => data::Split::Official,
    };
    let words = args.on.words();
    let splits = data::load(dataset, data_dir, split).with_context(|| {
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
    Ok((ds, format!("the {words} set of {}", splits.source)))
}

/// The model must take the data's images and score at least its classes.
fn check_fits(path: &Path, m: &Model, ds: &Dataset, source: &str) -> Result<()> {
    if m.net.input_shape() != ds.shape.as_slice() {
        bail!(
            "{} takes images shaped {}, but the images of {source} are {}; evaluate it \
             on data of its own shape",
            path.display(),
            fmt_shape(m.net.input_shape()),
            fmt_shape(&ds.shape)
        );
    }
    let outputs = m.net.output_shape()[0];
    if outputs < ds.classes {
        bail!(
            "{} outputs {outputs} scores per image, but {source} has {} classes; it \
             cannot have been trained on this data",
            path.display(),
            ds.classes
        );
    }
    Ok(())
}

/// Forward passes over the evaluated set with the model's own normalisation: the predicted
/// class of every image (argmax of the outputs, as in training) and, if asked, the
/// probabilities.
fn predict(path: &Path, m: &mut Model, ds: &Dataset, keep_probs: bool) -> Result<Run> {
    let last = m.net.output_kind();
    let mut preds = Vec::with_capacity(ds.len());
    let mut probs = Vec::new();
    let all: Vec<usize> = (0..ds.len()).collect();
    for chunk in all.chunks(CHUNK) {
        let (mut x, _) = ds.batch(chunk);
        if let Some(n) = m.info.normalize {
            n.apply(x.data_mut());
        }
        let out: Tensor = m
            .net
            .forward(&x, Mode::Eval)
            .with_context(|| format!("running {}", path.display()))?;
        preds.extend(out.argmax_rows());
        if keep_probs {
            let p = seqnet::loss::probabilities(&out, last);
            probs.extend_from_slice(p.data());
        }
    }
    Ok(Run {
        path: path.to_path_buf(),
        preds,
        probs,
    })
}

/// Class names from the first model that has enough of them, else the indices.
fn class_names(models: &[Model], outputs: usize) -> Vec<String> {
    for m in models {
        if let Some(names) = &m.info.classes {
            if names.len() >= outputs {
                return names[..outputs].to_vec();
            }
        }
    }
    (0..outputs).map(|k| k.to_string()).collect()
}

/// The plurality vote of `runs` on image `i`: most votes wins; ties go to the tied
/// class with the highest averaged probability, then the lowest index.
fn vote(runs: &[Run], avg: &[f32], i: usize, outputs: usize) -> (usize, bool) {
    let mut votes = vec![0usize; outputs];
    for r in runs {
        votes[r.preds[i]] += 1;
    }
    let most = votes.iter().copied().max().unwrap_or(0);
    let tied: Vec<usize> = (0..outputs).filter(|&k| votes[k] == most).collect();
    if tied.len() == 1 {
        return (tied[0], false);
    }
    let row = &avg[i * outputs..(i + 1) * outputs];
    let mut best = tied[0];
    for &k in &tied[1..] {
        if row[k] > row[best] {
            best = k;
        }
    }
    (best, true)
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

#[derive(Serialize)]
struct Report {
    /// Where the images came from.
    data: String,
    /// Which set of the data they are (`--on`): "test", "validation" or "train".
    set: OnArg,
    /// How many images.
    images: usize,
    /// Names of the classes the models score (columns of `confusion`); the first
    /// `per_class.len()` are the data's classes (its rows).
    classes: Vec<String>,
    models: Vec<ModelScore>,
    /// What `accuracy`, `per_class` and `confusion` describe: "model" or "vote".
    of: &'static str,
    accuracy: f64,
    correct: usize,
    per_class: Vec<ClassScore>,
    /// Rows: true class; columns: predicted class.
    confusion: Vec<Vec<usize>>,
    /// With several models.
    #[serde(skip_serializing_if = "Option::is_none")]
    ensemble: Option<Ensemble>,
}

#[derive(Serialize)]
struct ModelScore {
    path: String,
    accuracy: f64,
    correct: usize,
}

#[derive(Serialize)]
struct ClassScore {
    class: String,
    images: usize,
    correct: usize,
    /// `null` when the evaluated set has no image of this class.
    accuracy: Option<f64>,
}

#[derive(Serialize)]
struct Ensemble {
    models: usize,
    vote: Tally,
    average: Tally,
    /// How the vote breaks ties.
    tie_break: &'static str,
    /// Images on which the vote was tied.
    vote_ties: usize,
    /// Images on which the models did not all predict the same class.
    disagreements: usize,
}

#[derive(Serialize)]
struct Tally {
    accuracy: f64,
    correct: usize,
}

fn build_report(
    runs: &[Run],
    ds: &Dataset,
    source: &str,
    set: OnArg,
    classes: Vec<String>,
    outputs: usize,
) -> Report {
    let n = ds.len();
    let labels = &ds.labels;
    let models: Vec<ModelScore> = runs
        .iter()
        .map(|r| {
            let correct = r.preds.iter().zip(labels).filter(|(p, y)| p == y).count();
            ModelScore {
                path: r.path.display().to_string(),
                accuracy: ratio(correct, n),
                correct,
            }
        })
        .collect();

    let (shown, of, ensemble) = if runs.len() == 1 {
        (runs[0].preds.clone(), "model", None)
    } else {
        // Averaged probabilities.
        let mut avg = vec![0f32; n * outputs];
        for r in runs {
            for (a, p) in avg.iter_mut().zip(&r.probs) {
                *a += p;
            }
        }
        let k = runs.len() as f32;
        avg.iter_mut().for_each(|a| *a /= k);
        let avg_preds: Vec<usize> = avg.chunks_exact(outputs).map(argmax).collect();
        let mut ties = 0;
        let vote_preds: Vec<usize> = (0..n)
            .map(|i| {
                let (p, tied) = vote(runs, &avg, i, outputs);
                ties += usize::from(tied);
                p
            })
            .collect();
        let disagreements = (0..n)
            .filter(|&i| runs.iter().any(|r| r.preds[i] != runs[0].preds[i]))
            .count();
        let tally = |preds: &[usize]| {
            let correct = preds.iter().zip(labels).filter(|(p, y)| p == y).count();
            Tally {
                accuracy: ratio(correct, n),
                correct,
            }
        };
        let ensemble = Ensemble {
            models: runs.len(),
            vote: tally(&vote_preds),
            average: tally(&avg_preds),
            tie_break: TIE_BREAK,
            vote_ties: ties,
            disagreements,
        };
        (vote_preds, "vote", Some(ensemble))
    };

    let s = score(&shown, labels, ds.classes, outputs);
    let per_class = s
        .per_class
        .iter()
        .enumerate()
        .map(|(k, &(images, correct))| ClassScore {
            class: classes[k].clone(),
            images,
            correct,
            accuracy: (images > 0).then(|| ratio(correct, images)),
        })
        .collect();
    Report {
        data: source.to_string(),
        set,
        images: n,
        classes,
        models,
        of,
        accuracy: ratio(s.correct, n),
        correct: s.correct,
        per_class,
        confusion: s.confusion,
        ensemble,
    }
}

fn pct(a: f64) -> String {
    format!("{:.2}%", 100.0 * a)
}

fn print_report(r: &Report) {
    let n = thousands(r.images);
    println!("data: {}", r.data);
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
                "  plurality vote          {:>7} ({} / {n}); {TIE_BREAK}; {} tied",
                pct(e.vote.accuracy),
                thousands(e.vote.correct),
                thousands(e.vote_ties)
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(preds: Vec<usize>, probs: Vec<f32>) -> Run {
        Run {
            path: PathBuf::from("m"),
            preds,
            probs,
        }
    }

    #[test]
    fn eval_score_counts_and_confusion() {
        let s = score(&[0, 1, 1, 2], &[0, 1, 2, 2], 3, 4);
        assert_eq!(s.correct, 3);
        assert_eq!(s.per_class, vec![(1, 1), (1, 1), (2, 1)]);
        assert_eq!(s.confusion[2], vec![0, 1, 1, 0]);
        assert_eq!(s.confusion.iter().flatten().sum::<usize>(), 4);
    }

    #[test]
    fn eval_vote_is_plurality_with_ties_to_the_higher_average() {
        // Image 0: votes 1, 1, 2 → 1. Image 1: votes 0, 2, 1, a three-way tie → the
        // highest averaged probability among them, class 2.
        let a = run_of(vec![1, 0], vec![]);
        let b = run_of(vec![1, 2], vec![]);
        let c = run_of(vec![2, 1], vec![]);
        let avg = vec![0.1, 0.5, 0.4, 0.2, 0.3, 0.5];
        let runs = [a, b, c];
        assert_eq!(vote(&runs, &avg, 0, 3), (1, false));
        assert_eq!(vote(&runs, &avg, 1, 3), (2, true));
        // Equal averages: the lowest index.
        let flat = vec![0.0; 6];
        assert_eq!(vote(&runs, &flat, 1, 3), (0, true));
    }
}
