//! The training loop: mini-batch SGD (or Adam, AdamW) on mean softmax cross-entropy
//! (optionally label-smoothed), the learning rate set before every step by a
//! [`Schedule`], with evaluation after each epoch and optional early stopping on the
//! validation accuracy. The loop is a plain function over an explicit [`TrainState`] —
//! epoch, position in the epoch, data order, optimiser, schedule, random streams, best
//! validation accuracy — so that a run can be checkpointed and resumed exactly.

use std::time::Instant;

use crate::data::Dataset;
use crate::data::augment::{self, Augment, EpochAugment};
use crate::error::{Error, Result};
use crate::io::model::Normalize;
use crate::layers::Mode;
use crate::loss::cross_entropy_smoothed_part;
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::schedule::{Position, Schedule};
use crate::sequential::Sequential;
use crate::tensor::Tensor;

/// How to train, besides the optimiser and its schedule (which are [`TrainState`]'s).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Shuffle the training set each epoch (from the run's seed).
    pub shuffle: bool,
    /// Applied to every batch after u8 pixels were scaled to [0, 1].
    pub normalize: Option<Normalize>,
    /// Random transforms of the training images, drawn afresh each epoch (before the
    /// normalisation); evaluation images are never augmented.
    pub augment: Option<Augment>,
    /// ε of `nn.CrossEntropyLoss(label_smoothing=ε)`, in [0, 1]; 0 for none.
    pub label_smoothing: f32,
    /// Early stopping: end the run when the validation accuracy has not improved (risen
    /// above its best so far) for this many epochs. Needs a validation set.
    pub patience: Option<usize>,
}

impl Default for TrainConfig {
    /// One epoch of mini-batches of 32, shuffled, no normalisation, plain
    /// cross-entropy, no early stopping.
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            normalize: None,
            label_smoothing: 0.0,
            patience: None,
            augment: None,
        }
    }
}

/// Where a run is: enough to continue it exactly.
#[derive(Clone, Debug)]
pub struct TrainState {
    /// Epochs finished.
    pub epoch: usize,
    /// Mini-batches of the current epoch finished.
    pub step_in_epoch: usize,
    /// The current epoch's order of training images.
    pub order: Vec<u32>,
    /// Draws each epoch's order.
    pub data_rng: Rng,
    /// Its `lr` (and, for OneCycle, its momentum) is set from `schedule` before every
    /// step.
    pub optimizer: Optimizer,
    /// The learning rate the schedule starts from (PyTorch's `initial_lr`).
    pub base_lr: f32,
    /// Which rate each step uses (PyTorch's scheduler).
    pub schedule: Schedule,
    /// Sum of this epoch's batch losses so far (for the epoch's mean).
    pub loss_sum: f64,
    pub seconds: f64,
    /// Keys the augmentation's draws ([`augment::key`] of the seed): with the epoch and
    /// the image's index it fixes them, so it needs no place in a checkpoint.
    pub augment_key: u64,
    /// The best validation accuracy so far, and its epoch (from 1), for early stopping.
    pub best_val: Option<(usize, f64)>,
    /// The run was ended by early stopping ([`TrainConfig::patience`]).
    pub stopped_early: bool,
}

impl TrainState {
    /// A run not yet started, at a constant learning rate (the optimiser's).
    pub fn new(optimizer: Optimizer, seed: u64) -> Self {
        TrainState {
            epoch: 0,
            step_in_epoch: 0,
            order: Vec::new(),
            data_rng: Rng::new(seed ^ 0x5EED_DA7A),
            base_lr: optimizer.lr,
            optimizer,
            schedule: Schedule::CONSTANT,
            loss_sum: 0.0,
            seconds: 0.0,
            augment_key: augment::key(seed),
            best_val: None,
            stopped_early: false,
        }
    }

    /// The same, with the learning rate following `schedule` from the optimiser's.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_accuracy: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub seconds: f64,
    pub images_per_second: f64,
    pub lr: f32,
}

/// What the loop tells its caller; every method may stop the run by returning an error.
pub trait Observer {
    /// After each mini-batch.
    fn on_step(
        &mut self,
        _net: &mut Sequential,
        _state: &TrainState,
        _steps_per_epoch: usize,
        _loss: f32,
    ) -> Result<()> {
        Ok(())
    }
    /// After each epoch, with the evaluation done.
    fn on_epoch(
        &mut self,
        _report: &EpochReport,
        _net: &mut Sequential,
        _state: &TrainState,
    ) -> Result<()> {
        Ok(())
    }
}

