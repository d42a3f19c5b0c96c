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
//! Beside the folders, `latest` links to the newest run ([`RunDir::mark_latest`]).
//!
//! Two runs started with the same folder cannot both win: config.json is created with
//! a first-come exclusive create, so the second stops before it writes anything.
//!
//! ```no_run
//! use seqnet::recipe::Recipe;
//! use seqnet::run_dir::{RunConfig, RunDir, RunOptions};
//!
//! # fn main() -> seqnet::Result<()> {
//! let data = seqnet::data::load(Some("mnist-5k"), None, seqnet::data::Split::Book)?;
//! let recipe = Recipe { epochs: 2, ..Recipe::book(60, 0.03, 0.1, false) };
//! let mut net = seqnet::spec::build(seqnet::presets::get("book-relu")?.spec, &data.train.shape, 1)?;
//! let init = recipe.initialise(&mut net, 1);
//!
//! let mut run = RunDir::open("runs/mine")?;
//! let config = RunConfig::new(serde_json::json!({}), "book-relu", &net, &recipe, &data, init, 1, 1);
//! if !run.claim(&config)? {
//!     panic!("another run holds runs/mine");
//! }
//! let mut state = recipe.new_state(data.train.len(), 1);
//! let opts = RunOptions::new(recipe.train_config(), seqnet::io::model::ModelInfo::for_net(&net));
//! let best = run.train(&mut net, &mut state, &data, &opts, &mut ())?;
//! run.save_final(&net, &opts.info)?;
//! println!("best epoch: {best:?}");
//! # Ok(()) }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::data::{Dataset, Splits};
use crate::error::{Error, Result};
use crate::io::model::{self, ModelInfo};
use crate::io::safetensors_file::{create_new_atomic, write_bytes_atomic};
use crate::recipe::Recipe;
use crate::schedule::Schedule;
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
    /// The data's name or path ([`Splits::dataset`]).
    pub dataset: String,
    /// "official" or "book".
    pub split: String,
    pub train_images: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: String,
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub l2: f32,
    /// The per-epoch factor of seqnet's decay ([`Schedule::Exponential`]); None for
    /// PyTorch's schedules.
    pub lr_decay: Option<f32>,
    /// The learning-rate schedule with all its arguments.
    pub schedule: Schedule,
    pub label_smoothing: f32,
    pub patience: Option<usize>,
    /// "book", "pytorch" or "from model".
    pub init: String,
    pub expand: bool,
    pub shuffle: bool,
    pub seed: u64,
    pub threads: usize,
    /// The means and the stds: one each, or one per channel.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
    /// The training images' random transforms, as torchvision's constructors (`None`:
    /// none).
    pub augment: Option<String>,
    /// The recipe in the one line the run printed when it started ([`Recipe::describe`]).
    pub recipe: String,
    pub seqnet_version: String,
}

