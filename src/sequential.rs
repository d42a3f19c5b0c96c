//! Sequential: layers applied in order, built for one input shape. PyTorch:
//! `nn.Sequential(...)`, plus what PyTorch lacks: every layer is checked against the
//! shape it will receive when it is added, so a wrong size is an error that names the
//! layer and the numbers before any data flows.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use rayon::prelude::*;

use crate::layers::{
    Buffer, BufferMut, BuildContext, ImageStep, Init, InitContext, Layer, LayerDesc, OutputKind,
    Param, Pass, ShapeStep, Slots,
};
use crate::rng::Rng;
use crate::shape::fmt_shape;
use crate::tensor::Tensor;

/// A network: an input shape (per image) and layers, each built for the shape it receives.
#[derive(Debug)]
pub struct Sequential {
    input: Vec<usize>,
    layers: Vec<Box<dyn Layer>>,
    /// What each layer does to the shape, in order.
    steps: Vec<ShapeStep>,
    /// How the layers run: stretches of image-wise layers, and the layers between them,
    /// found once, as each layer is added.
    plan: Vec<Stretch>,
    rng: Rng,
    /// The last forward's buffers, reused from pass to pass: `bufs[0]` is the input and
    /// `bufs[i + 1]` layer i's output.
    bufs: Vec<Tensor>,
    /// The last backward's gradients: `grads[i]` is dL/d(`bufs[i]`), the input gradient
    /// of layer i (`grads[0]` only when the caller asks for it).
    grads: Vec<Tensor>,
    /// The pass and the batch size of the last forward: what a backward may follow.
    last_forward: Option<(Pass, usize)>,
    /// Time per layer, while [`Sequential::set_profiling`] is on.
    profiler: Option<Profiler>,
}

/// Nanoseconds spent in each layer's forward and backward, summed over images and
/// threads (so with several threads it is CPU time, not wall time).
#[derive(Debug, Default)]
struct Profiler {
    forward: Vec<AtomicU64>,
    backward: Vec<AtomicU64>,
}

impl Profiler {
    /// `f()`, its time added to `slot`; without a slot, just `f()`.
    #[inline]
    fn time<R>(slot: Option<&AtomicU64>, f: impl FnOnce() -> R) -> R {
        Self::timed(slot, || 1, f)
    }

    /// As [`Profiler::time`], for work on the whole batch at once (a layer that is not
    /// image-wise, or the sums after an image-wise stretch): its wall time counts once for
    /// every thread of the pool, which it has to itself (or leaves idle), so that its
    /// times and the image-wise ones summed over the threads are both machine time.
    #[inline]
    fn time_whole<R>(slot: Option<&AtomicU64>, f: impl FnOnce() -> R) -> R {
        Self::timed(slot, rayon::current_num_threads, f)
    }

    /// `f()`, its wall time times `threads()` added to `slot` (asked only when timing).
    #[inline]
    fn timed<R>(
        slot: Option<&AtomicU64>,
        threads: impl FnOnce() -> usize,
        f: impl FnOnce() -> R,
    ) -> R {
        match slot {
            None => f(),
            Some(slot) => {
                let t = Instant::now();
                let r = f();
                let ns = t.elapsed().as_nanos() as u64 * threads() as u64;
                slot.fetch_add(ns, Ordering::Relaxed);
                r
            }
        }
    }
}

/// One layer's share of the passes since profiling was turned on
/// ([`Sequential::profile`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerTime {
    /// In forward passes (Train, Eval or Infer).
    pub forward: Duration,
    /// In backward passes, the adding up of per-image gradient terms included.
    pub backward: Duration,
}

/// Layers that run together: a stretch of image-wise layers that carry each image
/// through all of them in one parallel task, or a single layer run on the whole batch.
#[derive(Clone, Debug)]
struct Stretch {
    layers: Range<usize>,
    per_image: bool,
    /// Multiply-adds and output values per image over the stretch: whether a batch is
    /// worth sharing between threads.
    work_per_image: u64,
}

impl Stretch {
    /// Whether `n` images give enough work to share between threads: a ReLU between two
    /// Linear layers (100 values an image) costs less than waking a thread.
    fn parallel(&self, n: usize) -> bool {
        self.work_per_image.saturating_mul(n as u64) >= 32 * 1024
    }
}

/// Images per chunk in [`Sequential::infer`]: small enough for every layer's output to
/// stay in cache, large enough to keep the threads busy.
const INFER_CHUNK: usize = 32;

/// Most multiply-accumulates one layer may cost per image (about 17 billion).
pub const MAX_MACS_PER_LAYER: u64 = 1 << 34;

impl Sequential {
    /// An empty network for images of `input` shape (`[C, H, W]`, or `[F]` for flat
    /// vectors). Parameters are drawn PyTorch's way from seed 0 unless [`Sequential::seed`]
    /// says otherwise.
    pub fn new(input: impl Into<Vec<usize>>) -> Self {
        Sequential {
            input: input.into(),
            layers: Vec::new(),
            steps: Vec::new(),
            plan: Vec::new(),
            rng: Rng::new(0),
            bufs: Vec::new(),
            grads: Vec::new(),
            last_forward: None,
            profiler: None,
        }
    }