/// No callbacks.
pub struct Silent;
impl Observer for Silent {}

/// Gathers a batch and applies the normalisation.
pub(crate) fn prepare(
    ds: &Dataset,
    indices: &[usize],
    normalize: Option<Normalize>,
) -> (Tensor, Vec<usize>) {
    let (mut x, y) = ds.batch(indices);
    if let Some(n) = normalize {
        n.apply_images(x.data_mut(), ds.image_len());
    }
    (x, y)
}

/// `prepare` (a batch, normalised) into buffers kept from step to step (what
/// [`Dataset::batch`] does, without allocating).
pub fn prepare_into(
    ds: &Dataset,
    indices: &[usize],
    normalize: Option<Normalize>,
    x: &mut Tensor,
    y: &mut Vec<usize>,
) {
    let [c, h, w] = ds.shape;
    let per = ds.image_len();
    let mut data = std::mem::take(x).into_data();
    data.resize(indices.len() * per, 0.0);
    for (dst, &i) in data.chunks_exact_mut(per.max(1)).zip(indices) {
        match ds.image_u8(i) {
            // Grey levels / 255, as Dataset::batch converts them.
            Some(px) => {
                for (d, &p) in dst.iter_mut().zip(px) {
                    *d = p as f32 / 255.0;
                }
            }
            None => dst.copy_from_slice(&ds.image(i)),
        }
    }
    if let Some(n) = normalize {
        n.apply_images(&mut data, per);
    }
    *x = Tensor::from_vec(&[indices.len(), c, h, w], data).expect("batch length");
    y.clear();
    y.extend(indices.iter().map(|&i| ds.labels[i]));
}

/// [`prepare_into`] with each image augmented as `augment` draws it (before the
/// normalisation, so that the fill is a black pixel), one image per task on the rayon
/// pool.
pub fn prepare_augmented_into(
    ds: &Dataset,
    indices: &[usize],
    normalize: Option<Normalize>,
    augment: &EpochAugment,
    x: &mut Tensor,
    y: &mut Vec<usize>,
) {
    let [c, h, w] = ds.shape;
    let mut data = std::mem::take(x).into_data();
    data.resize(indices.len() * ds.image_len(), 0.0);
    augment.write_batch(ds, indices, &mut data);
    if let Some(n) = normalize {
        n.apply_images(&mut data, ds.image_len());
    }
    *x = Tensor::from_vec(&[indices.len(), c, h, w], data).expect("batch length");
    y.clear();
    y.extend(indices.iter().map(|&i| ds.labels[i]));
}

/// Images per forward and backward pass: a larger mini-batch runs in parts of this
/// many images, each part adding its share to the gradients, so that a part's
/// activations and im2col columns stay in the cores' L2 caches. Measured on book-relu
/// at mini-batch 64 (see BENCHMARKS.md). A constant, never the thread count, so the
/// gradient sums keep one order: runs stay bitwise reproducible on any thread count.
/// A network with BatchNorm is never split: its statistics are the whole mini-batch's,
/// as in PyTorch ([`Sequential::mixes_images`]).
pub const MICRO_BATCH: usize = 16;

/// Buffers of [`accumulate_gradients`], kept from step to step, and the epoch's
/// augmentation (none by default).
#[derive(Default)]
pub struct StepBuffers {
    x: Tensor,
    y: Vec<usize>,
    augment: Option<EpochAugment>,
}

impl StepBuffers {
    /// Buffers whose batches are augmented as `augment` draws them.
    pub fn augmenting(augment: Option<EpochAugment>) -> Self {
        StepBuffers {
            augment,
            ..StepBuffers::default()
        }
    }
}

