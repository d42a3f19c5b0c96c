//! Softmax and LogSoftmax over dim 1 (the classes, or the channels of a feature map).
//! PyTorch: `nn.Softmax(dim=1)`, `nn.LogSoftmax(dim=1)`.
//!
//! For each image and each position of the remaining dimensions, over k along dim 1:
//! softmax: out_k = e^(x_k − m) / Σ_j e^(x_j − m), m = max_j x_j (stable: no overflow);
//! log-softmax: out_k = x_k − m − ln Σ_j e^(x_j − m).
//! Training uses cross-entropy on raw logits; these are for outputs people want to read.

use super::{BuildContext, Layer, Mode, ShapeStep, passthrough};
use crate::tensor::Tensor;

/// `(outer, classes, inner)` for a tensor reduced over dim 1.
fn split_dims(shape: &[usize]) -> (usize, usize, usize) {
    let outer = shape[0];
    let classes = shape.get(1).copied().unwrap_or(1);
    let inner = shape.iter().skip(2).product();
    (outer, classes, inner)
}

/// Calls `f(indices)` for every dim-1 column: the k element indices, `inner` apart,
/// that one softmax normalises together.
fn for_each_column(shape: &[usize], mut f: impl FnMut(&[usize])) {
    let (outer, k, inner) = split_dims(shape);
    let mut idx = vec![0; k];
    for o in 0..outer {
        for i in 0..inner {
            for (j, slot) in idx.iter_mut().enumerate() {
                *slot = (o * k + j) * inner + i;
            }
            f(&idx);
        }
    }
}

fn build_dim(dim: i64, ctx: &BuildContext) -> Result<ShapeStep, String> {
    let rank = ctx.input.len() as i64 + 1; // with the batch dimension
    if dim == 1 || (dim == -1 && rank == 2) || dim == 1 - rank {
        Ok(passthrough(ctx.input))
    } else {
        Err(format!(
            "dim={dim} is not supported; seqnet normalises over dim=1 (the classes), \
             e.g. Softmax(dim=1)"
        ))
    }
}

/// Normalises each column to probabilities. PyTorch: `nn.Softmax(dim=1)`.
#[derive(Clone, Debug)]
pub struct Softmax {
    dim: i64,
    out: Tensor,
}

impl Softmax {
    pub fn new(dim: i64) -> Self {
        Softmax {
            dim,
            out: Tensor::default(),
        }
    }
}

/// Log-probabilities. PyTorch: `nn.LogSoftmax(dim=1)`.
#[derive(Clone, Debug)]
pub struct LogSoftmax {
    dim: i64,
    out: Tensor,
}

impl LogSoftmax {
    pub fn new(dim: i64) -> Self {
        LogSoftmax {
            dim,
            out: Tensor::default(),
        }
    }
}

/// Shared forward: `x − m − ln Σ e^(x − m)` (log) or `e^(x − m) / Σ e^(x − m)`.
fn normalise(inp: &Tensor, log: bool) -> Tensor {
    let mut out = inp.clone();
    let x = inp.data();
    let y = out.data_mut();
    for_each_column(inp.shape(), |col| {
        let m = col.iter().map(|&i| x[i]).fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = col.iter().map(|&i| (x[i] - m).exp()).sum();
        let log_sum = sum.ln();
        for &i in col {
            y[i] = if log {
                x[i] - m - log_sum
            } else {
                (x[i] - m).exp() / sum
            };
        }
    });
    out
}

impl Layer for Softmax {
    fn kind(&self) -> &'static str {
        "Softmax"
    }

    fn repr(&self) -> String {
        format!("Softmax(dim={})", self.dim)
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        build_dim(self.dim, ctx)
    }

    fn forward(&mut self, inp: &Tensor, _mode: Mode) -> Tensor {
        self.out = normalise(inp, false);
        self.out.clone()
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        // forward: out_k = e^(x_k) / Σ_j e^(x_j)
        // dinp_k = out_k · (dout_k − Σ_j dout_j · out_j)
        let mut dinp = dout.clone();
        let (o, d) = (self.out.data(), dout.data());
        let di = dinp.data_mut();
        for_each_column(self.out.shape(), |col| {
            let dot: f32 = col.iter().map(|&i| d[i] * o[i]).sum();
            for &i in col {
                di[i] = o[i] * (d[i] - dot);
            }
        });
        dinp
    }
}

impl Layer for LogSoftmax {
    fn kind(&self) -> &'static str {
        "LogSoftmax"
    }

    fn repr(&self) -> String {
        format!("LogSoftmax(dim={})", self.dim)
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        build_dim(self.dim, ctx)
    }

    fn forward(&mut self, inp: &Tensor, _mode: Mode) -> Tensor {
        self.out = normalise(inp, true);
        self.out.clone()
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        // forward: out_k = x_k − ln Σ_j e^(x_j)
        // dinp_k = dout_k − e^(out_k) · Σ_j dout_j
        let mut dinp = dout.clone();
        let (o, d) = (self.out.data(), dout.data());
        let di = dinp.data_mut();
        for_each_column(self.out.shape(), |col| {
            let total: f32 = col.iter().map(|&i| d[i]).sum();
            for &i in col {
                di[i] = d[i] - o[i].exp() * total;
            }
        });
        dinp
    }
}
