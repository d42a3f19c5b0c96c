//! Softmax and LogSoftmax over dim 1 (the classes, or the channels of a feature map).
//! PyTorch: `nn.Softmax(dim=1)`, `nn.LogSoftmax(dim=1)`. Any shape in, the same out.
//!
//! For each image and each position of the remaining dimensions, over k along dim 1:
//! softmax: out_k = e^(x_k − m) / Σ_j e^(x_j − m), m = max_j x_j (stable: no overflow);
//! log-softmax: out_k = x_k − m − ln Σ_j e^(x_j − m).
//! Backward works from the kept output. Training uses cross-entropy on raw logits; these
//! are for outputs people want to read.

use super::image_wise::{self, ImageStep, ImageWise, PerImage, Slots};
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep, passthrough};
use crate::tensor::Tensor;

/// Normalises each column to probabilities. PyTorch: `nn.Softmax(dim=1)`.
pub type Softmax = SoftmaxOver<false>;

/// Log-probabilities. PyTorch: `nn.LogSoftmax(dim=1)`.
pub type LogSoftmax = SoftmaxOver<true>;

/// Softmax (`LOG = false`) or log-softmax (`LOG = true`) over dim 1.
#[derive(Clone, Debug)]
pub struct SoftmaxOver<const LOG: bool> {
    dim: i64,
    /// Per image, the last Train or Eval forward's output (backward reads it).
    out: Vec<f32>,
    /// Images in that forward.
    batch: usize,
    /// Per image: the values normalised together (dim 1), and the positions of the
    /// dimensions after it (each position is one column).
    classes: usize,
    inner: usize,
}

impl Softmax {
    pub fn new(dim: i64) -> Self {
        SoftmaxOver::with_dim(dim)
    }
}

impl LogSoftmax {
    pub fn new(dim: i64) -> Self {
        SoftmaxOver::with_dim(dim)
    }
}

impl<const LOG: bool> SoftmaxOver<LOG> {
    fn with_dim(dim: i64) -> Self {
        SoftmaxOver {
            dim,
            out: Vec::new(),
            batch: 0,
            classes: 0,
            inner: 0,
        }
    }

    /// Reads the per-image geometry off a batch's shape (`[N, K, ...]`).
    fn set_geometry(&mut self, shape: &[usize]) {
        self.classes = shape.get(1).copied().unwrap_or(1);
        self.inner = shape.iter().skip(2).product();
    }
}

impl<const LOG: bool> Layer for SoftmaxOver<LOG> {
    fn describe(&self) -> LayerDesc {
        if LOG {
            LayerDesc::LogSoftmax { dim: self.dim }
        } else {
            LayerDesc::Softmax { dim: self.dim }
        }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let rank = ctx.input.len() as i64 + 1; // with the batch dimension
        let dim = self.dim;
        if dim == 1 || (dim == -1 && rank == 2) || dim == 1 - rank {
            self.classes = ctx.input.first().copied().unwrap_or(1);
            self.inner = ctx.input.iter().skip(1).product();
            Ok(passthrough(ctx.input))
        } else {
            Err(format!(
                "dim={dim} is not supported; seqnet normalises over dim=1 (the classes), \
                 e.g. Softmax(dim=1)"
            ))
        }
    }

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        self.set_geometry(inp.shape());
        image_wise::forward_batch(self, inp, out, &inp.shape()[1..], pass);
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        image_wise::backward_batch(self, dout, dinp, &dout.shape()[1..]);
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }
}

impl<const LOG: bool> ImageWise for SoftmaxOver<LOG> {
    fn output_len(&self) -> usize {
        self.classes * self.inner
    }

    fn forward_images(&mut self, n: usize, pass: Pass) -> Box<dyn ImageStep + '_> {
        let len = self.output_len();
        let keep = pass != Pass::Infer;
        self.batch = if keep { n } else { 0 };
        self.out.resize(self.batch * len, 0.0);
        Box::new(Forward::<LOG> {
            classes: self.classes,
            inner: self.inner,
            kept: keep.then(|| Slots::new(&mut self.out, len)),
        })
    }

    fn backward_images(&mut self, n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        assert_eq!(
            self.batch,
            n,
            "{}::backward needs the Train or Eval forward of the same {n} images first",
            self.describe().kind()
        );
        Box::new(Backward::<LOG> {
            classes: self.classes,
            inner: self.inner,
            out: &self.out,
        })
    }
}

struct Forward<'a, const LOG: bool> {
    classes: usize,
    inner: usize,
    kept: Option<Slots<'a, f32>>,
}

impl<const LOG: bool> ImageStep for Forward<'_, LOG> {
    unsafe fn run(&self, i: usize, x: &[f32], y: Option<&mut [f32]>) {
        let y = y.expect("a forward step has an output");
        let (k, inner) = (self.classes, self.inner);
        // Column c holds the values c, c + inner, c + 2·inner, … (dim 1 of the image).
        for c in 0..inner {
            let col = (0..k).map(|j| j * inner + c);
            let m = col
                .clone()
                .map(|at| x[at])
                .fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = col.clone().map(|at| (x[at] - m).exp()).sum();
            let log_sum = sum.ln();
            for at in col {
                y[at] = if LOG {
                    x[at] - m - log_sum
                } else {
                    (x[at] - m).exp() / sum
                };
            }
        }
        if let Some(kept) = &self.kept {
            // SAFETY: image i is this call's alone (the trait's contract).
            unsafe { kept.get(i) }.copy_from_slice(y);
        }
    }
}

struct Backward<'a, const LOG: bool> {
    classes: usize,
    inner: usize,
    out: &'a [f32],
}

impl<const LOG: bool> ImageStep for Backward<'_, LOG> {
    unsafe fn run(&self, i: usize, d: &[f32], dinp: Option<&mut [f32]>) {
        let Some(di) = dinp else { return };
        let (k, inner) = (self.classes, self.inner);
        let o = &self.out[i * k * inner..(i + 1) * k * inner];
        for c in 0..inner {
            let col = (0..k).map(|j| j * inner + c);
            if LOG {
                // forward: out_k = x_k − ln Σ_j e^(x_j)
                // dinp_k = dout_k − e^(out_k) · Σ_j dout_j
                let total: f32 = col.clone().map(|at| d[at]).sum();
                for at in col {
                    di[at] = d[at] - o[at].exp() * total;
                }
            } else {
                // forward: out_k = e^(x_k) / Σ_j e^(x_j)
                // dinp_k = out_k · (dout_k − Σ_j dout_j · out_j)
                let dot: f32 = col.clone().map(|at| d[at] * o[at]).sum();
                for at in col {
                    di[at] = o[at] * (d[at] - dot);
                }
            }
        }
    }
}
