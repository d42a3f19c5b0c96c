//! `seqnet train --schedule …`: the learning-rate schedule typed from its options, with
//! PyTorch's defaults, and a refusal of options given for a schedule that does not use
//! them. The schedules themselves are the library's ([`seqnet::schedule`]).

use anyhow::{Result, bail};
use seqnet::schedule::{OneCycle, Per, Schedule, Warmup};

use super::train::Args;

#[derive(
    clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleArg {
    /// StepLR: lr × --gamma every --step-size epochs.
    Step,
    /// MultiStepLR: lr × --gamma at each epoch of --milestones.
    Multistep,
    /// CosineAnnealingLR: half a cosine from lr to --eta-min over the run (--t-max
    /// epochs), after a --warmup-epochs/--warmup-steps linear warm-up if given.
    Cosine,
    /// OneCycleLR: per mini-batch, up from --max-lr/--div-factor to --max-lr and down;
    /// momentum (Adam's β1) cycles the other way.
    Onecycle,
    /// LinearLR: from lr × --warmup-start-factor up to lr over --warmup-epochs or
    /// --warmup-steps, then constant.
    LinearWarmup,
}

/// The `--schedule` chosen, from its options and PyTorch's defaults; `lr` is the
/// recipe's rate (OneCycle's default max_lr).
pub(super) fn schedule(args: &Args, kind: ScheduleArg, lr: f32) -> Result<Schedule> {
    let warmup = match (args.warmup_epochs, args.warmup_steps) {
        (Some(n), _) => Some(Warmup::new(n, Per::Epoch)),
        (None, Some(n)) => Some(Warmup::new(n, Per::Step)),
        (None, None) => None,
    }
    .map(|w| Warmup {
        start_factor: args.warmup_start_factor.unwrap_or(w.start_factor),
        ..w
    });
    if let Some(w) = &warmup {
        if w.iters == 0 {
            bail!("a warm-up of 0 epochs or mini-batches: give at least 1, e.g. --warmup-epochs 2");
        }
        if !(w.start_factor > 0.0 && w.start_factor <= 1.0) {
            bail!(
                "--warmup-start-factor {} must be in (0, 1], as LinearLR's start_factor, e.g. 0.1",
                w.start_factor
            );
        }
    }
    let gamma = args.gamma.unwrap_or(0.1);
    if !(gamma.is_finite() && gamma > 0.0) {
        bail!("--gamma {gamma} must be a positive finite number, e.g. 0.5");
    }
    Ok(match kind {
        ScheduleArg::Step => {
            let Some(step_size) = args.step_size else {
                bail!(
                    "--schedule step needs --step-size, the epochs between decays, e.g. --step-size 10"
                );
            };
            if step_size == 0 {
                bail!("--step-size 0: give at least 1 epoch between decays");
            }
            Schedule::Step { step_size, gamma }
        }
        ScheduleArg::Multistep => {
            let Some(text) = &args.milestones else {
                bail!(
                    "--schedule multistep needs --milestones, the epochs of each decay, e.g. --milestones 10,20"
                );
            };
            let milestones: Vec<usize> = text
                .split(',')
                .map(|m| m.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--milestones '{text}' is not epochs separated by commas, e.g. 10,20"
                    )
                })?;
            if milestones.windows(2).any(|p| p[0] >= p[1]) {
                bail!("--milestones {text} must increase, e.g. 10,20");
            }
            Schedule::MultiStep { milestones, gamma }
        }
        ScheduleArg::Cosine => {
            let eta_min = args.eta_min.unwrap_or(0.0);
            if !(eta_min.is_finite() && eta_min >= 0.0) {
                bail!("--eta-min {eta_min} must be a finite number ≥ 0, e.g. 1e-5");
            }
            if args.t_max == Some(0) {
                bail!("--t-max 0: give at least 1");
            }
            Schedule::Cosine {
                t_max: args.t_max,
                eta_min,
                warmup,
            }
        }
        ScheduleArg::Onecycle => {
            let d = OneCycle::new(args.max_lr.unwrap_or(seqnet::schedule::typed(lr)));
            let c = OneCycle {
                pct_start: args.pct_start.unwrap_or(d.pct_start),
                div_factor: args.div_factor.unwrap_or(d.div_factor),
                final_div_factor: args.final_div_factor.unwrap_or(d.final_div_factor),
                cycle_momentum: !args.no_cycle_momentum,
                base_momentum: args.base_momentum.unwrap_or(d.base_momentum),
                max_momentum: args.max_momentum.unwrap_or(d.max_momentum),
                ..d
            };
            for (flag, v) in [
                ("max-lr", c.max_lr),
                ("div-factor", c.div_factor),
                ("final-div-factor", c.final_div_factor),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    bail!("--{flag} {v} must be a positive finite number");
                }
            }
            if !(0.0..=1.0).contains(&c.pct_start) {
                bail!("--pct-start {} must be in [0, 1], e.g. 0.3", c.pct_start);
            }
            for (flag, v) in [
                ("base-momentum", c.base_momentum),
                ("max-momentum", c.max_momentum),
            ] {
                if !(0.0..1.0).contains(&v) {
                    bail!("--{flag} {v} must be in [0, 1)");
                }
            }
            Schedule::OneCycle(c)
        }
        ScheduleArg::LinearWarmup => match warmup {
            Some(w) => Schedule::LinearWarmup(w),
            None => bail!(
                "--schedule linear-warmup needs --warmup-epochs or --warmup-steps, e.g. \
                 --warmup-epochs 2"
            ),
        },
    })
}

