//! Identity: the input, unchanged. PyTorch: `nn.Identity(*args, **kwargs)`, which
//! accepts and ignores any arguments (a placeholder for a layer switched off). Any shape
//! in, the same shape out; backward passes the gradient through.

use super::image_wise::{self, ImageStep, ImageWise, PerImage};
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep, passthrough};
use crate::tensor::Tensor;

/// The identity. PyTorch: `nn.Identity`.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// Values per image: set by `build`, and by a batch forward on the layer alone.
    len: usize,
}

impl Identity {
    pub fn new() -> Self {
        Identity::default()
    }
}

impl Layer for Identity {
    fn describe(&self) -> LayerDesc {
        LayerDesc::Identity
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        self.len = ctx.input.iter().product();
        Ok(passthrough(ctx.input))
    }

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        if inp.batch() > 0 {
            self.len = inp.len() / inp.batch();
        }
        image_wise::forward_batch(self, inp, out, &inp.shape()[1..], pass);
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        image_wise::backward_batch(self, dout, dinp, &dout.shape()[1..]);
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }
}

impl ImageWise for Identity {
    fn output_len(&self) -> usize {
        self.len
    }

    fn forward_images(&mut self, _n: usize, _pass: Pass) -> Box<dyn ImageStep + '_> {
        Box::new(Copy)
    }

    fn backward_images(&mut self, _n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        Box::new(Copy)
    }
}

/// Both passes: the image's values copied (forward: out = inp; backward: dinp = dout).
struct Copy;

impl ImageStep for Copy {
    unsafe fn run(&self, _i: usize, src: &[f32], dst: Option<&mut [f32]>) {
        if let Some(dst) = dst {
            dst.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_values_and_gradients_through() {
        let mut layer = Identity::new();
        let x = Tensor::from_vec(&[2, 3], vec![-1.0, 0.0, 2.5, 3.0, -0.5, 7.0]).unwrap();
        assert_eq!(layer.forward(&x, Pass::Train).data(), x.data());
        assert_eq!(layer.backward(&x).data(), x.data());
    }

    /// Like PyTorch's, it accepts and ignores any arguments, and prints `Identity()`.
    #[test]
    fn any_arguments_are_ignored() {
        for text in [
            "Identity()",
            "Identity(3, 'a', x=4, y=(1, 2))",
            "nn.Identity(54, unused_argument1=0.1)",
        ] {
            let layers = crate::spec::to_layers(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(layers[0].repr(), "Identity()");
        }
    }
}
