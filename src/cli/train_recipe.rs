//! `seqnet train`'s options typed into the run's [`Recipe`] (the preset's, or the default
//! one, with what the command line changes), and the image folder options.

use anyhow::{Result, bail};
use seqnet::Init;
use seqnet::io::model::Normalize;
use seqnet::presets;
use seqnet::recipe::{OptimizerChoice, Recipe};
use seqnet::schedule::Schedule;

use super::schedule_args::{refuse_unused_schedule_options, schedule};
use super::train::{Args, InitArg, OptimizerArg, SplitArg};

fn check_positive(name: &str, v: f32) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        bail!("--{name} {v} must be a positive finite number");
    }
    Ok(())
}

/// The recipe of the preset (or the one for other networks), with the options typed.
pub(super) fn recipe(args: &Args, preset: Option<&presets::Preset>) -> Result<Recipe> {
    let mut r = preset.map_or(Recipe::CUSTOM, |p| p.recipe.clone());
    if let Some(choice) = args.optimizer {
        r.use_optimizer(match choice {
            OptimizerArg::Sgd => OptimizerChoice::Sgd,
            OptimizerArg::Adam => OptimizerChoice::Adam,
            OptimizerArg::Adamw => OptimizerChoice::AdamW,
        });
    }
    r.epochs = args.epochs.unwrap_or(r.epochs);
    r.batch_size = args.batch_size.unwrap_or(r.batch_size);
    r.lr = args.lr.unwrap_or(r.lr);
    r.momentum = args.momentum.unwrap_or(r.momentum);
    r.weight_decay = args.weight_decay.unwrap_or(r.weight_decay);
    r.l2 = args.l2.unwrap_or(r.l2);
    if let Some(gamma) = args.lr_decay {
        check_positive("lr-decay", gamma)?;
        r.schedule = Schedule::Exponential { gamma };
    }
    if let Some(kind) = args.schedule {
        r.schedule = schedule(args, kind, r.lr)?;
    } else if let (Some(lr), Schedule::OneCycle(c)) = (args.lr, &mut r.schedule) {
        // A preset's OneCycle (fast-mnist's): --lr is its peak, as with --schedule onecycle.
        c.max_lr = seqnet::schedule::typed(lr);
    }
    refuse_unused_schedule_options(args, &r.schedule)?;
    if args.nesterov {
        if r.optimizer != OptimizerChoice::Sgd {
            bail!(
                "--nesterov is SGD's (torch.optim.SGD(nesterov=True)); --optimizer {} has none",
                r.optimizer.name()
            );
        }
        if r.momentum <= 0.0 {
            bail!(
                "--nesterov needs a momentum above 0, as torch.optim.SGD ('Nesterov momentum \
                 requires a momentum and zero dampening'); this recipe has momentum {}: add \
                 e.g. --momentum 0.9",
                r.momentum
            );
        }
        r.nesterov = true;
    }
    if let (Some(m), Schedule::OneCycle(c)) = (args.momentum, &r.schedule)
        && c.cycle_momentum
    {
        bail!(
            "--momentum {m} has no effect with --schedule onecycle, which cycles the \
                 momentum between --max-momentum {} and --base-momentum {} (PyTorch's \
                 cycle_momentum); set those, or add --no-cycle-momentum",
            c.max_momentum,
            c.base_momentum
        );
    }
    if let Some(eps) = args.label_smoothing {
        if !(0.0..=1.0).contains(&eps) {
            bail!("--label-smoothing {eps} must be in [0, 1], e.g. 0.1");
        }
        r.label_smoothing = eps;
    }
    if let Some(p) = args.patience {
        if p == 0 {
            bail!("--patience 0: give at least 1 epoch without improvement, e.g. --patience 3");
        }
        r.patience = Some(p);
    }
    r.expand |= args.expand;
    r.shuffle = !args.no_shuffle;
    if let Some(split) = args.split {
        r.book_protocol = split == SplitArg::Book;
    }
    if let Some(init) = args.init {
        r.init = match init {
            InitArg::Book => Init::Book,
            InitArg::Pytorch => Init::PyTorch,
        };
    }
    if r.epochs == 0 {
        bail!("--epochs 0: give at least 1 epoch");
    }
    if r.batch_size == 0 {
        bail!("--batch-size 0: give at least 1 image per mini-batch");
    }
    check_positive("lr", r.lr)?;
    for (flag, v) in [
        ("momentum", r.momentum),
        ("weight-decay", r.weight_decay),
        ("l2", r.l2),
    ] {
        if !v.is_finite() || v < 0.0 {
            bail!("--{flag} {v} must be a finite number ≥ 0");
        }
    }
    r.normalize = args.normalize.as_deref().map(parse_normalize).transpose()?;
    Ok(r)
}

/// The image folder options typed: --resize, --grey, --holdout.
pub(super) fn folder_options(args: &Args) -> Result<seqnet::data::FolderOptions> {
    let mut o = seqnet::data::FolderOptions {
        grey: args.grey,
        ..Default::default()
    };
    if let Some(text) = &args.resize {
        o.resize = Some(parse_resize(text)?);
    }
    if let Some(f) = args.holdout {
        if !(f > 0.0 && f < 1.0) {
            bail!(
                "--holdout {f} must be a fraction between 0 and 1 (exclusive), e.g. 0.2 to \
                 test on a fifth of each class"
            );
        }
        o.holdout = f;
    }
    Ok(o)
}

/// `32x32` → (32, 32): height, then width.
pub(super) fn parse_resize(text: &str) -> Result<(usize, usize)> {
    let parts: Vec<Option<usize>> = text
        .split(['x', 'X', '×'])
        .map(|p| p.trim().parse().ok())
        .collect();
    match parts[..] {
        [Some(h), Some(w)] if h > 0 && w > 0 && h <= 4096 && w <= 4096 => Ok((h, w)),
        _ => bail!(
            "--resize '{text}' is not HxW (height x width, 1 to 4096 each), e.g. --resize \
             32x32"
        ),
    }
}

fn parse_normalize(text: &str) -> Result<Normalize> {
    Normalize::parse(text).map_err(|why| {
        anyhow::anyhow!(
            "--normalize '{text}' is not MEAN,STD with STD > 0, e.g. 0.1307,0.3081, nor the \
             means then the stds, one per channel, e.g. \
             0.4914,0.4822,0.4465,0.2470,0.2435,0.2616 ({why})"
        )
    })
}
