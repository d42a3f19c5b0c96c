//! Learning-rate schedules, each one of PyTorch's `torch.optim.lr_scheduler` classes:
//! the same learning rate at the same step, so that a recipe written for PyTorch trains
//! the same way here.
//!
//! A schedule is a pure function of where training is ([`Position`]: epoch, mini-batch,
//! and the run's length), not a stateful object stepped along: a resumed run asks for
//! the rate at its position and gets the one the uninterrupted run used, bit for bit.
//! Rates are computed in f64 from PyTorch's closed forms (as PyTorch computes them in
//! Python floats) and rounded to f32 when the optimiser uses them, as PyTorch's kernels
//! do; the one exception is [`Schedule::Exponential`], seqnet's own per-epoch decay,
//! which multiplies an f32 by γ once per epoch, as seqnet always has, so the book's
//! presets and the seed recipe keep their weights bitwise.
//!
//! | schedule | steps per | PyTorch |
//! | --- | --- | --- |
//! | [`Schedule::Exponential`] | epoch | `ExponentialLR(gamma)` (γ = 1: constant) |
//! | [`Schedule::Step`] | epoch | `StepLR(step_size, gamma)` |
//! | [`Schedule::MultiStep`] | epoch | `MultiStepLR(milestones, gamma)` |
//! | [`Schedule::Cosine`] | epoch (step after a warm-up in steps) | `CosineAnnealingLR(T_max, eta_min)`, after `LinearLR` in a `SequentialLR` when it has a warm-up |
//! | [`Schedule::OneCycle`] | mini-batch | `OneCycleLR(max_lr, epochs, steps_per_epoch)`, cos, two phases, `cycle_momentum` |
//! | [`Schedule::LinearWarmup`] | epoch or mini-batch | `LinearLR(start_factor, 1.0, total_iters)`, then constant |
//!
//! ```
//! use seqnet::schedule::{OneCycle, Position, Schedule};
//!
//! // OneCycleLR(max_lr=0.1, epochs=2, steps_per_epoch=5): the first step runs at
//! // max_lr / div_factor, with momentum (or Adam's β1) at max_momentum.
//! let s = Schedule::OneCycle(OneCycle::new(0.1));
//! let first = s.at(0.1, Position { epoch: 0, step_in_epoch: 0, steps_per_epoch: 5, epochs: 2 });
//! assert_eq!(first.lr, 0.004);
//! assert_eq!(first.momentum, Some(0.95));
//! // StepLR(step_size=2, gamma=0.5) in epoch 3 (the fourth): 0.1 · 0.5¹.
//! let step = Schedule::Step { step_size: 2, gamma: 0.5 };
//! let p = Position { epoch: 3, step_in_epoch: 0, steps_per_epoch: 5, epochs: 6 };
//! assert_eq!(step.at(0.1, p).lr, 0.05);
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which learning rate (and momentum) each step of a run uses. `base_lr` in the methods
/// is the recipe's learning rate (PyTorch's `lr` given to the optimiser, its
/// `initial_lr`); [`Schedule::OneCycle`] brings its own `max_lr` instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    /// The rate times `gamma` after every epoch (seqnet's `--lr-decay`; γ = 1 keeps it
    /// constant). PyTorch: `ExponentialLR(optimizer, gamma)` stepped once per epoch.
    /// The product is taken in f32, one epoch at a time.
    Exponential { gamma: f32 },
    /// The rate times `gamma` every `step_size` epochs: `base_lr · γ^⌊epoch / step_size⌋`.
    /// PyTorch: `StepLR(optimizer, step_size, gamma=0.1)`.
    Step { step_size: usize, gamma: f64 },
    /// The rate times `gamma` at each epoch of `milestones` (increasing):
    /// `base_lr · γ^(milestones ≤ epoch)`. PyTorch: `MultiStepLR(optimizer, milestones,
    /// gamma=0.1)`.
    #[serde(rename = "multistep")]
    MultiStep { milestones: Vec<usize>, gamma: f64 },
    /// Half a cosine from `base_lr` down to `eta_min` over `t_max` epochs:
    /// `η_min + (base_lr − η_min)·(1 + cos(π·t / T_max))/2`. PyTorch:
    /// `CosineAnnealingLR(optimizer, T_max, eta_min=0)`. `t_max` None: the run's epochs
    /// (after the warm-up, if any).
    ///
    /// With a `warmup`, the rate first climbs linearly ([`Schedule::LinearWarmup`]'s
    /// rule) and the cosine starts at `base_lr` when it ends, as PyTorch's
    /// `SequentialLR(optimizer, [LinearLR(optimizer, start_factor, total_iters=W),
    /// CosineAnnealingLR(optimizer, T_max, eta_min)], milestones=[W])`; a warm-up counted
    /// in mini-batches makes the cosine count mini-batches too (both stepped per batch).
    Cosine {
        t_max: Option<usize>,
        eta_min: f64,
        warmup: Option<Warmup>,
    },
    /// One cycle, stepped every mini-batch (see [`OneCycle`]). PyTorch:
    /// `OneCycleLR(optimizer, max_lr, epochs, steps_per_epoch)`.
    #[serde(rename = "onecycle")]
    OneCycle(OneCycle),
    /// A linear climb from `start_factor · base_lr` to `base_lr` over the warm-up, then
    /// `base_lr`: `base_lr · (f + (1 − f)·min(t, W)/W)`. PyTorch: `LinearLR(optimizer,
    /// start_factor, end_factor=1.0, total_iters=W)`, stepped per epoch or per mini-batch
    /// as the warm-up counts.
    LinearWarmup(Warmup),
}

