//! ELU: x for x > 0, alpha·(eˣ − 1) otherwise, elementwise. PyTorch:
//! `nn.ELU(alpha=1.0)`. Any shape in, the same shape out. Backward: dy/dx = 1 for x > 0,
//! alpha·eˣ otherwise (at 0 too, as PyTorch), from the kept input.

use super::LayerDesc;
use super::activation::{Activation, Elementwise, Keeps};

/// Exponential linear unit. PyTorch: `nn.ELU`.
pub type ELU = Activation<ELUFn>;

/// x ↦ x (x > 0), alpha·(eˣ − 1) (x ≤ 0), for [`ELU`].
#[derive(Clone, Copy, Debug)]
pub struct ELUFn {
    pub alpha: f32,
}

impl ELU {
    /// `ELU(alpha)`; PyTorch's default alpha is 1.0.
    pub fn new(alpha: f32) -> Self {
        Activation::of(ELUFn { alpha })
    }
}

impl Elementwise for ELUFn {
    const KEEPS: Keeps = Keeps::Input;

    fn describe(&self) -> LayerDesc {
        LayerDesc::ELU { alpha: self.alpha }
    }

    fn value(&self, x: f32) -> f32 {
        if x > 0.0 { x } else { x.exp_m1() * self.alpha }
    }

    fn derivative(&self, x: f32) -> f32 {
        // forward: y = x (x > 0), alpha (eˣ − 1) (x ≤ 0)
        if x > 0.0 { 1.0 } else { self.alpha * x.exp() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layer, Pass, Tensor};

    /// torch.nn.ELU(0.5)(torch.tensor([-3., -1., 0., 0.5, 2.])) and its gradient for
    /// dout = 1 (PyTorch takes alpha·e⁰ = alpha at 0).
    #[test]
    fn values_and_slopes_match_pytorch() {
        let mut layer = ELU::new(0.5);
        let x = Tensor::from_vec(&[1, 5], vec![-3.0, -1.0, 0.0, 0.5, 2.0]).unwrap();
        let y = layer.forward(&x, Pass::Train);
        let d = layer.backward(&Tensor::from_vec(&[1, 5], vec![1.0; 5]).unwrap());
        let want_y = [-0.47510648, -0.31606027, 0.0, 0.5, 2.0];
        let want_d = [0.024893533, 0.18393973, 0.5, 1.0, 1.0];
        for i in 0..5 {
            assert!((y.data()[i] - want_y[i]).abs() <= 1e-6, "{y:?}");
            assert!((d.data()[i] - want_d[i]).abs() <= 1e-6, "{d:?}");
        }
    }
}