impl<A> RunConfig<A> {
    /// The record of a run of `net` (already initialised as `init` says: "book",
    /// "pytorch" or "from model") trained on `data` by `recipe`; `args` is the caller's
    /// own record of its options.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        args: A,
        name: &str,
        net: &Sequential,
        recipe: &Recipe,
        data: &Splits,
        init: &str,
        seed: u64,
        threads: usize,
    ) -> Self {
        RunConfig {
            args,
            name: name.to_string(),
            spec: net.spec(),
            input: net.input_shape().to_vec(),
            data: data.source.clone(),
            dataset: data.dataset.clone(),
            split: data
                .split
                .clone()
                .unwrap_or_else(|| split_name(recipe.split()).to_string()),
            train_images: data.train.len(),
            epochs: recipe.epochs,
            batch_size: recipe.batch_size,
            optimizer: recipe.optimizer.name().to_string(),
            lr: recipe.lr,
            momentum: recipe.momentum,
            nesterov: recipe.nesterov,
            weight_decay: recipe.weight_decay,
            l2: recipe.l2,
            lr_decay: match recipe.schedule {
                Schedule::Exponential { gamma } => Some(gamma),
                _ => None,
            },
            schedule: recipe.schedule.clone(),
            label_smoothing: recipe.label_smoothing,
            patience: recipe.patience,
            init: init.to_string(),
            expand: recipe.expand,
            shuffle: recipe.shuffle,
            seed,
            threads,
            normalize: recipe
                .normalize
                .map(|n| (n.mean().to_vec(), n.std().to_vec())),
            augment: recipe.augment.map(|a| a.to_string()),
            recipe: recipe.describe(init),
            seqnet_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// "official" or "book", as config.json and model files record a split.
pub fn split_name(split: crate::data::Split) -> &'static str {
    match split {
        crate::data::Split::Official => "official",
        crate::data::Split::Book => "book",
    }
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
    Continue,
    /// The run had finished (final.safetensors is there), all its epochs or stopped
    /// early: the network holds its weights.
    Finished,
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

/// How [`RunDir::train`] trains, and keeps the run safe.
#[derive(Clone, Debug)]
pub struct RunOptions<'a> {
    /// Epochs, mini-batch, shuffling, learning-rate decay, normalisation
    /// ([`Recipe::train_config`]).
    pub config: TrainConfig,
    /// Written into best.safetensors beside the weights.
    pub info: ModelInfo,
    /// Mini-batches between checkpoints (0: only at the end of each epoch).
    pub checkpoint_every: usize,
    /// When set (by a signal handler, say), the run saves a checkpoint after the current
    /// step and stops with [`Error::Interrupted`].
    pub interrupt: Option<&'a AtomicBool>,
}

impl RunOptions<'_> {
    /// Checkpoints at the end of each epoch only, no interruption.
    pub fn new(config: TrainConfig, info: ModelInfo) -> Self {
        RunOptions {
            config,
            info,
            checkpoint_every: 0,
            interrupt: None,
        }
    }
}

