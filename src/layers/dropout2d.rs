//! Dropout2d: in training, zero each whole channel (feature map) of each image with
//! probability p and scale the kept channels by 1/(1 − p); the identity at evaluation.
//! PyTorch: `nn.Dropout2d(p=0.5)`. Input C×H×W per image.
//!
//! The masks come from the layer's own stream (split off when the network is built, as
//! Dropout's), one draw per (image, channel), images in order and channels in order
//! within an image, on the batch: so they do not depend on the thread count, and a
//! checkpoint that stores the stream resumes the same masks.

use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep, passthrough};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Channel-wise inverted dropout. PyTorch: `nn.Dropout2d`.
#[derive(Clone, Debug)]
pub struct Dropout2d {
    p: f32,
    rng: Rng,
    /// Values per channel (H·W), set by `build`.
    plane: usize,
    /// The scale of each (image, channel) in the last Train forward (0 or 1/(1 − p));
    /// empty after an Eval forward.
    mask: Vec<f32>,
}

impl Dropout2d {
    /// `Dropout2d(p)`; p must lie in [0, 1), checked when the network is built.
    pub fn new(p: f32) -> Self {
        Dropout2d {
            p,
            rng: Rng::new(0),
            plane: 0,
            mask: Vec::new(),
        }
    }

    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Default for Dropout2d {
    fn default() -> Self {
        Dropout2d::new(0.5)
    }
}

impl Layer for Dropout2d {
    fn describe(&self) -> LayerDesc {
        LayerDesc::Dropout2d { p: self.p }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(format!(
                "p = {} is not a probability in [0, 1); p is the fraction of channels \
                 dropped, e.g. 0.5",
                self.p
            ));
        }
        let &[_, h, w] = ctx.input else {
            return Err(ctx.needs_images("Dropout2d"));
        };
        self.plane = h * w;
        // Its own stream: the masks do not depend on anything else drawing numbers.
        self.rng = ctx.rng.split();
        Ok(passthrough(ctx.input))
    }

    /// One draw per (image, channel), in order; the whole channel takes its scale.
    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        super::recycle(out, inp.shape());
        self.mask.clear();
        if pass != Pass::Train || self.p == 0.0 {
            out.data_mut().copy_from_slice(inp.data());
            return;
        }
        // A layer used alone, unbuilt: the plane is the batch's H·W.
        let plane = match inp.shape() {
            [_, _, h, w] => h * w,
            _ => self.plane,
        };
        debug_assert!(plane > 0 && inp.len().is_multiple_of(plane));
        let (p, scale) = (self.p, 1.0 / (1.0 - self.p));
        let planes = inp.len() / plane.max(1);
        self.mask.reserve(planes);
        for _ in 0..planes {
            let m = if self.rng.uniform_f32() < p {
                0.0
            } else {
                scale
            };
            self.mask.push(m);
        }
        for ((o, x), &m) in out
            .data_mut()
            .chunks_mut(plane)
            .zip(inp.data().chunks(plane))
            .zip(&self.mask)
        {
            for (o, &x) in o.iter_mut().zip(x) {
                *o = x * m;
            }
        }
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        // forward: out = inp · mask[image, channel]; dinp = dout · mask (identity after Eval)
        let Some(dinp) = dinp else { return };
        super::recycle(dinp, dout.shape());
        if self.mask.is_empty() {
            dinp.data_mut().copy_from_slice(dout.data());
            return;
        }
        let plane = dout.len() / self.mask.len();
        for ((d, g), &m) in dinp
            .data_mut()
            .chunks_mut(plane)
            .zip(dout.data().chunks(plane))
            .zip(&self.mask)
        {
            for (d, &g) in d.iter_mut().zip(g) {
                *d = g * m;
            }
        }
    }

    fn rng_mut(&mut self) -> Option<&mut Rng> {
        Some(&mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Train mode: each (image, channel) is dropped whole or scaled by 1/(1 − p), as the
    /// layer's stream draws, one draw per channel, images then channels in order;
    /// backward applies the same masks; Eval is the identity.
    #[test]
    fn channel_masks_follow_the_stream_in_order() {
        let mut layer = Dropout2d::new(0.4);
        layer.rng = Rng::new(7);
        let mut expected_rng = layer.rng.clone();
        let (n, c, h, w) = (3, 20, 2, 3);
        let len = n * c * h * w;
        let inp =
            Tensor::from_vec(&[n, c, h, w], (0..len).map(|i| i as f32 + 0.5).collect()).unwrap();
        let out = layer.forward(&inp, Pass::Train);
        let mut dropped = 0;
        for (k, (x, y)) in inp
            .data()
            .chunks(h * w)
            .zip(out.data().chunks(h * w))
            .enumerate()
        {
            let keep = expected_rng.uniform_f32() >= 0.4;
            for (&x, &y) in x.iter().zip(y) {
                assert_eq!(y, if keep { x * (1.0 / 0.6) } else { 0.0 }, "plane {k}");
            }
            dropped += usize::from(!keep);
        }
        assert!(
            (10..=40).contains(&dropped),
            "{dropped} of 60 channels dropped"
        );
        assert_eq!(
            layer.rng.state(),
            expected_rng.state(),
            "one draw per channel, no more"
        );

        let dout = Tensor::from_vec(&[n, c, h, w], vec![1.0; len]).unwrap();
        let dinp = layer.backward(&dout);
        for (&y, &d) in out.data().iter().zip(dinp.data()) {
            assert_eq!(d == 0.0, y == 0.0, "backward drops what forward dropped");
        }

        let out = layer.forward(&inp, Pass::Eval);
        assert_eq!(out.data(), inp.data());
        assert_eq!(layer.backward(&dout).data(), dout.data());
    }

    #[test]
    fn needs_images() {
        let e = crate::spec::build("Flatten() -> Dropout2d(0.5)", &[1, 4, 4], 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Dropout2d must come before Flatten"), "{e}");
    }
}
