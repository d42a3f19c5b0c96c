//! `seqnet train` once its options are parsed: load the data, build the network, claim
//! the run folder, resume, train with the progress shown, and save. The work is the
//! library's ([`seqnet::recipe`], [`seqnet::run_dir`]); this file chooses and prints.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use seqnet::Error;
use seqnet::data;
use seqnet::evaluate::Misfit;
use seqnet::io::model::{self, ModelInfo};
use seqnet::presets;
use seqnet::run_dir::{self, Resume, RunConfig, RunDir, RunOptions};
use seqnet::schedule::Schedule;

use super::progress::{Show, final_json, install_signal_handler, new_bar, print_summary};
use super::resume::refuse_to_overwrite;
use super::train::Args;
use super::train_recipe::recipe;

pub(super) fn run_in_pool(args: Args, threads: usize) -> Result<ExitCode> {
    // The network's name and its default recipe.
    let preset = match (&args.net, &args.spec, &args.model) {
        (Some(name), _, _) => Some(presets::get(name)?),
        (None, None, None) => Some(presets::get("seed")?),
        _ => None,
    };
    let name = match (&preset, &args.model) {
        (Some(p), _) => p.name.to_string(),
        (None, Some(m)) => m
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
        _ => "spec".to_string(),
    };
    let mut recipe = recipe(&args, preset.as_ref())?;

    // Data.
    let quiet = args.quiet;
    let mut data = match &args.train_data {
        Some(path) => {
            let ds = data::load_safetensors_batch(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let source = format!("{} ({} images)", path.display(), ds.len());
            data::Splits {
                train: ds,
                val: None,
                test: None,
                source,
                dataset: path.display().to_string(),
                classes: None,
                normalize: None,
                split: None,
            }
        }
        None => data::load_with(
            args.dataset.as_deref(),
            args.data_dir.as_deref(),
            recipe.split(),
            &super::train_recipe::folder_options(&args)?,
        )?,
    };
    // The data's own normalisation (CIFAR-10's per-channel means and stds) unless
    // --normalize gave one.
    if recipe.normalize.is_none() {
        recipe.normalize = data.normalize;
    }
    if let Some(n) = recipe.normalize.and_then(|n| n.channels())
        && n != data.train.shape[0]
    {
        bail!(
            "--normalize gives {n} means and stds, one per channel, but the images of {} \
                 have {} channel{}; give one mean and std, or one per channel",
            data.source,
            data.train.shape[0],
            super::plural(data.train.shape[0])
        );
    }
    if let Some(limit) = args.limit {
        if limit == 0 {
            bail!("--limit 0: give at least 1 image");
        }
        data.train = data.train.subset(0..limit.min(data.train.len()));
    }
    if recipe.expand {
        data.train = data::expand_book(&data.train);
    }
    // Read against the images' shape: `--augment` alone picks by their channels.
    if let Some(text) = &args.augment {
        recipe.augment = data::augment::Augment::parse(text, data.train.shape)?;
    }
    recipe.check(data.train.len())?;
    if let (Some(p), None) = (recipe.patience, &data.val) {
        let why = if args.train_data.is_some() {
            "--train-data makes no validation split"
        } else {
            "the official split has none; --split book keeps the last 10,000 training images \
             for validation"
        };
        bail!(
            "--patience {p} stops when the validation accuracy stops improving, but this run \
             has no validation set: {why}"
        );
    }
    if !quiet {
        eprintln!(
            "{}",
            super::wrap(&format!(
                "data: {}; training on {} images",
                data.source,
                data.train.len()
            ))
        );
    }

    // Network.
    let input = data.train.shape.to_vec();
    let mut net = match (&args.model, &args.spec, &preset) {
        (Some(path), _, _) => {
            let m = model::load(path).with_context(|| format!("reading {}", path.display()))?;
            for w in &m.warnings {
                eprintln!("warning: {w}");
            }
            m.net
        }
        (None, Some(spec), _) => seqnet::spec::build(spec, &input, args.seed)?,
        (None, None, Some(p)) => seqnet::spec::build(p.spec, &input, args.seed)?,
        _ => unreachable!("a preset is chosen when neither --spec nor --model is given"),
    };
    seqnet::evaluate::check_fits(&net, &data.train).map_err(|m| match m {
        Misfit::Input { .. } => {
            anyhow::anyhow!("{m}; rebuild it with --spec, or use data of that shape")
        }
        Misfit::Output { classes, .. } => {
            anyhow::anyhow!("{m}; end the network with Linear(…, {classes})")
        }
    })?;
    let init = match &args.model {
        Some(_) => "from model",
        None => recipe.initialise(&mut net, args.seed),
    };
    if !quiet {
        let whose = match &preset {
            Some(p) => format!("{}'s", p.name),
            None => "the default, as --net seed's".to_string(),
        };
        let text = format!(
            "recipe ({whose}): {}; data {}, {} training images",
            // An image folder's hold-out is its split, not the official one.
            match &data.split {
                Some(split) => recipe
                    .describe(init)
                    .replace("official split", &format!("{split} split")),
                None => recipe.describe(init),
            },
            data.dataset,
            data.train.len()
        );
        eprintln!("{}", super::wrap(&text));
    }
    if net.output_kind() == seqnet::layers::OutputKind::Probabilities && !quiet {
        eprintln!(
            "{}",
            super::wrap(
                "warning: the network ends in Softmax, but training applies cross-entropy to \
                 its output as logits; end in Linear (or LogSoftmax) instead, as in PyTorch"
            )
        );
    }
    let steps_per_epoch = recipe.steps_per_epoch(data.train.len());

    let mut run = match &args.out {
        Some(dir) => RunDir::open(dir)
            .with_context(|| format!("creating the run folder {}", dir.display()))?,
        None => {
            let parent = Path::new("runs");
            RunDir::new_in(parent, &format!("{name}-{}", run_dir::timestamp())).map_err(|e| {
                let what = match &e {
                    Error::Io { path, .. } if path == parent => "the folder",
                    _ => "the run folder",
                };
                let path = match &e {
                    Error::Io { path, .. } => path.display().to_string(),
                    _ => String::new(),
                };
                anyhow::Error::new(e).context(format!("creating {what} {path}"))
            })?
        }
    };
    let out_dir = run.path().to_path_buf();
    let config = RunConfig::new(
        args.clone(),
        &name,
        &net,
        &recipe,
        &data,
        init,
        args.seed,
        threads,
    );
    // A new run claims its folder with config.json: of two runs started with the same
    // --out, the one that gets here second stops.
    let config_path = run.config_path();
    let writing = || format!("writing {}", config_path.display());
    if args.resume.is_some() {
        run.rewrite_config(&config).with_context(writing)?;
    } else if !run.claim(&config).with_context(writing)? {
        refuse_to_overwrite(&out_dir)?;
        bail!("{} already holds a run", out_dir.display());
    } else if args.out.is_none() {
        // runs/latest: README commands name the newest run without its timestamp.
        run.mark_latest();
    }

    let mut info = ModelInfo::for_net(&net);
    info.normalize = recipe.normalize;
    info.seed = Some(args.seed);
    // Image folders and CIFAR-10: predict feeds a model's images resized as they are, not
    // prepared as MNIST digits are.
    if data.classes.is_some() {
        info.extra.insert(
            model::IMAGES_KEY.to_string(),
            model::IMAGES_RESIZED.to_string(),
        );
    }
    // The data's class names, when it has them; outputs past the data's classes (a
    // Linear(…, 10) on two classes) are named by their index, as elsewhere.
    if let (Some(names), &[outputs]) = (&data.classes, net.output_shape())
        && outputs >= names.len()
    {
        let mut all = names.clone();
        all.extend((names.len()..outputs).map(|k| k.to_string()));
        info.classes = Some(all);
    }
    info.trained_on = Some(model::TrainedOn {
        dataset: data.dataset.clone(),
        split: Some(
            data.split
                .clone()
                .unwrap_or_else(|| run_dir::split_name(recipe.split()).to_string()),
        ),
        images: Some(data.train.len()),
    });
    let mut state = recipe.new_state(data.train.len(), args.seed);
    let epochs = recipe.epochs;
    if args.resume.is_some() {
        match run
            .resume(&mut net, &mut state, epochs)
            .with_context(|| format!("resuming from {}", run.checkpoint_path().display()))?
        {
            Resume::Finished => {
                if let Some(save) = &args.save {
                    model::save(save, &net, &info)
                        .with_context(|| format!("writing {}", save.display()))?;
                }
                if args.json {
                    let last = run.last_metrics()?;
                    println!(
                        "{}",
                        final_json(&run.best(), &last, &run.final_path(), state.stopped_early)
                    );
                }
                if !quiet {
                    let final_path = run.final_path();
                    let finished = if state.stopped_early {
                        format!("stopped early after epoch {}", state.epoch)
                    } else {
                        format!(
                            "already finished its {epochs} epoch{}",
                            super::plural(epochs)
                        )
                    };
                    let text = format!(
                        "{} {finished}: the trained model is {}; nothing to resume. To train \
                         further, start a new run from it:",
                        out_dir.display(),
                        final_path.display(),
                    );
                    eprintln!(
                        "{}\n  {} train --model {} --out NEW_FOLDER",
                        super::wrap(&text),
                        super::invocation(),
                        final_path.display()
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            Resume::Continue if !quiet => eprintln!(
                "resuming {} at epoch {}, step {} of {steps_per_epoch}",
                out_dir.display(),
                state.epoch + 1,
                state.step_in_epoch
            ),
            Resume::Fresh if !quiet => eprintln!(
                "{} has no checkpoint yet: starting the run from its beginning",
                out_dir.display()
            ),
            Resume::Continue | Resume::Fresh => {}
        }
    }
    let opts = RunOptions {
        checkpoint_every: args.checkpoint_every.unwrap_or(0),
        interrupt: Some(install_signal_handler()),
        ..RunOptions::new(recipe.train_config(), info.clone())
    };
    let show_bar = !quiet && std::io::stderr().is_terminal();
    // The rate a warning names: OneCycle's peak is --max-lr, every other's start --lr.
    let (lr_flag, lr) = match &recipe.schedule {
        Schedule::OneCycle(c) => ("--max-lr", c.max_lr as f32),
        _ => ("--lr", recipe.lr),
    };
    let mut show = Show {
        bar: show_bar.then(|| new_bar(steps_per_epoch)),
        json: args.json,
        quiet,
        plot: args.plot.then(|| run.clone()),
        epochs,
        batch_size: recipe.batch_size,
        lr,
        lr_flag,
        classes: data.train.classes,
        warned: false,
    };
    let result = run.train(&mut net, &mut state, &data, &opts, &mut show);
    if let Some(bar) = &show.bar {
        bar.finish_and_clear();
    }
    if let Err(Error::Interrupted(msg)) = &result {
        let hint = format!(
            "{} train --resume {}",
            super::invocation(),
            out_dir.display()
        );
        eprintln!("{msg}. Continue with:\n  {hint}");
        return Err(super::Interrupted.into());
    }
    if let Err(Error::Diverged(msg)) = &result {
        // Stopped: the weights are no longer numbers, and no further step can mend them.
        let what = msg
            .split_once("; try a smaller")
            .map_or(msg.as_str(), |(w, _)| w);
        let kept = if run.checkpoint_path().exists() {
            "config.json, metrics.jsonl and the last good epoch's checkpoint.safetensors are"
        } else {
            "config.json is"
        };
        bail!(
            "{what}. Try a smaller learning rate: this run has {lr_flag} {}; {lr_flag} {} is a \
             tenth. The run's {kept} kept in {}",
            super::fmt_lr(lr),
            super::tenth(lr),
            out_dir.display()
        );
    }
    let best = result?;

    let final_path = run.final_path();
    run.save_final(&net, &info)
        .with_context(|| format!("writing {}", final_path.display()))?;
    if let Some(save) = &args.save {
        model::save(save, &net, &info).with_context(|| format!("writing {}", save.display()))?;
    }
    let last = run.last_metrics()?;
    // Every run folder holds a digit to try `seqnet predict` on, --quiet or not.
    let sample = run.write_sample_digit(data.test.as_ref().unwrap_or(&data.train));
    if args.json {
        println!(
            "{}",
            final_json(&best, &last, &final_path, state.stopped_early)
        );
    }
    if !quiet
        && state.stopped_early
        && let (Some(p), Some((epoch, acc))) = (recipe.patience, state.best_val)
    {
        let text = format!(
            "stopped early after epoch {} of {epochs}: the validation accuracy has not \
             improved for {p} epoch{} (--patience {p}); its best was {:.2}% at epoch {epoch} \
             (best.safetensors)",
            state.epoch,
            super::plural(p),
            100.0 * acc
        );
        eprintln!("{}", super::wrap(&text));
    }
    if !quiet {
        print_summary(&last, best.as_ref(), &final_path, sample.as_deref());
    }
    Ok(ExitCode::SUCCESS)
}
