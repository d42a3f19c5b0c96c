//! A training run's folder: what `seqnet train` writes, and what lets a run stopped
//! at any moment (Ctrl-C, a kill, a power cut) be continued exactly.
//!
//! | file | written |
//! | --- | --- |
//! | `config.json` | first, atomically: everything the run was made with ([`RunConfig`]); creating it claims the folder |
//! | `checkpoint.safetensors` | after every epoch, every N steps if asked, and on interruption ([`crate::checkpoint`]) |
//! | `metrics.jsonl` | one [`EpochReport`] per line, after each epoch |
//! | `best.safetensors` | the model at the best validation accuracy so far (book protocol) |
//! | `final.safetensors` | the trained model |
//! | `sample-D.png` | one test digit, to try `seqnet predict` on |
//!
//! Two runs started with the same folder cannot both win: config.json is created with
//! a first-come exclusive create, so the second stops before it writes anything.
//!
//! ```no_run
//! # use seqnet::run_dir::{RunDir, Resume, Progress, RunOptions};
//! # fn main() -> seqnet::Result<()> {
//! # let (mut net, mut state, cfg, info, train, config): (seqnet::Sequential, seqnet::train::TrainState, seqnet::train::TrainConfig, seqnet::io::model::ModelInfo, seqnet::data::Dataset, seqnet::run_dir::RunConfig) = todo!();
//! let run = RunDir::open("runs/mine")?;
//! if !run.claim(&config)? {
//!     panic!("another run holds runs/mine");
//! }
//! let opts = RunOptions { info: info.clone(), checkpoint_every: 0, interrupt: None };
//! let best = run.train(&mut net, &mut state, &train, None, None, &cfg, &opts, None, &mut ())?;
//! run.save_final(&net, &info)?;
//! # Ok(()) }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::model::{self, ModelInfo};
use crate::io::safetensors_file::{create_new_atomic, write_bytes_atomic};
use crate::sequential::Sequential;
use crate::train::{EpochReport, Observer, TrainConfig, TrainState};

/// The files a run writes into its folder; a new run refuses a folder holding any of
/// them, rather than overwrite another run's results.
pub const RUN_FILES: [&str; 4] = [
    "config.json",
    "metrics.jsonl",
    "checkpoint.safetensors",
    "final.safetensors",
];

/// Everything a run was made with, written to config.json when it starts. `args` is
/// the caller's own record of its options (the command line's), which a resume reads
/// back; the other fields are what they resolved to.
#[derive(Serialize, Debug, Clone)]
pub struct RunConfig<A = serde_json::Value> {
    pub args: A,
    pub name: String,
    pub spec: String,
    pub input: Vec<usize>,
    pub data: String,
    pub train_images: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: String,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub l2: f32,
    pub lr_decay: f32,
    /// "book", "pytorch" or "from model".
    pub init: String,
    pub expand: bool,
    pub shuffle: bool,
    pub seed: u64,
    pub threads: usize,
    pub normalize: Option<(f32, f32)>,
    pub seqnet_version: String,
}

/// The epoch of the best validation accuracy so far, and the test accuracy then: the
/// book's reported figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Best {
    pub epoch: usize,
    pub val_accuracy: f64,
    pub test_accuracy: Option<f64>,
}

impl Best {
    /// Stored in checkpoints as `[epoch, val, test]`, as seqnet always has.
    fn to_json(best: Option<Best>) -> serde_json::Value {
        serde_json::json!({
            "best": best.map(|b| (b.epoch, b.val_accuracy, b.test_accuracy))
        })
    }

    fn from_json(extra: &serde_json::Value) -> Option<Best> {
        serde_json::from_value::<Option<(usize, f64, Option<f64>)>>(extra["best"].clone())
            .ok()
            .flatten()
            .map(|(epoch, val_accuracy, test_accuracy)| Best {
                epoch,
                val_accuracy,
                test_accuracy,
            })
    }

    /// The book's rule for the best epoch (network3.py: `if validation_accuracy >=
    /// best_validation_accuracy`): a later epoch that ties the best validation accuracy
    /// replaces it, so the reported test accuracy is the latest of the tied epochs'.
    pub fn is_new_best(val: f64, best_so_far: Option<&Best>) -> bool {
        best_so_far.is_none_or(|best| val >= best.val_accuracy)
    }
}

/// What a resumed run found in its folder.
#[derive(Clone, Debug, PartialEq)]
pub enum Resume {
    /// No checkpoint yet: the run starts from its beginning.
    Fresh,
    /// The network and state were restored from the checkpoint.
    Continue { best: Option<Best> },
    /// The run had finished (final.safetensors is there): the network holds its weights.
    Finished { best: Option<Best> },
}

