//! `seqnet bench`: training and inference throughput (images per second) and peak memory
//! of a preset network, measured the way `bench/pytorch_reference.py` measures PyTorch,
//! so that the two lines can be compared side by side (`bench/compare.sh`).
//!
//! Training: the preset's optimiser at its learning rate, held constant (plain SGD
//! without momentum or L2 for the book's presets; AdamW with its weight decay for
//! fast-mnist), on the training images in file order, not augmented, `--warmup` images
//! first (untimed), then `--images` images timed, each step being zero_grad, forward
//! (Train), cross-entropy, backward, optimiser step. Inference: the test set (or `--infer-images` of it) in batches of
//! `--infer-batch`, forward (Eval) and argmax, after one untimed batch.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use seqnet::Sequential;
use seqnet::data::{self, Dataset, Split};
use seqnet::optim::{AdamW, Optimizer, OptimizerKind};
use seqnet::recipe::OptimizerChoice;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A preset network (see `seqnet summary --net NAME`).
    #[arg(long, default_value = "book-relu")]
    net: String,
    /// Training mini-batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Training images timed (after the warm-up); 0 skips the training measurement.
    #[arg(long, default_value_t = 12_800)]
    images: usize,
    /// Training images run before timing starts.
    #[arg(long, default_value_t = 640)]
    warmup: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// A named dataset or a folder with the four IDX files. Default: MNIST when
    /// installed (e.g. via $SEQNET_DATA), else the embedded sample.
    #[arg(long)]
    dataset: Option<String>,
    /// Inference batch size.
    #[arg(long, default_value_t = 1000)]
    infer_batch: usize,
    /// Test images timed for inference (default: the whole test set); 0 skips it.
    #[arg(long)]
    infer_images: Option<usize>,
    /// Learning rate (default: the preset's).
    #[arg(long)]
    lr: Option<f32>,
    /// Seed of the initial weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the text line.
    #[arg(long)]
    json: bool,
    /// Also time each layer (forward and backward) during the timed passes, and print
    /// each one's share of the time and GFLOP/s after the figures (with --json, as a
    /// "layers" array). With several threads, the layer times are CPU time.
    #[arg(long)]
    per_layer: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.batch_size == 0 {
        bail!("--batch-size 0: give at least 1 image per mini-batch");
    }
    if args.infer_batch == 0 {
        bail!("--infer-batch 0: give at least 1 image per inference batch");
    }
    if args.images == 0 && args.infer_images == Some(0) {
        bail!("--images 0 and --infer-images 0 leave nothing to measure; give either more");
    }
    super::in_pool(args.threads, |threads| run_in_pool(args, threads))
}

#[derive(serde::Serialize)]
struct Report {
    net: String,
    batch_size: usize,
    threads: usize,
    /// "sgd", "adam" or "adamw" (the preset's).
    optimizer: &'static str,
    train_images: usize,
    infer_images: usize,
    train_img_per_s: f64,
    infer_img_per_s: f64,
    /// Training images per second of CPU time (all threads): the work, without the
    /// waiting that a loaded machine adds to the wall time.
    train_img_per_cpu_s: f64,
    infer_img_per_cpu_s: f64,
    peak_rss_mb: f64,
    final_loss: f32,
    data: String,
    /// The GEMM micro-kernel this run used (`SEQNET_KERNEL` caps it).
    kernel: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    layers: Vec<LayerRow>,
}

/// One layer's row of `--per-layer`: microseconds per image and GFLOP/s, in training
/// (forward and backward) and inference.
#[derive(serde::Serialize)]
struct LayerRow {
    index: usize,
    layer: &'static str,
    /// Multiply-adds per image in the forward pass (0 for layers without parameters,
    /// whose work is not multiply-adds).
    macs: u64,
    train_fwd_us: f64,
    train_bwd_us: f64,
    /// Share of the timed training wall time.
    train_share: f64,
    train_fwd_gflops: f64,
    train_bwd_gflops: f64,
    infer_us: f64,
    infer_share: f64,
    infer_gflops: f64,
}

