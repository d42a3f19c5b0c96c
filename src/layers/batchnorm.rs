//! BatchNorm1d and BatchNorm2d: each channel normalised to zero mean and unit variance,
//! then scaled and shifted by learned γ (`weight`) and β (`bias`). PyTorch:
//! `nn.BatchNorm2d(num_features, eps=1e-05, momentum=0.1, affine=True,
//! track_running_stats=True, *, bias=True)`, and `nn.BatchNorm1d` alike.
//!
//! input (N, C, H, W) for 2d, (N, C) or (N, C, L) for 1d -> output of the same shape.
//! For channel c, over the N·H·W values of the batch:
//!   training: μ = mean(x), σ² = mean((x − μ)²) (biased), y = (x − μ)/√(σ² + ε)·γ + β,
//!     and the running statistics move towards the batch's:
//!     running_mean ← (1 − m)·running_mean + m·μ,
//!     running_var ← (1 − m)·running_var + m·σ²·n/(n − 1) (unbiased),
//!     with m = momentum, or 1/num_batches_tracked when momentum is None (a cumulative
//!     average);
//!   evaluation: the same formula with running_mean and running_var.
//! Without track_running_stats the batch statistics are used in every pass.
//!
//! The statistics need the whole batch, but nothing else does: BatchNorm runs image by
//! image inside [`crate::Sequential`]'s stretches of image-wise layers (image_wise.rs),
//! in three steps. Each image's sums per channel are taken while the image is still in
//! its core's cache from the layer before (the *gather*: Σx and Σ(x − x̄)² about the
//! plane's own mean x̄, in f64); the images' sums are added per channel in image order
//! (the *reduce*: a few thousand numbers; the variance by Chan's formula,
//! Σ(x − μ)² = Σᵢ Σ(x − x̄ᵢ)² + P·Σᵢ (x̄ᵢ − μ)² for planes of P values); then each image
//! is normalised. Backward is alike:
//! each image's Σdy and Σdy·x̂ per channel, added in image order, then each image's dx.
//! So the convolutions on either side keep running image by image in parallel, and
//! every sum has one order, whatever the thread count.

use super::image_wise::{self, ImageStep, ImageWise, PerImage, Slots};
use super::{
    Buffer, BufferMut, BuildContext, InitContext, Layer, LayerDesc, Param, Pass, ShapeStep,
};
use crate::tensor::Tensor;

/// Batch normalisation over the channels (dim 1). PyTorch: `nn.BatchNorm1d`,
/// `nn.BatchNorm2d`. Made by [`BatchNorm1d::new`] or [`BatchNorm2d::new`].
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// 1 or 2: which PyTorch class (the input ranks it accepts).
    dims: u8,
    num_features: usize,
    eps: f32,
    /// `None`: the running statistics are a cumulative average.
    momentum: Option<f32>,
    affine: bool,
    has_bias: bool,
    track_running_stats: bool,
    weight: Option<Param>,
    bias: Option<Param>,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: i64,
    /// Values per channel of one image (H·W, L or 1), known once built.
    inner: usize,
    /// Per image and channel, the gathered sums: in forward (Σx, Σ(x − x̄)²), in
    /// backward (Σdy, Σdy·x̂); `[n, c, 2]`.
    parts: Vec<f64>,
    /// The forward pass whose sums were gathered and not yet reduced, and its N.
    gathered: Option<(Pass, usize)>,
    /// The statistics the last forward normalised with (the batch's or the running
    /// ones), per channel: μ and 1/√(σ² + ε).
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// N of the batch statistics in `mean` and `invstd`, reduced and not yet used by a
    /// forward step.
    reduced: Option<usize>,
    /// From the last Train or Eval forward, for backward: the normalised input x̂,
    /// whether the batch's statistics were used, and N.
    xhat: Vec<f32>,
    batch_stats: bool,
    batch: usize,
    /// Per channel (Σdy, Σdy·x̂) of the last backward, reduced in image order.
    sums: Vec<(f64, f64)>,
}

