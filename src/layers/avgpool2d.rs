//! AvgPool2d: the mean of each kh×kw window. PyTorch: `nn.AvgPool2d(kernel_size,
//! stride=kernel_size, padding=0, ceil_mode=False, count_include_pad=True)`.
//!
//! input (N, C, H, W) -> output (N, C, OH, OW), sizes as for MaxPool2d. Padding counts as
//! zeros; with `count_include_pad` the divisor includes the padded pixels, as in PyTorch.

use super::image_wise::{self, ImageStep, ImageWise, PerImage};
use super::maxpool2d::build_pool;
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep, Size2};
use crate::kernels::pool::{PoolGeom, avgpool_backward, avgpool_forward};
use crate::tensor::Tensor;

/// Average pooling. PyTorch: `nn.AvgPool2d`.
#[derive(Clone, Debug)]
pub struct AvgPool2d {
    kernel_size: Size2,
    stride: Option<Size2>,
    padding: Size2,
    ceil_mode: bool,
    count_include_pad: bool,
    geom: Option<(usize, PoolGeom)>,
}

impl AvgPool2d {
    /// `AvgPool2d(kernel_size)`: stride equal to the kernel, no padding.
    pub fn new(kernel_size: impl Into<Size2>) -> Self {
        AvgPool2d {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: Size2(0, 0),
            ceil_mode: false,
            count_include_pad: true,
            geom: None,
        }
    }

    pub fn stride(mut self, stride: impl Into<Size2>) -> Self {
        self.stride = Some(stride.into());
        self
    }

    pub fn padding(mut self, padding: impl Into<Size2>) -> Self {
        self.padding = padding.into();
        self
    }

    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    pub fn count_include_pad(mut self, count_include_pad: bool) -> Self {
        self.count_include_pad = count_include_pad;
        self
    }

    pub fn area(&self) -> usize {
        self.kernel_size.0 * self.kernel_size.1
    }
}

impl Layer for AvgPool2d {
    fn describe(&self) -> LayerDesc {
        LayerDesc::AvgPool2d {
            kernel_size: self.kernel_size,
            stride: self.stride.unwrap_or(self.kernel_size),
            padding: self.padding,
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
        }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let stride = self.stride.unwrap_or(self.kernel_size);
        let (c, g, step) = build_pool(
            ctx,
            "AvgPool2d",
            self.kernel_size,
            stride,
            self.padding,
            self.ceil_mode,
        )?;
        self.geom = Some((c, g));
        Ok(step)
    }

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        let (c, g) = self
            .geom
            .expect("AvgPool2d used before Sequential built it");
        debug_assert_eq!(&inp.shape()[1..], &[c, g.h, g.w]);
        image_wise::forward_batch(self, inp, out, &[c, g.oh, g.ow], pass);
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        let (c, g) = self.geom.expect("built");
        image_wise::backward_batch(self, dout, dinp, &[c, g.h, g.w]);
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }
}

/// The average needs nothing kept: backward spreads each output gradient evenly over
/// its window, which depends only on the geometry.
impl ImageWise for AvgPool2d {
    fn output_len(&self) -> usize {
        let (c, g) = self.geom.expect("built");
        c * g.oh * g.ow
    }

    fn forward_images(&mut self, _n: usize, _pass: Pass) -> Box<dyn ImageStep + '_> {
        let (_, g) = self.geom.expect("built");
        Box::new(AvgPoolStep {
            g,
            count_include_pad: self.count_include_pad,
            forward: true,
        })
    }

    fn backward_images(&mut self, _n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        let (_, g) = self.geom.expect("built");
        Box::new(AvgPoolStep {
            g,
            count_include_pad: self.count_include_pad,
            forward: false,
        })
    }
}

struct AvgPoolStep {
    g: PoolGeom,
    count_include_pad: bool,
    forward: bool,
}

impl ImageStep for AvgPoolStep {
    unsafe fn run(&self, _i: usize, src: &[f32], dst: Option<&mut [f32]>) {
        let Some(dst) = dst else { return };
        let (g, cip) = (&self.g, self.count_include_pad);
        let (ip, op) = (g.h * g.w, g.oh * g.ow);
        if self.forward {
            // out[c, oy, ox] = Σ_window inp[c, y, x] / divisor
            for (o, i) in dst.chunks_mut(op).zip(src.chunks(ip)) {
                avgpool_forward(g, cip, i, o);
            }
        } else {
            // dinp[c, y, x] = Σ over the windows holding (y, x) of dout / divisor
            dst.fill(0.0);
            for (di, d) in dst.chunks_mut(ip).zip(src.chunks(op)) {
                avgpool_backward(g, cip, d, di);
            }
        }
    }
}
