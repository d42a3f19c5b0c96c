//! Conv2d: a bank of learned filters slid over the image. PyTorch: `nn.Conv2d(in, out, k,
//! stride=1, padding=0, bias=True)`; `LazyConv2d(out, k, ...)` infers `in` when built.
//!
//! input (N, C, H, W) -> output (N, OC, OH, OW), OH = ⌊(H + 2·ph − kh)/sh⌋ + 1 (same for W).
//! weight (OC, C, kh, kw), bias (OC).
//!
//! Forward lowers each image to a matrix (im2col) and multiplies:
//! out_n (OC × OH·OW) = weight (OC × C·kh·kw) · col_n (C·kh·kw × OH·OW) + bias;
//! with one input channel, stride 1 and no padding (a first layer) it convolves directly
//! instead (kernels/direct_conv.rs). Images are independent: the layer works image by
//! image ([`ImageWise`]), and Sequential shares the images between threads.

use rayon::prelude::*;

use super::image_wise::{self, ImageStep, ImageWise, PerImage, Slots};
use super::{
    BuildContext, Init, InitContext, Layer, LayerDesc, Param, Pass, ShapeStep, Size2,
    checked_param_count,
};
use crate::kernels::direct_conv;
use crate::kernels::gemm::{MatRef, PackedA, gemm_ldc, gemm_packed_a};
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
    /// Every image's im2col from the last Train forward, kept for backward (n × C·kh·kw ×
    /// OH·OW) when they fit in KEEP_COLS_BYTES and the convolution is not direct.
    cols: Vec<f32>,
    /// Images in the last forward.
    batch: usize,
    /// The weight packed for the forward products, and its transpose for backward's.
    packed_w: PackedA,
    packed_wt: PackedA,
    /// The last forward's input when the columns were not kept (an Eval forward, columns
    /// too large, or a direct convolution): backward works from it. Empty after
    /// an Infer pass, which keeps nothing.
    saved_inp: Vec<f32>,
    /// Per image: its term of dL/dweight (n × OC × C·kh·kw) and of dL/dbias (n × OC).
    dw_parts: Vec<f32>,
    db_parts: Vec<f32>,
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
            packed_w: PackedA::new(),
            packed_wt: PackedA::new(),
            saved_inp: Vec::new(),
            dw_parts: Vec::new(),
            db_parts: Vec::new(),
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

    /// Whether backward computes each image's weight-gradient term as its transpose
    /// (C·kh·kw × OC), which fits the micro-kernel's tile better for a first layer's
    /// small weight.
    fn transposed_dw(&self) -> bool {
        let g = self.geom();
        let (ckk, oc) = (g.col_rows(), self.out_channels);
        !direct_conv::applies(g) && oc * ckk <= 4096 && tile_fit(ckk, oc) > tile_fit(oc, ckk)
    }
}

impl ImageWise for Conv2d {
    fn output_len(&self) -> usize {
        self.out_channels * self.geom().col_cols()
    }

