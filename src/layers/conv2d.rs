//! Conv2d: a bank of learned filters slid over the image. PyTorch: `nn.Conv2d(in, out, k,
//! stride=1, padding=0, bias=True)`; `LazyConv2d(out, k, ...)` infers `in` when built.
//!
//! input (N, C, H, W) -> output (N, OC, OH, OW), OH = ⌊(H + 2·ph − kh)/sh⌋ + 1 (same for W).
//! weight (OC, C, kh, kw), bias (OC).
//!
//! Forward lowers each image to a matrix (im2col) and multiplies:
//! out_n (OC × OH·OW) = weight (OC × C·kh·kw) · col_n (C·kh·kw × OH·OW) + bias.
//! Images are independent, so the batch is split across threads.

use rayon::prelude::*;

use super::{
    BuildContext, Init, InitContext, Layer, Mode, Param, ShapeStep, Size2, checked_param_count,
    pair,
};
use crate::kernels::gemm::{MatRef, gemm};
use crate::kernels::im2col::{ConvGeom, col2im, im2col};
use crate::shape::{explain_hw, window_out};
use crate::tensor::Tensor;

/// 2-D convolution. PyTorch: `nn.Conv2d`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `None` until built for a `LazyConv2d`.
    in_channels: Option<usize>,
    out_channels: usize,
    kernel_size: Size2,
    stride: Size2,
    padding: Size2,
    has_bias: bool,
    weight: Option<Param>,
    bias: Option<Param>,
    geom: Option<ConvGeom>,
    /// im2col of the last forward batch, kept for backward (n × C·kh·kw × OH·OW).
    cols: Vec<f32>,
    batch: usize,
}

/// `LazyConv2d(out_channels, kernel_size)`: a [`Conv2d`] whose `in_channels` is read off
/// the input shape when the network is built. PyTorch: `nn.LazyConv2d`.
pub struct LazyConv2d;

impl LazyConv2d {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(out_channels: usize, kernel_size: impl Into<Size2>) -> Conv2d {
        Conv2d::with_in(None, out_channels, kernel_size.into())
    }
}