/// `BatchNorm1d(num_features)`: batch normalisation of (N, C) or (N, C, L) inputs.
pub struct BatchNorm1d;

/// `BatchNorm2d(num_features)`: batch normalisation of (N, C, H, W) feature maps.
pub struct BatchNorm2d;

impl BatchNorm1d {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(num_features: usize) -> BatchNorm {
        BatchNorm::with_dims(1, num_features)
    }
}

impl BatchNorm2d {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(num_features: usize) -> BatchNorm {
        BatchNorm::with_dims(2, num_features)
    }
}

impl BatchNorm {
    fn with_dims(dims: u8, num_features: usize) -> Self {
        BatchNorm {
            dims,
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            has_bias: true,
            track_running_stats: true,
            weight: None,
            bias: None,
            running_mean: Tensor::default(),
            running_var: Tensor::default(),
            num_batches_tracked: 0,
            inner: 0,
            parts: Vec::new(),
            gathered: None,
            mean: Vec::new(),
            invstd: Vec::new(),
            reduced: None,
            xhat: Vec::new(),
            batch_stats: false,
            batch: 0,
            sums: Vec::new(),
        }
    }

    /// PyTorch's `eps=`, added to the variance.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// PyTorch's `momentum=`; `None` for a cumulative average.
    pub fn momentum(mut self, momentum: Option<f32>) -> Self {
        self.momentum = momentum;
        self
    }

    /// PyTorch's `affine=`: learn γ and β (else y = x̂).
    pub fn affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// PyTorch's `bias=` (keyword-only): learn β (with `affine`).
    pub fn bias(mut self, bias: bool) -> Self {
        self.has_bias = bias;
        self
    }

    /// PyTorch's `track_running_stats=`: keep running statistics for evaluation (else
    /// every pass uses the batch's).
    pub fn track_running_stats(mut self, track: bool) -> Self {
        self.track_running_stats = track;
        self
    }

    /// Whether a forward in `pass` normalises with the batch's statistics (else with the
    /// running ones).
    fn uses_batch_stats(&self, pass: Pass) -> bool {
        pass == Pass::Train || !self.track_running_stats
    }

    /// The running statistics and the count of batches they have seen, when kept.
    pub fn running_stats(&self) -> Option<(&Tensor, &Tensor, i64)> {
        self.track_running_stats.then_some((
            &self.running_mean,
            &self.running_var,
            self.num_batches_tracked,
        ))
    }

    /// The layer's buffers, in PyTorch's state_dict order.
    pub fn buffers(&self) -> Vec<(&'static str, Buffer<'_>)> {
        if !self.track_running_stats {
            return Vec::new();
        }
        vec![
            ("running_mean", Buffer::F32(&self.running_mean)),
            ("running_var", Buffer::F32(&self.running_var)),
            ("num_batches_tracked", Buffer::I64(self.num_batches_tracked)),
        ]
    }

    pub fn buffers_mut(&mut self) -> Vec<(&'static str, BufferMut<'_>)> {
        if !self.track_running_stats {
            return Vec::new();
        }
        vec![
            ("running_mean", BufferMut::F32(&mut self.running_mean)),
            ("running_var", BufferMut::F32(&mut self.running_var)),
            (
                "num_batches_tracked",
                BufferMut::I64(&mut self.num_batches_tracked),
            ),
        ]
    }
}

