//! Tanh: the hyperbolic tangent, elementwise. PyTorch: `nn.Tanh()`. Any shape in, the
//! same shape out. Backward: dy/dx = 1 − y², from the kept output.

use super::LayerDesc;
use super::activation::{Activation, Elementwise, Keeps};

/// Hyperbolic tangent. PyTorch: `nn.Tanh`.
pub type Tanh = Activation<TanhFn>;

/// The hyperbolic tangent, for [`Tanh`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TanhFn;

impl Tanh {
    pub fn new() -> Self {
        Activation::of(TanhFn)
    }
}

impl Elementwise for TanhFn {
    const KEEPS: Keeps = Keeps::Output;

    fn describe(&self) -> LayerDesc {
        LayerDesc::Tanh
    }

    fn value(&self, x: f32) -> f32 {
        x.tanh()
    }

    fn derivative(&self, y: f32) -> f32 {
        // forward: y = tanh(x); dy/dx = 1 − y²
        1.0 - y * y
    }
}