    fn forward_images(&mut self, n: usize, pass: Pass) -> Box<dyn ImageStep + '_> {
        let g = *self.geom();
        let keep = pass != Pass::Infer;
        let (col_len, in_len) = (g.col_len(), g.image_len());
        let weight = self.weight.as_ref().expect("built");
        // A single input channel is convolved directly (kernels/direct_conv.rs says why);
        // otherwise the weight is packed once and shared by every image's product.
        let direct = direct_conv::applies(&g);
        if !direct {
            self.packed_w.pack(MatRef::new(
                weight.value.data(),
                self.out_channels,
                g.col_rows(),
            ));
        }
        // Training keeps the columns for backward while they fit in about a core's L2
        // cache; past that, backward recomputes them image by image from the input
        // (cheaper than reading them back from memory: measured, book-relu at
        // mini-batch 10 vs 64). Inference keeps nothing.
        let keep_cols = !direct && pass == Pass::Train && n * col_len * 4 <= KEEP_COLS_BYTES;
        self.cols
            .resize(if keep_cols { n * col_len } else { 0 }, 0.0);
        let keep_inp = keep && !keep_cols;
        self.saved_inp
            .resize(if keep_inp { n * in_len } else { 0 }, 0.0);
        self.batch = n;
        Box::new(ConvForward {
            g,
            direct_weight: direct.then(|| weight.value.data()),
            packed_w: &self.packed_w,
            bias: self.bias.as_ref().map(|b| b.value.data()),
            cols: keep_cols.then(|| Slots::new(&mut self.cols, col_len)),
            saved_inp: keep_inp.then(|| Slots::new(&mut self.saved_inp, in_len)),
        })
    }

    fn backward_images(&mut self, n: usize, need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        let g = *self.geom();
        assert_eq!(
            n, self.batch,
            "Conv2d::backward: dL/d(output) has {n} images, the last forward had {}",
            self.batch
        );
        let (oc, ckk) = (self.out_channels, g.col_rows());
        let (col_len, in_len) = (g.col_len(), g.image_len());
        // After a Train forward the columns are kept; after an Eval one, the input.
        let have_cols = self.cols.len() == n * col_len;
        assert!(
            have_cols || self.saved_inp.len() == n * in_len,
            "Conv2d::backward needs a forward first"
        );
        let transposed_dw = self.transposed_dw();
        self.dw_parts.resize(n * oc * ckk, 0.0);
        self.db_parts.resize(n * oc, 0.0);
        // dcol_n = weightᵀ (C·kh·kw × OC) · dout_n (OC × P): weightᵀ packed once.
        if need_input_grad {
            let weight = self.weight.as_ref().expect("built");
            self.packed_wt
                .pack(MatRef::new(weight.value.data(), oc, ckk).t());
        }
        Box::new(ConvBackward {
            g,
            oc,
            direct: direct_conv::applies(&g),
            transposed_dw,
            has_bias: self.bias.is_some(),
            packed_wt: &self.packed_wt,
            cols: have_cols.then(|| Slots::new(&mut self.cols, col_len)),
            saved_inp: &self.saved_inp,
            dw_parts: Slots::new(&mut self.dw_parts, oc * ckk),
            db_parts: Slots::new(&mut self.db_parts, oc),
        })
    }

    /// grad[e] += Σ_n part_n[e], n in order: parallel over e, never over n.
    fn finish_backward(&mut self) {
        let (n, oc, ckk) = (self.batch, self.out_channels, self.geom().col_rows());
        let wlen = oc * ckk;
        let transposed_dw = self.transposed_dw();
        let weight = self.weight.as_mut().expect("built");
        if transposed_dw {
            // Small weights only (a first layer's): the parts are C·kh·kw × OC.
            let grad = weight.grad_mut().data_mut();
            for part in self.dw_parts.chunks_exact(wlen).take(n) {
                for (o, row) in grad.chunks_exact_mut(ckk).enumerate() {
                    for (k, gv) in row.iter_mut().enumerate() {
                        *gv += part[k * oc + o];
                    }
                }
            }
        } else {
            add_parts_in_order(weight.grad_mut().data_mut(), &self.dw_parts, n);
        }
        if let Some(bias) = self.bias.as_mut() {
            add_parts_in_order(bias.grad_mut().data_mut(), &self.db_parts, n);
        }
    }
}

/// One image's forward: out (OC × P) = bias (broadcast over positions) + weight
/// (OC × C·kh·kw) · col (C·kh·kw × P).
struct ConvForward<'a> {
    g: ConvGeom,
    /// The weight, when the convolution is direct (one input channel).
    direct_weight: Option<&'a [f32]>,
    packed_w: &'a PackedA,
    bias: Option<&'a [f32]>,
    /// Where each image's columns are kept for backward (Train, when they fit) …
    cols: Option<Slots<'a, f32>>,
    /// … or a copy of its input, from which backward recomputes them.
    saved_inp: Option<Slots<'a, f32>>,
}

impl ImageStep for ConvForward<'_> {
    unsafe fn run(&self, i: usize, inp: &[f32], out: Option<&mut [f32]>) {
        let out = out.expect("a forward step has an output");
        let g = &self.g;
        let (ckk, p) = (g.col_rows(), g.col_cols());
        if let Some(saved) = &self.saved_inp {
            // SAFETY: image i is this call's alone (the trait's contract).
            unsafe { saved.get(i) }.copy_from_slice(inp);
        }
        if let Some(weight) = self.direct_weight {
            return direct_conv::forward(g, weight, self.bias, inp, out);
        }
        let mut conv = |col: &mut [f32]| {
            im2col(g, inp, col);
            if let Some(b) = self.bias {
                for (row, &bv) in out.chunks_exact_mut(p).zip(b) {
                    row.fill(bv);
                }
            }
            let beta = if self.bias.is_some() { 1.0 } else { 0.0 };
            gemm_packed_a(1.0, self.packed_w, MatRef::new(col, ckk, p), beta, out, p);
        };
        match &self.cols {
            // SAFETY: as above.
            Some(cols) => conv(unsafe { cols.get(i) }),
            None => with_scratch(g.col_len(), conv),
        }
    }
}