impl Layer for BatchNorm {
    fn describe(&self) -> LayerDesc {
        LayerDesc::BatchNorm {
            dims: self.dims,
            num_features: self.num_features,
            eps: self.eps,
            momentum: self.momentum,
            affine: self.affine,
            bias: self.affine && self.has_bias,
            track_running_stats: self.track_running_stats,
        }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let c = self.num_features;
        let name = self.describe().kind();
        if c == 0 {
            return Err("num_features must be at least 1".into());
        }
        let ok = matches!((self.dims, ctx.input), (2, [_, _, _]) | (1, [_] | [_, _]));
        if !ok {
            let wants = if self.dims == 2 {
                "images shaped C×H×W (use BatchNorm1d on flat features)"
            } else {
                "flat features C or sequences C×L (use BatchNorm2d on feature maps)"
            };
            return Err(format!(
                "expects {wants} but receives {} from {}",
                crate::shape::fmt_shape(ctx.input),
                ctx.source
            ));
        }
        if ctx.input[0] != c {
            return Err(format!(
                "expects {c} channels (num_features) but receives {} from {} (shape {}); \
                 use {name}({})",
                ctx.input[0],
                ctx.source,
                crate::shape::fmt_shape(ctx.input),
                ctx.input[0]
            ));
        }
        self.init_params(&mut InitContext {
            scheme: super::Init::PyTorch,
            rng: ctx.rng,
            next_pool: 1,
            is_output: false,
        });
        self.running_mean = Tensor::zeros(&[c]);
        self.running_var = Tensor::from_vec(&[c], vec![1.0; c]).expect("length c");
        self.num_batches_tracked = 0;
        let values: usize = ctx.input.iter().product();
        self.inner = values / c;
        Ok(ShapeStep {
            out: ctx.input.to_vec(),
            arithmetic: format!("unchanged; {c} channels normalised"),
            macs: 2 * values as u64,
        })
    }

    /// γ = 1 and β = 0, whatever the scheme, as PyTorch's `reset_parameters`.
    fn init_params(&mut self, _ctx: &mut InitContext) {
        let c = self.num_features;
        self.weight = self
            .affine
            .then(|| Param::new(Tensor::from_vec(&[c], vec![1.0; c]).expect("length c")));
        self.bias = (self.affine && self.has_bias).then(|| Param::new(Tensor::zeros(&[c])));
    }

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        // The values per channel, also for a layer called alone (never built).
        if inp.batch() > 0 {
            self.inner = inp.len() / inp.batch() / self.num_features.max(1);
        }
        image_wise::forward_batch(self, inp, out, &inp.shape()[1..], pass);
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        image_wise::backward_batch(self, dout, dinp, &dout.shape()[1..]);
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        super::weight_bias(&self.weight, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        super::weight_bias_mut(&mut self.weight, &mut self.bias)
    }

    fn buffers(&self) -> Vec<(&'static str, Buffer<'_>)> {
        BatchNorm::buffers(self)
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, BufferMut<'_>)> {
        BatchNorm::buffers_mut(self)
    }
}

impl ImageWise for BatchNorm {
    fn output_len(&self) -> usize {
        self.num_features * self.inner
    }

    fn gathers_forward(&self, pass: Pass) -> bool {
        self.uses_batch_stats(pass)
    }

