//! MaxPool2d: the max of each kh×kw window, moved by the stride. PyTorch:
//! `nn.MaxPool2d(kernel_size, stride=kernel_size, padding=0, ceil_mode=False)`.
//!
//! input (N, C, H, W) -> output (N, C, OH, OW), OH = ⌊(H + 2·p − k)/s⌋ + 1 (⌈…⌉ with
//! ceil_mode). Padding counts as −∞. Backward sends each output gradient to the input
//! position remembered in `argmax`.

use rayon::prelude::*;

use super::{BuildContext, Layer, Mode, ShapeStep, Size2, pair};
use crate::kernels::pool::{PoolGeom, maxpool_backward, maxpool_forward};
use crate::shape::{explain_hw, window_out};
use crate::tensor::Tensor;

/// Max pooling. PyTorch: `nn.MaxPool2d`.
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    kernel_size: Size2,
    stride: Option<Size2>,
    padding: Size2,
    ceil_mode: bool,
    geom: Option<(usize, PoolGeom)>,
    /// Per output element, the winning input index within its plane.
    argmax: Vec<u32>,
    batch: usize,
}

impl MaxPool2d {
    /// `MaxPool2d(kernel_size)`: stride equal to the kernel, no padding.
    pub fn new(kernel_size: impl Into<Size2>) -> Self {
        MaxPool2d {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: Size2(0, 0),
            ceil_mode: false,
            geom: None,
            argmax: Vec::new(),
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

    /// The window area, used by the book's initialisation of the conv layer before it.
    pub fn area(&self) -> usize {
        self.kernel_size.0 * self.kernel_size.1
    }
}

/// Shared by max and average pooling: checks sizes and explains the output shape.
pub(super) fn build_pool(
    input: &[usize],
    source: &str,
    kernel: Size2,
    stride: Size2,
    padding: Size2,
    ceil_mode: bool,
) -> Result<(usize, PoolGeom, ShapeStep), String> {
    let (kh, kw) = kernel.tuple();
    let (sh, sw) = stride.tuple();
    let (ph, pw) = padding.tuple();
    if kh == 0 || kw == 0 {
        return Err("kernel_size must be at least 1".into());
    }
    if sh == 0 || sw == 0 {
        return Err("stride must be at least 1".into());
    }
    if 2 * ph > kh || 2 * pw > kw {
        return Err(format!(
            "padding {} must be at most half the kernel {} (PyTorch's rule: a window may \
             not lie wholly in the padding)",
            pair((ph, pw)),
            pair((kh, kw))
        ));
    }
    let &[c, h, w] = input else {
        return Err(format!(
            "expects images shaped C×H×W but receives {} from {source}; pooling must come \
             before Flatten",
            crate::shape::fmt_shape(input)
        ));
    };
    let too_small = |dim: &str, len: usize, k: usize| {
        format!(
            "window {dim} {k} is larger than the input {dim} {len}; use a smaller kernel or \
             remove a layer that shrinks the image before it"
        )
    };
    let oh =
        window_out(h, kh, sh, ph, ceil_mode, false).ok_or_else(|| too_small("height", h, kh))?;
    let ow =
        window_out(w, kw, sw, pw, ceil_mode, false).ok_or_else(|| too_small("width", w, kw))?;
    let g = PoolGeom {
        h,
        w,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        oh: oh.out,
        ow: ow.out,
    };
    let step = ShapeStep {
        out: vec![c, oh.out, ow.out],
        arithmetic: explain_hw(&oh, &ow, h == w && kh == kw && sh == sw && ph == pw),
        macs: (c * oh.out * ow.out * kh * kw) as u64,
    };
    Ok((c, g, step))
}

/// PyTorch prints an int when height and width agree: `kernel_size=2`.
pub(super) fn int_or_pair(v: Size2) -> String {
    if v.0 == v.1 {
        v.0.to_string()
    } else {
        pair(v.tuple())
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "MaxPool2d"
    }

    fn repr(&self) -> String {
        format!(
            "MaxPool2d(kernel_size={}, stride={}, padding={}, dilation=1, ceil_mode={})",
            int_or_pair(self.kernel_size),
            int_or_pair(self.stride.unwrap_or(self.kernel_size)),
            int_or_pair(self.padding),
            if self.ceil_mode { "True" } else { "False" }
        )
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

    fn forward(&mut self, inp: &Tensor, mode: Mode) -> Tensor {
        let mut out = Tensor::default();
        self.forward_into(inp, mode, &mut out);
        out
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        let mut dinp = Tensor::default();
        self.backward_into(dout, &mut dinp);
        dinp
    }

    fn forward_into(&mut self, inp: &Tensor, _mode: Mode, out: &mut Tensor) {
        let (c, g) = self
            .geom
            .expect("MaxPool2d used before Sequential built it");
        let n = inp.batch();
        debug_assert_eq!(inp.shape(), &[n, c, g.h, g.w]);
        super::recycle(out, &[n, c, g.oh, g.ow], false);
        self.argmax.resize(n * c * g.oh * g.ow, 0);
        self.batch = n;
        // Tasks of whole images' planes: enough work each to be worth a thread.
        let (ip, op) = (g.h * g.w, g.oh * g.ow);
        let per = (4096 / ip.max(1)).max(1);
        out.data_mut()
            .par_chunks_mut(op * per)
            .zip(self.argmax.par_chunks_mut(op * per))
            .zip(inp.data().par_chunks(ip * per))
            .for_each(|((o, a), i)| {
                for ((o, a), i) in o.chunks_mut(op).zip(a.chunks_mut(op)).zip(i.chunks(ip)) {
                    maxpool_forward(&g, i, o, a);
                }
            });
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: &mut Tensor) {
        let (c, g) = self.geom.expect("built");
        super::recycle(dinp, &[self.batch, c, g.h, g.w], false);
        let (ip, op) = (g.h * g.w, g.oh * g.ow);
        let per = (4096 / ip.max(1)).max(1);
        dinp.data_mut()
            .par_chunks_mut(ip * per)
            .zip(self.argmax.par_chunks(op * per))
            .zip(dout.data().par_chunks(op * per))
            .for_each(|((di, a), d)| {
                di.fill(0.0);
                for ((di, a), d) in di.chunks_mut(ip).zip(a.chunks(op)).zip(d.chunks(op)) {
                    maxpool_backward(d, a, di);
                }
            });
    }
}