/// Adds dL/dθ of the mean cross-entropy (label-smoothed by `label_smoothing`, 0 for
/// none) over the images `indices` of `ds` to every parameter's gradient (call
/// `zero_grad` first for a fresh step) and returns that mean loss. The images go through
/// the network [`MICRO_BATCH`] at a time (all at once with BatchNorm); the result is the
/// whole batch's gradient (each part's loss gradient is scaled by 1/batch length).
pub fn accumulate_gradients(
    net: &mut Sequential,
    ds: &Dataset,
    indices: &[usize],
    normalize: Option<Normalize>,
    label_smoothing: f32,
    bufs: &mut StepBuffers,
) -> Result<f32> {
    let mut total = 0.0f64;
    let part = if net.mixes_images(Mode::Train) {
        indices.len().max(1)
    } else {
        MICRO_BATCH
    };
    for part in indices.chunks(part) {
        match &bufs.augment {
            Some(a) => prepare_augmented_into(ds, part, normalize, a, &mut bufs.x, &mut bufs.y),
            None => prepare_into(ds, part, normalize, &mut bufs.x, &mut bufs.y),
        }
        let logits = net.forward(&bufs.x, Mode::Train)?;
        let (sum, dlogits) =
            cross_entropy_smoothed_part(&logits, &bufs.y, indices.len(), label_smoothing);
        net.backward_params(&dlogits)?;
        total += sum;
    }
    Ok((total / indices.len().max(1) as f64) as f32)
}