    fn gather_forward(&mut self, n: usize, pass: Pass) -> Box<dyn ImageStep + '_> {
        let c = self.num_features;
        self.parts.resize(n * c * 2, 0.0);
        self.gathered = Some((pass, n));
        Box::new(GatherStats {
            inner: self.inner,
            parts: Slots::new(&mut self.parts, 2 * c),
        })
    }

    /// μ and σ² per channel from the images' sums, in image order; in training, the
    /// running statistics move towards them.
    fn reduce_forward(&mut self) {
        let (pass, n) = self
            .gathered
            .take()
            .expect("BatchNorm: reduce_forward follows gather_forward");
        let (c, inner) = (self.num_features, self.inner);
        let count = n * inner;
        let parts = &self.parts;
        // Per channel: (mean, biased variance) of the batch.
        let stats: Vec<(f64, f64)> = (0..c)
            .map(|ch| {
                let images =
                    || (0..n).map(|i| (parts[(i * c + ch) * 2], parts[(i * c + ch) * 2 + 1]));
                let mean = images().map(|(s, _)| s).sum::<f64>() / count.max(1) as f64;
                let m2 = images()
                    .map(|(s, m2)| {
                        let d = s / inner as f64 - mean;
                        m2 + inner as f64 * d * d
                    })
                    .sum::<f64>();
                (mean, m2 / count.max(1) as f64)
            })
            .collect();
        let eps = self.eps as f64;
        self.mean.clear();
        self.invstd.clear();
        for &(mean, var) in &stats {
            self.mean.push(mean as f32);
            self.invstd.push((1.0 / (var + eps).sqrt()) as f32);
        }
        if pass == Pass::Train && self.track_running_stats {
            self.num_batches_tracked += 1;
            let m = match self.momentum {
                Some(m) => m as f64,
                None => 1.0 / self.num_batches_tracked as f64,
            };
            // The unbiased variance needs two values; PyTorch refuses a batch of one
            // value per channel in training, seqnet leaves the statistics as they were.
            if count > 1 {
                let unbias = count as f64 / (count - 1) as f64;
                let rm = self.running_mean.data_mut();
                for (r, &(mean, _)) in rm.iter_mut().zip(&stats) {
                    *r = ((1.0 - m) * *r as f64 + m * mean) as f32;
                }
                let rv = self.running_var.data_mut();
                for (r, &(_, var)) in rv.iter_mut().zip(&stats) {
                    *r = ((1.0 - m) * *r as f64 + m * var * unbias) as f32;
                }
            }
        }
        self.reduced = Some(n);
    }

    fn forward_images(&mut self, n: usize, pass: Pass) -> Box<dyn ImageStep + '_> {
        let c = self.num_features;
        let use_batch = self.uses_batch_stats(pass);
        if use_batch {
            assert_eq!(
                self.reduced.take(),
                Some(n),
                "BatchNorm: the statistics of these {n} images are gathered and reduced first"
            );
        } else {
            let eps = self.eps as f64;
            self.mean.clear();
            self.mean.extend_from_slice(self.running_mean.data());
            self.invstd.clear();
            self.invstd.extend(
                self.running_var
                    .data()
                    .iter()
                    .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32),
            );
        }
        let keep = pass != Pass::Infer;
        self.batch_stats = use_batch;
        self.batch = if keep { n } else { 0 };
        let per = c * self.inner;
        self.xhat.resize(if keep { n * per } else { 0 }, 0.0);
        Box::new(Normalise {
            inner: self.inner,
            mean: &self.mean,
            invstd: &self.invstd,
            gamma: self.weight.as_ref().map(|w| w.value.data()),
            beta: self.bias.as_ref().map(|b| b.value.data()),
            xhat: keep.then(|| Slots::new(&mut self.xhat, per)),
        })
    }

    /// Backward needs Σdy and Σdy·x̂ for γ's and β's gradients, and for dx when the
    /// batch's statistics were used.
    fn gathers_backward(&self) -> bool {
        self.batch_stats || self.weight.is_some() || self.bias.is_some()
    }

    fn gather_backward(&mut self, n: usize) -> Box<dyn ImageStep + '_> {
        self.check_backward(n);
        let c = self.num_features;
        self.parts.resize(n * c * 2, 0.0);
        Box::new(GatherGrads {
            inner: self.inner,
            xhat: &self.xhat,
            parts: Slots::new(&mut self.parts, 2 * c),
        })
    }

    fn reduce_backward(&mut self) {
        let (c, n, parts) = (self.num_features, self.batch, &self.parts);
        self.sums.clear();
        self.sums.extend((0..c).map(|ch| {
            (0..n).fold((0.0, 0.0), |(s, sx), i| {
                let k = (i * c + ch) * 2;
                (s + parts[k], sx + parts[k + 1])
            })
        }));
    }

    fn backward_images(&mut self, n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        self.check_backward(n);
        Box::new(Backward {
            inner: self.inner,
            xhat: &self.xhat,
            invstd: &self.invstd,
            gamma: self.weight.as_ref().map(|w| w.value.data()),
            sums: &self.sums,
            count: (n * self.inner).max(1) as f64,
            batch_stats: self.batch_stats,
        })
    }

    /// dγ = Σ dy·x̂ and dβ = Σ dy, the sums of [`ImageWise::reduce_backward`].
    fn finish_backward(&mut self) {
        if let Some(w) = self.weight.as_mut() {
            for (g, &(_, sx)) in w.grad_mut().data_mut().iter_mut().zip(&self.sums) {
                *g += sx as f32;
            }
        }
        if let Some(b) = self.bias.as_mut() {
            for (g, &(s, _)) in b.grad_mut().data_mut().iter_mut().zip(&self.sums) {
                *g += s as f32;
            }
        }
    }
}

