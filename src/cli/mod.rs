//! Command-line interface: argument definitions and dispatch.

mod bench;
mod data;
mod eval;
mod export;
mod predict;
mod progress;
mod resume;
mod schedule_args;
mod summary;
mod train;
mod train_recipe;
mod train_run;
#[cfg(feature = "viz")]
mod viz;

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// PyTorch-style Sequential CNNs in Rust: explain the shapes, train on MNIST, predict.
#[derive(Parser, Debug)]
#[command(name = "seqnet", version, about, long_about = None, max_term_width = WIDTH)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print each layer's output shape, parameters, MACs and the shape arithmetic.
    Summary(summary::Args),
    /// Train a network (default: the seed network on MNIST, or the embedded sample).
    Train(Box<train::Args>),
    /// Classify images (PNG/JPEG) or a safetensors batch with a trained model.
    Predict(predict::Args),
    /// Accuracy, per-class accuracy and confusion matrix of one model or an ensemble.
    Eval(eval::Args),
    /// Datasets: fetch MNIST, Fashion-MNIST or KMNIST into the cache.
    Data(data::Args),
    /// Time training and inference (images per second) and peak memory.
    Bench(bench::Args),
    /// Export a model to ONNX.
    Export(export::Args),
    /// List the layers a spec may use, with their arguments, PyTorch's defaults and what
    /// each does.
    Layers(LayersArgs),
    /// Pictures: filters, activations, training curves, confusion matrix, mistakes.
    #[cfg(feature = "viz")]
    Viz(viz::Args),
}

/// `seqnet layers`: generated from the layer registry, so it lists exactly what a spec
/// accepts.
#[derive(clap::Args, Debug)]
pub struct LayersArgs {
    /// Print JSON (name, signature, doc, example per layer) instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the parsed command.
pub fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<ExitCode> {
    match cli.command {
        Command::Summary(a) => summary::run(a),
        Command::Train(mut a) => {
            if let Some(m) = matches.subcommand_matches("train") {
                let cmd = <Cli as clap::CommandFactory>::command();
                let args: Vec<String> = cmd
                    .find_subcommand("train")
                    .map(|c| c.get_arguments().map(|a| a.get_id().to_string()).collect())
                    .unwrap_or_default();
                a.typed = typed_options(m, &args);
            }
            train::run(*a)
        }
        Command::Predict(a) => predict::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Data(a) => data::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Export(a) => export::run(a),
        Command::Layers(a) => {
            if a.json {
                let rows: Vec<serde_json::Value> = seqnet::layers::registry::layers()
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "name": e.name,
                            "signature": e.signature(),
                            "doc": e.doc,
                            "example": e.example,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", seqnet::layers::registry::render());
                println!(
                    "\n{}",
                    wrap(
                        "A spec joins layers with ->, e.g. 'Conv2d(1, 20, 5) -> ReLU() -> \
                         MaxPool2d(2) -> Flatten() -> LazyLinear(10)'; PyTorch's print(model) \
                         and nn.Sequential(...) code are read too, with integer arithmetic \
                         such as Linear(64 * 4 * 4, 10)."
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "viz")]
        Command::Viz(a) => viz::run(a),
    }
}

/// Runs `f(threads)` on a pool of `threads` workers: `--threads`, or all cores. Every
/// command that computes takes `--threads`; results do not depend on it.
pub fn in_pool<T: Send>(
    threads: Option<usize>,
    f: impl FnOnce(usize) -> Result<T> + Send,
) -> Result<T> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        anyhow::bail!("--threads 0: give at least 1 thread");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the worker threads")?;
    pool.install(|| f(threads))
}

/// The options typed on the command line (not defaults), as (id, `--flag value`);
/// `args` are the command's argument ids (the matches also hold argument groups).
fn typed_options(m: &clap::ArgMatches, args: &[String]) -> Vec<(String, String)> {
    m.ids()
        .filter(|id| args.iter().any(|a| a == id.as_str()))
        .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| {
            let flag = format!("--{}", id.as_str().replace('_', "-"));
            let values: Vec<String> = m
                .get_raw(id.as_str())
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let shown = match values.as_slice() {
                [] => flag,
                [v] if v == "true" => flag,
                vs => format!("{flag} {}", vs.join(" ")),
            };
            (id.as_str().to_string(), shown)
        })
        .collect()
}

/// How to call this program again, for the commands seqnet suggests (`try it:`):
/// `seqnet` when that name on the PATH is this program; `cargo run --release --` (or
/// `cargo run --`) when cargo started it (`cargo run` sets CARGO_PKG_NAME for the
/// program it runs); otherwise the path it was started by, e.g. `./target/release/seqnet`.
pub fn invocation() -> String {
    let exe = std::env::current_exe().ok();
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    let me = exe.as_deref().and_then(canon);
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join("seqnet");
            candidate.is_file() && me.is_some() && canon(&candidate) == me
        })
    });
    invocation_from(
        on_path,
        std::env::var("CARGO_PKG_NAME").ok().as_deref(),
        exe.as_deref(),
        std::env::args_os().next().map(PathBuf::from).as_deref(),
    )
}