/// A schedule option given for a schedule that does not use it is a mistake worth
/// saying, not something to ignore.
pub(super) fn refuse_unused_schedule_options(args: &Args, s: &Schedule) -> Result<()> {
    let name = match s {
        Schedule::Exponential { .. } => "--lr-decay's (no --schedule)".to_string(),
        _ => format!("--schedule {}", s.name()),
    };
    let uses = |names: &[&str]| names.contains(&s.name());
    let given: [(&str, bool, &[&str]); 15] = [
        ("--step-size", args.step_size.is_some(), &["step"]),
        ("--gamma", args.gamma.is_some(), &["step", "multistep"]),
        ("--milestones", args.milestones.is_some(), &["multistep"]),
        ("--eta-min", args.eta_min.is_some(), &["cosine"]),
        ("--t-max", args.t_max.is_some(), &["cosine"]),
        (
            "--warmup-epochs",
            args.warmup_epochs.is_some(),
            &["cosine", "linear-warmup"],
        ),
        (
            "--warmup-steps",
            args.warmup_steps.is_some(),
            &["cosine", "linear-warmup"],
        ),
        (
            "--warmup-start-factor",
            args.warmup_start_factor.is_some(),
            &["cosine", "linear-warmup"],
        ),
        ("--max-lr", args.max_lr.is_some(), &["onecycle"]),
        ("--pct-start", args.pct_start.is_some(), &["onecycle"]),
        ("--div-factor", args.div_factor.is_some(), &["onecycle"]),
        (
            "--final-div-factor",
            args.final_div_factor.is_some(),
            &["onecycle"],
        ),
        (
            "--base-momentum",
            args.base_momentum.is_some(),
            &["onecycle"],
        ),
        ("--max-momentum", args.max_momentum.is_some(), &["onecycle"]),
        ("--no-cycle-momentum", args.no_cycle_momentum, &["onecycle"]),
    ];
    for (flag, typed, schedules) in given {
        if typed && !uses(schedules) {
            let with: Vec<String> = schedules
                .iter()
                .map(|s| format!("--schedule {s}"))
                .collect();
            bail!(
                "{flag} is an option of {}, but this run's schedule is {name}; give {} or leave \
                 {flag} out",
                with.join(" or "),
                with[0]
            );
        }
    }
    if let Schedule::Cosine { warmup: None, .. } = s
        && args.warmup_start_factor.is_some()
    {
        bail!("--warmup-start-factor needs --warmup-epochs or --warmup-steps");
    }
    Ok(())
}