fn run_in_pool(args: Args, threads: usize) -> Result<ExitCode> {
    let preset = seqnet::presets::get(&args.net)?;
    let splits = data::load(args.dataset.as_deref(), None, Split::Official)?;
    let train_set = splits.train;
    let test_set = splits.test.unwrap_or_else(|| train_set.clone());
    let mut net = seqnet::spec::build(preset.spec, &train_set.shape, args.seed)?;
    let lr = args.lr.unwrap_or(preset.recipe.lr);
    let mut opt = match preset.recipe.optimizer {
        OptimizerChoice::Sgd => Optimizer::new(OptimizerKind::sgd(0.0), lr, 0.0, 0.0),
        OptimizerChoice::Adam => Optimizer::adam(lr),
        OptimizerChoice::AdamW => AdamW::new(lr).weight_decay(preset.recipe.weight_decay),
    };
    let optimizer = opt.kind.name();

    let mut cursor = 0usize;
    let mut final_loss = f32::NAN;
    let (mut train_img_per_s, mut train_img_per_cpu_s) = (0.0, 0.0);
    if args.images > 0 {
        train(
            &mut net,
            &mut opt,
            &train_set,
            &mut cursor,
            args.warmup,
            args.batch_size,
        )?;
        net.set_profiling(args.per_layer);
        let (started, cpu) = (Instant::now(), cpu_seconds());
        final_loss = train(
            &mut net,
            &mut opt,
            &train_set,
            &mut cursor,
            args.images,
            args.batch_size,
        )?;
        train_img_per_s = args.images as f64 / started.elapsed().as_secs_f64().max(1e-9);
        train_img_per_cpu_s = args.images as f64 / (cpu_seconds() - cpu).max(1e-9);
    }
    let train_prof = net.profile();

    let infer_images = args
        .infer_images
        .unwrap_or(test_set.len())
        .min(test_set.len());
    let (mut infer_img_per_s, mut infer_img_per_cpu_s) = (0.0, 0.0);
    if infer_images > 0 {
        infer(
            &mut net,
            &test_set,
            0..args.infer_batch.min(infer_images),
            args.infer_batch,
        )?;
        net.set_profiling(args.per_layer);
        let (started, cpu) = (Instant::now(), cpu_seconds());
        infer(&mut net, &test_set, 0..infer_images, args.infer_batch)?;
        infer_img_per_s = infer_images as f64 / started.elapsed().as_secs_f64().max(1e-9);
        infer_img_per_cpu_s = infer_images as f64 / (cpu_seconds() - cpu).max(1e-9);
    }
    // Without an inference pass the profiler still holds the training times.
    let infer_prof = if infer_images > 0 {
        net.profile()
    } else {
        None
    };
    let layers = if args.per_layer {
        layer_rows(
            &net,
            (train_prof, args.images, train_img_per_s),
            (infer_prof, infer_images, infer_img_per_s),
            threads,
        )
    } else {
        Vec::new()
    };

    let report = Report {
        net: args.net,
        batch_size: args.batch_size,
        threads,
        optimizer,
        train_images: args.images,
        infer_images,
        train_img_per_s,
        infer_img_per_s,
        train_img_per_cpu_s,
        infer_img_per_cpu_s,
        peak_rss_mb: peak_rss_mb(),
        final_loss,
        data: splits.source,
        kernel: seqnet::kernels::gemm::kernel().name(),
        layers,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "train_img_per_s {:.0}  infer_img_per_s {:.0}  peak_rss_mb {:.1}",
            report.train_img_per_s, report.infer_img_per_s, report.peak_rss_mb
        );
        if !report.layers.is_empty() {
            print_layers(&report);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The per-layer rows from the profiles of the timed training and inference passes
/// (each with its image count and wall-time rate), run on `threads` threads.
fn layer_rows(
    net: &Sequential,
    (train_prof, train_n, train_rate): (Option<Vec<seqnet::LayerTime>>, usize, f64),
    (infer_prof, infer_n, infer_rate): (Option<Vec<seqnet::LayerTime>>, usize, f64),
    threads: usize,
) -> Vec<LayerRow> {
    let us_per = |d: std::time::Duration, n: usize| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    // GFLOP/s of `flops` per image taking `us` microseconds per image.
    let gflops = |flops: f64, us: f64| if us > 0.0 { flops / us / 1e3 } else { 0.0 };
    // The CPU time one image had, in µs, from the measured wall-time rates: the layer
    // times are summed over the threads, so a share is of wall time × threads.
    let cpu_us = |rate: f64| 1e6 * threads as f64 / rate.max(1e-9);
    let (train_img_us, infer_img_us) = (cpu_us(train_rate), cpu_us(infer_rate));
    let zero = seqnet::LayerTime::default();
    net.layers()
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let t = train_prof.as_ref().map_or(zero, |p| p[i]);
            let e = infer_prof.as_ref().map_or(zero, |p| p[i]);
            let has_params = !layer.params().is_empty();
            let macs = if has_params { net.steps()[i].macs } else { 0 };
            // Backward: the weight gradient, and the input gradient except for the
            // first layer (training asks for no dL/d(input)).
            let bwd_flops = 2.0 * macs as f64 * if i > 0 { 2.0 } else { 1.0 };
            let (tf, tb) = (us_per(t.forward, train_n), us_per(t.backward, train_n));
            let ie = us_per(e.forward, infer_n);
            LayerRow {
                index: i,
                layer: layer.kind(),
                macs,
                train_fwd_us: tf,
                train_bwd_us: tb,
                train_share: if train_n > 0 {
                    (tf + tb) / train_img_us
                } else {
                    0.0
                },
                train_fwd_gflops: gflops(2.0 * macs as f64, tf),
                train_bwd_gflops: gflops(bwd_flops, tb),
                infer_us: ie,
                infer_share: if infer_n > 0 { ie / infer_img_us } else { 0.0 },
                infer_gflops: gflops(2.0 * macs as f64, ie),
            }
        })
        .collect()
}

