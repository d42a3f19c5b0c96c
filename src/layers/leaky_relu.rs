//! LeakyReLU: x for x > 0, negative_slope·x otherwise, elementwise. PyTorch:
//! `nn.LeakyReLU(negative_slope=0.01)`. Any shape in, the same shape out.
//! Backward: dy/dx = 1 for x > 0, negative_slope otherwise (at 0 too, as PyTorch), from
//! the kept input.

use super::LayerDesc;
use super::activation::{Activation, Elementwise, Keeps};

/// Leaky rectified linear unit. PyTorch: `nn.LeakyReLU`.
pub type LeakyReLU = Activation<LeakyReLUFn>;

/// x ↦ max(0, x) + negative_slope · min(0, x), for [`LeakyReLU`].
#[derive(Clone, Copy, Debug)]
pub struct LeakyReLUFn {
    pub negative_slope: f32,
}

impl LeakyReLU {
    /// `LeakyReLU(negative_slope)`; PyTorch's default slope is 0.01.
    pub fn new(negative_slope: f32) -> Self {
        Activation::of(LeakyReLUFn { negative_slope })
    }
}

impl Elementwise for LeakyReLUFn {
    const KEEPS: Keeps = Keeps::Input;

    fn describe(&self) -> LayerDesc {
        LayerDesc::LeakyReLU {
            negative_slope: self.negative_slope,
        }
    }

    fn value(&self, x: f32) -> f32 {
        if x > 0.0 { x } else { x * self.negative_slope }
    }

    fn derivative(&self, x: f32) -> f32 {
        // forward: y = x (x > 0), negative_slope · x (x ≤ 0)
        if x > 0.0 { 1.0 } else { self.negative_slope }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layer, Pass, Tensor};

    /// torch.nn.LeakyReLU(0.2)(torch.tensor([[-2., -0., 0.5, 3.]])) = [-0.4, -0., 0.5, 3.],
    /// and its gradient for dout = 1 is [0.2, 0.2, 1, 1] (PyTorch takes the slope at 0).
    #[test]
    fn values_and_slopes_match_pytorch() {
        let mut layer = LeakyReLU::new(0.2);
        let x = Tensor::from_vec(&[1, 4], vec![-2.0, -0.0, 0.5, 3.0]).unwrap();
        let y = layer.forward(&x, Pass::Train);
        assert_eq!(y.data(), &[-2.0 * 0.2, -0.0, 0.5, 3.0]);
        let d = layer.backward(&Tensor::from_vec(&[1, 4], vec![1.0; 4]).unwrap());
        assert_eq!(d.data(), &[0.2, 0.2, 1.0, 1.0]);
    }
}
