//! Sigmoid: 1 / (1 + e^(−x)), elementwise. PyTorch: `nn.Sigmoid()`. The book's networks
//! up to `book-conv2` use it.

use super::{BuildContext, Layer, Mode, ShapeStep, chain_elements, map_elements, passthrough};
use crate::tensor::Tensor;

/// Logistic sigmoid. PyTorch: `nn.Sigmoid`.
#[derive(Clone, Debug, Default)]
pub struct Sigmoid {
    out: Tensor,
}

impl Sigmoid {
    pub fn new() -> Self {
        Sigmoid::default()
    }
}

impl Layer for Sigmoid {
    fn kind(&self) -> &'static str {
        "Sigmoid"
    }

    fn repr(&self) -> String {
        "Sigmoid()".into()
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        Ok(passthrough(ctx.input))
    }

    fn forward(&mut self, inp: &Tensor, _mode: Mode) -> Tensor {
        self.out = map_elements(inp, |x| 1.0 / (1.0 + (-x).exp()));
        self.out.clone()
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        // forward: out = σ(inp); dinp = dout · out · (1 − out)
        chain_elements(dout, &self.out, |o| o * (1.0 - o))
    }
}