/// The `--per-layer` table, after the figures.
fn print_layers(report: &Report) {
    println!(
        "kernel {}; per image: µs in training forward, backward, share of the training \
         time, GFLOP/s; µs in inference, share, GFLOP/s{}",
        report.kernel,
        if report.threads > 1 {
            " (times and shares are of CPU time summed over the threads)"
        } else {
            ""
        }
    );
    println!(
        "{:>3} {:<10} {:>9} {:>9} {:>6} {:>8} {:>8} {:>9} {:>6} {:>8}",
        "#", "layer", "fwd µs", "bwd µs", "share", "fwd GF", "bwd GF", "infer µs", "share", "GF"
    );
    let (mut train_sum, mut infer_sum) = (0.0, 0.0);
    for r in &report.layers {
        train_sum += r.train_share;
        infer_sum += r.infer_share;
        let gf = |v: f64| {
            if r.macs > 0 {
                format!("{v:.1}")
            } else {
                "-".into()
            }
        };
        println!(
            "{:>3} {:<10} {:>9.2} {:>9.2} {:>5.1}% {:>8} {:>8} {:>9.2} {:>5.1}% {:>8}",
            r.index,
            r.layer,
            r.train_fwd_us,
            r.train_bwd_us,
            100.0 * r.train_share,
            gf(r.train_fwd_gflops),
            gf(r.train_bwd_gflops),
            r.infer_us,
            100.0 * r.infer_share,
            gf(r.infer_gflops)
        );
    }
    println!(
        "    {:<10} {:>9} {:>9} {:>5.1}% {:>8} {:>8} {:>9} {:>5.1}%",
        "the rest",
        "",
        "",
        100.0 * (1.0 - train_sum),
        "",
        "",
        "",
        100.0 * (1.0 - infer_sum)
    );
}

/// Trains on `count` images from `*cursor` on (wrapping around the set), in steps of
/// `bs`; returns the last step's loss.
fn train(
    net: &mut Sequential,
    opt: &mut Optimizer,
    ds: &Dataset,
    cursor: &mut usize,
    count: usize,
    bs: usize,
) -> Result<f32> {
    let mut done = 0;
    let mut loss = f32::NAN;
    let mut idx = Vec::with_capacity(bs);
    let mut bufs = seqnet::train::StepBuffers::default();
    while done < count {
        let take = bs.min(count - done);
        idx.clear();
        idx.extend((0..take).map(|j| (*cursor + j) % ds.len()));
        *cursor = (*cursor + take) % ds.len();
        net.zero_grad();
        loss = seqnet::train::accumulate_gradients(net, ds, &idx, None, 0.0, &mut bufs)?;
        opt.step(net);
        done += take;
    }
    // No step at all (--warmup 0) leaves the loss NaN, which is not a divergence.
    if count > 0 && !loss.is_finite() {
        bail!("the loss is {loss}: training diverged; try a smaller --lr");
    }
    Ok(loss)
}

/// Predicts the images in `range` in batches of `bs`; returns how many were right.
fn infer(
    net: &mut Sequential,
    ds: &Dataset,
    range: std::ops::Range<usize>,
    bs: usize,
) -> Result<usize> {
    let mut correct = 0;
    let all: Vec<usize> = range.collect();
    let (mut x, mut y) = (seqnet::Tensor::default(), Vec::new());
    for chunk in all.chunks(bs) {
        seqnet::train::prepare_into(ds, chunk, None, &mut x, &mut y);
        let pred = net.infer(&x)?.argmax_rows();
        correct += pred.iter().zip(&y).filter(|(p, y)| p == y).count();
    }
    Ok(correct)
}

/// The process's peak resident set (VmHWM), in MB (10⁶ bytes); 0 where /proc is absent.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb * 1024.0 / 1e6)
}

/// User + system CPU time of the whole process (every thread), from /proc/self/stat
/// (clock ticks, 100 per second on Linux); 0 where /proc is absent.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
