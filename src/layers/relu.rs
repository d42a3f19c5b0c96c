//! ReLU: max(0, x), elementwise. PyTorch: `nn.ReLU()`. Any shape in, the same shape out.
//! Backward passes the gradient where the output is positive (0 at x = 0, as PyTorch).

use rayon::prelude::*;

use super::{BuildContext, Layer, Mode, ShapeStep, passthrough};
use crate::tensor::Tensor;

/// Rectified linear unit. PyTorch: `nn.ReLU`.
#[derive(Clone, Debug, Default)]
pub struct ReLU {
    /// 1 where the last forward's output was positive (where the gradient passes).
    mask: Vec<u8>,
}

/// Elements per parallel task.
const CHUNK: usize = 16 * 1024;

impl ReLU {
    pub fn new() -> Self {
        ReLU::default()
    }
}

impl Layer for ReLU {
    fn kind(&self) -> &'static str {
        "ReLU"
    }

    fn repr(&self) -> String {
        "ReLU()".into()
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        Ok(passthrough(ctx.input))
    }

    fn forward(&mut self, inp: &Tensor, mode: Mode) -> Tensor {
        let mut out = Tensor::default();
        self.forward_into(inp, mode, &mut out);
        out
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        let mut dinp = Tensor::default();
        self.backward_into(dout, &mut dinp);
        dinp
    }

    fn forward_into(&mut self, inp: &Tensor, _mode: Mode, out: &mut Tensor) {
        super::recycle(out, inp.shape(), false);
        self.mask.resize(inp.len(), 0);
        out.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(self.mask.par_chunks_mut(CHUNK))
            .zip(inp.data().par_chunks(CHUNK))
            .for_each(|((o, m), i)| {
                for ((o, m), &x) in o.iter_mut().zip(m.iter_mut()).zip(i) {
                    // NaN stays NaN, as torch.relu does.
                    *o = if x > 0.0 || x.is_nan() { x } else { 0.0 };
                    *m = u8::from(x > 0.0);
                }
            });
    }

    /// Inference keeps no mask for backward: just the values.
    fn forward_infer(&mut self, inp: &Tensor, out: &mut Tensor) {
        super::recycle(out, inp.shape(), false);
        out.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(inp.data().par_chunks(CHUNK))
            .for_each(|(o, i)| {
                for (o, &x) in o.iter_mut().zip(i) {
                    // NaN stays NaN, as torch.relu does.
                    *o = if x > 0.0 || x.is_nan() { x } else { 0.0 };
                }
            });
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: &mut Tensor) {
        // forward: out = max(0, inp); dinp = dout · [out > 0]
        debug_assert_eq!(dout.len(), self.mask.len());
        super::recycle(dinp, dout.shape(), false);
        dinp.data_mut()
            .par_chunks_mut(CHUNK)
            .zip(self.mask.par_chunks(CHUNK))
            .zip(dout.data().par_chunks(CHUNK))
            .for_each(|((di, m), d)| {
                for ((di, &m), &d) in di.iter_mut().zip(m).zip(d) {
                    *di = if m != 0 { d } else { 0.0 };
                }
            });
    }
}
