//! SiLU (swish): x·σ(x), σ the logistic sigmoid, elementwise. PyTorch: `nn.SiLU()`.
//! Any shape in, the same shape out. Backward: dy/dx = σ(x)·(1 + x·(1 − σ(x))), from the
//! kept input.

use super::LayerDesc;
use super::activation::{Activation, Elementwise, Keeps};

/// Sigmoid linear unit. PyTorch: `nn.SiLU`.
pub type SiLU = Activation<SiLUFn>;

/// x ↦ x·σ(x), for [`SiLU`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SiLUFn;

impl SiLU {
    pub fn new() -> Self {
        Activation::of(SiLUFn)
    }
}

impl Elementwise for SiLUFn {
    const KEEPS: Keeps = Keeps::Input;

    fn describe(&self) -> LayerDesc {
        LayerDesc::SiLU
    }

    fn value(&self, x: f32) -> f32 {
        // PyTorch's float kernel: x / (1 + e^(−x)).
        x / (1.0 + (-x).exp())
    }

    fn derivative(&self, x: f32) -> f32 {
        // forward: y = x σ(x); dy/dx = σ(x) (1 + x (1 − σ(x)))
        let s = 1.0 / (1.0 + (-x).exp());
        s * (1.0 + x * (1.0 - s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layer, Pass, Tensor};

    /// torch.nn.SiLU()(torch.tensor([-3., -1., 0., 0.5, 2.])) and its gradient for
    /// dout = 1, as torch 2.15 computes them.
    #[test]
    fn values_and_slopes_match_pytorch() {
        let mut layer = SiLU::new();
        let x = Tensor::from_vec(&[1, 5], vec![-3.0, -1.0, 0.0, 0.5, 2.0]).unwrap();
        let y = layer.forward(&x, Pass::Train);
        let d = layer.backward(&Tensor::from_vec(&[1, 5], vec![1.0; 5]).unwrap());
        let want_y = [-0.14227761, -0.26894143, 0.0, 0.31122968, 1.761594];
        let want_d = [-0.08810411, 0.072329484, 0.5, 0.7399612, 1.0907843];
        for i in 0..5 {
            assert!((y.data()[i] - want_y[i]).abs() <= 1e-6, "{y:?}");
            assert!((d.data()[i] - want_d[i]).abs() <= 1e-6, "{d:?}");
        }
    }
}