/// One image's backward: its weight- and bias-gradient terms into its own slots, and
/// dL/d(input) when asked for.
struct ConvBackward<'a> {
    g: ConvGeom,
    oc: usize,
    /// One input channel: the weight gradient comes straight from the saved input.
    direct: bool,
    transposed_dw: bool,
    has_bias: bool,
    packed_wt: &'a PackedA,
    cols: Option<Slots<'a, f32>>,
    saved_inp: &'a [f32],
    dw_parts: Slots<'a, f32>,
    db_parts: Slots<'a, f32>,
}

impl ImageStep for ConvBackward<'_> {
    unsafe fn run(&self, i: usize, dout: &[f32], dinp: Option<&mut [f32]>) {
        let g = &self.g;
        let (oc, ckk, p) = (self.oc, g.col_rows(), g.col_cols());
        // SAFETY: image i is this call's alone (the trait's contract).
        let (dw, db) = unsafe { (self.dw_parts.get(i), self.db_parts.get(i)) };
        if self.direct {
            let in_len = g.image_len();
            let inp = &self.saved_inp[i * in_len..(i + 1) * in_len];
            direct_conv::weight_grad(g, inp, dout, dw);
            if self.has_bias {
                for (d, row) in db.iter_mut().zip(dout.chunks_exact(p)) {
                    *d = sum_lanes(row);
                }
            }
            if let Some(dinp) = dinp {
                with_scratch(g.col_len(), |dcol| {
                    gemm_packed_a(1.0, self.packed_wt, MatRef::new(dout, oc, p), 0.0, dcol, p);
                    dinp.fill(0.0);
                    col2im(g, dcol, dinp);
                });
            }
            return;
        }
        let work = |col: &mut [f32]| {
            // forward: out[o, p] = bias[o] + Σ_k weight[o, k] · col[k, p], so
            // dweight_n = dout_n (OC × P) · col_nᵀ (P × C·kh·kw), computed as its
            // transpose when that shape fits the micro-kernel's tile better.
            if self.transposed_dw {
                gemm_ldc(
                    1.0,
                    MatRef::new(col, ckk, p),
                    MatRef::new(dout, oc, p).t(),
                    0.0,
                    dw,
                    oc,
                );
            } else {
                gemm_ldc(
                    1.0,
                    MatRef::new(dout, oc, p),
                    MatRef::new(col, ckk, p).t(),
                    0.0,
                    dw,
                    ckk,
                );
            }
            if self.has_bias {
                for (d, row) in db.iter_mut().zip(dout.chunks_exact(p)) {
                    *d = sum_lanes(row);
                }
            }
            if let Some(dinp) = dinp {
                // The columns are no longer needed, so they hold dcol.
                gemm_packed_a(1.0, self.packed_wt, MatRef::new(dout, oc, p), 0.0, col, p);
                dinp.fill(0.0);
                col2im(g, col, dinp);
            }
        };
        match &self.cols {
            // SAFETY: as above.
            Some(cols) => work(unsafe { cols.get(i) }),
            None => with_scratch(g.col_len(), |col| {
                let in_len = g.image_len();
                im2col(g, &self.saved_inp[i * in_len..(i + 1) * in_len], col);
                work(col)
            }),
        }
    }
}

/// Runs `f` on this thread's scratch buffer of `len` values (one image's columns when
/// they are not kept).
fn with_scratch(len: usize, f: impl FnOnce(&mut [f32])) {
    SCRATCH.with(|cell| {
        let mut col = cell.borrow_mut();
        if col.len() < len {
            col.resize(len, 0.0);
        }
        f(&mut col[..len])
    })
}

/// The sum of `v` in a fixed order that vectorises: eight running sums (element i
/// into sum i mod 8), added pairwise, then the tail.
fn sum_lanes(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    let quads = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    let mut total = (quads[0] + quads[2]) + (quads[1] + quads[3]);
    for &x in tail {
        total += x;
    }
    total
}

/// The fraction of the micro-kernel's tiles that an m × n product fills.
fn tile_fit(m: usize, n: usize) -> f64 {
    use crate::kernels::gemm::{MR, NR};
    (m * n) as f64 / ((m.div_ceil(MR) * MR) * (n.div_ceil(NR) * NR)) as f64
}

