//! Dropout: in training, zero each element with probability p and scale the survivors
//! by 1/(1 − p) ("inverted" dropout), so nothing changes at evaluation, where it is the
//! identity. PyTorch: `nn.Dropout(p=0.5)`. The book drops before each fully connected
//! layer of its best network.

use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep, passthrough};
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

/// Dropout's and Dropout2d's check of `p` when the network is built; `what` says what
/// p is the fraction of.
pub(super) fn check_p(p: f32, what: &str) -> Result<(), String> {
    if (0.0..1.0).contains(&p) {
        return Ok(());
    }
    Err(format!(
        "p = {p} is not a probability in [0, 1); p is the {what}, e.g. 0.5"
    ))
}

impl Default for Dropout {
    fn default() -> Self {
        Dropout::new(0.5)
    }
}

impl Layer for Dropout {
    fn describe(&self) -> LayerDesc {
        LayerDesc::Dropout { p: self.p }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        check_p(self.p, "fraction dropped")?;
        // Its own stream: the masks do not depend on anything else drawing numbers.
        self.rng = ctx.rng.split();
        Ok(passthrough(ctx.input))
    }

    /// One draw per element, in element order, and the multiply in the same pass; the
    /// mask and the output keep their allocations from step to step.
    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        super::recycle(out, inp.shape());
        self.mask.clear();
        if pass != Pass::Train || self.p == 0.0 {
            out.data_mut().copy_from_slice(inp.data());
            return;
        }
        let (p, scale) = (self.p, 1.0 / (1.0 - self.p));
        self.mask.resize(inp.len(), 0.0);
        for ((o, m), &x) in out
            .data_mut()
            .iter_mut()
            .zip(&mut self.mask)
            .zip(inp.data())
        {
            *m = if self.rng.uniform_f32() < p {
                0.0
            } else {
                scale
            };
            *o = x * *m;
        }
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        // forward: out = inp · mask; dinp = dout · mask (identity after Eval)
        let Some(dinp) = dinp else { return };
        super::recycle(dinp, dout.shape());
        if self.mask.is_empty() {
            dinp.data_mut().copy_from_slice(dout.data());
            return;
        }
        for ((d, &m), &g) in dinp.data_mut().iter_mut().zip(&self.mask).zip(dout.data()) {
            *d = g * m;
        }
    }

    fn rng_mut(&mut self) -> Option<&mut Rng> {
        Some(&mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Train mode: each element is dropped or scaled by 1/(1 − p) as the layer's own
    /// stream draws, one draw per element in order (so checkpoints resume the same
    /// masks); backward applies the same mask; a reused output gets no stale values;
    /// Eval mode is the identity.
    #[test]
    fn masks_follow_the_stream_and_backward_reuses_them() {
        let mut layer = Dropout::new(0.25);
        layer.rng = Rng::new(5);
        let mut expected_rng = layer.rng.clone();
        let inp = Tensor::from_vec(&[3, 40], (0..120).map(|i| i as f32 - 60.5).collect()).unwrap();
        let mut out = Tensor::from_vec(&[1, 1], vec![9.0]).unwrap();
        layer.forward_into(&inp, &mut out, Pass::Train);
        assert_eq!(out.shape(), inp.shape());
        let mut dropped = 0;
        for (&x, &y) in inp.data().iter().zip(out.data()) {
            if expected_rng.uniform_f32() < 0.25 {
                assert_eq!(y, 0.0);
                dropped += 1;
            } else {
                assert_eq!(y, x * (1.0 / 0.75));
            }
        }
        assert!(
            (15..=45).contains(&dropped),
            "{dropped} of 120 dropped at p = 0.25"
        );

        let dout = Tensor::from_vec(&[3, 40], vec![1.0; 120]).unwrap();
        let mut dinp = Tensor::default();
        layer.backward_into(&dout, Some(&mut dinp));
        for (&y, &d) in out.data().iter().zip(dinp.data()) {
            assert_eq!(d == 0.0, y == 0.0, "backward drops what forward dropped");
        }

        layer.forward_into(&inp, &mut out, Pass::Eval);
        assert_eq!(out.data(), inp.data());
        layer.backward_into(&dout, Some(&mut dinp));
        assert_eq!(dinp.data(), dout.data(), "identity after an Eval forward");
    }
}