/// A linear warm-up: `iters` epochs or mini-batches, starting at `start_factor` times the
/// rate. PyTorch: `LinearLR(optimizer, start_factor=1/3, end_factor=1.0, total_iters)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warmup {
    pub iters: usize,
    pub per: Per,
    /// In (0, 1]; PyTorch's default is 1/3.
    pub start_factor: f64,
}

impl Warmup {
    /// LinearLR's default start factor.
    pub const START_FACTOR: f64 = 1.0 / 3.0;

    /// `iters` epochs or mini-batches from LinearLR's default start factor (1/3).
    pub const fn new(iters: usize, per: Per) -> Warmup {
        Warmup {
            iters,
            per,
            start_factor: Self::START_FACTOR,
        }
    }

    /// LinearLR's closed form at `t`: `f + (1 − f)·min(t, W)/W`.
    fn factor(&self, t: usize) -> f64 {
        let f = self.start_factor;
        f + (1.0 - f) * t.min(self.iters) as f64 / self.iters as f64
    }
}

/// What a schedule counts: epochs (PyTorch's `scheduler.step()` after each epoch) or
/// mini-batches (after each `optimizer.step()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    Epoch,
    Step,
}

/// PyTorch's `OneCycleLR` with `anneal_strategy='cos'`, `three_phase=False`: from
/// `max_lr / div_factor` up to `max_lr` over the first `pct_start` of the run's
/// mini-batches, then down to `max_lr / div_factor / final_div_factor`, each half a
/// cosine. With `cycle_momentum` (PyTorch's default) the momentum moves the other way,
/// `max_momentum → base_momentum → max_momentum`: SGD's momentum, or Adam's β1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OneCycle {
    pub max_lr: f64,
    pub pct_start: f64,
    pub div_factor: f64,
    pub final_div_factor: f64,
    pub cycle_momentum: bool,
    pub base_momentum: f64,
    pub max_momentum: f64,
}

impl OneCycle {
    /// PyTorch's defaults: `pct_start=0.3`, `div_factor=25`, `final_div_factor=1e4`,
    /// `cycle_momentum=True`, `base_momentum=0.85`, `max_momentum=0.95`.
    pub const fn new(max_lr: f64) -> OneCycle {
        OneCycle {
            max_lr,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
        }
    }

    /// The first phase's last step, as PyTorch's `float(pct_start * total_steps) - 1`.
    fn warm_end(&self, total: usize) -> f64 {
        self.pct_start * total as f64 - 1.0
    }

