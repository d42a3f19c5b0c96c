//! `seqnet data`: fetch MNIST, Fashion-MNIST, KMNIST or CIFAR-10 from public mirrors,
//! checking every file's SHA-256; list which datasets are installed where.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use seqnet::data::{self, KNOWN_NAMES, STANDARD_FILES};
#[cfg(feature = "fetch")]
use {
    anyhow::{Context, bail},
    indicatif::{ProgressBar, ProgressStyle},
    seqnet::data::Split,
    seqnet::data::fetch::{Event, Fetcher, Source},
    std::io::IsTerminal,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Download a dataset's four .gz files from public mirrors in turn, check each one's
    /// SHA-256, and install them into the cache folder (or --dir). Nothing is installed
    /// unless all four arrive whole. cifar10 is one archive, cifar-10-binary.tar.gz
    /// (162 MB), checked the same way, then unpacked beside it.
    #[cfg(feature = "fetch")]
    Fetch(FetchArgs),
    /// Which datasets are installed, and every folder seqnet looks in for each.
    List(ListArgs),
}

#[cfg(feature = "fetch")]
#[derive(clap::Args, Debug)]
struct FetchArgs {
    /// mnist, fashion-mnist, kmnist or cifar10.
    name: String,
    /// The folder to put the four files in. Default: the cache folder
    /// ($XDG_CACHE_HOME/seqnet/NAME or ~/.cache/seqnet/NAME), where seqnet finds them by
    /// name.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A mirror: the URL of a folder holding the four .gz files. Repeat for several,
    /// tried in order. Replaces the built-in mirrors.
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
    /// Check the files against the SHA-256 sums in FILE (as `sha256sum` prints them)
    /// instead of the published ones, e.g. for a mirror of another version.
    #[arg(long, value_name = "FILE")]
    checksums: Option<PathBuf>,
    /// Print only errors.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// A folder to look in first, as train and eval's --data-dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        #[cfg(feature = "fetch")]
        Sub::Fetch(a) => fetch(a),
        Sub::List(a) => list(a),
    }
}

#[cfg(feature = "fetch")]
fn fetch(args: FetchArgs) -> Result<ExitCode> {
    let mut source = Source::builtin(&args.name)?;
    if !args.mirrors.is_empty() {
        source = source.with_mirrors(&args.mirrors)?;
    }
    if let Some(path) = &args.checksums {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        source = source.with_checksums(&text, path)?;
    }
    let dest = match &args.dir {
        Some(d) => d.clone(),
        None => match data::cache_dir(&source.name) {
            Some(d) => d,
            None => bail!(
                "neither $XDG_CACHE_HOME nor $HOME is set, so there is no cache folder; give \
                 --dir DIR"
            ),
        },
    };
    let quiet = args.quiet;
    if !quiet {
        eprintln!("fetching {} into {}", source.title, dest.display());
    }
    let terminal = !quiet && std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let mut on_event = |e: Event| match e {
        Event::Present { file } => {
            if !quiet {
                eprintln!("  {file}: already there, SHA-256 verified");
            }
        }
        Event::Start { file, url, size } => {
            if terminal {
                let b = new_bar(size);
                b.set_prefix(file.to_string());
                bar = Some(b);
            } else if !quiet {
                eprintln!("  {file}: downloading {url}");
            }
        }
        Event::Length { bytes, .. } => {
            if let Some(b) = &bar {
                b.set_length(bytes);
            }
        }
        Event::Progress { bytes, .. } => {
            if let Some(b) = &bar {
                b.set_position(bytes);
            }
        }
        Event::Failed { file, url, reason } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            if !quiet {
                eprintln!("  {file}: {url} failed: {reason}");
            }
        }
        // Said once, when the mirror failed; the final error lists it again.
        Event::Skipped { .. } => {}
        Event::Verified { file, bytes, .. } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            if !quiet {
                eprintln!("  {file}: {}, SHA-256 verified", size(bytes));
            }
        }
    };
    let result = Fetcher::new().fetch(&source, &dest, &mut on_event);
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    let report = result?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }

    // The files are verified; loading them also checks that they are what seqnet reads
    // (which matters with --checksums).
    let splits = if source.name == data::cifar::NAME {
        let archive = dest.join(data::cifar::ARCHIVE);
        let out = data::cifar::extract_archive(&archive, &dest)?;
        if !quiet {
            eprintln!("  unpacked into {}", out.display());
        }
        data::cifar::load_dir(&dest, false, data::cifar::NAME)
    } else {
        data::load_dir(&dest, Split::Official)
    }
    .with_context(|| {
        format!(
            "the downloaded files in {} do not load as a dataset",
            dest.display()
        )
    })?;
    let downloaded = report.downloaded();
    let total: u64 = report.files.iter().map(|f| f.bytes).sum();
    if !quiet {
        println!(
            "{} is in {}: {} ({} file{} downloaded, {} in all)",
            source.title,
            dest.display(),
            splits.counts(),
            downloaded,
            if downloaded == 1 { "" } else { "s" },
            size(total)
        );
        println!("{}", how_found(&source.name, &dest));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "fetch")]