impl BatchNorm {
    /// A backward belongs to the last Train or Eval forward, of the same N images.
    fn check_backward(&self, n: usize) {
        assert_eq!(
            self.batch,
            n,
            "{}::backward needs the Train or Eval forward of the same {n} images first",
            self.describe().kind()
        );
    }
}

/// One image's share of the statistics: per channel, Σx and Σ(x − x̄)² about the
/// plane's own mean x̄ = Σx / P.
struct GatherStats<'a> {
    inner: usize,
    /// Per image: (Σx, Σ(x − x̄)²) for each channel.
    parts: Slots<'a, f64>,
}

impl ImageStep for GatherStats<'_> {
    unsafe fn run(&self, i: usize, x: &[f32], _: Option<&mut [f32]>) {
        // SAFETY: image i is this call's alone (the trait's contract).
        let parts = unsafe { self.parts.get(i) };
        for (plane, p) in x.chunks_exact(self.inner).zip(parts.chunks_exact_mut(2)) {
            let sum = sum_f64(plane);
            p[0] = sum;
            p[1] = sum_sq_dev(plane, sum / self.inner as f64);
        }
    }
}

/// One image's forward: y = x̂·γ + β with x̂ = (x − μ)·invstd, channel by channel; x̂
/// is kept for backward unless the pass is Infer.
struct Normalise<'a> {
    inner: usize,
    mean: &'a [f32],
    invstd: &'a [f32],
    gamma: Option<&'a [f32]>,
    beta: Option<&'a [f32]>,
    xhat: Option<Slots<'a, f32>>,
}

impl ImageStep for Normalise<'_> {
    unsafe fn run(&self, i: usize, x: &[f32], y: Option<&mut [f32]>) {
        let y = y.expect("a forward step has an output");
        let inner = self.inner;
        // SAFETY: image i is this call's alone (the trait's contract).
        let mut xhat = self.xhat.as_ref().map(|s| unsafe { s.get(i) });
        for (ch, (y, x)) in y
            .chunks_exact_mut(inner)
            .zip(x.chunks_exact(inner))
            .enumerate()
        {
            let (mean, s) = (self.mean[ch], self.invstd[ch]);
            let g = self.gamma.map_or(1.0, |g| g[ch]);
            let b = self.beta.map_or(0.0, |b| b[ch]);
            match &mut xhat {
                Some(xhat) => {
                    let xhat = &mut xhat[ch * inner..(ch + 1) * inner];
                    for ((y, xh), &x) in y.iter_mut().zip(xhat).zip(x) {
                        *xh = (x - mean) * s;
                        *y = *xh * g + b;
                    }
                }
                None => {
                    for (y, &x) in y.iter_mut().zip(x) {
                        *y = (x - mean) * s * g + b;
                    }
                }
            }
        }
    }
}

/// One image's share of backward's sums: per channel, Σdy and Σdy·x̂.
struct GatherGrads<'a> {
    inner: usize,
    /// The whole batch's x̂.
    xhat: &'a [f32],
    parts: Slots<'a, f64>,
}

impl ImageStep for GatherGrads<'_> {
    unsafe fn run(&self, i: usize, dy: &[f32], _: Option<&mut [f32]>) {
        let xhat = &self.xhat[i * dy.len()..(i + 1) * dy.len()];
        // SAFETY: image i is this call's alone (the trait's contract).
        let parts = unsafe { self.parts.get(i) };
        let planes = dy
            .chunks_exact(self.inner)
            .zip(xhat.chunks_exact(self.inner));
        for ((dy, xh), p) in planes.zip(parts.chunks_exact_mut(2)) {
            (p[0], p[1]) = sum_and_dot(dy, xh);
        }
    }
}

/// One image's dx.
struct Backward<'a> {
    inner: usize,
    xhat: &'a [f32],
    invstd: &'a [f32],
    gamma: Option<&'a [f32]>,
    /// Per channel (Σdy, Σdy·x̂) over the batch.
    sums: &'a [(f64, f64)],
    /// N·P: the values of a channel in the batch.
    count: f64,
    batch_stats: bool,
}