/// A run's folder, and the best epoch of the run in it so far.
#[derive(Clone, Debug)]
pub struct RunDir {
    dir: PathBuf,
    best: Option<Best>,
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
        Ok(RunDir { dir, best: None })
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
                Ok(()) => return Ok(RunDir { dir, best: None }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => {}
                Err(e) => return Err(Error::io(dir, e)),
            }
        }
        unreachable!("the loop returns")
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Points `latest` beside the run folder (`runs/latest`) at it, so that commands
    /// can name the newest run without its timestamp: `runs/latest/final.safetensors`.
    /// A symbolic link, replaced atomically; where links cannot be made, a small file
    /// `latest.txt` holding the folder's name instead. A `latest` that is not a link
    /// (a user's own folder) is left alone. Returns the path written, if any.
    pub fn mark_latest(&self) -> Option<PathBuf> {
        let parent = self.dir.parent()?;
        let name = self.dir.file_name()?;
        let link = parent.join("latest");
        if link.exists() && !link.is_symlink() {
            return None;
        }
        #[cfg(unix)]
        {
            let tmp = parent.join(format!(".latest-{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            if std::os::unix::fs::symlink(name, &tmp).is_ok() {
                if std::fs::rename(&tmp, &link).is_ok() {
                    return Some(link);
                }
                let _ = std::fs::remove_file(&tmp);
            }
        }
        let file = parent.join("latest.txt");
        let text = format!("{}\n", name.to_string_lossy());
        write_bytes_atomic(&file, text.as_bytes()).ok()?;
        Some(file)
    }
    /// The epoch of the best validation accuracy so far (restored by
    /// [`RunDir::resume`], updated by [`RunDir::train`]).
    pub fn best(&self) -> Option<Best> {
        self.best
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

    /// Restores `net` and `state` (and the best epoch) from the folder's checkpoint, if
    /// it has one, for a run of `epochs` epochs.
    pub fn resume(
        &mut self,
        net: &mut Sequential,
        state: &mut TrainState,
        epochs: usize,
    ) -> Result<Resume> {
        let path = self.checkpoint_path();
        if !path.exists() {
            return Ok(Resume::Fresh);
        }
        let extra = crate::checkpoint::load(&path, net, state)?;
        self.best = Best::from_json(&extra);
        let done = state.epoch >= epochs || state.stopped_early;
        if done && state.step_in_epoch == 0 && self.final_path().exists() {
            Ok(Resume::Finished)
        } else {
            Ok(Resume::Continue)
        }
    }

    /// Trains `net` from `state` (fresh, or restored by [`RunDir::resume`]) on
    /// `data.train`, evaluating on `data.val` and `data.test` after each epoch, and
    /// writing the metrics, best model and checkpoints as it goes; returns the best
    /// epoch. On interruption the checkpoint is saved and the error is
    /// [`Error::Interrupted`].
    pub fn train(
        &mut self,
        net: &mut Sequential,
        state: &mut TrainState,
        data: &Splits,
        opts: &RunOptions,
        progress: &mut dyn Progress,
    ) -> Result<Option<Best>> {
        let metrics = self.open_metrics(state.epoch)?;
        let mut observer = RunObserver {
            run: self,
            opts,
            best: self.best,
            metrics,
            progress,
        };
        let (val, test) = (data.val.as_ref(), data.test.as_ref());
        let result = crate::train::train(
            net,
            state,
            &data.train,
            val,
            test,
            &opts.config,
            &mut observer,
        );
        self.best = observer.best;
        result.map(|_| self.best)
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
    /// that a suggested predict command works as printed. `None` when it cannot (or
    /// when seqnet was built without the `image` feature, which encodes PNG).
    #[cfg(not(feature = "image"))]
    pub fn write_sample_digit(&self, _ds: &Dataset) -> Option<PathBuf> {
        None
    }

    /// Writes one image of `ds` (one channel) as `sample-LABEL.png` into the folder, so
    /// that a suggested predict command works as printed. `None` when it cannot.
    #[cfg(feature = "image")]
    pub fn write_sample_digit(&self, ds: &Dataset) -> Option<PathBuf> {
        let colour = match ds.shape[0] {
            1 => image::ExtendedColorType::L8,
            3 => image::ExtendedColorType::Rgb8,
            _ => return None,
        };
        if ds.is_empty() {
            return None;
        }
        let (h, w) = (ds.shape[1], ds.shape[2]);
        let (x, y) = ds.batch(&[0]);
        let level = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        // C×H×W planes to the interleaved pixels a PNG holds.
        let c = ds.shape[0];
        let plane = h * w;
        let pixels: Vec<u8> = (0..plane * c)
            .map(|k| level(x.data()[(k % c) * plane + k / c]))
            .collect();
        let path = self.dir.join(format!("sample-{}.png", y[0]));
        image::save_buffer(&path, &pixels, w as u32, h as u32, colour).ok()?;
        Some(path)
    }
}

/// A sign, after an epoch, that training is not working — most often a learning rate
/// far too large (or, rarely, far too small). Training goes on (a finite loss may
/// recover); a loss that is not a number stops the run in [`crate::train::train`]
/// instead, keeping the last good checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum Trouble {
    /// The epoch's mean loss is far above that of a network that guesses uniformly.
    Exploding { loss: f64, guessing: f64 },
    /// Validation (else test) accuracy is no better than guessing.
    Chance {
        set: &'static str,
        accuracy: f64,
        classes: usize,
    },
}

impl Trouble {
    /// Losses above this many times ln(classes) (a uniform guess's) count as exploding.
    pub const EXPLODING: f64 = 10.0;
    /// Accuracies below this many times 1/classes count as chance.
    pub const CHANCE: f64 = 1.5;

    /// What `r`, an epoch of a network scoring `classes` classes, shows, if anything.
    pub fn of(r: &EpochReport, classes: usize) -> Option<Trouble> {
        let guessing = (classes.max(2) as f64).ln();
        if !r.train_loss.is_finite() || r.train_loss > Self::EXPLODING * guessing {
            return Some(Trouble::Exploding {
                loss: r.train_loss,
                guessing,
            });
        }
        let (set, accuracy) = match (r.val_accuracy, r.test_accuracy) {
            (Some(v), _) => ("validation", v),
            (None, Some(t)) => ("test", t),
            (None, None) => return None,
        };
        (classes > 1 && accuracy < Self::CHANCE / classes as f64).then_some(Trouble::Chance {
            set,
            accuracy,
            classes,
        })
    }
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trouble::Exploding { loss, guessing } => write!(
                f,
                "the training loss is {loss:.3e}, far above the {guessing:.2} of a network \
                 that guesses"
            ),
            Trouble::Chance {
                set,
                accuracy,
                classes,
            } => write!(
                f,
                "{set} accuracy is {:.2}%, chance level for {classes} classes ({:.2}%)",
                100.0 * accuracy,
                100.0 / *classes as f64
            ),
        }
    }
}