/// [`invocation`] from what it looks at.
fn invocation_from(
    on_path: bool,
    cargo_pkg: Option<&str>,
    exe: Option<&std::path::Path>,
    argv0: Option<&std::path::Path>,
) -> String {
    if on_path {
        return "seqnet".into();
    }
    if cargo_pkg == Some(env!("CARGO_PKG_NAME")) {
        let release = exe
            .and_then(|e| e.parent())
            .and_then(|d| d.file_name())
            .is_some_and(|n| n == "release");
        return if release {
            "cargo run --release --".into()
        } else {
            "cargo run --".into()
        };
    }
    match argv0 {
        Some(a) if a.components().count() > 1 => a.display().to_string(),
        _ => exe.map_or("seqnet".into(), |e| e.display().to_string()),
    }
}

/// Options people bring from other tools, and seqnet's option for the same thing: a
/// tip added to clap's error (clap's own suggestion goes by spelling only, and offers
/// --lr for --lr-schedule).
const ALIASES: [(&str, &str); 14] = [
    (
        "--lr-schedule",
        "--schedule (step, multistep, cosine, onecycle, linear-warmup) or --lr-decay (a factor \
         per epoch)",
    ),
    (
        "--lr-scheduler",
        "--schedule (step, multistep, cosine, onecycle, linear-warmup) or --lr-decay (a factor \
         per epoch)",
    ),
    (
        "--scheduler",
        "--schedule (step, multistep, cosine, onecycle, linear-warmup)",
    ),
    ("--warmup", "--warmup-epochs or --warmup-steps"),
    ("--smoothing", "--label-smoothing"),
    (
        "--early-stopping",
        "--patience (epochs without a better validation accuracy)",
    ),
    ("--learning-rate", "--lr"),
    ("--batch", "--batch-size"),
    ("--bs", "--batch-size"),
    ("--wd", "--weight-decay"),
    ("--lambda", "--l2 (the book's λ)"),
    (
        "--network",
        "--net (a preset), --spec (layers as text) or --model (a file)",
    ),
    (
        "--arch",
        "--net (a preset), --spec (layers as text) or --model (a file)",
    ),
    ("--data", "--dataset (a name or folder) or --data-dir"),
];

/// The tip for an unknown option `arg` (`--lr-schedule=0.5` or `--lr-schedule`), if
/// seqnet has the same thing under another name.
pub fn alias_tip(arg: &str) -> Option<String> {
    let name = arg.split('=').next().unwrap_or(arg);
    ALIASES.iter().find(|(a, _)| *a == name).map(|(a, ours)| {
        format!("tip: seqnet's option for {a} is {ours}; see `seqnet train --help`")
    })
}

/// A learning rate as typed: `0.03`, or `1e35` when plain digits would be long.
pub fn fmt_lr(lr: f32) -> String {
    fmt_num(lr, f64::from(lr.abs()))
}