impl ImageStep for Backward<'_> {
    unsafe fn run(&self, i: usize, dy: &[f32], dx: Option<&mut [f32]>) {
        let Some(dx) = dx else { return };
        let inner = self.inner;
        let xhat = &self.xhat[i * dy.len()..(i + 1) * dy.len()];
        // forward: y = x̂·γ + β, x̂ = (x − μ)·invstd. With the batch's statistics μ and
        // σ² depend on every x of the channel, so
        //   dx = γ·invstd/n · (n·dy − Σdy − x̂·Σ(dy·x̂));
        // running statistics are constants: dx = γ·invstd·dy.
        let planes = dx.chunks_exact_mut(inner).zip(dy.chunks_exact(inner));
        for (ch, ((dx, dy), xh)) in planes.zip(xhat.chunks_exact(inner)).enumerate() {
            let scale = self.gamma.map_or(1.0, |g| g[ch]) * self.invstd[ch];
            if self.batch_stats {
                let (s, sx) = (self.sums[ch].0 / self.count, self.sums[ch].1 / self.count);
                for ((dx, &dy), &xh) in dx.iter_mut().zip(dy).zip(xh) {
                    *dx = scale * (dy - s as f32 - xh * sx as f32);
                }
            } else {
                for (dx, &dy) in dx.iter_mut().zip(dy) {
                    *dx = scale * dy;
                }
            }
        }
    }
}

/// Eight running sums, added pairwise: the fixed order of [`sum_f64`] and its kin.
fn fold_lanes(l: [f64; 8]) -> f64 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// Σv in f64, in a fixed order that vectorises: element k into running sum k mod 8,
/// the sums added pairwise, then the tail.
fn sum_f64(v: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x as f64;
        }
    }
    tail.iter().fold(fold_lanes(lanes), |s, &x| s + x as f64)
}

/// Σ(v − mean)² in f64, in [`sum_f64`]'s order.
fn sum_sq_dev(v: &[f32], mean: f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            let d = x as f64 - mean;
            *l += d * d;
        }
    }
    tail.iter().fold(fold_lanes(lanes), |s, &x| {
        let d = x as f64 - mean;
        s + d * d
    })
}

