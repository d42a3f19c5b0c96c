//! MaxPool2d: the max of each kh×kw window, moved by the stride. PyTorch:
//! `nn.MaxPool2d(kernel_size, stride=kernel_size, padding=0, ceil_mode=False)`.
//!
//! input (N, C, H, W) -> output (N, C, OH, OW), OH = ⌊(H + 2·p − k)/s⌋ + 1 (⌈…⌉ with
//! ceil_mode). Padding counts as −∞. Backward sends each output gradient to the input
//! position remembered in `argmax`.

use super::image_wise::{self, ImageStep, ImageWise, PerImage, Slots};
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep, Size2};
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
    ctx: &BuildContext,
    layer: &str,
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
            "padding ({ph}, {pw}) must be at most half the kernel ({kh}, {kw}) (PyTorch's \
             rule: a window may not lie wholly in the padding)"
        ));
    }
    let &[c, h, w] = ctx.input else {
        return Err(ctx.needs_images(layer));
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

impl Layer for MaxPool2d {
    fn describe(&self) -> LayerDesc {
        LayerDesc::MaxPool2d {
            kernel_size: self.kernel_size,
            stride: self.stride.unwrap_or(self.kernel_size),
            padding: self.padding,
            ceil_mode: self.ceil_mode,
        }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let stride = self.stride.unwrap_or(self.kernel_size);
        let (c, g, step) = build_pool(
            ctx,
            "MaxPool2d",
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
            .expect("MaxPool2d used before Sequential built it");
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

impl ImageWise for MaxPool2d {
    fn output_len(&self) -> usize {
        let (c, g) = self.geom.expect("built");
        c * g.oh * g.ow
    }

    /// The argmax is kept even for inference: the kernel writes it as it scans.
    fn forward_images(&mut self, n: usize, _pass: Pass) -> Box<dyn ImageStep + '_> {
        let (c, g) = self.geom.expect("built");
        let len = c * g.oh * g.ow;
        self.argmax.resize(n * len, 0);
        Box::new(MaxPoolForward {
            g,
            argmax: Slots::new(&mut self.argmax, len),
        })
    }

    fn backward_images(&mut self, n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        let (c, g) = self.geom.expect("built");
        assert_eq!(
            self.argmax.len(),
            n * c * g.oh * g.ow,
            "MaxPool2d::backward: dL/d(output) has {n} images, not the last forward's"
        );
        Box::new(MaxPoolBackward {
            g,
            argmax: &self.argmax,
            len: c * g.oh * g.ow,
        })
    }
}

struct MaxPoolForward<'a> {
    g: PoolGeom,
    argmax: Slots<'a, u32>,
}

impl ImageStep for MaxPoolForward<'_> {
    unsafe fn run(&self, i: usize, inp: &[f32], out: Option<&mut [f32]>) {
        let out = out.expect("a forward step has an output");
        // SAFETY: image i is this call's alone (the trait's contract).
        let argmax = unsafe { self.argmax.get(i) };
        let (ip, op) = (self.g.h * self.g.w, self.g.oh * self.g.ow);
        for ((o, a), i) in out
            .chunks_mut(op)
            .zip(argmax.chunks_mut(op))
            .zip(inp.chunks(ip))
        {
            maxpool_forward(&self.g, i, o, a);
        }
    }
}

struct MaxPoolBackward<'a> {
    g: PoolGeom,
    argmax: &'a [u32],
    len: usize,
}

impl ImageStep for MaxPoolBackward<'_> {
    unsafe fn run(&self, i: usize, dout: &[f32], dinp: Option<&mut [f32]>) {
        let Some(dinp) = dinp else { return };
        let argmax = &self.argmax[i * self.len..(i + 1) * self.len];
        let (ip, op) = (self.g.h * self.g.w, self.g.oh * self.g.ow);
        dinp.fill(0.0);
        for ((di, a), d) in dinp
            .chunks_mut(ip)
            .zip(argmax.chunks(op))
            .zip(dout.chunks(op))
        {
            maxpool_backward(d, a, di);
        }
    }
}
