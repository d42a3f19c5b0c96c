//! What `seqnet train` shows while and after it trains: the progress bar, one line per
//! epoch, `--json` objects and the closing summary. The run folder's files are the
//! library's ([`seqnet::run_dir`]); only the drawing is here.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use seqnet::run_dir::{Best, Progress, RunDir, Trouble};
use seqnet::train::{EpochReport, TrainState};

/// Draws a run's progress on standard error (and `--json` lines on standard output).
pub(super) struct Show {
    pub bar: Option<ProgressBar>,
    pub json: bool,
    pub quiet: bool,
    /// Redraw curves.png in this run folder after each epoch (`--plot`).
    #[cfg_attr(not(feature = "viz"), allow(dead_code))]
    pub plot: Option<RunDir>,
    pub epochs: usize,
    pub batch_size: usize,
    /// The learning rate the run was given (`--lr` or the recipe's; OneCycle's
    /// `--max-lr`), for warnings.
    pub lr: f32,
    /// The option that sets it: "--lr", or "--max-lr" for OneCycle.
    pub lr_flag: &'static str,
    /// The classes the network scores, for the chance-level warning.
    pub classes: usize,
    /// Whether a warning about the learning rate has been printed (once is enough).
    pub warned: bool,
}

impl Progress for Show {
    fn step(&mut self, state: &TrainState, steps: usize, loss: f32) -> seqnet::Result<()> {
        if let Some(bar) = &self.bar {
            if state.step_in_epoch == 1 {
                bar.reset();
                bar.set_length(steps as u64);
                bar.set_prefix(format!("epoch {}/{}", state.epoch + 1, self.epochs));
            }
            bar.set_position(state.step_in_epoch as u64);
            if state.step_in_epoch.is_multiple_of(20) || state.step_in_epoch == steps {
                let rate = bar.per_sec() * self.batch_size as f64;
                bar.set_message(format!("loss {loss:.4} {rate:.0} img/s"));
            }
        }
        Ok(())
    }

    fn epoch(&mut self, r: &EpochReport) -> seqnet::Result<()> {
        #[cfg(feature = "viz")]
        if let Some(run) = &self.plot {
            seqnet::viz::curves_png(run.metrics_path(), run.path().join("curves.png"))?;
        }
        if self.json {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
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
            self.say(msg);
            if let Some(trouble) = Trouble::of(r, self.classes).filter(|_| !self.warned) {
                self.warned = true;
                self.say(super::wrap(&format!(
                    "warning: after epoch {}, {trouble}: training is not working. The learning \
                     rate is probably too large (or, rarely, too small): this run has {flag} \
                     {}{}; try {flag} {} (a tenth).",
                    r.epoch,
                    super::fmt_lr(self.lr),
                    if r.lr != self.lr {
                        format!(" (now {} by its schedule)", super::fmt_lr(r.lr))
                    } else {
                        String::new()
                    },
                    super::tenth(self.lr),
                    flag = self.lr_flag,
                )));
            }
        }
        Ok(())
    }
}

impl Show {
    /// A line on standard error, above the progress bar if there is one.
    fn say(&self, msg: String) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

pub(super) fn new_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        // wide_bar takes what the terminal's width leaves, so the line never wraps.
        ProgressStyle::with_template("{prefix} [{wide_bar}] {pos}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// SIGINT and SIGTERM set a flag; the training loop checks it after each step.
pub(super) fn install_signal_handler() -> &'static AtomicBool {
    static FLAG: AtomicBool = AtomicBool::new(false);
    // Fails only if a handler is already installed (a second run in one process).
    let _ = ctrlc::set_handler(|| FLAG.store(true, Ordering::SeqCst));
    &FLAG
}

/// The final `--json` object: the book's figure (test accuracy at the best validation
/// epoch), the last epoch's, and where the model is.
pub(super) fn final_json(
    best: &Option<Best>,
    last: &EpochReport,
    final_path: &Path,
    stopped_early: bool,
) -> serde_json::Value {
    serde_json::json!({
        "final": true,
        "epochs": last.epoch,
        "stopped_early": stopped_early,
        "best_epoch": best.as_ref().map(|b| b.epoch),
        "test_accuracy_at_best_val": best.as_ref().and_then(|b| b.test_accuracy),
        "val_accuracy_best": best.as_ref().map(|b| b.val_accuracy),
        "test_accuracy": last.test_accuracy,
        "model": final_path.display().to_string(),
    })
}

/// The closing lines: test accuracy, the book's figure, where the model is and a
/// predict command to try it with.
pub(super) fn print_summary(
    last: &EpochReport,
    best: Option<&Best>,
    final_path: &Path,
    sample: Option<&Path>,
) {
    if let Some(acc) = last.test_accuracy {
        eprintln!(
            "test accuracy after {} epoch{}: {:.2}%",
            last.epoch,
            super::plural(last.epoch),
            100.0 * acc
        );
    }
    if let Some(Best {
        epoch,
        val_accuracy,
        test_accuracy: Some(test_acc),
    }) = best
    {
        let text = format!(
            "best validation accuracy {:.2}% at epoch {epoch}; test accuracy then: {:.2}% \
             (the book's protocol)",
            100.0 * val_accuracy,
            100.0 * test_acc
        );
        eprintln!("{}", super::wrap(&text));
    }
    eprintln!("model saved to {}", final_path.display());
    let me = super::invocation();
    match sample {
        Some(png) => eprintln!(
            "try it:  {me} predict --model {} {}",
            final_path.display(),
            png.display()
        ),
        None => eprintln!(
            "try it:  {me} predict --model {} digit.png",
            final_path.display()
        ),
    }
}
