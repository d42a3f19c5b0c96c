//! ReLU: max(0, x), elementwise. PyTorch: `nn.ReLU()`. Any shape in, the same shape out.
//! Backward passes the gradient where the output is positive (0 at x = 0, as PyTorch).

use super::{BuildContext, Layer, Mode, ShapeStep, chain_elements, map_elements, passthrough};
use crate::tensor::Tensor;

/// Rectified linear unit. PyTorch: `nn.ReLU`.
#[derive(Clone, Debug, Default)]
pub struct ReLU {
    out: Tensor,
}

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

    fn forward(&mut self, inp: &Tensor, _mode: Mode) -> Tensor {
        // NaN stays NaN, as torch.relu does.
        self.out = map_elements(inp, |x| if x > 0.0 || x.is_nan() { x } else { 0.0 });
        self.out.clone()
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        // forward: out = max(0, inp); dinp = dout · [out > 0]
        chain_elements(dout, &self.out, |o| if o > 0.0 { 1.0 } else { 0.0 })
    }
}
