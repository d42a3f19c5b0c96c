//! `seqnet train --resume DIR` and `--out DIR`: which options a resumed run takes from
//! its config.json and which from the command line, and the refusal to start a new run
//! over an old one. The run folder itself is the library's [`seqnet::run_dir::RunDir`].

use std::path::Path;

use anyhow::{Context, Result, bail};
use seqnet::run_dir::RunDir;

use super::train::{Args, InitArg};

/// The options a run was started with, read back from its config.json; display options
/// (--quiet, --json, --threads) may change on resume, nothing that changes the result.
pub(super) fn resumed_args(dir: &Path, now: &Args) -> Result<Args> {
    let path = dir.join("config.json");
    let value = RunDir::read_config(dir).map_err(|e| match e {
        // Said as before the library read it: the file once, with what it should be.
        seqnet::Error::Io { err, .. } => anyhow::Error::new(err).context(format!(
            "reading {} (is {} a seqnet run folder?)",
            path.display(),
            dir.display()
        )),
        e => e.into(),
    })?;
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

/// `--out DIR` must not overwrite another run's results.
pub(super) fn refuse_to_overwrite(dir: &Path) -> Result<()> {
    if let Some(file) = RunDir::existing_run_file(dir) {
        bail!(
            "--out {}: the folder already holds a run ({file}), which this one would \
             overwrite; continue it with `seqnet train --resume {}`, or give another --out",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
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