    /// Learning rate and momentum at global step `step` of `total`
    /// (`OneCycleLR.get_lr`).
    fn at(&self, step: usize, total: usize) -> (f64, f64) {
        let initial = self.max_lr / self.div_factor;
        let min_lr = initial / self.final_div_factor;
        let (end1, end2) = (self.warm_end(total), total as f64 - 1.0);
        let s = step as f64;
        // Phase 1 while step ≤ its end step; the last phase takes everything after.
        let (start_step, end_step, lrs, moms) = if s <= end1 {
            (
                0.0,
                end1,
                (initial, self.max_lr),
                (self.max_momentum, self.base_momentum),
            )
        } else {
            (
                end1,
                end2,
                (self.max_lr, min_lr),
                (self.base_momentum, self.max_momentum),
            )
        };
        let pct = (s - start_step) / (end_step - start_step);
        (
            anneal_cos(lrs.0, lrs.1, pct),
            anneal_cos(moms.0, moms.1, pct),
        )
    }
}

/// `OneCycleLR._annealing_cos`: cosine from `start` to `end` as `pct` goes 0 → 1.
fn anneal_cos(start: f64, end: f64, pct: f64) -> f64 {
    let cos_out = (std::f64::consts::PI * pct).cos() + 1.0;
    end + (start - end) / 2.0 * cos_out
}

/// Where a run is when it asks for a rate: the step about to be taken is mini-batch
/// `step_in_epoch` (from 0) of epoch `epoch` (from 0), in a run of `epochs` epochs of
/// `steps_per_epoch` mini-batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub steps_per_epoch: usize,
    pub epochs: usize,
}

impl Position {
    /// Mini-batches before this one since the run began (PyTorch's `last_epoch` of a
    /// scheduler stepped per batch).
    pub fn global_step(&self) -> usize {
        self.epoch * self.steps_per_epoch + self.step_in_epoch
    }

    /// Mini-batches in the whole run.
    pub fn total_steps(&self) -> usize {
        self.epochs * self.steps_per_epoch
    }

    /// The schedule's clock, and the run's length on it, counted `per`.
    fn clock(&self, per: Per) -> (usize, usize) {
        match per {
            Per::Epoch => (self.epoch, self.epochs),
            Per::Step => (self.global_step(), self.total_steps()),
        }
    }
}

/// A step's rates: the learning rate, and the momentum when the schedule sets it
/// (OneCycle with `cycle_momentum`: SGD's momentum, or Adam's β1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub lr: f32,
    pub momentum: Option<f32>,
}

impl Default for Schedule {
    /// A constant rate.
    fn default() -> Self {
        Schedule::CONSTANT
    }
}

impl Schedule {
    /// The rate the optimiser was given, at every step.
    pub const CONSTANT: Schedule = Schedule::Exponential { gamma: 1.0 };

