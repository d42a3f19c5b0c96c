//! Dropout: in training, zero each element with probability p and scale the survivors
//! by 1/(1 − p) ("inverted" dropout), so nothing changes at evaluation, where it is the
//! identity. PyTorch: `nn.Dropout(p=0.5)`. The book drops before each fully connected
//! layer of its best network.

use super::{BuildContext, Layer, Mode, ShapeStep, passthrough};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Inverted dropout. PyTorch: `nn.Dropout`.
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f32,
    rng: Rng,
    /// The scale applied to each element in the last Train forward (0 or 1/(1 − p));
    /// empty after an Eval forward.
    mask: Vec<f32>,
}

impl Dropout {
    /// `Dropout(p)`; p must lie in [0, 1), checked when the network is built.
    pub fn new(p: f32) -> Self {
        Dropout {
            p,
            rng: Rng::new(0),
            mask: Vec::new(),
        }
    }

    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Default for Dropout {
    fn default() -> Self {
        Dropout::new(0.5)
    }
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn repr(&self) -> String {
        format!("Dropout(p={}, inplace=False)", self.p)
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(format!(
                "p = {} is not a probability in [0, 1); p is the fraction dropped, e.g. 0.5",
                self.p
            ));
        }
        // Its own stream: the masks do not depend on anything else drawing numbers.
        self.rng = ctx.rng.split();
        Ok(passthrough(ctx.input))
    }

    fn forward(&mut self, inp: &Tensor, mode: Mode) -> Tensor {
        if mode == Mode::Eval || self.p == 0.0 {
            self.mask.clear();
            return inp.clone();
        }
        let scale = 1.0 / (1.0 - self.p);
        let p = self.p;
        let rng = &mut self.rng;
        self.mask.clear();
        self.mask
            .extend((0..inp.len()).map(|_| if rng.uniform_f32() < p { 0.0 } else { scale }));
        let mut out = inp.clone();
        for (o, &m) in out.data_mut().iter_mut().zip(&self.mask) {
            *o *= m;
        }
        out
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        // forward: out = inp · mask; dinp = dout · mask (identity after Eval)
        let mut dinp = dout.clone();
        if !self.mask.is_empty() {
            for (d, &m) in dinp.data_mut().iter_mut().zip(&self.mask) {
                *d *= m;
            }
        }
        dinp
    }

    fn rng_mut(&mut self) -> Option<&mut Rng> {
        Some(&mut self.rng)
    }
}
