//! Tanh: the hyperbolic tangent, elementwise. PyTorch: `nn.Tanh()`.

use super::{BuildContext, Layer, Mode, ShapeStep, chain_elements, map_elements, passthrough};
use crate::tensor::Tensor;

/// Hyperbolic tangent. PyTorch: `nn.Tanh`.
#[derive(Clone, Debug, Default)]
pub struct Tanh {
    out: Tensor,
}

impl Tanh {
    pub fn new() -> Self {
        Tanh::default()
    }
}

impl Layer for Tanh {
    fn kind(&self) -> &'static str {
        "Tanh"
    }

    fn repr(&self) -> String {
        "Tanh()".into()
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        Ok(passthrough(ctx.input))
    }

    fn forward(&mut self, inp: &Tensor, _mode: Mode) -> Tensor {
        self.out = map_elements(inp, f32::tanh);
        self.out.clone()
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        // forward: out = tanh(inp); dinp = dout · (1 − out²)
        chain_elements(dout, &self.out, |o| 1.0 - o * o)
    }
}