/// Told of a run's progress, to draw it; an error stops the run (after the epoch's
/// checkpoint, for [`Progress::epoch`]).
pub trait Progress {
    /// After each mini-batch: `state.step_in_epoch` of `steps` in epoch `state.epoch + 1`.
    fn step(&mut self, _state: &TrainState, _steps: usize, _loss: f32) -> Result<()> {
        Ok(())
    }
    /// After each epoch, once its metrics line, best model and checkpoint are written.
    fn epoch(&mut self, _report: &EpochReport) -> Result<()> {
        Ok(())
    }
}

/// No progress reports.
impl Progress for () {}

/// How [`RunDir::train`] keeps the run safe.
#[derive(Clone, Debug, Default)]
pub struct RunOptions<'a> {
    /// Written into best.safetensors beside the weights.
    pub info: ModelInfo,
    /// Mini-batches between checkpoints (0: only at the end of each epoch).
    pub checkpoint_every: usize,
    /// When set (by a signal handler, say), the run saves a checkpoint after the current
    /// step and stops with [`Error::Interrupted`].
    pub interrupt: Option<&'a AtomicBool>,
}

/// A run's folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    /// The first run file `dir` holds, if any: a new run must not go there.
    pub fn existing_run_file(dir: &Path) -> Option<&'static str> {
        RUN_FILES.iter().copied().find(|f| dir.join(f).exists())
    }

    /// The folder `dir`, created if need be (a new run's chosen folder, or a run to
    /// resume). It is not claimed yet: see [`RunDir::claim`].
    pub fn open(dir: impl Into<PathBuf>) -> Result<RunDir> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(RunDir { dir })
    }

    /// Creates a new folder `parent/stem`, or `stem-2`, `stem-3`… when that exists
    /// already: runs started within the same second (a loop over seeds) each get their
    /// own. `create_dir` is atomic, so two processes never get the same folder.
    pub fn new_in(parent: &Path, stem: &str) -> Result<RunDir> {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        for n in 1.. {
            let dir = match n {
                1 => parent.join(stem),
                _ => parent.join(format!("{stem}-{n}")),
            };
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(RunDir { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => {}
                Err(e) => return Err(Error::io(dir, e)),
            }
        }
        unreachable!("the loop returns")
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    pub fn best_path(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    pub fn final_path(&self) -> PathBuf {
        self.dir.join("final.safetensors")
    }

    /// Claims the folder for a new run by creating its config.json, atomically and
    /// only if it does not exist: `false` when another run got there first.
    pub fn claim<A: Serialize>(&self, config: &RunConfig<A>) -> Result<bool> {
        let path = self.config_path();
        match create_new_atomic(&path, &config_text(&path, config)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Rewrites config.json on resume, atomically (a run killed while writing it leaves
    /// the old file or the new one, never a short one).
    pub fn rewrite_config<A: Serialize>(&self, config: &RunConfig<A>) -> Result<()> {
        let path = self.config_path();
        write_bytes_atomic(&path, &config_text(&path, config)?)
    }

    /// The config.json of the run in `dir`, as JSON.
    pub fn read_config(dir: &Path) -> Result<serde_json::Value> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Input(format!("{} is not valid JSON: {e}", path.display())))
    }

    /// Restores `net` and `state` from the folder's checkpoint, if it has one, for a
    /// run of `epochs` epochs.
    pub fn resume(
        &self,
        net: &mut Sequential,
        state: &mut TrainState,
        epochs: usize,
    ) -> Result<Resume> {
        let path = self.checkpoint_path();
        if !path.exists() {
            return Ok(Resume::Fresh);
        }
        let extra = crate::checkpoint::load(&path, net, state)?;
        let best = Best::from_json(&extra);
        if state.epoch >= epochs && state.step_in_epoch == 0 && self.final_path().exists() {
            Ok(Resume::Finished { best })
        } else {
            Ok(Resume::Continue { best })
        }
    }

    /// Trains `net` from `state` (fresh, or restored by [`RunDir::resume`] with `best`
    /// its best epoch so far), writing the metrics, best model and checkpoints as it
    /// goes; returns the best epoch. On interruption the checkpoint is saved and the
    /// error is [`Error::Interrupted`].
    #[allow(clippy::too_many_arguments)]
    pub fn train(
        &self,
        net: &mut Sequential,
        state: &mut TrainState,
        train_set: &Dataset,
        val: Option<&Dataset>,
        test: Option<&Dataset>,
        cfg: &TrainConfig,
        opts: &RunOptions,
        best: Option<Best>,
        progress: &mut dyn Progress,
    ) -> Result<Option<Best>> {
        let metrics = self.open_metrics(state.epoch)?;
        let mut observer = RunObserver {
            run: self,
            opts,
            best,
            metrics,
            progress,
        };
        crate::train::train(net, state, train_set, val, test, cfg, &mut observer)?;
        Ok(observer.best)
    }

    /// Opens metrics.jsonl for appending, first dropping lines of epochs after `done`
    /// (written after the last checkpoint by a run that was then killed).
    fn open_metrics(&self, done: usize) -> Result<std::fs::File> {
        let path = self.metrics_path();
        let kept: String = match std::fs::read_to_string(&path) {
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
        write_bytes_atomic(&path, kept.as_bytes())?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(path, e))
    }

    /// The last epoch's figures, from metrics.jsonl (a resumed run has only some in
    /// memory).
    pub fn last_metrics(&self) -> Result<EpochReport> {
        let path = self.metrics_path();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let bad = |what: &str| Error::Data {
            path: path.clone(),
            message: what.to_string(),
        };
        let last = text.lines().last().ok_or_else(|| bad("it is empty"))?;
        serde_json::from_str(last).map_err(|e| bad(&format!("a malformed line ({e})")))
    }

    /// Writes the trained model to final.safetensors and returns its path.
    pub fn save_final(&self, net: &Sequential, info: &ModelInfo) -> Result<PathBuf> {
        let path = self.final_path();
        model::save(&path, net, info)?;
        Ok(path)
    }

    /// Writes one image of `ds` (one channel) as `sample-LABEL.png` into the folder, so
    /// that a suggested predict command works as printed. `None` when it cannot.
    pub fn write_sample_digit(&self, ds: &Dataset) -> Option<PathBuf> {
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
        let path = self.dir.join(format!("sample-{}.png", y[0]));
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
}

/// config.json's text: pretty JSON and a newline.
fn config_text<A: Serialize>(path: &Path, config: &RunConfig<A>) -> Result<Vec<u8>> {
    let text = serde_json::to_string_pretty(config)
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    Ok((text + "\n").into_bytes())
}

/// The training loop's observer for a run folder.
struct RunObserver<'a, 'o> {
    run: &'a RunDir,
    opts: &'a RunOptions<'o>,
    best: Option<Best>,
    metrics: std::fs::File,
    progress: &'a mut dyn Progress,
}

impl RunObserver<'_, '_> {
    fn checkpoint(&self, net: &mut Sequential, state: &TrainState) -> Result<()> {
        crate::checkpoint::save(
            &self.run.checkpoint_path(),
            net,
            state,
            Best::to_json(self.best),
        )
    }
}

impl Observer for RunObserver<'_, '_> {
    fn on_step(
        &mut self,
        net: &mut Sequential,
        state: &TrainState,
        steps: usize,
        loss: f32,
    ) -> Result<()> {
        if self
            .opts
            .interrupt
            .is_some_and(|f| f.load(Ordering::SeqCst))
        {
            self.checkpoint(net, state)?;
            return Err(Error::Interrupted(format!(
                "interrupted in epoch {}, step {} of {steps}; checkpoint saved",
                state.epoch + 1,
                state.step_in_epoch,
            )));
        }
        let global_step = state.epoch * steps + state.step_in_epoch;
        let every = self.opts.checkpoint_every;
        if every > 0 && global_step % every == 0 {
            self.checkpoint(net, state)?;
        }
        self.progress.step(state, steps, loss)
    }

    fn on_epoch(
        &mut self,
        r: &EpochReport,
        net: &mut Sequential,
        state: &TrainState,
    ) -> Result<()> {
        let line = serde_json::to_string(r).unwrap_or_default();
        writeln!(self.metrics, "{line}").map_err(|e| Error::io(self.run.metrics_path(), e))?;
        if let Some(val) = r.val_accuracy {
            if Best::is_new_best(val, self.best.as_ref()) {
                self.best = Some(Best {
                    epoch: r.epoch,
                    val_accuracy: val,
                    test_accuracy: r.test_accuracy,
                });
                model::save(&self.run.best_path(), net, &self.opts.info)?;
            }
        }
        self.checkpoint(net, state)?;
        self.progress.epoch(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Recipe;

    fn config() -> RunConfig {
        RunConfig {
            args: serde_json::json!({ "seed": 1 }),
            name: "tiny".into(),
            spec: String::new(),
            input: vec![1, 4, 4],
            data: "random".into(),
            train_images: 12,
            epochs: 2,
            batch_size: 4,
            optimizer: "sgd".into(),
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            l2: 0.0,
            lr_decay: 1.0,
            init: "pytorch".into(),
            expand: false,
            shuffle: true,
            seed: 1,
            threads: 1,
            normalize: None,
            seqnet_version: "test".into(),
        }
    }

    fn tiny() -> (Sequential, Dataset) {
        let images: Vec<f32> = (0..12 * 16).map(|i| (i % 7) as f32 / 7.0).collect();
        let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
        let ds = Dataset::new("random", images, labels, [1, 4, 4], 3).unwrap();
        let net = crate::spec::build("Flatten() -> Linear(16, 3)", &[1, 4, 4], 1).unwrap();
        (net, ds)
    }

    #[test]
    fn only_the_first_run_claims_a_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        assert_eq!(RunDir::existing_run_file(&dir), None);
        let a = RunDir::open(&dir).unwrap();
        let b = RunDir::open(&dir).unwrap();
        assert!(a.claim(&config()).unwrap());
        assert!(!b.claim(&config()).unwrap());
        assert_eq!(RunDir::existing_run_file(&dir), Some("config.json"));
        assert_eq!(RunDir::read_config(&dir).unwrap()["args"]["seed"], 1);
    }

    #[test]
    fn new_folders_in_one_second_get_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunDir::new_in(tmp.path(), "seed-x").unwrap();
        let b = RunDir::new_in(tmp.path(), "seed-x").unwrap();
        assert_eq!(a.path(), tmp.path().join("seed-x"));
        assert_eq!(b.path(), tmp.path().join("seed-x-2"));
    }

    /// A run stopped after its first epoch and resumed ends with the weights of a run
    /// left alone, and its metrics.jsonl has each epoch once.
    #[test]
    fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
        let tmp = tempfile::tempdir().unwrap();
        let recipe = Recipe {
            epochs: 2,
            batch_size: 4,
            ..Recipe::CUSTOM
        };
        let cfg = recipe.train_config();
        let opts = RunOptions::default();

        let (mut whole, ds) = tiny();
        let run = RunDir::open(tmp.path().join("whole")).unwrap();
        let mut state = TrainState::new(recipe.optimizer(ds.len()), 1);
        let train = |run: &RunDir, net: &mut Sequential, state: &mut TrainState, cfg| {
            run.train(net, state, &ds, Some(&ds), None, cfg, &opts, None, &mut ())
        };
        train(&run, &mut whole, &mut state, &cfg).unwrap();

        let (mut first, _) = tiny();
        let run = RunDir::open(tmp.path().join("parts")).unwrap();
        let mut state = TrainState::new(recipe.optimizer(ds.len()), 1);
        let one = TrainConfig {
            epochs: 1,
            ..cfg.clone()
        };
        let best = train(&run, &mut first, &mut state, &one).unwrap();
        assert_eq!(best.map(|b| b.epoch), Some(1));
        // A line from an epoch after the checkpoint, as a run killed then leaves.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(run.metrics_path())
            .unwrap();
        writeln!(f, "{{\"epoch\": 2}}").unwrap();

        let (mut resumed, _) = tiny();
        let mut state = TrainState::new(recipe.optimizer(ds.len()), 1);
        let found = run.resume(&mut resumed, &mut state, 2).unwrap();
        let Resume::Continue { best } = found else {
            panic!("{found:?}")
        };
        run.train(
            &mut resumed,
            &mut state,
            &ds,
            Some(&ds),
            None,
            &cfg,
            &opts,
            best,
            &mut (),
        )
        .unwrap();
        for ((name, a), (_, b)) in whole.named_params().into_iter().zip(resumed.named_params()) {
            assert_eq!(a.value.data(), b.value.data(), "{name}");
        }
        let text = std::fs::read_to_string(run.metrics_path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(run.last_metrics().unwrap().epoch, 2);

        run.save_final(&resumed, &ModelInfo::for_net(&resumed))
            .unwrap();
        let mut state = TrainState::new(recipe.optimizer(ds.len()), 1);
        let found = run.resume(&mut resumed, &mut state, 2).unwrap();
        assert!(matches!(found, Resume::Finished { .. }), "{found:?}");
    }

    #[test]
    fn an_interrupted_run_saves_a_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut net, ds) = tiny();
        let run = RunDir::open(tmp.path()).unwrap();
        let stop = AtomicBool::new(true);
        let opts = RunOptions {
            interrupt: Some(&stop),
            ..RunOptions::default()
        };
        let recipe = Recipe::CUSTOM;
        let mut state = TrainState::new(recipe.optimizer(ds.len()), 1);
        let cfg = recipe.train_config();
        let err = run
            .train(
                &mut net,
                &mut state,
                &ds,
                None,
                None,
                &cfg,
                &opts,
                None,
                &mut (),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Interrupted(_)), "{err}");
        assert!(run.checkpoint_path().exists());
    }

    #[test]
    fn a_tie_with_the_best_validation_accuracy_moves_the_best_epoch_later() {
        let best = |v| Best {
            epoch: 1,
            val_accuracy: v,
            test_accuracy: None,
        };
        assert!(Best::is_new_best(0.9, None));
        assert!(Best::is_new_best(0.95, Some(&best(0.9))));
        assert!(Best::is_new_best(0.95, Some(&best(0.95))));
        assert!(!Best::is_new_best(0.94, Some(&best(0.95))));
    }
}
