//! GELU: x·Φ(x), Φ the standard normal CDF, elementwise. PyTorch:
//! `nn.GELU(approximate='none')`; `approximate='tanh'` uses
//! 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). Any shape in, the same shape out.
//! Values and derivatives are computed in f64 and rounded to f32, so they are the
//! correctly rounded results PyTorch's float kernels approach (erf from the `libm` crate,
//! as Rust's std has none). Backward from the kept input.

use super::LayerDesc;
use super::activation::{Activation, Elementwise, Keeps};

/// Gaussian error linear unit. PyTorch: `nn.GELU`.
pub type GELU = Activation<GELUFn>;

/// x ↦ x·Φ(x) (exact) or its tanh approximation, for [`GELU`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GELUFn {
    /// PyTorch's `approximate='tanh'`.
    pub tanh: bool,
}

impl GELU {
    /// `GELU()`: the exact form, with erf.
    pub fn new() -> Self {
        Activation::of(GELUFn { tanh: false })
    }

    /// `GELU(approximate='tanh')`.
    pub fn tanh() -> Self {
        Activation::of(GELUFn { tanh: true })
    }
}

impl Default for GELU {
    fn default() -> Self {
        GELU::new()
    }
}

/// √(2/π), the tanh form's scale.
const K: f64 = 0.797_884_560_802_865_4;
/// The tanh form's cubic coefficient.
const C: f64 = 0.044715;

impl Elementwise for GELUFn {
    const KEEPS: Keeps = Keeps::Input;

    fn describe(&self) -> LayerDesc {
        LayerDesc::GELU { tanh: self.tanh }
    }

    fn value(&self, x: f32) -> f32 {
        let x = f64::from(x);
        let y = if self.tanh {
            0.5 * x * (1.0 + (K * (x + C * x * x * x)).tanh())
        } else {
            0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
        };
        y as f32
    }

    fn derivative(&self, x: f32) -> f32 {
        let x = f64::from(x);
        let d = if self.tanh {
            // forward: y = ½x(1 + t), t = tanh(u), u = k(x + c x³);
            // dy/dx = ½(1 + t) + ½x(1 − t²)·k(1 + 3c x²)
            let t = (K * (x + C * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * K * (1.0 + 3.0 * C * x * x)
        } else {
            // forward: y = x Φ(x); dy/dx = Φ(x) + x φ(x), φ(x) = e^(−x²/2)/√(2π)
            let cdf = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
            let pdf = (-0.5 * x * x).exp()
                * (0.5 * std::f64::consts::FRAC_2_SQRT_PI)
                * std::f64::consts::FRAC_1_SQRT_2;
            cdf + x * pdf
        };
        d as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layer, Pass, Tensor};

    /// torch.nn.GELU()(torch.tensor([-3., -1., 0., 0.5, 2.])) and the tanh form, printed
    /// by torch 2.15 to float precision; gradients for dout = 1.
    #[test]
    fn values_and_slopes_match_pytorch() {
        let x = Tensor::from_vec(&[1, 5], vec![-3.0, -1.0, 0.0, 0.5, 2.0]).unwrap();
        let ones = Tensor::from_vec(&[1, 5], vec![1.0; 5]).unwrap();
        for (mut layer, want_y, want_d) in [
            (
                GELU::new(),
                [
                    -0.004_050_225,
                    -0.158_655_26,
                    0.0,
                    0.345_731_23,
                    1.954_499_7,
                ],
                [
                    -0.011_945_605,
                    -0.083_315_43,
                    0.5,
                    0.867_495_06,
                    1.085_231_9,
                ],
            ),
            (
                GELU::tanh(),
                [-0.003_637_433, -0.158_808, 0.0, 0.345_714, 1.954_597_7],
                [-0.011_584_297, -0.082_964_09, 0.5, 0.867_369_9, 1.086_099_3],
            ),
        ] {
            let y = layer.forward(&x, Pass::Train);
            let d = layer.backward(&ones);
            for i in 0..5 {
                assert!((y.data()[i] - want_y[i]).abs() <= 1e-6, "{y:?}");
                assert!((d.data()[i] - want_d[i]).abs() <= 1e-6, "{d:?}");
            }
        }
    }
}