/// `acc[e] += parts[0][e] + parts[1][e] + …` (left to right) for `n` parts of
/// `acc.len()` values each; the elements are split between threads, the parts never.
pub(crate) fn add_parts_in_order(acc: &mut [f32], parts: &[f32], n: usize) {
    let len = acc.len();
    debug_assert!(parts.len() >= n * len);
    let add = |start: usize, chunk: &mut [f32]| {
        for i in 0..n {
            let part = &parts[i * len + start..i * len + start + chunk.len()];
            for (a, &v) in chunk.iter_mut().zip(part) {
                *a += v;
            }
        }
    };
    const CHUNK: usize = 4096;
    if len * n < 64 * 1024 {
        add(0, acc);
    } else {
        acc.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| add(c * CHUNK, chunk));
    }
}

/// Largest im2col buffer a Train forward keeps for backward (bytes).
const KEEP_COLS_BYTES: usize = 2 << 20;

thread_local! {
    /// One image's columns when they are not kept: inference, backward's recomputation
    /// from the saved input, and a direct convolution's dL/d(columns).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Layer for Conv2d {
    fn describe(&self) -> LayerDesc {
        LayerDesc::Conv2d {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel_size: self.kernel_size,
            stride: self.stride,
            padding: self.padding,
            bias: self.has_bias,
        }
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
            return Err(ctx.needs_images("Conv2d"));
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

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        let (g, oc) = (*self.geom(), self.out_channels);
        debug_assert_eq!(&inp.shape()[1..], &[g.c, g.h, g.w]);
        image_wise::forward_batch(self, inp, out, &[oc, g.oh, g.ow], pass);
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        let g = *self.geom();
        image_wise::backward_batch(self, dout, dinp, &[g.c, g.h, g.w]);
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        super::weight_bias(&self.weight, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        super::weight_bias_mut(&mut self.weight, &mut self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sequential;
    use crate::rng::Rng;

    fn random(shape: &[usize], rng: &mut Rng) -> Tensor {
        let len = shape.iter().product();
        Tensor::from_vec(shape, (0..len).map(|_| rng.symmetric(1.0)).collect()).unwrap()
    }

    /// A 28×28 input is a grey image without its channel axis: the refusal says to give
    /// 1×28×28, and speaks of Flatten only when a Flatten is the cause.
    #[test]
    fn the_wrong_rank_is_explained_by_its_cause() {
        let err = Sequential::new([28, 28])
            .add(Conv2d::new(1, 20, 5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("give the input shape as 1×28×28"), "{err}");
        assert!(!err.contains("Flatten"), "{err}");
        let err = Sequential::new([1, 28, 28])
            .add(crate::Flatten::new())
            .unwrap()
            .add(Conv2d::new(1, 2, 3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Conv2d must come before Flatten"), "{err}");
        let err = Sequential::new([784])
            .add(crate::MaxPool2d::new(2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("784 flat values are not an image"), "{err}");
    }

    #[test]
    fn kept_and_recomputed_columns_give_the_same_gradients() {
        // 9 × 128·128 columns per image: 2 images are kept (≤ KEEP_COLS_BYTES), 4 are
        // recomputed in backward. Two halves then equal the whole, bit for bit.
        let mut rng = Rng::new(6);
        let x = random(&[4, 1, 130, 130], &mut rng);
        let dout = random(&[4, 2, 128, 128], &mut rng);
        const _: () = assert!(
            2 * 9 * 128 * 128 * 4 <= KEEP_COLS_BYTES && 4 * 9 * 128 * 128 * 4 > KEEP_COLS_BYTES
        );
        let build = || {
            Sequential::new([1, 130, 130])
                .add(Conv2d::new(1, 2, 3))
                .unwrap()
        };
        let (mut whole, mut halves) = (build(), build());
        whole.zero_grad();
        halves.zero_grad();
        whole.forward(&x, Pass::Train).unwrap();
        let dinp = whole.backward(&dout).unwrap();
        let (xl, dl) = (x.len() / 4, dout.len() / 4);
        let mut dinp_halves = Vec::new();
        for h in 0..2 {
            let xh = Tensor::from_vec(
                &[2, 1, 130, 130],
                x.data()[2 * h * xl..2 * (h + 1) * xl].to_vec(),
            )
            .unwrap();
            let dh = Tensor::from_vec(
                &[2, 2, 128, 128],
                dout.data()[2 * h * dl..2 * (h + 1) * dl].to_vec(),
            )
            .unwrap();
            halves.forward(&xh, Pass::Train).unwrap();
            dinp_halves.extend_from_slice(halves.backward(&dh).unwrap().data());
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(dinp.data()), bits(&dinp_halves));
        for ((_, a), (_, b)) in whole
            .named_params()
            .iter()
            .zip(halves.named_params().iter())
        {
            assert_eq!(
                bits(a.grad().expect("backward ran").data()),
                bits(b.grad().expect("backward ran").data())
            );
        }
    }
}
