//! Flatten: (N, C, H, W) -> (N, C·H·W), in PyTorch's C, H, W order, so a weight trained
//! in PyTorch after `nn.Flatten()` means the same here. PyTorch: `nn.Flatten()`
//! (start_dim=1, end_dim=-1). The data does not move; only the shape changes.

use super::image_wise::{ImageStep, ImageWise};
use super::{BuildContext, Layer, Mode, ShapeStep};
use crate::tensor::Tensor;

/// Flattens every image to one vector. PyTorch: `nn.Flatten`.
#[derive(Clone, Debug, Default)]
pub struct Flatten {
    input: Vec<usize>,
}

impl Flatten {
    pub fn new() -> Self {
        Flatten::default()
    }
}

/// Values per image: the product of the dimensions after the batch's (read off the
/// shape, so that an empty batch still has its features: 0 × 20 × 12 × 12 → 0 × 2880).
fn features(inp: &Tensor) -> usize {
    inp.shape()[1..].iter().product()
}

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "Flatten"
    }

    fn repr(&self) -> String {
        "Flatten(start_dim=1, end_dim=-1)".into()
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let (total, arithmetic) = crate::shape::product_explained(ctx.input)
            .ok_or_else(|| "the flattened size overflows".to_string())?;
        self.input = ctx.input.to_vec();
        Ok(ShapeStep {
            out: vec![total],
            arithmetic,
            macs: 0,
        })
    }

    fn forward(&mut self, inp: &Tensor, _mode: Mode) -> Tensor {
        let n = inp.batch();
        inp.clone()
            .reshape(&[n, features(inp)])
            .expect("same element count")
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        let mut shape = vec![dout.batch()];
        shape.extend_from_slice(&self.input);
        dout.clone().reshape(&shape).expect("same element count")
    }

    fn forward_into(&mut self, inp: &Tensor, _mode: Mode, out: &mut Tensor) {
        let n = inp.batch();
        super::recycle(out, &[n, features(inp)], false);
        out.data_mut().copy_from_slice(inp.data());
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: &mut Tensor) {
        let mut shape = [0; 4];
        let dims = 1 + self.input.len();
        if dims <= 4 {
            shape[0] = dout.batch();
            shape[1..dims].copy_from_slice(&self.input);
            super::recycle(dinp, &shape[..dims], false);
            dinp.data_mut().copy_from_slice(dout.data());
        } else {
            *dinp = self.backward(dout);
        }
    }

    fn image_wise(&mut self) -> Option<&mut dyn ImageWise> {
        Some(self)
    }
}

/// Per image, flattening is a copy (the layout is already C, H, W row-major).
impl ImageWise for Flatten {
    fn output_len(&self) -> usize {
        self.input.iter().product()
    }

    fn forward_images(&mut self, _n: usize, _mode: Mode, _keep: bool) -> Box<dyn ImageStep + '_> {
        Box::new(CopyStep)
    }

    fn backward_images(&mut self, _n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        Box::new(CopyStep)
    }
}

struct CopyStep;

impl ImageStep for CopyStep {
    unsafe fn run(&self, _i: usize, src: &[f32], dst: Option<&mut [f32]>) {
        if let Some(dst) = dst {
            dst.copy_from_slice(src);
        }
    }
}