fn fmt_num<T: std::fmt::Display + std::fmt::LowerExp>(v: T, abs: f64) -> String {
    if abs == 0.0 || (1e-4..1e5).contains(&abs) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A tenth of `lr` (an f32, as the recipe holds it), written as a person would:
/// 10 → `1`, 0.03 → `0.003`, 1e35 → `1e34` (not f32's 1.0000000409e34).
pub fn tenth(lr: f32) -> String {
    let text = format!("{lr:e}");
    let value = match text.split_once('e') {
        Some((m, e)) => e
            .parse::<i32>()
            .ok()
            .and_then(|e| format!("{m}e{}", e - 1).parse::<f64>().ok()),
        None => None,
    };
    let value = value.unwrap_or(f64::from(lr) / 10.0);
    fmt_num(value, value.abs())
}

/// The widest line of seqnet's messages, as of `seqnet summary`'s table: a terminal of
/// 100 columns shows each whole.
pub const WIDTH: usize = seqnet::summary::Summary::WIDTH;

/// A message in lines of at most [`WIDTH`] characters, broken at spaces outside nested
/// brackets, each line after the first indented by two spaces; a word longer than a
/// line (a long path) keeps a line of its own, whole, so it can still be copied. Lines
/// of `text` are wrapped one by one.
pub fn wrap(text: &str) -> String {
    text.lines()
        .map(|line| seqnet::summary::wrap_at(line, WIDTH - 2, " ").join("\n  "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// "s" after a count other than one: "1 epoch", "2 epochs".
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The error and its causes as one paragraph: `reading m.safetensors: … : …`.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for part in err.chain().map(|e| e.to_string()) {
        // "reading FILE" followed by the library's "FILE: what is wrong" says FILE once.
        let part = match part.split_once(": ") {
            Some((head, rest)) if !head.is_empty() && text.ends_with(head) => rest.to_string(),
            _ => part,
        };
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// 130 for an interrupted run (the shell's convention for SIGINT), 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<Interrupted>().is_some() {
        130
    } else {
        1
    }
}

/// Training stopped by SIGINT/SIGTERM after saving a checkpoint.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Where a network comes from: a spec, a preset or a model file (exactly one).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NetSource {
    /// A preset: seed, book-fc, book-conv1, book-conv2, book-relu, book-relu-expanded,
    /// book-relu-fc2, book-dropout.
    #[arg(long)]
    pub net: Option<String>,
    /// A model file (.safetensors) written by seqnet or by PyTorch with seqnet metadata.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The suggested command works as the user ran seqnet.
    #[test]
    fn suggested_commands_call_seqnet_as_it_was_called() {
        let exe = Path::new("/src/seqnet/target/release/seqnet");
        let dev = Path::new("/src/seqnet/target/debug/seqnet");
        let rel = Path::new("./target/release/seqnet");
        let bare = Path::new("seqnet");
        let f = super::invocation_from;
        assert_eq!(f(true, Some("seqnet"), Some(exe), Some(bare)), "seqnet");
        assert_eq!(
            f(false, Some("seqnet"), Some(exe), Some(exe)),
            "cargo run --release --"
        );
        assert_eq!(
            f(false, Some("seqnet"), Some(dev), Some(dev)),
            "cargo run --"
        );
        assert_eq!(
            f(false, None, Some(exe), Some(rel)),
            "./target/release/seqnet"
        );
        assert_eq!(
            f(false, Some("other"), Some(exe), Some(bare)),
            "/src/seqnet/target/release/seqnet"
        );
    }

    /// A file named by both the context and the library's error is said once.
    #[test]
    fn describe_says_a_file_once() {
        let inner = anyhow::anyhow!("/tmp/m.safetensors: header too small");
        let err = inner.context("reading /tmp/m.safetensors");
        assert_eq!(
            super::describe(&err),
            "reading /tmp/m.safetensors: header too small"
        );
        let spaced = anyhow::anyhow!("/tmp/my model: bad").context("reading /tmp/my model");
        assert_eq!(super::describe(&spaced), "reading /tmp/my model: bad");
        let other = anyhow::anyhow!("/tmp/b: bad").context("reading /tmp/a");
        assert_eq!(super::describe(&other), "reading /tmp/a: /tmp/b: bad");
    }

    #[test]
    fn learning_rates_are_written_as_typed() {
        assert_eq!(super::tenth(10.0), "1");
        assert_eq!(super::tenth(0.03), "0.003");
        assert_eq!(super::tenth(1e35), "1e34");
        assert_eq!(super::tenth(1e6), "1e5");
        assert_eq!(super::tenth(1e5), "10000");
        assert_eq!(super::fmt_lr(1e35), "1e35");
        assert_eq!(super::fmt_lr(0.03), "0.03");
    }

    #[test]
    fn options_from_other_tools_are_translated() {
        let tip = super::alias_tip("--lr-schedule=0.5").unwrap();
        assert!(
            tip.contains("--schedule (step,") && tip.contains("--lr-decay"),
            "{tip}"
        );
        assert_eq!(super::alias_tip("--nonsense"), None);
    }
}