impl Conv2d {
    /// `Conv2d(in_channels, out_channels, kernel_size)` with stride 1, no padding, a bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: impl Into<Size2>) -> Self {
        Conv2d::with_in(Some(in_channels), out_channels, kernel_size.into())
    }

    fn with_in(in_channels: Option<usize>, out_channels: usize, kernel_size: Size2) -> Self {
        Conv2d {
            in_channels,
            out_channels,
            kernel_size,
            stride: Size2(1, 1),
            padding: Size2(0, 0),
            has_bias: true,
            weight: None,
            bias: None,
            geom: None,
            cols: Vec::new(),
            batch: 0,
        }
    }

    /// PyTorch's `stride=`.
    pub fn stride(mut self, stride: impl Into<Size2>) -> Self {
        self.stride = stride.into();
        self
    }

    /// PyTorch's `padding=` (zeros).
    pub fn padding(mut self, padding: impl Into<Size2>) -> Self {
        self.padding = padding.into();
        self
    }

    /// PyTorch's `bias=`.
    pub fn bias(mut self, bias: bool) -> Self {
        self.has_bias = bias;
        self
    }

    fn geom(&self) -> &ConvGeom {
        self.geom
            .as_ref()
            .expect("Conv2d used before Sequential built it")
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }

    fn repr(&self) -> String {
        let (name, cin) = match self.in_channels {
            Some(c) => ("Conv2d", c),
            None => ("LazyConv2d", 0),
        };
        let mut s = format!(
            "{name}({cin}, {}, kernel_size={}, stride={}",
            self.out_channels,
            pair(self.kernel_size.tuple()),
            pair(self.stride.tuple())
        );
        if self.padding != Size2(0, 0) {
            s += &format!(", padding={}", pair(self.padding.tuple()));
        }
        if !self.has_bias {
            s += ", bias=False";
        }
        s + ")"
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let (kh, kw) = self.kernel_size.tuple();
        let (sh, sw) = self.stride.tuple();
        let (ph, pw) = self.padding.tuple();
        if self.out_channels == 0 || kh == 0 || kw == 0 {
            return Err("out_channels and kernel_size must be at least 1".into());
        }
        if sh == 0 || sw == 0 {
            return Err("stride must be at least 1".into());
        }
        let &[c, h, w] = ctx.input else {
            return Err(format!(
                "expects images shaped C×H×W but receives {} from {}; Conv2d must come \
                 before Flatten",
                crate::shape::fmt_shape(ctx.input),
                ctx.source
            ));
        };
        match self.in_channels {
            Some(cin) if cin != c => {
                return Err(format!(
                    "expects {cin} input channels but receives {c} from {} (shape {}); \
                     use Conv2d({c}, {}, ...) or LazyConv2d({}, ...)",
                    ctx.source,
                    crate::shape::fmt_shape(ctx.input),
                    self.out_channels,
                    self.out_channels
                ));
            }
            _ => self.in_channels = Some(c),
        }
        let too_small = |dim: &str, len: usize, k: usize, p: usize| {
            format!(
                "kernel {dim} {k} is larger than the input {dim} {len} plus padding 2·{p}; \
                 use a smaller kernel, add padding, or remove a pooling layer before it"
            )
        };
        let oh =
            window_out(h, kh, sh, ph, false, true).ok_or_else(|| too_small("height", h, kh, ph))?;
        let ow =
            window_out(w, kw, sw, pw, false, true).ok_or_else(|| too_small("width", w, kw, pw))?;
        let out = vec![self.out_channels, oh.out, ow.out];
        if crate::shape::checked_numel(&out).is_none() {
            return Err(format!(
                "output {} is too large to allocate per image",
                crate::shape::fmt_shape(&out)
            ));
        }
        checked_param_count("Conv2d", &[self.out_channels, c, kh, kw])?;
        let geom = ConvGeom {
            c,
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
        self.geom = Some(geom);
        self.init_params(&mut InitContext {
            scheme: Init::PyTorch,
            rng: ctx.rng,
            next_pool: 1,
            is_output: false,
        });
        let macs = (self.out_channels * oh.out * ow.out) as u64 * (c * kh * kw) as u64;
        Ok(ShapeStep {
            out,
            arithmetic: explain_hw(&oh, &ow, h == w && kh == kw && sh == sw && ph == pw),
            macs,
        })
    }

    fn init_params(&mut self, ctx: &mut InitContext) {
        let g = *self.geom();
        let wdims = [self.out_channels, g.c, g.kh, g.kw];
        let (wvals, bvals) = ctx.draw(
            wdims.iter().product(),
            self.out_channels,
            g.c * g.kh * g.kw,
            self.out_channels * g.kh * g.kw,
        );
        self.weight = Some(Param::new(
            Tensor::from_vec(&wdims, wvals).expect("weight length"),
        ));
        self.bias = self.has_bias.then(|| {
            Param::new(Tensor::from_vec(&[self.out_channels], bvals).expect("bias length"))
        });
    }

    fn forward(&mut self, inp: &Tensor, _mode: Mode) -> Tensor {
        let g = *self.geom();
        let n = inp.batch();
        debug_assert_eq!(inp.shape(), &[n, g.c, g.h, g.w]);
        let oc = self.out_channels;
        let (col_len, out_len) = (g.col_rows() * g.col_cols(), oc * g.col_cols());
        self.cols.resize(n * col_len, 0.0);
        self.batch = n;
        let mut out = Tensor::zeros(&[n, oc, g.oh, g.ow]);
        let weight = &self.weight.as_ref().expect("built").value;
        let bias = self.bias.as_ref().map(|b| b.value.data());
        out.data_mut()
            .par_chunks_mut(out_len)
            .zip(self.cols.par_chunks_mut(col_len))
            .zip(inp.data().par_chunks(g.c * g.h * g.w))
            .for_each(|((out_n, col_n), inp_n)| {
                im2col(&g, inp_n, col_n);
                // out_n = bias (broadcast over positions), then += weight · col_n.
                if let Some(b) = bias {
                    for (row, &bv) in out_n.chunks_mut(g.col_cols()).zip(b) {
                        row.fill(bv);
                    }
                }
                gemm(
                    1.0,
                    MatRef::new(weight.data(), oc, g.col_rows()),
                    MatRef::new(col_n, g.col_rows(), g.col_cols()),
                    if bias.is_some() { 1.0 } else { 0.0 },
                    out_n,
                );
            });
        out
    }

    fn backward(&mut self, dout: &Tensor) -> Tensor {
        let g = *self.geom();
        let n = self.batch;
        let oc = self.out_channels;
        let (ckk, p) = (g.col_rows(), g.col_cols());
        debug_assert_eq!(dout.shape(), &[n, oc, g.oh, g.ow]);
        let col_len = ckk * p;

        // forward: out[n, o, p] = bias[o] + Σ_k weight[o, k] · col[n, k, p]
        // dbias[o] = Σ_n Σ_p dout[n, o, p]   (summed in a fixed order: reproducible)
        if let Some(bias) = self.bias.as_mut() {
            let db = bias.grad.data_mut();
            for dout_n in dout.data().chunks(oc * p) {
                for (o, row) in dout_n.chunks(p).enumerate() {
                    db[o] += row.iter().sum::<f32>();
                }
            }
        }
        // dweight (OC × C·kh·kw) += Σ_n dout_n (OC × P) · col_nᵀ (P × C·kh·kw), image by
        // image in order, so the sum is the same whatever the thread count.
        let weight = self.weight.as_mut().expect("built");
        for (dout_n, col_n) in dout.data().chunks(oc * p).zip(self.cols.chunks(col_len)) {
            gemm(
                1.0,
                MatRef::new(dout_n, oc, p),
                MatRef::new(col_n, ckk, p).t(),
                1.0,
                weight.grad.data_mut(),
            );
        }
        // dcol_n = weightᵀ (C·kh·kw × OC) · dout_n (OC × P); dinp_n = col2im(dcol_n).
        // The saved columns are no longer needed, so they hold dcol.
        let mut dinp = Tensor::zeros(&[n, g.c, g.h, g.w]);
        let wv = weight.value.data();
        dinp.data_mut()
            .par_chunks_mut(g.c * g.h * g.w)
            .zip(self.cols.par_chunks_mut(col_len))
            .zip(dout.data().par_chunks(oc * p))
            .for_each(|((dinp_n, dcol_n), dout_n)| {
                gemm(
                    1.0,
                    MatRef::new(wv, oc, ckk).t(),
                    MatRef::new(dout_n, oc, p),
                    0.0,
                    dcol_n,
                );
                col2im(&g, dcol_n, dinp_n);
            });
        dinp
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        super::weight_bias(&self.weight, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        super::weight_bias_mut(&mut self.weight, &mut self.bias)
    }
}
