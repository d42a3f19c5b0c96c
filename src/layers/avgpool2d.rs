//! AvgPool2d: the mean of each kh×kw window. PyTorch: `nn.AvgPool2d(kernel_size,
//! stride=kernel_size, padding=0, ceil_mode=False, count_include_pad=True)`.
//!
//! input (N, C, H, W) -> output (N, C, OH, OW), sizes as for MaxPool2d. Padding counts as
//! zeros; with `count_include_pad` the divisor includes the padded pixels, as in PyTorch.

use rayon::prelude::*;

use super::maxpool2d::{build_pool, int_or_pair};
use super::{BuildContext, Layer, Mode, ShapeStep, Size2};
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
    batch: usize,
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
            batch: 0,
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
    fn kind(&self) -> &'static str {
        "AvgPool2d"
    }

    fn repr(&self) -> String {
        let mut s = format!(
            "AvgPool2d(kernel_size={}, stride={}, padding={}",
            int_or_pair(self.kernel_size),
            int_or_pair(self.stride.unwrap_or(self.kernel_size)),
            int_or_pair(self.padding)
        );
        if self.ceil_mode {
            s += ", ceil_mode=True";
        }
        if !self.count_include_pad {
            s += ", count_include_pad=False";
        }
        s + ")"
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let stride = self.stride.unwrap_or(self.kernel_size);
        let (c, g, step) = build_pool(
            ctx.input,
            &ctx.source,
            self.kernel_size,
            stride,
            self.padding,
            self.ceil_mode,
        )?;
        self.geom = Some((c, g));
        Ok(step)
    }

    fn forward(&mut self, inp: &Tensor, _mode: Mode) -> Tensor {
        let (c, g) = self
            .geom
            .expect("AvgPool2d used before Sequential built it");
        let n = inp.batch();
        debug_assert_eq!(inp.shape(), &[n, c, g.h, g.w]);
        self.batch = n;
        let mut out = Tensor::zeros(&[n, c, g.oh, g.ow]);
        let cip = self.count_include_pad;
        out.data_mut()
            .par_chunks_mut(g.oh * g.ow)
            .zip(inp.data().par_chunks(g.h * g.w))
            .for_each(|(o, i)| avgpool_forward(&g, cip, i, o));
        out
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        let (c, g) = self.geom.expect("built");
        let mut dinp = Tensor::zeros(&[self.batch, c, g.h, g.w]);
        let cip = self.count_include_pad;
        dinp.data_mut()
            .par_chunks_mut(g.h * g.w)
            .zip(dout.data().par_chunks(g.oh * g.ow))
            .for_each(|(di, d)| avgpool_backward(&g, cip, d, di));
        dinp
    }
}
