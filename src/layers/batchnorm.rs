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
//! The statistics need the whole batch, so BatchNorm runs on the batch between
//! stretches of image-wise layers; each channel is one task, its sums in a fixed order
//! (f64), so the result does not depend on the thread count.

use rayon::prelude::*;

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
    /// From the last Train or Eval forward, for backward: the normalised input x̂,
    /// 1/√(σ² + ε) per channel, whether the batch's statistics were used, and N.
    xhat: Vec<f32>,
    invstd: Vec<f32>,
    batch_stats: bool,
    batch: usize,
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
            xhat: Vec::new(),
            invstd: Vec::new(),
            batch_stats: false,
            batch: 0,
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

    /// Values per image after the channel: H·W, L or 1.
    fn inner(&self, per_image: usize) -> usize {
        per_image / self.num_features.max(1)
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
        let n = inp.batch();
        let c = self.num_features;
        let inner = self.inner(inp.len() / n.max(1));
        let count = n * inner;
        out.reuse_as(inp.shape());
        let use_batch = pass == Pass::Train || !self.track_running_stats;
        let keep = pass != Pass::Infer;
        self.batch_stats = use_batch;
        self.batch = if keep { n } else { 0 };
        self.invstd.resize(c, 0.0);
        self.xhat.resize(if keep { inp.len() } else { 0 }, 0.0);
        // Per channel: (mean, biased variance) of the batch, or the running ones.
        let stats: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                if !use_batch {
                    let (m, v) = (self.running_mean.data()[ch], self.running_var.data()[ch]);
                    return (m as f64, v as f64);
                }
                let values = || channel(inp.data(), n, c, inner, ch);
                let mean = values().map(|x| x as f64).sum::<f64>() / count.max(1) as f64;
                let var =
                    values().map(|x| (x as f64 - mean).powi(2)).sum::<f64>() / count.max(1) as f64;
                (mean, var)
            })
            .collect();
        let gamma = self.weight.as_ref().map(|w| w.value.data());
        let beta = self.bias.as_ref().map(|b| b.value.data());
        let eps = self.eps as f64;
        for (ch, &(_, var)) in stats.iter().enumerate() {
            self.invstd[ch] = (1.0 / (var + eps).sqrt()) as f32;
        }
        // y = x̂·γ + β with x̂ = (x − μ)·invstd, per image and channel (a plane of
        // `inner` values); x̂ is kept for backward.
        let plane = inner.max(1);
        let invstd = &self.invstd;
        let normalise = |index: usize, y: &mut [f32], x: &[f32], xhat: Option<&mut [f32]>| {
            let ch = index % c;
            let (mean, s) = (stats[ch].0 as f32, invstd[ch]);
            let (g, b) = (gamma.map_or(1.0, |g| g[ch]), beta.map_or(0.0, |b| b[ch]));
            match xhat {
                Some(xhat) => {
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
        };
        let planes = out
            .data_mut()
            .par_chunks_mut(plane)
            .zip(inp.data().par_chunks(plane));
        if keep {
            planes
                .zip(self.xhat.par_chunks_mut(plane))
                .enumerate()
                .for_each(|(i, ((y, x), xh))| normalise(i, y, x, Some(xh)));
        } else {
            planes
                .enumerate()
                .for_each(|(i, (y, x))| normalise(i, y, x, None));
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
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        let n = dout.batch();
        assert_eq!(
            self.batch,
            n,
            "{}::backward needs the Train or Eval forward of the same {n} images first",
            self.describe().kind()
        );
        let c = self.num_features;
        let inner = self.inner(dout.len() / n.max(1));
        let count = (n * inner).max(1) as f64;
        // forward: y = x̂·γ + β, x̂ = (x − μ)·invstd
        // dβ = Σ dy, dγ = Σ dy·x̂ (over the batch and positions of a channel)
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let dy = channel(dout.data(), n, c, inner, ch);
                let xh = channel(&self.xhat, n, c, inner, ch);
                dy.zip(xh).fold((0.0, 0.0), |(s, sx), (d, x)| {
                    (s + d as f64, sx + d as f64 * x as f64)
                })
            })
            .collect();
        if let Some(w) = self.weight.as_mut() {
            for (g, &(_, sx)) in w.grad_mut().data_mut().iter_mut().zip(&sums) {
                *g += sx as f32;
            }
        }
        if let Some(b) = self.bias.as_mut() {
            for (g, &(s, _)) in b.grad_mut().data_mut().iter_mut().zip(&sums) {
                *g += s as f32;
            }
        }
        let Some(dinp) = dinp else { return };
        dinp.reuse_as(dout.shape());
        let gamma = self.weight.as_ref().map(|w| w.value.data());
        let (invstd, batch_stats) = (&self.invstd, self.batch_stats);
        // Batch statistics: μ and σ² depend on every x of the channel, so
        //   dx = γ·invstd/n · (n·dy − Σdy − x̂·Σ(dy·x̂));
        // running statistics are constants: dx = γ·invstd·dy.
        dinp.data_mut()
            .par_chunks_mut(inner.max(1))
            .zip(dout.data().par_chunks(inner.max(1)))
            .zip(self.xhat.par_chunks(inner.max(1)))
            .enumerate()
            .for_each(|(plane, ((dx, dy), xh))| {
                let ch = plane % c;
                let scale = gamma.map_or(1.0, |g| g[ch]) * invstd[ch];
                if batch_stats {
                    let (s, sx) = (sums[ch].0 / count, sums[ch].1 / count);
                    for ((dx, &dy), &xh) in dx.iter_mut().zip(dy).zip(xh) {
                        *dx = scale * (dy - s as f32 - xh * sx as f32);
                    }
                } else {
                    for (dx, &dy) in dx.iter_mut().zip(dy) {
                        *dx = scale * dy;
                    }
                }
            });
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

/// The values of channel `ch` of an `[n, c, inner]` batch, image by image.
fn channel(data: &[f32], n: usize, c: usize, inner: usize, ch: usize) -> impl Iterator<Item = f32> {
    (0..n).flat_map(move |i| {
        let start = (i * c + ch) * inner;
        data[start..start + inner].iter().copied()
    })
}