/// (Σa, Σa·b) in f64, in [`sum_f64`]'s order.
fn sum_and_dot(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut sum, mut dot) = ([0.0f64; 8], [0.0f64; 8]);
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (ca, cb) in ca.zip(cb) {
        for k in 0..8 {
            sum[k] += ca[k] as f64;
            dot[k] += ca[k] as f64 * cb[k] as f64;
        }
    }
    ta.iter()
        .zip(tb)
        .fold((fold_lanes(sum), fold_lanes(dot)), |(s, d), (&a, &b)| {
            (s + a as f64, d + a as f64 * b as f64)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sequential;
    use crate::rng::Rng;

    fn random(shape: &[usize], offset: f32, rng: &mut Rng) -> Tensor {
        let len = shape.iter().product();
        Tensor::from_vec(
            shape,
            (0..len).map(|_| offset + rng.symmetric(1.0)).collect(),
        )
        .unwrap()
    }

    /// The gathered-and-reduced statistics against the textbook two passes in f64, on
    /// awkward sizes (one value per channel, a plane of 17, a tail after the eight
    /// lanes, one image) and on values far from 0 (the planes' means differ from the
    /// batch's, which Chan's term P·Σ(x̄ᵢ − μ)² must account for).
    #[test]
    fn batchnorm_statistics_match_two_passes_in_f64() {
        let mut rng = Rng::new(11);
        for (n, shape, offset) in [
            (5, vec![3], 0.0),
            (3, vec![2, 17], 0.0),
            (4, vec![3, 5, 5], 1000.0),
            (2, vec![2, 26, 26], -300.0),
            (1, vec![1, 1, 9], 0.5),
        ] {
            let (c, inner) = (shape[0], shape[1..].iter().product::<usize>());
            let layer = if shape.len() == 3 {
                BatchNorm2d::new(c)
            } else {
                BatchNorm1d::new(c)
            };
            let mut net = Sequential::new(shape.clone()).add(layer).unwrap();
            let mut full = vec![n];
            full.extend_from_slice(&shape);
            // Image i's values around (i + 1)·offset: the planes' means differ.
            let per = c * inner;
            let x = Tensor::from_vec(
                &full,
                (0..n * per)
                    .map(|k| (k / per + 1) as f32 * offset + rng.symmetric(1.0))
                    .collect(),
            )
            .unwrap();
            let y = net.forward(&x, Pass::Train).unwrap();
            let buffers = net.named_buffers();
            let [(_, Buffer::F32(rm)), (_, Buffer::F32(rv)), ..] = &buffers[..] else {
                panic!("BatchNorm's buffers")
            };
            let count = (n * inner) as f64;
            let xd = x.data();
            for ch in 0..c {
                let values = || {
                    (0..n).flat_map(move |i| {
                        let start = (i * c + ch) * inner;
                        xd[start..start + inner].iter().map(|&v| v as f64)
                    })
                };
                let mean = values().sum::<f64>() / count;
                let var = values().map(|v| (v - mean).powi(2)).sum::<f64>() / count;
                let invstd = 1.0 / (var + 1e-5).sqrt();
                for i in 0..n {
                    for k in 0..inner {
                        let at = (i * c + ch) * inner + k;
                        let want = (xd[at] as f64 - mean) * invstd;
                        let got = y.data()[at] as f64;
                        // f32 rounding: of x̂, and of x and μ (an ulp of the values).
                        let scale = (n as f64 + 1.0) * offset.abs() as f64;
                        let tol = 1e-5 * (1.0 + want.abs()) + 2e-7 * scale * invstd;
                        assert!(
                            (got - want).abs() <= tol,
                            "n {n}, shape {shape:?}, channel {ch}: y {got} vs {want}"
                        );
                    }
                }
                let close =
                    |got: f32, want: f64| (got as f64 - want).abs() <= 1e-6 * (1.0 + want.abs());
                assert!(
                    close(rm.data()[ch], 0.1 * mean),
                    "running mean {} vs {}",
                    rm.data()[ch],
                    0.1 * mean
                );
                if count > 1.0 {
                    let unbiased = var * count / (count - 1.0);
                    let want = 0.9 + 0.1 * unbiased;
                    assert!(
                        close(rv.data()[ch], want),
                        "running var {} vs {want}",
                        rv.data()[ch]
                    );
                }
            }
        }
    }

    /// Forward, backward and the running statistics give the same bits on 1 and 3
    /// threads (per-image sums, added in image order).
    #[test]
    fn batchnorm_does_not_depend_on_the_thread_count() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let spec = "Conv2d(2, 3, 3, bias=False) -> BatchNorm2d(3) -> ReLU() \
                            -> BatchNorm2d(3, affine=False) -> Flatten() -> LazyLinear(4)";
                let mut net = crate::spec::build(spec, &[2, 20, 19], 5).unwrap();
                let mut rng = Rng::new(6);
                let x = random(&[9, 2, 20, 19], 0.2, &mut rng);
                let out = net.forward(&x, Pass::Train).unwrap();
                let dout = random(out.shape(), 0.0, &mut rng);
                let dinp = net.backward(&dout).unwrap();
                let mut bits: Vec<u32> = out
                    .data()
                    .iter()
                    .chain(dinp.data())
                    .map(|v| v.to_bits())
                    .collect();
                for (_, p) in net.named_params() {
                    bits.extend(p.grad().unwrap().data().iter().map(|v| v.to_bits()));
                }
                for (_, b) in net.named_buffers() {
                    if let Buffer::F32(t) = b {
                        bits.extend(t.data().iter().map(|v| v.to_bits()));
                    }
                }
                bits
            })
        };
        assert!(
            run(1) == run(3),
            "BatchNorm's results depend on the thread count"
        );
    }
}