    /// Turns per-layer timing on (counters from zero) or off. Off, as it is by default,
    /// the passes read no clock. With several threads the times are machine time (at one
    /// thread, wall time): a layer that runs image by image is timed on every thread and
    /// the times are added up; work on the whole batch at once counts its wall time once
    /// per thread of the pool. Not on wasm32-unknown-unknown, which has no clock: there
    /// it stays off.
    pub fn set_profiling(&mut self, on: bool) {
        let clock = !cfg!(all(target_arch = "wasm32", target_os = "unknown"));
        self.profiler = (on && clock).then(|| {
            let zeros = || (0..self.layers.len()).map(|_| AtomicU64::new(0)).collect();
            Profiler {
                forward: zeros(),
                backward: zeros(),
            }
        });
    }

    /// Per layer, the time spent since [`Sequential::set_profiling`]`(true)`; None while
    /// profiling is off.
    pub fn profile(&self) -> Option<Vec<LayerTime>> {
        let p = self.profiler.as_ref()?;
        let ns = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        Some(
            p.forward
                .iter()
                .zip(&p.backward)
                .map(|(f, b)| LayerTime {
                    forward: ns(f),
                    backward: ns(b),
                })
                .collect(),
        )
    }

    /// Seeds the generator that draws the parameters of the layers added after this.
    /// PyTorch: `torch.manual_seed(seed)`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Rng::new(seed);
        self
    }

    /// Adds a layer, building it for the current output shape. PyTorch: the next
    /// argument of `nn.Sequential(...)`, checked now instead of at the first batch.
    // Named like PyTorch's `add_module`/`append`, not the `+` operator: it can fail.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, layer: impl Layer + 'static) -> Result<Self> {
        self.add_boxed(Box::new(layer))
    }

    /// [`Sequential::add`] for a layer already boxed (the spec parser makes these).
    pub fn add_boxed(mut self, mut layer: Box<dyn Layer>) -> Result<Self> {
        let index = self.layers.len();
        if index == 0 && (self.input.is_empty() || self.input.contains(&0)) {
            return Err(Error::Input(format!(
                "input shape {} must have positive sizes, e.g. 1×28×28",
                fmt_shape(&self.input)
            )));
        }
        let input = self.output_shape().to_vec();
        let source = match self.layers.last() {
            Some(prev) => format!("layer {} {}", index - 1, prev.kind()),
            None => "the input".to_string(),
        };
        let flattened_from = match self.layers.last().map(|prev| prev.describe()) {
            Some(LayerDesc::Flatten) => Some(self.layer_input(index - 1).to_vec()),
            _ => None,
        };
        let mut ctx = BuildContext {
            input: &input,
            source,
            flattened_from,
            rng: &mut self.rng,
        };
        let repr_before = layer.repr();
        let step = layer.build(&mut ctx).map_err(|message| Error::Shape {
            index,
            repr: repr_before,
            message,
        })?;
        // A layer whose work per image is absurd (a kernel of 500 with padding 500) would
        // build cheaply and then exhaust memory in its first forward pass (im2col holds
        // C·kh·kw × OH·OW values, no more than its MACs): refuse it now.
        if step.macs > MAX_MACS_PER_LAYER {
            return Err(Error::Shape {
                index,
                repr: layer.repr(),
                message: format!(
                    "would need {} multiply-adds per image, more than seqnet runs in one layer ({MAX_MACS_PER_LAYER}); check the kernel size, padding and stride",
                    step.macs
                ),
            });
        }
        // The plan: an image-wise layer joins the stretch before it when that one is
        // image-wise too; any other layer runs alone.
        let per_image = layer.per_image().is_some();
        let work = step.macs + step.out.iter().product::<usize>() as u64;
        match self.plan.last_mut() {
            Some(last) if per_image && last.per_image => {
                last.layers.end += 1;
                last.work_per_image += work;
            }
            _ => self.plan.push(Stretch {
                layers: index..index + 1,
                per_image,
                work_per_image: work,
            }),
        }
        self.layers.push(layer);
        if let Some(p) = &mut self.profiler {
            p.forward.push(AtomicU64::new(0));
            p.backward.push(AtomicU64::new(0));
        }
        self.steps.push(step);
        Ok(self)
    }

    /// Re-draws every parameter with `scheme` from `seed`. The book's scheme needs to
    /// see the whole network (a conv layer's pooling, the output layer), hence after
    /// building. PyTorch: `torch.manual_seed(seed); model.apply(init_fn)`.
    pub fn init(&mut self, scheme: Init, seed: u64) {
        let mut rng = Rng::new(seed);
        let last_with_params = self.layers.iter().rposition(|l| !l.params().is_empty());
        for i in 0..self.layers.len() {
            // The pooling that follows, past element-wise activations: network3.py pools
            // before the activation, PyTorch code (and seqnet's presets) after it, and
            // for ReLU, sigmoid and tanh the two orders compute the same function.
            let pool = (i + 1..self.layers.len())
                .find(|&j| !self.layers[j].describe().is_monotonic_activation())
                .filter(|&j| self.layers[j].describe().is_pooling());
            let next_pool = match pool {
                Some(j) => {
                    let (a, b) = (self.layer_input(j), &self.steps[j].out);
                    (a[1] * a[2]) / (b[1] * b[2]).max(1)
                }
                None => 1,
            };
            self.layers[i].init_params(&mut InitContext {
                scheme,
                rng: &mut rng,
                next_pool: next_pool.max(1),
                is_output: Some(i) == last_with_params,
            });
        }
    }

    /// The shape of one image entering the network.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// The shape of one image leaving the network (the input shape if it has no layers).
    pub fn output_shape(&self) -> &[usize] {
        self.steps.last().map_or(&self.input, |s| &s.out)
    }

    /// The shape of one image entering layer `index`.
    pub fn layer_input(&self, index: usize) -> &[usize] {
        if index == 0 {
            &self.input
        } else {
            &self.steps[index - 1].out
        }
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// What each layer does to the shape, in order.
    pub fn steps(&self) -> &[ShapeStep] {
        &self.steps
    }

    /// The canonical text form: each layer's PyTorch repr joined by ` -> `. The spec
    /// parser reads it back to the same network.
    pub fn spec(&self) -> String {
        let parts: Vec<String> = self.layers.iter().map(|l| l.repr()).collect();
        parts.join(" -> ")
    }

    fn check_input(&self, inp: &Tensor) -> Result<()> {
        if inp.shape().len() != self.input.len() + 1 || inp.shape()[1..] != self.input[..] {
            return Err(Error::Input(format!(
                "the network takes batches shaped N×{} but was given {}; resize the images \
                 or build the network for this input shape",
                fmt_shape(&self.input),
                fmt_shape(inp.shape())
            )));
        }
        Ok(())
    }

    /// The outputs for a batch in Eval mode, as [`Sequential::forward`]`(inp,
    /// Pass::Eval)` computes them, but in chunks of a few dozen images, reusing the same
    /// buffers from chunk to chunk and call to call: faster and smaller for large
    /// batches. Nothing is kept for a backward pass (call `forward` for that).
    pub fn infer(&mut self, inp: &Tensor) -> Result<Tensor> {
        self.check_input(inp)?;
        let n = inp.batch();
        let per_in = inp.len() / n.max(1);
        let per_out: usize = self.output_shape().iter().product();
        let mut out_shape = vec![n];
        out_shape.extend_from_slice(self.output_shape());
        let mut out = Tensor::zeros(&out_shape);
        // A network whose outputs depend on the whole batch goes through in one piece.
        let chunk = if self.mixes_images(Pass::Infer) {
            n.max(1)
        } else {
            INFER_CHUNK
        };
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            self.load_input(len, &inp.data()[start * per_in..(start + len) * per_in]);
            self.run_forward(Pass::Infer);
            let last = &self.bufs[self.layers.len()];
            out.data_mut()[start * per_out..(start + len) * per_out].copy_from_slice(last.data());
        }
        Ok(out)
    }

    /// Runs the batch `inp` (`[N, ...input shape]`) through every layer. After a Train or
    /// Eval pass, a backward may follow; after an Infer pass it may not.
    pub fn forward(&mut self, inp: &Tensor, pass: Pass) -> Result<Tensor> {
        self.check_input(inp)?;
        self.load_input(inp.batch(), inp.data());
        self.run_forward(pass);
        let out = self.bufs[self.layers.len()].clone();
        if pass != Pass::Train {
            // An evaluation batch may be large (a whole test set): its layer outputs are
            // not worth keeping for the next call. Training keeps them, so that a step
            // reuses the last one's buffers.
            for buf in &mut self.bufs {
                *buf = Tensor::default();
            }
        }
        Ok(out)
    }

    /// Whether an image's output in `pass` depends on the other images of its batch:
    /// BatchNorm normalises with the batch's statistics in training, and in every pass
    /// when it keeps no running statistics. Such a batch must go through whole: the
    /// training loop does not split it into parts ([`crate::train::MICRO_BATCH`]), and
    /// [`Sequential::infer`] does not cut it into chunks.
    pub fn mixes_images(&self, pass: Pass) -> bool {
        self.layers.iter().any(|l| match l.describe() {
            LayerDesc::BatchNorm {
                track_running_stats,
                ..
            } => pass == Pass::Train || !track_running_stats,
            _ => false,
        })
    }

    /// Copies a batch of `n` images into `bufs[0]`.
    fn load_input(&mut self, n: usize, images: &[f32]) {
        self.bufs
            .resize_with(self.layers.len() + 1, Tensor::default);
        let x = &mut self.bufs[0];
        x.reuse_as_batch(n, &self.input);
        x.data_mut().copy_from_slice(images);
    }

    /// The forward driver, for every pass: runs the plan over the batch in `bufs[0]`,
    /// leaving layer i's output in `bufs[i + 1]`.
    fn run_forward(&mut self, pass: Pass) {
        let n = self.bufs[0].batch();
        for stretch in &self.plan {
            let r = stretch.layers.clone();
            let (done, rest) = self.bufs.split_at_mut(r.start + 1);
            let x = &done[r.start];
            let prof = self.profiler.as_ref().map(|p| &p.forward[r.clone()]);
            if stretch.per_image {
                forward_run(
                    &mut self.layers[r.clone()],
                    x,
                    &mut rest[..r.len()],
                    &self.steps[r],
                    pass,
                    stretch.parallel(n),
                    prof,
                );
            } else {
                let layer = &mut self.layers[r.start];
                Profiler::time_whole(prof.map(|p| &p[0]), || {
                    layer.forward_into(x, &mut rest[0], pass)
                });
            }
        }
        self.last_forward = Some((pass, n));
    }

    /// Back-propagates `dout` (dL/d(output) of the last forward) through every layer,
    /// adding into each parameter's gradient, and returns dL/d(input).
    pub fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        self.run_backward(dout, true)?;
        Ok(std::mem::take(&mut self.grads[0]))
    }

    /// [`Sequential::backward`] for training: adds every parameter's gradient but does
    /// not compute dL/d(input), which no one needs there (it saves the first layer's
    /// input-gradient product). PyTorch: `loss.backward()` on an input without
    /// `requires_grad`.
    pub fn backward_params(&mut self, dout: &Tensor) -> Result<()> {
        self.run_backward(dout, false)
    }

    /// The backward driver: runs the plan last to first; `grads[i]` receives dL/d(input
    /// of layer i) (for i = 0 only when `input_grad`).
    fn run_backward(&mut self, dout: &Tensor, input_grad: bool) -> Result<()> {
        let count = self.layers.len();
        // dL/d(output) must belong to the last forward: another shape is a caller's
        // mistake that would otherwise mix with the layers' per-image state.
        let n = match self.last_forward {
            Some((Pass::Train | Pass::Eval, n)) => n,
            Some((Pass::Infer, _)) => {
                return Err(Error::Input(
                    "Sequential::backward follows a Train or Eval forward; the last forward \
                     was an Infer pass (or infer), which keeps nothing for backward"
                        .into(),
                ));
            }
            None => {
                return Err(Error::Input(
                    "Sequential::backward needs a forward first".into(),
                ));
            }
        };
        let mut want = vec![n];
        want.extend_from_slice(self.output_shape());
        if dout.shape() != want.as_slice() {
            return Err(Error::Input(format!(
                "Sequential::backward: dL/d(output) is shaped {}, the last forward's output {}",
                fmt_shape(dout.shape()),
                fmt_shape(&want)
            )));
        }
        self.grads.resize_with(count.max(1), Tensor::default);
        if count == 0 {
            self.grads[0] = dout.clone();
            return Ok(());
        }
        for stretch in self.plan.iter().rev() {
            let r = stretch.layers.clone();
            let (before, after) = self.grads.split_at_mut(r.end);
            let d = after.first().unwrap_or(dout);
            let first_input_grad = r.start > 0 || input_grad;
            let prof = self.profiler.as_ref().map(|p| &p.backward[r.clone()]);
            if stretch.per_image {
                backward_run(
                    &mut self.layers[r.clone()],
                    d,
                    &mut before[r.clone()],
                    &self.input,
                    &self.steps,
                    r.start,
                    first_input_grad,
                    stretch.parallel(n),
                    prof,
                );
            } else {
                let dinp = first_input_grad.then(|| &mut before[r.start]);
                let layer = &mut self.layers[r.start];
                Profiler::time_whole(prof.map(|p| &p[0]), || layer.backward_into(d, dinp));
            }
        }
        Ok(())
    }

    /// Sets every gradient to zero (lazily: the next backward overwrites it, see
    /// [`crate::layers::Param`]). PyTorch: `optimizer.zero_grad()`, whose default
    /// `set_to_none=True` does the same.
    pub fn zero_grad(&mut self) {
        for layer in &mut self.layers {
            for (_, p) in layer.params_mut() {
                p.zero_grad();
            }
        }
    }

    /// Parameters with their PyTorch state_dict names (`0.weight`, `0.bias`, `4.weight`…:
    /// the index counts parameter-free layers too).
    pub fn named_params(&self) -> Vec<(String, &Param)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (name, p) in layer.params() {
                out.push((format!("{i}.{name}"), p));
            }
        }
        out
    }

    pub fn named_params_mut(&mut self) -> Vec<(String, &mut Param)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for (name, p) in layer.params_mut() {
                out.push((format!("{i}.{name}"), p));
            }
        }
        out
    }

    /// Buffers with their PyTorch state_dict names (`1.running_mean`, …): state saved
    /// with the weights but not learned.
    pub fn named_buffers(&self) -> Vec<(String, Buffer<'_>)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (name, b) in layer.buffers() {
                out.push((format!("{i}.{name}"), b));
            }
        }
        out
    }

    pub fn named_buffers_mut(&mut self) -> Vec<(String, BufferMut<'_>)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for (name, b) in layer.buffers_mut() {
                out.push((format!("{i}.{name}"), b));
            }
        }
        out
    }

    /// The names of PyTorch's `state_dict()`, in its order: layer by layer, each
    /// layer's parameters, then its buffers.
    pub fn state_dict_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let params = layer.params().into_iter().map(|(name, _)| name);
            let buffers = layer.buffers().into_iter().map(|(name, _)| name);
            out.extend(params.chain(buffers).map(|name| format!("{i}.{name}")));
        }
        out
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.named_params().iter().map(|(_, p)| p.value.len()).sum()
    }

    /// Predicted class probabilities for a batch: softmax of the logits in Eval mode
    /// (or the outputs themselves if the network already ends in Softmax).
    pub fn predict(&mut self, inp: &Tensor) -> Result<Tensor> {
        let out = self.infer(inp)?;
        Ok(crate::loss::probabilities(&out, self.output_kind()))
    }

    /// What the outputs are (logits, probabilities or log-probabilities), read off the
    /// last layer.
    pub fn output_kind(&self) -> OutputKind {
        OutputKind::of_last(self.layers.last().map(|l| l.describe()).as_ref())
    }
}