    /// The rates for the step at `at`, in a run whose recipe's learning rate is
    /// `base_lr`.
    pub fn at(&self, base_lr: f32, at: Position) -> Rates {
        let base = typed(base_lr);
        let lr = |v: f64| Rates {
            lr: v as f32,
            momentum: None,
        };
        match self {
            Schedule::Exponential { gamma } => {
                // As seqnet's loop always did: lr *= γ in f32 after each epoch.
                let mut lr = base_lr;
                for _ in 0..at.epoch {
                    lr *= gamma;
                }
                Rates { lr, momentum: None }
            }
            // Python's float ** int is C's pow, as f64::powf.
            Schedule::Step { step_size, gamma } => {
                lr(base * gamma.powf((at.epoch / (*step_size).max(1)) as f64))
            }
            Schedule::MultiStep { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= at.epoch).count();
                lr(base * gamma.powf(passed as f64))
            }
            Schedule::Cosine {
                t_max,
                eta_min,
                warmup,
            } => {
                let per = warmup.map_or(Per::Epoch, |w| w.per);
                let (t, total) = at.clock(per);
                let w = warmup.map_or(0, |w| w.iters);
                match warmup {
                    Some(warm) if t < w => lr(base * warm.factor(t)),
                    _ => {
                        let t_max = t_max.unwrap_or(total.saturating_sub(w)).max(1);
                        let cos = (std::f64::consts::PI * (t - w) as f64 / t_max as f64).cos();
                        lr(eta_min + (base - eta_min) * (1.0 + cos) / 2.0)
                    }
                }
            }
            Schedule::OneCycle(c) => {
                let (l, m) = c.at(at.global_step(), at.total_steps());
                Rates {
                    lr: l as f32,
                    momentum: c.cycle_momentum.then_some(m as f32),
                }
            }
            Schedule::LinearWarmup(w) => lr(base * w.factor(at.clock(w.per).0)),
        }
    }

    /// Whether the rate can change within an epoch (so the rate of an epoch's report
    /// is its last step's).
    pub fn per_step(&self) -> bool {
        match self {
            Schedule::OneCycle(_) => true,
            Schedule::Cosine { warmup, .. } => warmup.is_some_and(|w| w.per == Per::Step),
            Schedule::LinearWarmup(w) => w.per == Per::Step,
            _ => false,
        }
    }

    /// The name `--schedule` takes: exponential (the `--lr-decay` one), step, multistep,
    /// cosine, onecycle, linear-warmup.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Exponential { .. } => "exponential",
            Schedule::Step { .. } => "step",
            Schedule::MultiStep { .. } => "multistep",
            Schedule::Cosine { .. } => "cosine",
            Schedule::OneCycle(_) => "onecycle",
            Schedule::LinearWarmup(_) => "linear-warmup",
        }
    }

    /// Refuses what PyTorch refuses (or would divide by zero on) for a run of `epochs`
    /// epochs of `steps_per_epoch` mini-batches, saying which argument and why.
    pub fn check(&self, epochs: usize, steps_per_epoch: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Input(format!("{}: {m}", self.pytorch_name())));
        let check_warmup = |w: &Warmup, what: &str| -> Result<()> {
            if w.iters == 0 {
                return bad(format!(
                    "a warm-up of 0 {what}; give at least 1 (total_iters ≥ 1)"
                ));
            }
            if !(w.start_factor > 0.0 && w.start_factor <= 1.0) {
                return bad(format!(
                    "start_factor {} must be in (0, 1], as LinearLR requires",
                    w.start_factor
                ));
            }
            Ok(())
        };
        match self {
            Schedule::Exponential { gamma } => {
                if !(gamma.is_finite() && *gamma > 0.0) {
                    return bad(format!("gamma {gamma} must be a positive finite number"));
                }
            }
            Schedule::Step { step_size, gamma } => {
                if *step_size == 0 {
                    return bad("step_size 0: give at least 1 epoch".into());
                }
                if !(gamma.is_finite() && *gamma > 0.0) {
                    return bad(format!("gamma {gamma} must be a positive finite number"));
                }
            }
            Schedule::MultiStep { milestones, gamma } => {
                if milestones.is_empty() {
                    return bad("no milestones; give epochs such as 10,20".into());
                }
                if milestones.windows(2).any(|p| p[0] >= p[1]) {
                    return bad(format!(
                        "milestones {milestones:?} must increase, as MultiStepLR requires"
                    ));
                }
                if !(gamma.is_finite() && *gamma > 0.0) {
                    return bad(format!("gamma {gamma} must be a positive finite number"));
                }
            }
            Schedule::Cosine {
                t_max,
                eta_min,
                warmup,
            } => {
                if !(eta_min.is_finite() && *eta_min >= 0.0) {
                    return bad(format!("eta_min {eta_min} must be a finite number ≥ 0"));
                }
                if *t_max == Some(0) {
                    return bad("T_max 0: give at least 1".into());
                }
                if let Some(w) = warmup {
                    let (total, what) = match w.per {
                        Per::Epoch => (epochs, "epochs"),
                        Per::Step => (epochs * steps_per_epoch, "mini-batches"),
                    };
                    check_warmup(w, what)?;
                    if t_max.is_none() && w.iters >= total {
                        return bad(format!(
                            "a warm-up of {} {what} leaves none of the run's {total} for the \
                             cosine; warm up for fewer",
                            w.iters
                        ));
                    }
                }
            }
            Schedule::OneCycle(c) => {
                let total = epochs * steps_per_epoch;
                for (name, v) in [
                    ("max_lr", c.max_lr),
                    ("div_factor", c.div_factor),
                    ("final_div_factor", c.final_div_factor),
                ] {
                    if !(v.is_finite() && v > 0.0) {
                        return bad(format!("{name} {v} must be a positive finite number"));
                    }
                }
                if !(0.0..=1.0).contains(&c.pct_start) {
                    return bad(format!("pct_start {} must be in [0, 1]", c.pct_start));
                }
                for (name, v) in [
                    ("base_momentum", c.base_momentum),
                    ("max_momentum", c.max_momentum),
                ] {
                    if !(0.0..1.0).contains(&v) {
                        return bad(format!("{name} {v} must be in [0, 1)"));
                    }
                }
                if total == 0 {
                    return bad("the run has no mini-batches".into());
                }
                // PyTorch divides by the first phase's length, pct_start·total − 1.
                if c.warm_end(total) == 0.0 {
                    return bad(format!(
                        "pct_start {} of {total} mini-batches makes a warm-up phase of one \
                         step, where OneCycleLR divides by zero; change --pct-start",
                        c.pct_start
                    ));
                }
            }
            Schedule::LinearWarmup(w) => {
                let what = match w.per {
                    Per::Epoch => "epochs",
                    Per::Step => "mini-batches",
                };
                check_warmup(w, what)?;
            }
        }
        Ok(())
    }

    /// PyTorch's class, for messages.
    pub fn pytorch_name(&self) -> &'static str {
        match self {
            Schedule::Exponential { .. } => "ExponentialLR",
            Schedule::Step { .. } => "StepLR",
            Schedule::MultiStep { .. } => "MultiStepLR",
            Schedule::Cosine { warmup: None, .. } => "CosineAnnealingLR",
            Schedule::Cosine { .. } => "LinearLR then CosineAnnealingLR",
            Schedule::OneCycle(_) => "OneCycleLR",
            Schedule::LinearWarmup(_) => "LinearLR",
        }
    }

    /// The learning rate and its schedule in words, for the recipe line:
    /// `lr 0.03 ×0.6 per epoch`, `lr 0.1 ×0.1 at epochs 10, 20`, `OneCycle lr 0.004 → 0.1
    /// → 4e-7 per mini-batch (30% up), momentum 0.95 → 0.85 → 0.95`.
    pub fn describe(&self, base_lr: f32) -> String {
        self.describe_with(base_lr, "momentum")
    }

    /// [`Schedule::describe`], calling a cycled momentum `momentum` ("β1" for Adam).
    pub fn describe_with(&self, base_lr: f32, momentum: &str) -> String {
        let lr = num(typed(base_lr));
        let warm = |w: &Warmup| {
            let unit = match w.per {
                Per::Epoch => plural(w.iters, "epoch"),
                Per::Step => plural(w.iters, "mini-batch"),
            };
            let from = if w.start_factor == Warmup::START_FACTOR {
                "1/3".to_string()
            } else {
                num(w.start_factor)
            };
            format!("linear warm-up from ×{from} over {unit}")
        };
        match self {
            Schedule::Exponential { gamma } if *gamma == 1.0 => format!("lr {lr} constant"),
            Schedule::Exponential { gamma } => format!("lr {lr} ×{gamma} per epoch"),
            Schedule::Step { step_size, gamma } => format!(
                "lr {lr} ×{} every {} (StepLR)",
                num(*gamma),
                plural(*step_size, "epoch")
            ),
            Schedule::MultiStep { milestones, gamma } => {
                let at: Vec<String> = milestones.iter().map(usize::to_string).collect();
                format!(
                    "lr {lr} ×{} at epoch{} {} (MultiStepLR)",
                    num(*gamma),
                    if milestones.len() == 1 { "" } else { "s" },
                    at.join(", ")
                )
            }
            Schedule::Cosine {
                t_max,
                eta_min,
                warmup,
            } => {
                let unit = match warmup.map_or(Per::Epoch, |w| w.per) {
                    Per::Epoch => "epoch",
                    Per::Step => "mini-batch",
                };
                let over = match t_max {
                    Some(t) => format!(" over {}", plural(*t, unit)),
                    None if warmup.is_some() => " over the rest of the run".to_string(),
                    None => " over the run".to_string(),
                };
                let cosine = format!("cosine to {}{over} (CosineAnnealingLR)", num(*eta_min));
                match warmup {
                    Some(w) => format!("lr {lr}, {} (LinearLR), then {cosine}", warm(w)),
                    None => format!("lr {lr} {cosine}"),
                }
            }
            Schedule::OneCycle(c) => {
                let initial = c.max_lr / c.div_factor;
                let mut s = format!(
                    "OneCycle lr {} → {} → {} per mini-batch ({}% up)",
                    num(initial),
                    num(c.max_lr),
                    num(initial / c.final_div_factor),
                    num(100.0 * c.pct_start)
                );
                if c.cycle_momentum {
                    s.push_str(&format!(
                        ", {momentum} {} → {} → {}",
                        num(c.max_momentum),
                        num(c.base_momentum),
                        num(c.max_momentum)
                    ));
                }
                s
            }
            Schedule::LinearWarmup(w) => format!("lr {lr}, {} (LinearLR), then constant", warm(w)),
        }
    }
}

