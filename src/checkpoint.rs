//! Checkpoints: everything a run needs to continue exactly where it was — the weights,
//! the optimiser's buffers and step count, the learning-rate schedule (its arguments,
//! base rate and the rates of the last step), the position in the epoch and that
//! epoch's data order, every random stream (data order, dropout masks), and the early
//! stopping's best validation accuracy. Resuming from one gives weights bitwise
//! identical to the run left alone. A checkpoint refuses to resume a run whose optimiser
//! or schedule differs from the one that wrote it.
//!
//! The file is safetensors (so it is bounded and safe to read): tensors `model.<name>`,
//! `optim.m.<i>`, `optim.v.<i>`, `order` (u32), and a JSON document under the metadata
//! key `seqnet.checkpoint`. It is written atomically (temporary file, fsync, rename).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::safetensors_file::{self as stf, Entry};
use crate::rng::Rng;
use crate::schedule::Schedule;
use crate::sequential::Sequential;
use crate::tensor::Tensor;
use crate::train::TrainState;

/// The scalar part of a checkpoint. Floats are stored by their bits so that nothing
/// is lost in a decimal round trip.
#[derive(Serialize, Deserialize, Debug)]
struct Scalars {
    epoch: usize,
    step_in_epoch: usize,
    optimizer_step: u64,
    lr_bits: u32,
    loss_sum_bits: u64,
    seconds: f64,
    data_rng: [String; 4],
    /// Per layer, the state of its random stream (dropout), if it has one.
    layer_rngs: Vec<Option<[String; 4]>>,
    /// "sgd", "adam" or "adamw" (absent in checkpoints of seqnet 0.1).
    #[serde(default)]
    optimizer: Option<String>,
    /// The scheduler: its schedule, base rate, and the momentum (SGD) or β1 (Adam) of
    /// the last step, which OneCycle cycles (absent in checkpoints of seqnet 0.1).
    #[serde(default)]
    scheduler: Option<SchedulerState>,
    /// Early stopping: the best validation accuracy's epoch and bits, and whether the
    /// run was stopped.
    #[serde(default)]
    best_val: Option<(usize, u64)>,
    #[serde(default)]
    stopped_early: bool,
    /// Whatever the caller wants back on resume (best epoch so far, …).
    extra: serde_json::Value,
}

/// PyTorch's scheduler state_dict, as far as a schedule that is a function of the
/// position needs one: the schedule itself (to refuse resuming under another), the rate
/// it starts from, and the momentum the last step used.
#[derive(Serialize, Deserialize, Debug)]
struct SchedulerState {
    schedule: Schedule,
    base_lr_bits: u32,
    momentum_bits: u32,
}

fn words(s: [u64; 4]) -> [String; 4] {
    s.map(|w| format!("{w:016x}"))
}

fn unwords(path: &Path, s: &[String; 4]) -> Result<[u64; 4]> {
    let mut out = [0u64; 4];
    for (o, w) in out.iter_mut().zip(s) {
        *o = u64::from_str_radix(w, 16)
            .map_err(|_| bad(path, "a random-generator state is not hexadecimal"))?;
    }
    Ok(out)
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message: format!(
            "checkpoint: {}; delete it to restart the run from its beginning",
            message.into()
        ),
    }
}

/// Writes a checkpoint of `net` and `state`. Refuses (with [`Error::Diverged`]) to save
/// non-finite weights, so the last good checkpoint survives a divergence.
pub fn save(
    path: &Path,
    net: &mut Sequential,
    state: &TrainState,
    extra: serde_json::Value,
) -> Result<()> {
    let mut entries = Vec::new();
    for (name, p) in net.named_params() {
        if p.value.data().iter().any(|v| !v.is_finite()) {
            return Err(Error::Diverged(format!(
                "parameter {name} is not finite in epoch {}, step {}; the last good checkpoint \
                 is kept; try a smaller learning rate",
                state.epoch + 1,
                state.step_in_epoch
            )));
        }
    }
    entries.extend(crate::io::model::state_entries(net, "model."));
    for (i, (m, v)) in state.optimizer.m.iter().zip(&state.optimizer.v).enumerate() {
        entries.push(Entry::f32(
            format!("optim.m.{i}"),
            &Tensor::from_vec(&[m.len()], m.clone())?,
        ));
        entries.push(Entry::f32(
            format!("optim.v.{i}"),
            &Tensor::from_vec(&[v.len()], v.clone())?,
        ));
    }
    entries.push(Entry {
        name: "order".into(),
        dtype: Dtype::U32,
        shape: vec![state.order.len()],
        bytes: state.order.iter().flat_map(|v| v.to_le_bytes()).collect(),
    });
    let scalars = Scalars {
        epoch: state.epoch,
        step_in_epoch: state.step_in_epoch,
        optimizer_step: state.optimizer.step,
        lr_bits: state.optimizer.lr.to_bits(),
        loss_sum_bits: state.loss_sum.to_bits(),
        seconds: state.seconds,
        data_rng: words(state.data_rng.state()),
        layer_rngs: net
            .layers_mut()
            .iter_mut()
            .map(|l| l.rng_mut().map(|r| words(r.state())))
            .collect(),
        optimizer: Some(state.optimizer.kind.name().to_string()),
        scheduler: Some(SchedulerState {
            schedule: state.schedule.clone(),
            base_lr_bits: state.base_lr.to_bits(),
            momentum_bits: state.optimizer.kind.momentum().to_bits(),
        }),
        best_val: state.best_val.map(|(e, v)| (e, v.to_bits())),
        stopped_early: state.stopped_early,
        extra,
    };
    let json = serde_json::to_string(&scalars).map_err(|e| bad(path, e.to_string()))?;
    stf::write_atomic(
        path,
        &entries,
        HashMap::from([("seqnet.checkpoint".to_string(), json)]),
    )
}