/// The time now, UTC, as `YYYYMMDD-HHMMSS`: a run folder's name after the network's
/// (`runs/seed-20261203-090000`), so that folders sort by when they were made.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    stamp(secs)
}

/// `secs` after 1970-01-01 00:00 UTC as `YYYYMMDD-HHMMSS`.
fn stamp(secs: u64) -> String {
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
        if every > 0 && global_step.is_multiple_of(every) {
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
        if let Some(val) = r.val_accuracy
            && Best::is_new_best(val, self.best.as_ref())
        {
            self.best = Some(Best {
                epoch: r.epoch,
                val_accuracy: val,
                test_accuracy: r.test_accuracy,
            });
            model::save(&self.run.best_path(), net, &self.opts.info)?;
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
            dataset: "random".into(),
            split: "official".into(),
            train_images: 12,
            epochs: 2,
            batch_size: 4,
            optimizer: "sgd".into(),
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            l2: 0.0,
            lr_decay: Some(1.0),
            schedule: Schedule::CONSTANT,
            label_smoothing: 0.0,
            patience: None,
            init: "pytorch".into(),
            expand: false,
            shuffle: true,
            seed: 1,
            threads: 1,
            normalize: None,
            augment: None,
            recipe: String::new(),
            seqnet_version: "test".into(),
        }
    }

    /// A one-layer network and twelve 4×4 images of three classes, as both the
    /// training and the validation set.
    fn tiny() -> (Sequential, Splits) {
        let images: Vec<f32> = (0..12 * 16).map(|i| (i % 7) as f32 / 7.0).collect();
        let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
        let ds = Dataset::new("random", images, labels, [1, 4, 4], 3).unwrap();
        let net = crate::spec::build("Flatten() -> Linear(16, 3)", &[1, 4, 4], 1).unwrap();
        let data = Splits {
            train: ds.clone(),
            val: Some(ds),
            test: None,
            source: "random".into(),
            dataset: "random".into(),
            classes: None,
            normalize: None,
            split: None,
        };
        (net, data)
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
    fn exploding_losses_and_chance_accuracy_are_trouble() {
        let r = |loss: f64, val: Option<f64>, test: Option<f64>| EpochReport {
            epoch: 1,
            train_loss: loss,
            val_accuracy: val,
            test_accuracy: test,
            seconds: 1.0,
            images_per_second: 1.0,
            lr: 0.1,
        };
        assert_eq!(Trouble::of(&r(0.3, Some(0.97), Some(0.1)), 10), None);
        assert_eq!(Trouble::of(&r(2.3, None, None), 10), None);
        let t = Trouble::of(&r(2e23, None, Some(0.5)), 10).unwrap();
        assert!(matches!(t, Trouble::Exploding { .. }), "{t:?}");
        assert!(t.to_string().contains("2.000e23"), "{t}");
        let t = Trouble::of(&r(2.3, None, Some(0.089)), 10).unwrap();
        assert_eq!(
            t.to_string(),
            "test accuracy is 8.90%, chance level for 10 classes (10.00%)"
        );
        let t = Trouble::of(&r(2.3, Some(0.1), Some(0.9)), 10).unwrap();
        assert!(t.to_string().starts_with("validation accuracy"), "{t}");
    }

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(stamp(0), "19700101-000000");
        // 2000-02-29 (a leap day) 12:34:56.
        assert_eq!(stamp(951_827_696), "20000229-123456");
        assert_eq!(timestamp().len(), "YYYYMMDD-HHMMSS".len());
    }

    #[test]
    fn latest_points_at_the_newest_run() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunDir::new_in(tmp.path(), "seed-1").unwrap();
        let b = RunDir::new_in(tmp.path(), "seed-2").unwrap();
        assert_eq!(a.mark_latest(), Some(tmp.path().join("latest")));
        std::fs::write(a.path().join("final.safetensors"), "a").unwrap();
        let latest = tmp.path().join("latest/final.safetensors");
        assert_eq!(std::fs::read_to_string(&latest).unwrap(), "a");
        b.mark_latest().unwrap();
        std::fs::write(b.path().join("final.safetensors"), "b").unwrap();
        assert_eq!(std::fs::read_to_string(&latest).unwrap(), "b");
        // A folder of the user's named latest is not replaced.
        let own = tempfile::tempdir().unwrap();
        std::fs::create_dir(own.path().join("latest")).unwrap();
        let c = RunDir::new_in(own.path(), "seed-3").unwrap();
        assert_eq!(c.mark_latest(), None);
        assert!(own.path().join("latest").is_dir());
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
        let (mut whole, data) = tiny();
        let info = ModelInfo::for_net(&whole);
        let opts = RunOptions::new(recipe.train_config(), info.clone());
        let mut run = RunDir::open(tmp.path().join("whole")).unwrap();
        let mut state = recipe.new_state(data.train.len(), 1);
        run.train(&mut whole, &mut state, &data, &opts, &mut ())
            .unwrap();

        let (mut first, _) = tiny();
        let mut run = RunDir::open(tmp.path().join("parts")).unwrap();
        let mut state = recipe.new_state(data.train.len(), 1);
        let mut one = opts.clone();
        one.config.epochs = 1;
        let best = run
            .train(&mut first, &mut state, &data, &one, &mut ())
            .unwrap();
        assert_eq!(best.map(|b| b.epoch), Some(1));
        // A line from an epoch after the checkpoint, as a run killed then leaves.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(run.metrics_path())
            .unwrap();
        writeln!(f, "{{\"epoch\": 2}}").unwrap();

        let mut run = RunDir::open(tmp.path().join("parts")).unwrap();
        let (mut resumed, _) = tiny();
        let mut state = recipe.new_state(data.train.len(), 1);
        assert_eq!(
            run.resume(&mut resumed, &mut state, 2).unwrap(),
            Resume::Continue
        );
        assert_eq!(run.best(), best);
        run.train(&mut resumed, &mut state, &data, &opts, &mut ())
            .unwrap();
        for ((name, a), (_, b)) in whole.named_params().into_iter().zip(resumed.named_params()) {
            assert_eq!(a.value.data(), b.value.data(), "{name}");
        }
        let text = std::fs::read_to_string(run.metrics_path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(run.last_metrics().unwrap().epoch, 2);

        run.save_final(&resumed, &info).unwrap();
        let mut state = recipe.new_state(data.train.len(), 1);
        assert_eq!(
            run.resume(&mut resumed, &mut state, 2).unwrap(),
            Resume::Finished
        );
    }

    /// Stops the run (through its interrupt flag) after `after` steps, and records the
    /// learning rate and β1 of every step.
    struct StopAfter<'a> {
        flag: &'a AtomicBool,
        after: usize,
        rates: Vec<(f32, f32)>,
    }

    impl Progress for StopAfter<'_> {
        fn step(&mut self, state: &TrainState, _steps: usize, _loss: f32) -> Result<()> {
            self.rates
                .push((state.optimizer.lr, state.optimizer.kind.momentum()));
            if self.rates.len() == self.after {
                self.flag.store(true, Ordering::SeqCst);
            }
            Ok(())
        }
    }

    /// A run stopped in the middle of an epoch under a per-step schedule (OneCycle,
    /// cycling AdamW's β1, with label smoothing) resumes at the same step of the
    /// schedule: the same rates from there on, and bitwise the same weights.
    #[test]
    fn a_run_stopped_mid_epoch_resumes_its_schedule_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let mut recipe = Recipe {
            epochs: 3,
            batch_size: 4,
            label_smoothing: 0.1,
            schedule: Schedule::OneCycle(crate::schedule::OneCycle::new(0.02)),
            ..Recipe::CUSTOM
        };
        recipe.use_optimizer(crate::recipe::OptimizerChoice::AdamW);
        let (mut whole, data) = tiny();
        let info = ModelInfo::for_net(&whole);
        let opts = RunOptions::new(recipe.train_config(), info.clone());
        let never = AtomicBool::new(false);
        let mut all = StopAfter {
            flag: &never,
            after: usize::MAX,
            rates: Vec::new(),
        };
        let mut run = RunDir::open(tmp.path().join("whole")).unwrap();
        let mut state = recipe.new_state(data.train.len(), 1);
        run.train(&mut whole, &mut state, &data, &opts, &mut all)
            .unwrap();
        assert_eq!(all.rates.len(), 9);

        // The flag set after step 4 is seen at the end of step 5: mid-epoch 2.
        let stop = AtomicBool::new(false);
        let mut first = StopAfter {
            flag: &stop,
            after: 4,
            rates: Vec::new(),
        };
        let interrupting = RunOptions {
            interrupt: Some(&stop),
            ..opts.clone()
        };
        let (mut parts, _) = tiny();
        let mut run = RunDir::open(tmp.path().join("parts")).unwrap();
        let mut state = recipe.new_state(data.train.len(), 1);
        let err = run
            .train(&mut parts, &mut state, &data, &interrupting, &mut first)
            .unwrap_err();
        assert!(matches!(err, Error::Interrupted(_)), "{err}");
        assert_eq!((state.epoch, state.step_in_epoch), (1, 2));

        // Another schedule cannot take the run over.
        let mut other = Recipe {
            schedule: Schedule::CONSTANT,
            ..recipe.clone()
        }
        .new_state(data.train.len(), 1);
        let (mut net, _) = tiny();
        let err = run.resume(&mut net, &mut other, 3).unwrap_err().to_string();
        assert!(err.contains("schedule"), "{err}");

        let (mut resumed, _) = tiny();
        let mut state = recipe.new_state(data.train.len(), 1);
        assert_eq!(
            run.resume(&mut resumed, &mut state, 3).unwrap(),
            Resume::Continue
        );
        let mut rest = StopAfter {
            flag: &never,
            after: usize::MAX,
            rates: Vec::new(),
        };
        run.train(&mut resumed, &mut state, &data, &opts, &mut rest)
            .unwrap();
        // The interrupted step's own progress report never came (the run stopped first).
        assert_eq!(first.rates, all.rates[..4]);
        assert_eq!(rest.rates, all.rates[5..]);
        for ((name, a), (_, b)) in whole.named_params().into_iter().zip(resumed.named_params()) {
            assert_eq!(a.value.data(), b.value.data(), "{name}");
        }
    }

    /// With a learning rate of 0 the validation accuracy never rises after the first
    /// epoch: patience 2 stops the run after epoch 3 of 10, and a resume of it finds it
    /// finished.
    #[test]
    fn patience_stops_a_run_that_no_longer_improves() {
        let tmp = tempfile::tempdir().unwrap();
        let recipe = Recipe {
            epochs: 10,
            batch_size: 4,
            lr: 0.0,
            patience: Some(2),
            ..Recipe::CUSTOM
        };
        let (mut net, data) = tiny();
        let info = ModelInfo::for_net(&net);
        let opts = RunOptions::new(recipe.train_config(), info.clone());
        let mut run = RunDir::open(tmp.path()).unwrap();
        let mut state = recipe.new_state(data.train.len(), 1);
        run.train(&mut net, &mut state, &data, &opts, &mut ())
            .unwrap();
        assert!(state.stopped_early);
        assert_eq!(state.epoch, 3);
        assert_eq!(state.best_val.map(|(e, _)| e), Some(1));
        assert_eq!(run.last_metrics().unwrap().epoch, 3);
        run.save_final(&net, &info).unwrap();
        let mut again = recipe.new_state(data.train.len(), 1);
        assert_eq!(
            run.resume(&mut net, &mut again, 10).unwrap(),
            Resume::Finished
        );
        assert!(again.stopped_early);

        // Without a validation set there is nothing to watch.
        let no_val = Splits {
            val: None,
            ..data.clone()
        };
        let mut state = recipe.new_state(data.train.len(), 1);
        let err = RunDir::open(tmp.path().join("b"))
            .unwrap()
            .train(&mut net, &mut state, &no_val, &opts, &mut ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no validation set"), "{err}");
    }

    #[test]
    fn an_interrupted_run_saves_a_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut net, data) = tiny();
        let mut run = RunDir::open(tmp.path()).unwrap();
        let stop = AtomicBool::new(true);
        let recipe = Recipe::CUSTOM;
        let opts = RunOptions {
            interrupt: Some(&stop),
            ..RunOptions::new(recipe.train_config(), ModelInfo::for_net(&net))
        };
        let mut state = recipe.new_state(data.train.len(), 1);
        let err = run
            .train(&mut net, &mut state, &data, &opts, &mut ())
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
