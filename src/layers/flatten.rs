//! Flatten: (N, C, H, W) -> (N, C·H·W), in PyTorch's C, H, W order, so a weight trained
//! in PyTorch after `nn.Flatten()` means the same here. PyTorch: `nn.Flatten()`
//! (start_dim=1, end_dim=-1). The data does not move; only the shape changes.

use super::image_wise::{ImageStep, ImageWise, PerImage};
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep};
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
    fn describe(&self) -> LayerDesc {
        LayerDesc::Flatten
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

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, _pass: Pass) {
        out.reuse_as_batch(inp.batch(), &[features(inp)]);
        out.data_mut().copy_from_slice(inp.data());
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        // forward: out[n, c·H·W + h·W + w] = inp[n, c, h, w]: the same values, reshaped.
        if let Some(dinp) = dinp {
            dinp.reuse_as_batch(dout.batch(), &self.input);
            dinp.data_mut().copy_from_slice(dout.data());
        }
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }
}

/// Per image, flattening is a copy (the layout is already C, H, W row-major).
impl ImageWise for Flatten {
    fn output_len(&self) -> usize {
        self.input.iter().product()
    }

    fn forward_images(&mut self, _n: usize, _pass: Pass) -> Box<dyn ImageStep + '_> {
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
