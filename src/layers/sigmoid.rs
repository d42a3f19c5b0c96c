//! Sigmoid: 1 / (1 + e^(−x)), elementwise. PyTorch: `nn.Sigmoid()`. The book's networks
//! up to `book-conv2` use it. Any shape in, the same shape out.
//! Backward: dy/dx = y·(1 − y), from the kept output.

use super::LayerDesc;
use super::activation::{Activation, Elementwise, Keeps};

/// Logistic sigmoid. PyTorch: `nn.Sigmoid`.
pub type Sigmoid = Activation<SigmoidFn>;

/// The logistic function, for [`Sigmoid`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SigmoidFn;

impl Sigmoid {
    pub fn new() -> Self {
        Activation::of(SigmoidFn)
    }
}

impl Elementwise for SigmoidFn {
    const KEEPS: Keeps = Keeps::Output;

    fn describe(&self) -> LayerDesc {
        LayerDesc::Sigmoid
    }

    fn value(&self, x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    fn derivative(&self, y: f32) -> f32 {
        // forward: y = σ(x); dy/dx = y · (1 − y)
        y * (1.0 - y)
    }
}