/// The image-wise face of a layer in an image-wise stretch.
fn image_wise(layer: &mut Box<dyn Layer>) -> &mut dyn crate::layers::ImageWise {
    layer.per_image().expect("an image-wise stretch").0
}

/// The image-wise steps of a stretch's layers.
fn per_image_steps<'a>(
    layers: &'a mut [Box<dyn Layer>],
    mut step: impl FnMut(usize, &'a mut dyn crate::layers::ImageWise) -> Box<dyn ImageStep + 'a>,
) -> Vec<Box<dyn ImageStep + 'a>> {
    layers
        .iter_mut()
        .enumerate()
        .map(|(j, l)| step(j, image_wise(l)))
        .collect()
}

/// `image(i)` for every image `i < n`, one parallel task each when `parallel`.
fn each_image(n: usize, parallel: bool, image: &(dyn Fn(usize) + Sync)) {
    if parallel {
        (0..n).into_par_iter().for_each(image);
    } else {
        (0..n).for_each(image);
    }
}

/// Carries every image of `inp` through `layers` (all image-wise) in one parallel task
/// per image, writing layer j's output into `outs[j]` (`steps[j].out` per image); with
/// `prof`, layer j's time is added to `prof[j]`.
///
/// A layer that gathers figures of the batch (BatchNorm in training) ends a task: each
/// image's share is gathered from the output of the layer before it at the end of the
/// image's task, the layer reduces the shares, and new tasks carry the images on from
/// there.
fn forward_run(
    layers: &mut [Box<dyn Layer>],
    inp: &Tensor,
    outs: &mut [Tensor],
    steps: &[ShapeStep],
    pass: Pass,
    parallel: bool,
    prof: Option<&[AtomicU64]>,
) {
    let n = inp.batch();
    let count = layers.len();
    let in_len = inp.len() / n.max(1);
    let mut slots = Vec::with_capacity(count);
    for (out, step) in outs.iter_mut().zip(steps) {
        out.reuse_as_batch(n, &step.out);
        slots.push(Slots::new(out.data_mut(), step.out.iter().product()));
    }
    let gathers: Vec<bool> = layers
        .iter_mut()
        .map(|l| image_wise(l).gathers_forward(pass))
        .collect();
    let time = |j: usize| prof.map(|p| &p[j]);
    // Image i's input to layer j (for j > 0, what layer j − 1 wrote).
    let input = |j: usize, i: usize| -> &[f32] {
        match j {
            0 => &inp.data()[i * in_len..(i + 1) * in_len],
            // SAFETY: image i belongs to the calling task alone.
            _ => unsafe { slots[j - 1].get(i) },
        }
    };
    if count > 0 && gathers[0] {
        let gather = image_wise(&mut layers[0]).gather_forward(n, pass);
        each_image(n, parallel, &|i| {
            // SAFETY: each image is one task, and runs once.
            Profiler::time(time(0), || unsafe { gather.run(i, input(0, i), None) })
        });
        drop(gather);
        Profiler::time_whole(time(0), || image_wise(&mut layers[0]).reduce_forward());
    }
    let mut start = 0;
    while start < count {
        // Layers start..end, then the gathering of layer `end`'s share (if it exists).
        let end = (start + 1..count).find(|&j| gathers[j]).unwrap_or(count);
        {
            let (run, rest) = layers[start..].split_at_mut(end - start);
            let steps = per_image_steps(run, |_, l| l.forward_images(n, pass));
            let gather = rest
                .first_mut()
                .map(|l| image_wise(l).gather_forward(n, pass));
            each_image(n, parallel, &|i| {
                let mut x = input(start, i);
                for (k, step) in steps.iter().enumerate() {
                    // SAFETY: image i belongs to this task alone; each layer's step runs
                    // it once.
                    let out = unsafe { slots[start + k].get(i) };
                    Profiler::time(time(start + k), || unsafe {
                        step.run(i, x, Some(&mut *out))
                    });
                    x = out;
                }
                if let Some(gather) = &gather {
                    // SAFETY: as above.
                    Profiler::time(time(end), || unsafe { gather.run(i, x, None) });
                }
            });
        }
        if end < count {
            Profiler::time_whole(time(end), || image_wise(&mut layers[end]).reduce_forward());
        }
        start = end;
    }
}