/// How a later command finds the dataset at `dest`.
fn how_found(name: &str, dest: &Path) -> String {
    let same = |a: &Path| match (a.canonicalize(), dest.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == dest,
    };
    let found = if name == data::cifar::NAME {
        // find gives the folder holding the .bin files, inside dest.
        Ok(data::cifar::find(None).map(|d| {
            if d.ends_with(data::cifar::ARCHIVE_DIR) {
                d.parent().map(Path::to_path_buf).unwrap_or(d)
            } else {
                d
            }
        }))
    } else {
        data::resolve_named(name, None)
    };
    match found {
        Ok(Some(found)) if same(&found) => {
            format!("use it with --dataset {name}")
        }
        Ok(Some(found)) => format!(
            "note: --dataset {name} finds {} first (see `seqnet data list`); use these files \
             with --dataset {}",
            found.display(),
            dest.display()
        ),
        _ => format!(
            "seqnet does not look there by itself: use these files with --dataset {}, or \
             --data-dir {}",
            dest.display(),
            dest.display()
        ),
    }
}

#[cfg(feature = "fetch")]
fn new_bar(len: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::new(len.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template(
            "  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

#[cfg(feature = "fetch")]
/// `9912422` → `"9.9 MB"`.
fn size(bytes: u64) -> String {
    if bytes < 1_000 {
        format!("{bytes} bytes")
    } else if bytes < 1_000_000 {
        format!("{:.1} kB", bytes as f64 / 1e3)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// Whether `dir` holds the four standard files, each gzipped or not.
fn holds_files(dir: &Path) -> bool {
    STANDARD_FILES
        .iter()
        .all(|f| dir.join(f).is_file() || dir.join(format!("{f}.gz")).is_file())
}

fn list(args: ListArgs) -> Result<ExitCode> {
    let data_dir = args.data_dir.as_deref();
    let width = KNOWN_NAMES
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        .max("mnist-5k".len());
    let mut found_dirs = Vec::new();
    for name in KNOWN_NAMES {
        let found = data::resolve_named(name, data_dir)?;
        match &found {
            Some(dir) => println!("{name:<width$}  installed  {}", dir.display()),
            None => println!("{name:<width$}  not found  (seqnet data fetch {name})"),
        }
        found_dirs.push(found);
    }
    println!(
        "{:<width$}  embedded in seqnet (4,000 train / 1,000 test images)",
        "mnist-5k"
    );
    match data::cifar::find(data_dir) {
        Some(dir) => println!(
            "{:<width$}  installed  {}",
            data::cifar::NAME,
            dir.display()
        ),
        None => println!(
            "{:<width$}  not found  (seqnet data fetch {})",
            data::cifar::NAME,
            data::cifar::NAME
        ),
    }
    println!();
    let text = format!(
        "Where seqnet looks for each, in order; the first folder holding the four files \
         ({}, each optionally .gz) is used.",
        STANDARD_FILES.join(", ")
    );
    println!("{}", super::wrap(&text));
    println!(
        "  * used   + holds the four files, but not used for this dataset (an earlier folder\n           \
         wins, or the folder's name says it holds another)"
    );
    for (name, found) in KNOWN_NAMES.iter().zip(&found_dirs) {
        println!("{name}:");
        for dir in data::search_path(name, data_dir)? {
            let mark = if found.as_deref() == Some(dir.as_path()) {
                "*"
            } else if holds_files(&dir) {
                "+"
            } else {
                " "
            };
            println!("  {mark} {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