/// An f32 as the decimal it was typed as (0.01, not 0.009999999776…), in f64: what
/// PyTorch, given the same number in Python, computes with.
pub fn typed(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// A number as a person writes it: 0.03, 4e-7 (to f32's precision, which is plenty for
/// a recipe line).
fn num(v: f64) -> String {
    let v = v as f32;
    if v == 0.0 || (1e-4..1e5).contains(&v.abs()) {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

fn plural(n: usize, unit: &str) -> String {
    match (n, unit) {
        (1, _) => format!("1 {unit}"),
        (_, "mini-batch") => format!("{n} mini-batches"),
        _ => format!("{n} {unit}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(epoch: usize, step_in_epoch: usize) -> Position {
        Position {
            epoch,
            step_in_epoch,
            steps_per_epoch: 5,
            epochs: 4,
        }
    }

    /// seqnet's decay is the f32 product it always was, not an f64 power rounded.
    #[test]
    fn the_per_epoch_decay_multiplies_f32_once_per_epoch() {
        let s = Schedule::Exponential { gamma: 0.6 };
        let mut lr = 0.03f32;
        for epoch in 0..4 {
            assert_eq!(s.at(0.03, pos(epoch, 3)).lr.to_bits(), lr.to_bits());
            lr *= 0.6;
        }
        assert_eq!(Schedule::CONSTANT.at(0.03, pos(3, 4)).lr, 0.03);
    }

    #[test]
    fn step_and_multistep_count_epochs() {
        let s = Schedule::Step {
            step_size: 2,
            gamma: 0.1,
        };
        let lrs: Vec<f32> = (0..5).map(|e| s.at(1.0, pos(e, 0)).lr).collect();
        assert_eq!(lrs, [1.0, 1.0, 0.1, 0.1, 0.01]);
        let m = Schedule::MultiStep {
            milestones: vec![1, 3],
            gamma: 0.5,
        };
        let lrs: Vec<f32> = (0..5).map(|e| m.at(1.0, pos(e, 4)).lr).collect();
        assert_eq!(lrs, [1.0, 0.5, 0.5, 0.25, 0.25]);
    }

    #[test]
    fn cosine_ends_its_half_period_at_eta_min() {
        let s = Schedule::Cosine {
            t_max: None,
            eta_min: 0.0,
            warmup: None,
        };
        assert_eq!(s.at(0.1, pos(0, 0)).lr, 0.1);
        assert!((s.at(0.1, pos(2, 0)).lr - 0.05).abs() < 1e-8);
        // A warm-up of 4 mini-batches, then the cosine over the other 16.
        let w = Schedule::Cosine {
            t_max: None,
            eta_min: 0.0,
            warmup: Some(Warmup {
                iters: 4,
                per: Per::Step,
                start_factor: 0.25,
            }),
        };
        let lrs: Vec<f32> = (0..6).map(|i| w.at(1.0, pos(i / 5, i % 5)).lr).collect();
        assert_eq!(&lrs[..5], [0.25, 0.4375, 0.625, 0.8125, 1.0]);
        assert!(lrs[5] < 1.0);
        assert!(w.per_step());
    }

    #[test]
    fn onecycle_rises_then_falls_with_momentum_opposite() {
        let s = Schedule::OneCycle(OneCycle::new(0.1));
        let all: Vec<Rates> = (0..20).map(|i| s.at(0.0, pos(i / 5, i % 5))).collect();
        // 30% of 20 steps: end of phase 1 at step 5.
        assert_eq!(all[0].lr, 0.004);
        assert_eq!(all[5].lr, 0.1);
        assert_eq!(all[5].momentum, Some(0.85));
        assert!((all[19].lr - 0.004 / 1e4).abs() < 1e-12);
        assert_eq!(all[19].momentum, Some(0.95));
        assert!(all[..5].windows(2).all(|p| p[0].lr < p[1].lr));
        assert!(all[5..].windows(2).all(|p| p[0].lr > p[1].lr));
    }

    #[test]
    fn pytorch_refusals_are_errors() {
        let one = OneCycle {
            pct_start: 0.1,
            ..OneCycle::new(0.1)
        };
        // 0.1 · 10 − 1 = 0: OneCycleLR divides by zero at step 0.
        assert!(Schedule::OneCycle(one).check(2, 5).is_err());
        assert!(Schedule::OneCycle(OneCycle::new(0.1)).check(2, 5).is_ok());
        let m = Schedule::MultiStep {
            milestones: vec![3, 2],
            gamma: 0.1,
        };
        assert!(m.check(5, 1).unwrap_err().to_string().contains("increase"));
        let w = Schedule::Cosine {
            t_max: None,
            eta_min: 0.0,
            warmup: Some(Warmup::new(5, Per::Epoch)),
        };
        assert!(
            w.check(5, 10)
                .unwrap_err()
                .to_string()
                .contains("warm up for fewer")
        );
    }

    #[test]
    fn descriptions_read_as_written() {
        assert_eq!(
            Schedule::Exponential { gamma: 0.6 }.describe(0.03),
            "lr 0.03 ×0.6 per epoch"
        );
        assert_eq!(
            Schedule::MultiStep {
                milestones: vec![10, 20],
                gamma: 0.1
            }
            .describe(0.1),
            "lr 0.1 ×0.1 at epochs 10, 20 (MultiStepLR)"
        );
        assert_eq!(
            Schedule::OneCycle(OneCycle::new(0.1)).describe(0.0),
            "OneCycle lr 0.004 → 0.1 → 4e-7 per mini-batch (30% up), momentum 0.95 → 0.85 → 0.95"
        );
        assert_eq!(typed(0.01), 0.01);
    }

    /// config.json and checkpoints hold a schedule as JSON: it must come back the same
    /// bits, or a resumed run would train (or be refused) differently.
    #[test]
    fn schedules_round_trip_through_json_exactly() {
        for s in [
            Schedule::OneCycle(OneCycle {
                max_lr: 0.1 + 0.2,
                pct_start: 1.0 / 3.0,
                ..OneCycle::new(0.1)
            }),
            Schedule::Cosine {
                t_max: Some(7),
                eta_min: 1e-5 / 3.0,
                warmup: Some(Warmup::new(3, Per::Step)),
            },
            Schedule::MultiStep {
                milestones: vec![2, 9],
                gamma: 0.7f32 as f64,
            },
            Schedule::Exponential { gamma: 0.6 },
        ] {
            let text = serde_json::to_string(&s).unwrap();
            assert_eq!(
                serde_json::from_str::<Schedule>(&text).unwrap(),
                s,
                "{text}"
            );
        }
        let text = serde_json::to_string(&Schedule::Step {
            step_size: 3,
            gamma: 0.5,
        })
        .unwrap();
        assert_eq!(text, r#"{"kind":"step","step_size":3,"gamma":0.5}"#);
    }
}