/// The backward counterpart of [`forward_run`] for the layers `first..` of the network
/// (`layers`): `dout` is dL/d(output of the last of them); `grads[j]` receives
/// dL/d(input of layer first + j), except the first one's when not `first_input_grad`.
/// A layer that gathers sums of its dL/d(output) ends a task, as in forward. Then each
/// layer adds up its per-image parameter-gradient terms in image order.
#[allow(clippy::too_many_arguments)]
fn backward_run(
    layers: &mut [Box<dyn Layer>],
    dout: &Tensor,
    grads: &mut [Tensor],
    input: &[usize],
    steps: &[ShapeStep],
    first: usize,
    first_input_grad: bool,
    parallel: bool,
    prof: Option<&[AtomicU64]>,
) {
    let n = dout.batch();
    let count = layers.len();
    let dout_len = dout.len() / n.max(1);
    let mut slots = Vec::with_capacity(count);
    for (j, grad) in grads.iter_mut().enumerate() {
        if j == 0 && !first_input_grad {
            slots.push(None);
            continue;
        }
        let shape = match first + j {
            0 => input,
            l => &steps[l - 1].out[..],
        };
        grad.reuse_as_batch(n, shape);
        slots.push(Some(Slots::new(grad.data_mut(), shape.iter().product())));
    }
    let gathers: Vec<bool> = layers
        .iter_mut()
        .map(|l| image_wise(l).gathers_backward())
        .collect();
    let time = |j: usize| prof.map(|p| &p[j]);
    // Image i's dL/d(output of layer j) (for j below the last, what layer j + 1 wrote).
    let dout_of = |j: usize, i: usize| -> &[f32] {
        if j + 1 == count {
            &dout.data()[i * dout_len..(i + 1) * dout_len]
        } else {
            let s = slots[j + 1]
                .as_ref()
                .expect("a layer above the first has dinp");
            // SAFETY: image i belongs to the calling task alone.
            unsafe { s.get(i) }
        }
    };
    if count > 0 && gathers[count - 1] {
        let gather = image_wise(&mut layers[count - 1]).gather_backward(n);
        each_image(n, parallel, &|i| {
            // SAFETY: each image is one task, and runs once.
            Profiler::time(time(count - 1), || unsafe {
                gather.run(i, dout_of(count - 1, i), None)
            })
        });
        drop(gather);
        Profiler::time_whole(time(count - 1), || {
            image_wise(&mut layers[count - 1]).reduce_backward()
        });
    }
    // Layers top − 1 down to low, then the gathering of layer low − 1's share.
    let mut top = count;
    while top > 0 {
        let low = (0..top - 1)
            .rev()
            .find(|&j| gathers[j])
            .map_or(0, |j| j + 1);
        {
            let (below, run) = layers[..top].split_at_mut(low);
            let steps = per_image_steps(run, |k, l| l.backward_images(n, slots[low + k].is_some()));
            let gather = below.last_mut().map(|l| image_wise(l).gather_backward(n));
            each_image(n, parallel, &|i| {
                let mut d = dout_of(top - 1, i);
                for (k, step) in steps.iter().enumerate().rev() {
                    let j = low + k;
                    // SAFETY: image i belongs to this task alone; each step runs it once.
                    let dinp = slots[j].as_ref().map(|s| unsafe { s.get(i) });
                    match dinp {
                        Some(dinp) => {
                            Profiler::time(time(j), || unsafe { step.run(i, d, Some(&mut *dinp)) });
                            d = dinp;
                        }
                        None => Profiler::time(time(j), || unsafe { step.run(i, d, None) }),
                    }
                }
                if let Some(gather) = &gather {
                    // SAFETY: as above.
                    Profiler::time(time(low - 1), || unsafe { gather.run(i, d, None) });
                }
            });
        }
        if low > 0 {
            Profiler::time_whole(time(low - 1), || {
                image_wise(&mut layers[low - 1]).reduce_backward()
            });
        }
        top = low;
    }
    for (j, layer) in layers.iter_mut().enumerate() {
        Profiler::time_whole(time(j), || image_wise(layer).finish_backward());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// network3.py draws a conv layer's weights from N(0, 1/n_out) with n_out = out
    /// channels × kernel area / pool area; the pool counts also when an activation sits
    /// between the conv and the pool, as in PyTorch-style code.
    #[test]
    fn book_init_divides_by_the_pool_that_follows_past_an_activation() {
        let std_of_first_weight = |spec: &str| {
            let mut net = crate::spec::build(spec, &[1, 28, 28], 1).unwrap();
            net.init(Init::Book, 5);
            let w = net.named_params()[0].1.value.data().to_vec();
            let mean = w.iter().map(|&v| v as f64).sum::<f64>() / w.len() as f64;
            (w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w.len() as f64).sqrt()
        };
        // 200 filters of 5×5: n_out = 200·25/4 = 1250 with the pool, 5000 without.
        for spec in [
            "Conv2d(1, 200, 5) -> MaxPool2d(2) -> ReLU() -> Flatten() -> LazyLinear(10)",
            "Conv2d(1, 200, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(10)",
            "Conv2d(1, 200, 5) -> Sigmoid() -> AvgPool2d(2) -> Flatten() -> LazyLinear(10)",
        ] {
            let std = std_of_first_weight(spec);
            let want = (1.0f64 / 1250.0).sqrt();
            assert!(
                (std / want - 1.0).abs() < 0.05,
                "{spec}: std {std}, want {want}"
            );
        }
        let std = std_of_first_weight("Conv2d(1, 200, 5) -> ReLU() -> Flatten() -> LazyLinear(10)");
        let want = (1.0f64 / 5000.0).sqrt();
        assert!(
            (std / want - 1.0).abs() < 0.05,
            "no pool: std {std}, want {want}"
        );
    }

    /// Sequential carries each image through a stretch of image-wise layers in one task;
    /// calling the layers one by one (each over the whole batch) must give the same
    /// outputs and gradients, bit for bit, with a non-image-wise layer in between.
    #[test]
    fn image_wise_stretches_equal_layer_by_layer_passes() {
        let spec = "Conv2d(2, 4, 3) -> ReLU() -> MaxPool2d(2) -> Conv2d(4, 3, 2) -> ReLU() \
                    -> Flatten() -> LazyLinear(6) -> ReLU() -> LazyLinear(5)";
        stretches_equal_layer_by_layer(spec, Pass::Train, 5);
    }

    /// The same with BatchNorm, which gathers each image's sums at the end of the task
    /// that carried it through the layers before: first in the network, inside a
    /// stretch, before Flatten, after a Linear (BatchNorm1d), two in a row; in training
    /// (batch statistics) and evaluation (running statistics), on 1 and 7 images.
    #[test]
    fn stretches_with_batchnorm_equal_layer_by_layer_passes() {
        let spec = "BatchNorm2d(2) -> Conv2d(2, 4, 3, bias=False) -> BatchNorm2d(4) -> ReLU() \
                    -> MaxPool2d(2) -> Conv2d(4, 3, 2) -> BatchNorm2d(3) -> BatchNorm2d(3) \
                    -> Flatten() -> LazyLinear(6) -> BatchNorm1d(6) -> ReLU() -> LazyLinear(5)";
        for pass in [Pass::Train, Pass::Eval] {
            for n in [1, 7] {
                stretches_equal_layer_by_layer(spec, pass, n);
            }
        }
    }

    /// [`Sequential`]'s passes over `n` random images against its layers called one by
    /// one: outputs, input gradient, parameter gradients and buffers, bit for bit.
    fn stretches_equal_layer_by_layer(spec: &str, pass: Pass, n: usize) {
        let build = || crate::spec::build(spec, &[2, 11, 13], 7).unwrap();
        let (mut net, mut by_layer) = (build(), build());
        let mut rng = Rng::new(8);
        let x = Tensor::from_vec(
            &[n, 2, 11, 13],
            (0..n * 2 * 11 * 13).map(|_| rng.symmetric(1.0)).collect(),
        )
        .unwrap();
        let out = net.forward(&x, pass).unwrap();
        let dout = Tensor::from_vec(
            out.shape(),
            (0..out.len()).map(|_| rng.symmetric(1.0)).collect(),
        )
        .unwrap();
        net.zero_grad();
        let dinp = net.backward(&dout).unwrap();

        by_layer.zero_grad();
        let mut y = x.clone();
        for layer in by_layer.layers_mut() {
            y = layer.forward(&y, pass);
        }
        let mut d = dout.clone();
        for layer in by_layer.layers_mut().iter_mut().rev() {
            d = layer.backward(&d);
        }
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&out), bits(&y));
        assert_eq!(dinp.shape(), d.shape());
        assert_eq!(bits(&dinp), bits(&d));
        let grads = |net: &Sequential| {
            net.named_params()
                .iter()
                .map(|(name, p)| (name.clone(), bits(p.grad().expect("backward ran"))))
                .collect::<Vec<_>>()
        };
        assert_eq!(grads(&net), grads(&by_layer));
        let buffers = |net: &Sequential| {
            net.named_buffers()
                .iter()
                .map(|(name, b)| match b {
                    Buffer::F32(t) => (name.clone(), bits(t)),
                    Buffer::I64(v) => (name.clone(), vec![*v as u32]),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(buffers(&net), buffers(&by_layer));
        // The training path (no input gradient) gives the same parameter gradients.
        net.zero_grad();
        by_layer.zero_grad();
        net.forward(&x, pass).unwrap();
        net.backward_params(&dout).unwrap();
        let mut y = x.clone();
        for layer in by_layer.layers_mut() {
            y = layer.forward(&y, pass);
        }
        let mut d = dout.clone();
        for (i, layer) in by_layer.layers_mut().iter_mut().enumerate().rev() {
            if i == 0 {
                layer.backward_into(&d, None);
            } else {
                d = layer.backward(&d);
            }
        }
        assert_eq!(grads(&net), grads(&by_layer));
        assert_eq!(buffers(&net), buffers(&by_layer));
    }

    /// A network whose outputs depend on the whole batch (BatchNorm without running
    /// statistics) is not cut into chunks by `infer`.
    #[test]
    fn infer_keeps_a_batch_whole_when_batchnorm_uses_its_statistics() {
        let spec = "Conv2d(1, 3, 3) -> BatchNorm2d(3, track_running_stats=False) -> ReLU() \
                    -> Flatten() -> LazyLinear(4)";
        let mut net = crate::spec::build(spec, &[1, 6, 7], 3).unwrap();
        assert!(net.mixes_images(Pass::Infer) && net.mixes_images(Pass::Train));
        let mut rng = Rng::new(4);
        let n = INFER_CHUNK + 3;
        let x = Tensor::from_vec(
            &[n, 1, 6, 7],
            (0..n * 42).map(|_| rng.symmetric(1.0)).collect(),
        )
        .unwrap();
        let want = net.forward(&x, Pass::Eval).unwrap();
        let got = net.infer(&x).unwrap();
        let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
        let tracked = crate::spec::build("Conv2d(1, 3, 3) -> BatchNorm2d(3)", &[1, 6, 7], 3);
        let tracked = tracked.unwrap();
        assert!(tracked.mixes_images(Pass::Train) && !tracked.mixes_images(Pass::Infer));
    }

    /// zero_grad clears lazily (the next backward overwrites): a step's gradient must
    /// not carry anything of the step before, and a second backward must still add.
    #[test]
    fn zero_grad_forgets_the_last_step_and_backward_accumulates() {
        let spec = "Conv2d(1, 3, 3) -> ReLU() -> Flatten() -> LazyLinear(4) -> Linear(4, 2)";
        let mut net = crate::spec::build(spec, &[1, 5, 5], 3).unwrap();
        let mut rng = Rng::new(4);
        let mut random = |shape: &[usize]| {
            let len = shape.iter().product();
            Tensor::from_vec(shape, (0..len).map(|_| rng.symmetric(1.0)).collect()).unwrap()
        };
        let (x1, d1) = (random(&[3, 1, 5, 5]), random(&[3, 2]));
        let (x2, d2) = (random(&[3, 1, 5, 5]), random(&[3, 2]));
        let grads = |net: &Sequential| {
            net.named_params()
                .iter()
                .map(|(_, p)| p.grad().expect("backward ran").data().to_vec())
                .collect::<Vec<_>>()
        };
        let backward = |net: &mut Sequential, x: &Tensor, d: &Tensor| {
            net.forward(x, Pass::Train).unwrap();
            net.backward_params(d).unwrap();
        };

        net.zero_grad();
        assert!(net.named_params().iter().all(|(_, p)| p.grad().is_none()));
        backward(&mut net, &x2, &d2);
        let only_second = grads(&net);
        net.zero_grad();
        backward(&mut net, &x1, &d1);
        let only_first = grads(&net);
        // A fresh step after another step's gradient: the same bits as from zero.
        net.zero_grad();
        backward(&mut net, &x2, &d2);
        assert_eq!(grads(&net), only_second);
        // Without zero_grad the second backward adds to the first, as in PyTorch.
        net.zero_grad();
        backward(&mut net, &x1, &d1);
        backward(&mut net, &x2, &d2);
        for ((sum, a), b) in grads(&net).iter().zip(&only_first).zip(&only_second) {
            for ((s, a), b) in sum.iter().zip(a).zip(b) {
                assert!(
                    (s - (a + b)).abs() <= 1e-6 * (1.0 + s.abs()),
                    "{s} vs {a} + {b}"
                );
            }
        }
    }

    /// An empty batch says nothing about the per-image size: a Train step after it works.
    #[test]
    fn an_empty_batch_then_a_training_step() {
        let mut net = crate::spec::build(
            "Conv2d(1, 2, 3) -> ReLU() -> Flatten() -> LazyLinear(3)",
            &[1, 5, 5],
            1,
        )
        .unwrap();
        let empty = Tensor::from_vec(&[0, 1, 5, 5], vec![]).unwrap();
        assert_eq!(net.forward(&empty, Pass::Eval).unwrap().shape(), &[0, 3]);
        assert_eq!(net.infer(&empty).unwrap().shape(), &[0, 3]);
        let x =
            Tensor::from_vec(&[2, 1, 5, 5], (0..50).map(|v| v as f32 / 50.0).collect()).unwrap();
        let out = net.forward(&x, Pass::Train).unwrap();
        net.zero_grad();
        net.backward(&Tensor::zeros(out.shape())).unwrap();
    }

    /// A dL/d(output) for fewer images than the forward would leave stale per-image terms
    /// in the sums: refused, with an error naming both shapes. So is a backward after
    /// an Infer pass, which kept nothing for it.
    #[test]
    fn a_gradient_for_another_batch_is_refused() {
        let mut net = crate::spec::build(
            "Conv2d(1, 2, 3) -> ReLU() -> Flatten() -> LazyLinear(3)",
            &[1, 5, 5],
            1,
        )
        .unwrap();
        let x = Tensor::zeros(&[4, 1, 5, 5]);
        net.forward(&x, Pass::Train).unwrap();
        let err = net.backward(&Tensor::zeros(&[2, 3])).unwrap_err();
        assert!(err.to_string().contains("dL/d(output)"), "{err}");
        assert!(err.to_string().contains("4×3"), "{err}");
        net.infer(&x).unwrap();
        let err = net.backward(&Tensor::zeros(&[4, 3])).unwrap_err();
        assert!(err.to_string().contains("Infer"), "{err}");
        net.forward(&x, Pass::Eval).unwrap();
        net.backward(&Tensor::zeros(&[4, 3])).unwrap();
    }

    /// The layer alone, without Sequential's check: Conv2d refuses a gradient for another
    /// batch size too.
    #[test]
    #[should_panic(expected = "Conv2d::backward")]
    fn conv_refuses_a_gradient_for_another_batch() {
        use crate::layers::Conv2d;
        let mut net = Sequential::new([1, 5, 5])
            .add(Conv2d::new(1, 2, 3))
            .unwrap();
        let layer = &mut net.layers_mut()[0];
        layer.forward(&Tensor::zeros(&[4, 1, 5, 5]), Pass::Train);
        layer.backward(&Tensor::zeros(&[2, 2, 3, 3]));
    }

    #[test]
    fn infer_in_chunks_equals_forward_in_eval_mode() {
        let mut net = crate::spec::build(
            "Conv2d(1, 4, 3) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(7)",
            &[1, 9, 11],
            3,
        )
        .unwrap();
        let mut rng = Rng::new(4);
        let n = 2 * INFER_CHUNK + 5;
        let x = Tensor::from_vec(
            &[n, 1, 9, 11],
            (0..n * 99).map(|_| rng.symmetric(1.0)).collect(),
        )
        .unwrap();
        let want = net.forward(&x, Pass::Eval).unwrap();
        let got = net.infer(&x).unwrap();
        assert_eq!(got.shape(), want.shape());
        assert!(
            got.data()
                .iter()
                .zip(want.data())
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }

    #[test]
    fn profiling_times_every_layer_and_moves_no_bits() {
        let spec = "Conv2d(1, 4, 3) -> ReLU() -> MaxPool2d(2) -> Flatten() -> Linear(36, 5)";
        let mut rng = Rng::new(5);
        let x = Tensor::from_vec(
            &[3, 1, 8, 8],
            (0..192).map(|_| rng.symmetric(1.0)).collect(),
        )
        .unwrap();
        let run = |profile: bool| {
            let mut net = crate::spec::build(spec, &[1, 8, 8], 7).unwrap();
            assert!(net.profile().is_none());
            net.set_profiling(profile);
            let out = net.forward(&x, Pass::Train).unwrap();
            net.backward(&out).unwrap();
            let grads: Vec<u32> = net
                .named_params()
                .iter()
                .flat_map(|(_, p)| {
                    p.grad()
                        .expect("a gradient")
                        .data()
                        .iter()
                        .map(|v| v.to_bits())
                })
                .collect();
            (
                out.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                grads,
                net.profile(),
            )
        };
        let (out_off, grads_off, none) = run(false);
        let (out_on, grads_on, times) = run(true);
        assert!(none.is_none());
        assert_eq!((out_off, grads_off), (out_on, grads_on));
        let times = times.expect("profiling is on");
        assert_eq!(times.len(), 5);
        assert!(times[0].forward > Duration::ZERO && times[4].forward > Duration::ZERO);
        assert!(times[0].backward > Duration::ZERO && times[4].backward > Duration::ZERO);
    }
}