/// Restores `net` and `state` from a checkpoint written by [`save`] for the same network
/// and optimiser; returns the caller's `extra` value.
pub fn load(
    path: &Path,
    net: &mut Sequential,
    state: &mut TrainState,
) -> Result<serde_json::Value> {
    let bytes = stf::read_bounded(path)?;
    let file = stf::parse(path, &bytes)?;
    let meta = stf::metadata(path, &bytes)?;
    let json = meta
        .get("seqnet.checkpoint")
        .ok_or_else(|| bad(path, "no 'seqnet.checkpoint' metadata"))?;
    let s: Scalars = serde_json::from_str(json)
        .map_err(|e| bad(path, format!("metadata is malformed ({e})")))?;

    let mut params = Vec::new();
    let (mut m, mut v) = (Vec::new(), Vec::new());
    for (name, view) in file.tensors() {
        if let Some(p) = name.strip_prefix("model.") {
            params.push((p.to_string(), stf::to_stored(path, &name, &view)?));
        }
    }
    crate::io::model::load_state_dict(path, net, params)?;
    let n_params = net.named_params().len();
    for i in 0..n_params {
        for (prefix, out) in [("optim.m", &mut m), ("optim.v", &mut v)] {
            if let Ok(view) = file.tensor(&format!("{prefix}.{i}")) {
                out.push(stf::to_f32(path, prefix, &view)?.into_data());
            }
        }
    }
    let order_view = file
        .tensor("order")
        .map_err(|_| bad(path, "no 'order' tensor"))?;
    if order_view.dtype() != Dtype::U32 {
        return Err(bad(path, "'order' is not u32"));
    }
    let order: Vec<u32> = order_view
        .data()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();

    if let Some(name) = &s.optimizer {
        let now = state.optimizer.kind.name();
        if name != now {
            return Err(bad(
                path,
                format!("it was written by a run with the {name} optimiser, not {now}"),
            ));
        }
    }
    if let Some(sched) = &s.scheduler
        && (sched.schedule != state.schedule || sched.base_lr_bits != state.base_lr.to_bits())
    {
        return Err(bad(
            path,
            format!(
                "it was written by a run with the schedule '{}', not '{}'",
                sched.schedule.describe(f32::from_bits(sched.base_lr_bits)),
                state.schedule.describe(state.base_lr)
            ),
        ));
    }
    if s.layer_rngs.len() != net.layers().len() {
        return Err(bad(
            path,
            "it was written for a network with a different number of layers",
        ));
    }
    for (layer, saved) in net.layers_mut().iter_mut().zip(&s.layer_rngs) {
        match (layer.rng_mut(), saved) {
            (Some(r), Some(w)) => *r = Rng::from_state(unwords(path, w)?),
            (None, None) => {}
            _ => return Err(bad(path, "its dropout layers do not match the network")),
        }
    }
    state.epoch = s.epoch;
    state.step_in_epoch = s.step_in_epoch;
    state.order = order;
    state.data_rng = Rng::from_state(unwords(path, &s.data_rng)?);
    state.optimizer.step = s.optimizer_step;
    state.optimizer.lr = f32::from_bits(s.lr_bits);
    state.optimizer.m = m;
    state.optimizer.v = v;
    if let Some(sched) = &s.scheduler {
        state
            .optimizer
            .set_momentum(f32::from_bits(sched.momentum_bits));
    }
    state.best_val = s.best_val.map(|(e, bits)| (e, f64::from_bits(bits)));
    state.stopped_early = s.stopped_early;
    state.loss_sum = f64::from_bits(s.loss_sum_bits);
    state.seconds = s.seconds;
    Ok(s.extra)
}