/// Trains `net` from `state` until `cfg.epochs` epochs are done (or early stopping ends
/// the run), evaluating on `val` and `test` after each. Before every step the optimiser's
/// learning rate (and momentum, for OneCycle) is set from `state.schedule`.
pub fn train(
    net: &mut Sequential,
    state: &mut TrainState,
    train_set: &Dataset,
    val: Option<&Dataset>,
    test: Option<&Dataset>,
    cfg: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<Vec<EpochReport>> {
    let n = train_set.len();
    let bs = cfg.batch_size.max(1);
    let steps = n.div_ceil(bs);
    if let Some(a) = &cfg.augment {
        a.check(train_set.shape)?;
    }
    state.optimizer.check()?;
    state.schedule.check(cfg.epochs, steps)?;
    if !(0.0..=1.0).contains(&cfg.label_smoothing) {
        return Err(Error::Input(format!(
            "label smoothing {} must be in [0, 1], as nn.CrossEntropyLoss requires",
            cfg.label_smoothing
        )));
    }
    if let Some(p) = cfg.patience {
        if p == 0 {
            return Err(Error::Input(
                "patience 0: give at least 1 epoch without improvement before stopping".into(),
            ));
        }
        if val.is_none() {
            return Err(Error::Input(format!(
                "early stopping (patience {p}) watches the validation accuracy, but there is \
                 no validation set"
            )));
        }
    }
    let mut reports = Vec::new();
    while state.epoch < cfg.epochs && !state.stopped_early {
        if state.step_in_epoch == 0 {
            begin_epoch(state, cfg, n);
        }
        let started = Instant::now();
        let mut images_this_session = 0usize;
        let (mut idx, mut bufs) = (Vec::with_capacity(bs), epoch_buffers(state, cfg));
        while state.step_in_epoch < steps {
            let loss = train_step(net, state, train_set, cfg, &mut idx, &mut bufs)?;
            images_this_session += idx.len();
            observer.on_step(net, state, steps, loss)?;
        }
        if let Some((name, _)) = net
            .named_params()
            .into_iter()
            .find(|(_, p)| p.value.data().iter().any(|v| !v.is_finite()))
        {
            return Err(diverged(
                state,
                steps,
                format!("parameter {name} is not finite"),
            ));
        }
        state.seconds += started.elapsed().as_secs_f64();
        let train_seconds = state.seconds;
        let val_accuracy = val.map(|v| accuracy(net, v, cfg.normalize)).transpose()?;
        let test_accuracy = test.map(|t| accuracy(net, t, cfg.normalize)).transpose()?;
        let report = EpochReport {
            epoch: state.epoch + 1,
            train_loss: state.loss_sum / steps.max(1) as f64,
            val_accuracy,
            test_accuracy,
            seconds: train_seconds,
            images_per_second: images_this_session as f64
                / started.elapsed().as_secs_f64().max(1e-9),
            lr: state.optimizer.lr,
        };
        state.epoch += 1;
        state.step_in_epoch = 0;
        if let Some(v) = val_accuracy {
            // Only a higher accuracy is an improvement; a tie is not.
            if state.best_val.is_none_or(|(_, best)| v > best) {
                state.best_val = Some((state.epoch, v));
            }
        }
        if let (Some(patience), Some((best_epoch, _))) = (cfg.patience, state.best_val) {
            state.stopped_early = state.epoch < cfg.epochs && state.epoch - best_epoch >= patience;
        }
        observer.on_epoch(&report, net, state)?;
        reports.push(report);
    }
    Ok(reports)
}

/// Starts an epoch of [`train`]: the epoch's order of the `n` training images (shuffled
/// from the run's stream when `cfg.shuffle`), and its sums reset.
pub fn begin_epoch(state: &mut TrainState, cfg: &TrainConfig, n: usize) {
    state.order = (0..n as u32).collect();
    if cfg.shuffle {
        state.data_rng.shuffle(&mut state.order);
    }
    state.loss_sum = 0.0;
    state.seconds = 0.0;
}

/// The step buffers of the current epoch: its augmentation (drawn for this epoch), if
/// `cfg` has one.
pub fn epoch_buffers(state: &TrainState, cfg: &TrainConfig) -> StepBuffers {
    let augment = cfg
        .augment
        .map(|a| a.for_epoch(state.augment_key, state.epoch));
    StepBuffers::augmenting(augment)
}

/// One mini-batch of [`train`]: the next images of the epoch's order, the learning rate
/// (and momentum) the schedule gives this step, the gradient, the optimiser's step.
/// Returns the batch's mean loss; a non-finite loss is [`Error::Diverged`]. `idx` is a
/// scratch buffer. [`train`] runs these in a loop; a caller that must return between
/// steps (the browser's worker) runs them itself, with [`begin_epoch`] and
/// [`epoch_buffers`] at each epoch's start, and gets the same weights.
pub fn train_step(
    net: &mut Sequential,
    state: &mut TrainState,
    train_set: &Dataset,
    cfg: &TrainConfig,
    idx: &mut Vec<usize>,
    bufs: &mut StepBuffers,
) -> Result<f32> {
    let n = train_set.len();
    let bs = cfg.batch_size.max(1);
    let steps = n.div_ceil(bs);
    let s = state.step_in_epoch;
    idx.clear();
    idx.extend(
        state.order[s * bs..((s + 1) * bs).min(n)]
            .iter()
            .map(|&i| i as usize),
    );
    let rates = state.schedule.at(
        state.base_lr,
        Position {
            epoch: state.epoch,
            step_in_epoch: s,
            steps_per_epoch: steps,
            epochs: cfg.epochs,
        },
    );
    state.optimizer.lr = rates.lr;
    if let Some(m) = rates.momentum {
        state.optimizer.set_momentum(m);
    }
    net.zero_grad();
    let loss = accumulate_gradients(
        net,
        train_set,
        idx,
        cfg.normalize,
        cfg.label_smoothing,
        bufs,
    )?;
    if !loss.is_finite() {
        return Err(diverged(state, steps, format!("the loss is {loss}")));
    }
    state.optimizer.step(net);
    state.loss_sum += loss as f64;
    state.step_in_epoch += 1;
    Ok(loss)
}

fn diverged(state: &TrainState, steps: usize, what: String) -> Error {
    Error::Diverged(format!(
        "training diverged in epoch {}, step {} of {steps}: {what}; try a smaller learning \
         rate (now {:?})",
        state.epoch + 1,
        state.step_in_epoch + 1,
        state.optimizer.lr
    ))
}

/// The network's predicted class for every image of `ds`, in Eval mode (see
/// [`crate::evaluate::predict`]).
pub fn predict_all(
    net: &mut Sequential,
    ds: &Dataset,
    normalize: Option<Normalize>,
) -> Result<Vec<usize>> {
    Ok(crate::evaluate::predict(net, ds, normalize, false)?.classes)
}

/// Class probabilities for every image of `ds` (`[N, classes]`), in Eval mode (see
/// [`crate::evaluate::predict`]).
pub fn probabilities_all(
    net: &mut Sequential,
    ds: &Dataset,
    normalize: Option<Normalize>,
) -> Result<Vec<Vec<f32>>> {
    let p = crate::evaluate::predict(net, ds, normalize, true)?;
    Ok(p.probs
        .chunks_exact(p.outputs.max(1))
        .map(<[f32]>::to_vec)
        .collect())
}

/// Fraction of `ds` classified correctly, in [0, 1].
pub fn accuracy(net: &mut Sequential, ds: &Dataset, normalize: Option<Normalize>) -> Result<f64> {
    let preds = predict_all(net, ds, normalize)?;
    let correct = crate::evaluate::correct(&preds, &ds.labels);
    Ok(correct as f64 / ds.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::cross_entropy;

    /// A batch run in parts of MICRO_BATCH images gives the gradient and loss of one
    /// pass over the whole batch (to float rounding: only the order of the batch sums
    /// differs).
    #[test]
    fn a_batch_in_parts_has_the_gradient_of_one_pass() {
        let n = 2 * MICRO_BATCH + 5;
        let mut rng = Rng::new(7);
        let images: Vec<f32> = (0..n * 10 * 10).map(|_| rng.uniform_f32()).collect();
        let labels: Vec<usize> = (0..n).map(|i| (i * 7) % 10).collect();
        let ds = Dataset::new("random", images, labels, [1, 10, 10], 10).unwrap();
        let spec = "Conv2d(1, 4, 3) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(64, 10)";
        let mut parts = crate::spec::build(spec, &ds.shape, 3).unwrap();
        let mut whole = crate::spec::build(spec, &ds.shape, 3).unwrap();
        let indices: Vec<usize> = (0..n).rev().collect();

        parts.zero_grad();
        let loss_parts = accumulate_gradients(
            &mut parts,
            &ds,
            &indices,
            None,
            0.0,
            &mut StepBuffers::default(),
        )
        .unwrap();

        whole.zero_grad();
        let (x, y) = prepare(&ds, &indices, None);
        let logits = whole.forward(&x, Mode::Train).unwrap();
        let (loss_whole, dlogits) = cross_entropy(&logits, &y);
        whole.backward_params(&dlogits).unwrap();

        assert!((loss_parts - loss_whole).abs() <= 1e-6 * loss_whole.abs());
        for ((name, a), (_, b)) in parts.named_params().into_iter().zip(whole.named_params()) {
            let (a, b) = (
                a.grad().expect("backward ran"),
                b.grad().expect("backward ran"),
            );
            let scale = b.data().iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{name}: no gradient");
            for (u, v) in a.data().iter().zip(b.data()) {
                assert!((u - v).abs() <= 1e-5 * scale, "{name}: {u} vs {v}");
            }
        }
    }

    /// With BatchNorm the batch is not split: the gradient, the loss and the running
    /// statistics are those of one pass over all its images (bit for bit), and the
    /// statistics moved once.
    #[test]
    fn a_batch_with_batchnorm_goes_through_whole() {
        let n = 2 * MICRO_BATCH + 5;
        let mut rng = Rng::new(9);
        let images: Vec<f32> = (0..n * 10 * 10).map(|_| rng.uniform_f32()).collect();
        let labels: Vec<usize> = (0..n).map(|i| (i * 3) % 10).collect();
        let ds = Dataset::new("random", images, labels, [1, 10, 10], 10).unwrap();
        let spec = "Conv2d(1, 4, 3, bias=False) -> BatchNorm2d(4) -> ReLU -> MaxPool2d(2) \
                    -> Flatten -> Linear(64, 10)";
        let mut stepped = crate::spec::build(spec, &ds.shape, 3).unwrap();
        let mut whole = crate::spec::build(spec, &ds.shape, 3).unwrap();
        let indices: Vec<usize> = (0..n).rev().collect();

        stepped.zero_grad();
        let loss_stepped = accumulate_gradients(
            &mut stepped,
            &ds,
            &indices,
            None,
            0.0,
            &mut StepBuffers::default(),
        )
        .unwrap();

        whole.zero_grad();
        let (x, y) = prepare(&ds, &indices, None);
        let logits = whole.forward(&x, Mode::Train).unwrap();
        let (loss_whole, dlogits) = cross_entropy(&logits, &y);
        whole.backward_params(&dlogits).unwrap();

        assert_eq!(loss_stepped.to_bits(), loss_whole.to_bits());
        let bits = |net: &Sequential| {
            let grads = net.named_params().into_iter().map(|(name, p)| {
                let g = p.grad().expect("backward ran").data();
                (name, g.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            });
            let buffers = net.named_buffers().into_iter().map(|(name, b)| match b {
                crate::layers::Buffer::F32(t) => {
                    (name, t.data().iter().map(|v| v.to_bits()).collect())
                }
                crate::layers::Buffer::I64(v) => (name, vec![v as u32]),
            });
            grads.chain(buffers).collect::<Vec<_>>()
        };
        assert_eq!(bits(&stepped), bits(&whole));
        let tracked = stepped
            .named_buffers()
            .into_iter()
            .find_map(|(name, b)| match b {
                crate::layers::Buffer::I64(v) if name.ends_with("num_batches_tracked") => Some(v),
                _ => None,
            });
        assert_eq!(
            tracked,
            Some(1),
            "one step moves the running statistics once"
        );
    }
}
