//! ReLU: max(0, x), elementwise. PyTorch: `nn.ReLU()`. Any shape in, the same shape out.
//! Backward passes the gradient where the output is positive (0 at x = 0, as PyTorch).

use super::image_wise::{self, ImageStep, ImageWise, PerImage, Slots};
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep, passthrough};
use crate::tensor::Tensor;

/// Rectified linear unit. PyTorch: `nn.ReLU`.
#[derive(Clone, Debug, Default)]
pub struct ReLU {
    /// 1 where the last forward's output was positive (where the gradient passes).
    mask: Vec<u8>,
    /// Values per image: set by `build`, and by a batch forward called on the layer
    /// alone (which may not have been built).
    len: usize,
}

impl ReLU {
    pub fn new() -> Self {
        ReLU::default()
    }

    /// Reads the values per image off a batch (an empty batch says nothing about them).
    fn set_len(&mut self, inp: &Tensor) {
        if inp.batch() > 0 {
            self.len = inp.len() / inp.batch();
        }
    }
}

impl Layer for ReLU {
    fn describe(&self) -> LayerDesc {
        LayerDesc::ReLU
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        self.len = ctx.input.iter().product();
        Ok(passthrough(ctx.input))
    }

    /// Inference keeps no mask for backward: just the values.
    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        self.set_len(inp);
        image_wise::forward_batch(self, inp, out, &inp.shape()[1..], pass);
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        image_wise::backward_batch(self, dout, dinp, &dout.shape()[1..]);
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }
}

impl ImageWise for ReLU {
    fn output_len(&self) -> usize {
        self.len
    }

    fn forward_images(&mut self, n: usize, pass: Pass) -> Box<dyn ImageStep + '_> {
        let (len, keep) = (self.len, pass != Pass::Infer);
        self.mask.resize(if keep { n * len } else { 0 }, 0);
        Box::new(ReluForward {
            mask: keep.then(|| Slots::new(&mut self.mask, len)),
        })
    }

    fn backward_images(&mut self, n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        assert_eq!(
            self.mask.len(),
            n * self.len,
            "ReLU::backward needs the Train or Eval forward of the same {n} images first \
             (inference keeps no mask)"
        );
        Box::new(ReluBackward {
            mask: &self.mask,
            len: self.len,
        })
    }
}

struct ReluForward<'a> {
    mask: Option<Slots<'a, u8>>,
}

impl ImageStep for ReluForward<'_> {
    unsafe fn run(&self, i: usize, inp: &[f32], out: Option<&mut [f32]>) {
        let out = out.expect("a forward step has an output");
        match &self.mask {
            Some(mask) => {
                // SAFETY: image i is this call's alone (the trait's contract).
                let mask = unsafe { mask.get(i) };
                for ((o, m), &x) in out.iter_mut().zip(mask.iter_mut()).zip(inp) {
                    // NaN stays NaN, as torch.relu does.
                    *o = if x > 0.0 || x.is_nan() { x } else { 0.0 };
                    *m = u8::from(x > 0.0);
                }
            }
            None => {
                for (o, &x) in out.iter_mut().zip(inp) {
                    *o = if x > 0.0 || x.is_nan() { x } else { 0.0 };
                }
            }
        }
    }
}

struct ReluBackward<'a> {
    mask: &'a [u8],
    len: usize,
}

impl ImageStep for ReluBackward<'_> {
    unsafe fn run(&self, i: usize, dout: &[f32], dinp: Option<&mut [f32]>) {
        // forward: out = max(0, inp); dinp = dout · [inp > 0]
        let Some(dinp) = dinp else { return };
        let mask = &self.mask[i * self.len..(i + 1) * self.len];
        for ((di, &m), &d) in dinp.iter_mut().zip(mask).zip(dout) {
            *di = if m != 0 { d } else { 0.0 };
        }
    }
}
