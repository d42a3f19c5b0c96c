//! Conv2d: a bank of learned filters slid over the image. PyTorch: `nn.Conv2d(in, out, k,
//! stride=1, padding=0, dilation=1, groups=1, bias=True)`; `LazyConv2d(out, k, ...)`
//! infers `in` when built.
//!
//! input (N, C, H, W) -> output (N, OC, OH, OW),
//! OH = ⌊(H + 2·ph − dh·(kh − 1) − 1)/sh⌋ + 1 (same for W).
//! weight (OC, C/groups, kh, kw), bias (OC). padding='same' pads dh·(kh − 1) rows in
//! all, the odd one at the bottom (PyTorch's split), and the same for columns.
//!
//! Forward lowers each image to a matrix (im2col) and multiplies:
//! out_n (OC × OH·OW) = weight (OC × C·kh·kw) · col_n (C·kh·kw × OH·OW) + bias;
//! with groups, one product per group: output channels g·OC/groups.. of the weight
//! times rows g·(C/groups)·kh·kw.. of the columns. With one input channel, stride 1, no
//! padding and dilation 1 (a first layer) it convolves directly instead
//! (kernels/direct_conv.rs). Images are independent: the layer works image by image
//! ([`ImageWise`]), and Sequential shares the images between threads.

use rayon::prelude::*;

use super::image_wise::{self, ImageStep, ImageWise, PerImage, Slots};
use super::{
    BuildContext, Init, InitContext, Layer, LayerDesc, Param, Pass, ShapeStep, Size2,
    checked_param_count,
};
use crate::kernels::direct_conv;
use crate::kernels::gemm::{
    MatRef, PackedA, gemm_from, gemm_ldc, gemm_packed_a, gemm_packed_a_from,
};
use crate::kernels::im2col::{ConvGeom, col2im, col2im_rows, im2col};
use crate::kernels::image_cols::ImageCols;
use crate::shape::{explain_hw, window_out_dilated};
use crate::tensor::Tensor;

/// 2-D convolution. PyTorch: `nn.Conv2d`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `None` until built for a `LazyConv2d`.
    in_channels: Option<usize>,
    out_channels: usize,
    kernel_size: Size2,
    stride: Size2,
    padding: ConvPadding,
    dilation: Size2,
    groups: usize,
    has_bias: bool,
    weight: Option<Param>,
    bias: Option<Param>,
    geom: Option<ConvGeom>,
    /// Every image's im2col from the last Train forward, kept for backward (n × C·kh·kw ×
    /// OH·OW) when they fit in KEEP_COLS_BYTES and the convolution is not direct.
    cols: Vec<f32>,
    /// Images in the last forward.
    batch: usize,
    /// Per group, the weight packed for the forward products, and its transpose for
    /// backward's.
    packed_w: Vec<PackedA>,
    packed_wt: Vec<PackedA>,
    /// The last forward's input when the columns were not kept (an Eval forward, columns
    /// too large, or a direct convolution): backward works from it. Empty after
    /// an Infer pass, which keeps nothing.
    saved_inp: Vec<f32>,
    /// Per image: its term of dL/dweight (n × OC × C·kh·kw) and of dL/dbias (n × OC).
    dw_parts: Vec<f32>,
    db_parts: Vec<f32>,
}

/// PyTorch's `padding=` of a convolution: numbers, or the strings 'valid' and 'same'
/// (kept as such: PyTorch prints `padding=same`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPadding {
    /// Zeros on both sides: (height, width).
    Zeros(Size2),
    /// 'valid': no padding.
    Valid,
    /// 'same': the output keeps the input size (stride 1 only). d·(k − 1) in all, half
    /// before, and the odd one after: PyTorch's split.
    Same,
}

impl From<usize> for ConvPadding {
    fn from(v: usize) -> Self {
        ConvPadding::Zeros(Size2(v, v))
    }
}

impl From<(usize, usize)> for ConvPadding {
    fn from(v: (usize, usize)) -> Self {
        ConvPadding::Zeros(v.into())
    }
}

impl From<Size2> for ConvPadding {
    fn from(v: Size2) -> Self {
        ConvPadding::Zeros(v)
    }
}

impl ConvPadding {
    /// (top, left, bottom, right) for this kernel and dilation; None if d·(k − 1)
    /// overflows.
    pub fn sides(self, kernel: Size2, dilation: Size2) -> Option<[usize; 4]> {
        match self {
            ConvPadding::Zeros(Size2(ph, pw)) => Some([ph, pw, ph, pw]),
            ConvPadding::Valid => Some([0; 4]),
            ConvPadding::Same => {
                let total = |k: usize, d: usize| d.checked_mul(k.saturating_sub(1));
                let (th, tw) = (total(kernel.0, dilation.0)?, total(kernel.1, dilation.1)?);
                Some([th / 2, tw / 2, th - th / 2, tw - tw / 2])
            }
        }
    }
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
            padding: ConvPadding::Zeros(Size2(0, 0)),
            dilation: Size2(1, 1),
            groups: 1,
            has_bias: true,
            weight: None,
            bias: None,
            geom: None,
            cols: Vec::new(),
            batch: 0,
            packed_w: Vec::new(),
            packed_wt: Vec::new(),
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

    /// PyTorch's `padding=` (zeros): an int, a (height, width) pair, or
    /// [`ConvPadding::Same`] / [`ConvPadding::Valid`].
    pub fn padding(mut self, padding: impl Into<ConvPadding>) -> Self {
        self.padding = padding.into();
        self
    }

    /// PyTorch's `dilation=`.
    pub fn dilation(mut self, dilation: impl Into<Size2>) -> Self {
        self.dilation = dilation.into();
        self
    }

    /// PyTorch's `groups=`: the input and output channels are split into this many
    /// groups, each convolved on its own (groups = in_channels: depthwise).
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
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

    /// Whether the convolution is direct (kernels/direct_conv.rs): one input channel
    /// (hence one group), stride 1, no padding, dilation 1.
    fn direct(&self) -> bool {
        self.groups == 1 && direct_conv::applies(self.geom())
    }

    /// Whether the products can take the columns straight from the image
    /// (kernels/image_cols.rs), never writing them out: one group and a simple geometry.
    /// Bitwise the same results either way.
    fn can_pack_from_image(&self) -> bool {
        self.groups == 1 && self.geom().is_simple() && !self.direct() && !self.transposed_dw()
    }

    /// Values in one row of the weight: (C/groups)·kh·kw.
    fn weight_row(&self) -> usize {
        self.geom().col_rows() / self.groups
    }

    /// Whether backward computes each image's weight-gradient term as its transpose
    /// (C·kh·kw × OC), which fits the micro-kernel's tile better for a first layer's
    /// small weight. One group only.
    fn transposed_dw(&self) -> bool {
        let (ckk, oc) = (self.geom().col_rows(), self.out_channels);
        self.groups == 1
            && !self.direct()
            && oc * ckk <= 4096
            && tile_fit(ckk, oc) > tile_fit(oc, ckk)
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
        // otherwise each group's weight is packed once and shared by every image's product.
        let direct = self.direct();
        // The columns are packed from the image when one image's are past
        // IMPLICIT_COLS_BYTES (written out, they would go past L2 and back), or in
        // training when the batch's are too many to keep for backward (which would
        // otherwise write them out twice: here and again in backward).
        let col_bytes = col_len * 4;
        let implicit = self.can_pack_from_image()
            && (col_bytes > IMPLICIT_COLS_BYTES
                || (pass == Pass::Train && n * col_bytes > KEEP_COLS_BYTES));
        if !direct {
            let (ocg, wk) = (self.out_channels / self.groups, self.weight_row());
            self.packed_w.resize_with(self.groups, PackedA::new);
            for (rows, packed) in weight
                .value
                .data()
                .chunks_exact(ocg * wk)
                .zip(&mut self.packed_w)
            {
                packed.pack(MatRef::new(rows, ocg, wk));
            }
        }
        // Training keeps the columns for backward while they fit in about a core's L2
        // cache; past that, backward recomputes them image by image from the input
        // (cheaper than reading them back from memory: measured, book-relu at
        // mini-batch 10 vs 64). Inference keeps nothing.
        let keep_cols =
            !direct && !implicit && pass == Pass::Train && n * col_len * 4 <= KEEP_COLS_BYTES;
        self.cols
            .resize(if keep_cols { n * col_len } else { 0 }, 0.0);
        let keep_inp = keep && !keep_cols;
        self.saved_inp
            .resize(if keep_inp { n * in_len } else { 0 }, 0.0);
        self.batch = n;
        Box::new(ConvForward {
            g,
            direct_weight: direct.then(|| weight.value.data()),
            implicit,
            packed_w: &self.packed_w,
            groups: self.groups,
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
        let (oc, wk) = (self.out_channels, self.weight_row());
        let (col_len, in_len) = (g.col_len(), g.image_len());
        // After a Train forward the columns are kept; after an Eval one, the input.
        let have_cols = self.cols.len() == n * col_len;
        assert!(
            have_cols || self.saved_inp.len() == n * in_len,
            "Conv2d::backward needs a forward first"
        );
        let transposed_dw = self.transposed_dw();
        self.dw_parts.resize(n * oc * wk, 0.0);
        self.db_parts.resize(n * oc, 0.0);
        // dcol_n = weightᵀ (C·kh·kw × OC) · dout_n (OC × P), per group: each group's
        // weightᵀ packed once.
        if need_input_grad {
            let weight = self.weight.as_ref().expect("built");
            let ocg = oc / self.groups;
            self.packed_wt.resize_with(self.groups, PackedA::new);
            for (rows, packed) in weight
                .value
                .data()
                .chunks_exact(ocg * wk)
                .zip(&mut self.packed_wt)
            {
                packed.pack(MatRef::new(rows, ocg, wk).t());
            }
        }
        Box::new(ConvBackward {
            g,
            oc,
            groups: self.groups,
            direct: self.direct(),
            // Without kept columns backward works from the saved input, with the columns
            // packed from it where it can (bitwise the same as recomputing them).
            implicit: !have_cols && self.can_pack_from_image(),
            transposed_dw,
            has_bias: self.bias.is_some(),
            packed_wt: &self.packed_wt,
            cols: have_cols.then(|| Slots::new(&mut self.cols, col_len)),
            saved_inp: &self.saved_inp,
            dw_parts: Slots::new(&mut self.dw_parts, oc * wk),
            db_parts: Slots::new(&mut self.db_parts, oc),
        })
    }

    /// grad[e] += Σ_n part_n[e], n in order: parallel over e, never over n.
    fn finish_backward(&mut self) {
        let (n, oc, ckk) = (self.batch, self.out_channels, self.weight_row());
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
    /// Whether the columns are packed straight from the image (see forward_images).
    implicit: bool,
    /// One packed weight per group.
    packed_w: &'a [PackedA],
    groups: usize,
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
        if self.implicit {
            if let Some(b) = self.bias {
                for (row, &bv) in out.chunks_exact_mut(p).zip(b) {
                    row.fill(bv);
                }
            }
            let beta = if self.bias.is_some() { 1.0 } else { 0.0 };
            let cols = ImageCols::new(g, inp);
            return gemm_packed_a_from(1.0, &self.packed_w[0], &cols, beta, out, p);
        }
        let mut conv = |col: &mut [f32]| {
            im2col(g, inp, col);
            if let Some(b) = self.bias {
                for (row, &bv) in out.chunks_exact_mut(p).zip(b) {
                    row.fill(bv);
                }
            }
            let beta = if self.bias.is_some() { 1.0 } else { 0.0 };
            // Group g: its output channels from its weight rows and its column rows.
            let (gk, go) = (ckk / self.groups, out.len() / (self.groups * p));
            for (gi, packed) in self.packed_w.iter().enumerate() {
                let col_g = &col[gi * gk * p..(gi + 1) * gk * p];
                let out_g = &mut out[gi * go * p..(gi + 1) * go * p];
                gemm_packed_a(1.0, packed, MatRef::new(col_g, gk, p), beta, out_g, p);
            }
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
    groups: usize,
    /// One input channel: the weight gradient comes straight from the saved input.
    direct: bool,
    /// The columns are packed from the saved input (Conv2d::can_pack_from_image).
    implicit: bool,
    transposed_dw: bool,
    has_bias: bool,
    /// One packed weightᵀ per group.
    packed_wt: &'a [PackedA],
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
                    let packed = &self.packed_wt[0];
                    gemm_packed_a(1.0, packed, MatRef::new(dout, oc, p), 0.0, dcol, p);
                    dinp.fill(0.0);
                    col2im(g, dcol, dinp);
                });
            }
            return;
        }
        if self.implicit {
            let in_len = g.image_len();
            let inp = &self.saved_inp[i * in_len..(i + 1) * in_len];
            // dweight_n = dout_n (OC × P) · col_nᵀ, the columns packed from the input.
            gemm_from(
                1.0,
                MatRef::new(dout, oc, p),
                &ImageCols::new(g, inp).t(),
                0.0,
                dw,
                ckk,
            );
            if self.has_bias {
                for (d, row) in db.iter_mut().zip(dout.chunks_exact(p)) {
                    *d = sum_lanes(row);
                }
            }
            if let Some(dinp) = dinp {
                input_grad_in_strips(g, &self.packed_wt[0], MatRef::new(dout, oc, p), dinp);
            }
            return;
        }
        // Per group: gk rows of the columns and the weight, go output channels.
        let (gk, go) = (ckk / self.groups, oc / self.groups);
        let work = |col: &mut [f32]| {
            // forward: out[o, p] = bias[o] + Σ_k weight[o, k] · col[k, p], so
            // dweight_n = dout_n (OC × P) · col_nᵀ (P × C·kh·kw), group by group, or
            // (one group) computed as its transpose when that shape fits the
            // micro-kernel's tile better.
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
                for gi in 0..self.groups {
                    gemm_ldc(
                        1.0,
                        MatRef::new(&dout[gi * go * p..(gi + 1) * go * p], go, p),
                        MatRef::new(&col[gi * gk * p..(gi + 1) * gk * p], gk, p).t(),
                        0.0,
                        &mut dw[gi * go * gk..(gi + 1) * go * gk],
                        gk,
                    );
                }
            }
            if self.has_bias {
                for (d, row) in db.iter_mut().zip(dout.chunks_exact(p)) {
                    *d = sum_lanes(row);
                }
            }
            if let Some(dinp) = dinp {
                // The columns are no longer needed, so they hold dcol.
                for (gi, packed) in self.packed_wt.iter().enumerate() {
                    let dout_g = MatRef::new(&dout[gi * go * p..(gi + 1) * go * p], go, p);
                    let dcol_g = &mut col[gi * gk * p..(gi + 1) * gk * p];
                    gemm_packed_a(1.0, packed, dout_g, 0.0, dcol_g, p);
                }
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

/// dL/d(input) of one image without its whole dL/d(columns): weightᵀ · dout a strip of
/// output rows at a time (a strip's columns stay in L1 or L2), each added back onto the
/// input as soon as it is made, from the last rows to the first: bitwise what one
/// col2im of all of dL/d(columns) gives (kernels/im2col.rs, col2im_rows).
fn input_grad_in_strips(g: &ConvGeom, weight_t: &PackedA, dout: MatRef, dinp: &mut [f32]) {
    let (ckk, ow) = (g.col_rows(), g.ow);
    // Strips of whole output rows whose positions fill the micro-kernel's panels (a
    // multiple of its tile's columns), unless that makes a strip past 128 KB.
    let nr = crate::kernels::gemm::kernel().tile().1;
    let fill = nr / gcd(nr, ow);
    let fit = ((128 << 10) / (4 * ckk * ow)).max(1);
    let rows = if fill <= fit { fill } else { fit }.min(g.oh);
    dinp.fill(0.0);
    with_scratch(ckk * rows * ow, |strip| {
        let mut end = g.oh;
        while end > 0 {
            let oy0 = end.saturating_sub(rows);
            let n = (end - oy0) * ow;
            let dout_rows = dout.cols_range(oy0 * ow, n);
            gemm_packed_a(1.0, weight_t, dout_rows, 0.0, &mut strip[..ckk * n], n);
            col2im_rows(g, &strip[..ckk * n], oy0, end - oy0, dinp);
            end = oy0;
        }
    });
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
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

/// The fraction of the micro-kernel's tiles that an m × n product fills. (Either way
/// round, each element of the weight gradient is the same sum in the same order, so this
/// choice moves no bits.)
fn tile_fit(m: usize, n: usize) -> f64 {
    let (mr, nr) = crate::kernels::gemm::kernel().tile();
    (m * n) as f64 / ((m.div_ceil(mr) * mr) * (n.div_ceil(nr) * nr)) as f64
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

/// PyTorch's refusal of padding='same' with a stride, said with the stride.
pub(crate) fn same_needs_stride_1(stride: Size2) -> String {
    format!(
        "padding='same' needs stride 1 (PyTorch refuses it for strided convolutions), \
         but stride is ({}, {}); give the padding as numbers",
        stride.0, stride.1
    )
}

/// Why `groups` does not fit the channels, or None when it divides both (PyTorch's rule).
pub(crate) fn groups_refusal(
    in_channels: usize,
    out_channels: usize,
    groups: usize,
) -> Option<String> {
    let which = if !in_channels.is_multiple_of(groups) {
        format!("in_channels {in_channels}")
    } else if !out_channels.is_multiple_of(groups) {
        format!("out_channels {out_channels}")
    } else {
        return None;
    };
    // The depthwise hint only where it would fit.
    let hint = if out_channels.is_multiple_of(in_channels) {
        format!(" (groups={in_channels} is a depthwise convolution)")
    } else {
        String::new()
    };
    Some(format!(
        "groups={groups} does not divide {which}; groups must divide both in_channels \
         ({in_channels}) and out_channels ({out_channels}){hint}"
    ))
}

/// The summary's note on padding='same': how d·(k − 1) is split, e.g.
/// `; padding='same': d·(k−1) = 1·(4−1) = 3 = 1 before + 2 after`.
fn explain_same([ph, pw, pb, pr]: [usize; 4], d: Size2, square: bool) -> String {
    let part = |before: usize, after: usize, d: usize| {
        let k = (before + after) / d + 1;
        format!(
            "{d}·({k}−1) = {} = {before} before + {after} after",
            before + after
        )
    };
    if square {
        format!("; padding='same': d·(k−1) = {}", part(ph, pb, d.0))
    } else {
        format!(
            "; padding='same': H: d·(k−1) = {}; W: d·(k−1) = {}",
            part(ph, pb, d.0),
            part(pw, pr, d.1)
        )
    }
}

/// One image's columns past this size (bytes) are packed straight from the image
/// (Conv2d::forward_images). 256 KB is half a Zen 3 core's L2: fast-mnist's second convolution
/// (663 KB) is past it; the book's convolutions (at most 128 KB) are not.
const IMPLICIT_COLS_BYTES: usize = 256 << 10;

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
            dilation: self.dilation,
            groups: self.groups,
            bias: self.has_bias,
        }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let (kh, kw) = self.kernel_size.tuple();
        let (sh, sw) = self.stride.tuple();
        let (dh, dw) = self.dilation.tuple();
        let groups = self.groups;
        if self.out_channels == 0 || kh == 0 || kw == 0 {
            return Err("out_channels and kernel_size must be at least 1".into());
        }
        if sh == 0 || sw == 0 {
            return Err("stride must be at least 1".into());
        }
        if dh == 0 || dw == 0 {
            return Err("dilation must be at least 1".into());
        }
        if groups == 0 {
            return Err("groups must be at least 1".into());
        }
        if self.padding == ConvPadding::Same && self.stride != Size2(1, 1) {
            return Err(same_needs_stride_1(self.stride));
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
        if let Some(msg) = groups_refusal(c, self.out_channels, groups) {
            return Err(msg);
        }
        let [ph, pw, pb, pr] = self
            .padding
            .sides(self.kernel_size, self.dilation)
            .ok_or("dilation·(kernel_size − 1) overflows")?;
        let too_small = |dim: &str, len: usize, k: usize, d: usize, (p0, p1): (usize, usize)| {
            let pad = if p0 == p1 {
                format!("2·{p0}")
            } else {
                format!("{p0} + {p1}")
            };
            let kernel = if d == 1 {
                format!("kernel {dim} {k}")
            } else {
                format!(
                    "kernel {dim} {k} at dilation {d} (spanning {d}·({k}−1) + 1 = {})",
                    d.saturating_mul(k - 1).saturating_add(1)
                )
            };
            format!(
                "{kernel} is larger than the input {dim} {len} plus padding {pad}; \
                 use a smaller kernel, add padding, or remove a pooling layer before it"
            )
        };
        let oh = window_out_dilated(h, kh, sh, (ph, pb), dh, false, true)
            .ok_or_else(|| too_small("height", h, kh, dh, (ph, pb)))?;
        let ow = window_out_dilated(w, kw, sw, (pw, pr), dw, false, true)
            .ok_or_else(|| too_small("width", w, kw, dw, (pw, pr)))?;
        let out = vec![self.out_channels, oh.out, ow.out];
        if crate::shape::checked_numel(&out).is_none() {
            return Err(format!(
                "output {} is too large to allocate per image",
                crate::shape::fmt_shape(&out)
            ));
        }
        let cg = c / groups;
        checked_param_count("Conv2d", &[self.out_channels, cg, kh, kw])?;
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
            pb,
            pr,
            dh,
            dw,
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
        let macs = (self.out_channels * oh.out * ow.out) as u64 * (cg * kh * kw) as u64;
        let square = h == w && kh == kw && sh == sw && (ph, pb) == (pw, pr) && dh == dw;
        let mut arithmetic = explain_hw(&oh, &ow, square);
        if self.padding == ConvPadding::Same {
            arithmetic.push_str(&explain_same([ph, pw, pb, pr], self.dilation, square));
        }
        Ok(ShapeStep {
            out,
            arithmetic,
            macs,
        })
    }

    fn init_params(&mut self, ctx: &mut InitContext) {
        let g = *self.geom();
        let cg = g.c / self.groups;
        let wdims = [self.out_channels, cg, g.kh, g.kw];
        let (wvals, bvals) = ctx.draw(
            wdims.iter().product(),
            self.out_channels,
            cg * g.kh * g.kw,
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

    /// Same padding (even kernels), dilation, groups and depthwise against the
    /// definition (kernels/im2col.rs's conv2d_naive), per image.
    #[test]
    fn options_match_the_definition() {
        let mut rng = Rng::new(8);
        let same = ConvPadding::Same;
        // (C, H, W), OC, kernel, stride, padding, dilation, groups, bias
        type Case = (
            [usize; 3],
            usize,
            Size2,
            usize,
            ConvPadding,
            Size2,
            usize,
            bool,
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ([4, 7, 6], 6, Size2(4, 2), 1, same, Size2(1, 1), 1, true),
            ([4, 9, 8], 6, Size2(3, 3), 1, same, Size2(2, 3), 2, false),
            ([3, 8, 7], 6, Size2(2, 2), 2, 0.into(), Size2(2, 2), 3, true),
            ([5, 6, 6], 5, Size2(3, 3), 1, 1.into(), Size2(1, 1), 5, true),
            (
                [2, 5, 6],
                3,
                Size2(2, 2),
                1,
                ConvPadding::Valid,
                Size2(1, 1),
                1,
                true,
            ),
        ];
        for &([c, h, w], oc, k, s, pad, d, groups, bias) in cases {
            let conv = Conv2d::new(c, oc, k)
                .stride(s)
                .padding(pad)
                .dilation(d)
                .groups(groups)
                .bias(bias);
            let repr = conv.describe().to_string();
            let mut net = Sequential::new([c, h, w]).add(conv).unwrap();
            let [ph, pw, pb, pr] = pad.sides(k, d).unwrap();
            let size =
                |len: usize, p: usize, k: usize, d: usize| (len + p - d * (k - 1) - 1) / s + 1;
            let g = ConvGeom {
                c,
                h,
                w,
                kh: k.0,
                kw: k.1,
                sh: s,
                sw: s,
                ph,
                pw,
                pb,
                pr,
                dh: d.0,
                dw: d.1,
                oh: size(h, ph + pb, k.0, d.0),
                ow: size(w, pw + pr, k.1, d.1),
            };
            if pad == same {
                assert_eq!((g.oh, g.ow), (h, w), "{repr}");
            }
            assert_eq!(net.output_shape(), &[oc, g.oh, g.ow], "{repr}");
            let x = random(&[2, c, h, w], &mut rng);
            let out = net.forward(&x, Pass::Eval).unwrap();
            let params = net.layers()[0].params();
            assert_eq!(params[0].1.value.shape(), &[oc, c / groups, k.0, k.1]);
            let weight = params[0].1.value.data();
            let bias = params.get(1).map(|(_, b)| b.value.data());
            let (per, per_out) = (x.len() / 2, out.len() / 2);
            for i in 0..2 {
                let want = crate::kernels::im2col::conv2d_naive(
                    &g,
                    &x.data()[i * per..(i + 1) * per],
                    weight,
                    bias,
                    oc,
                    groups,
                );
                let got = &out.data()[i * per_out..(i + 1) * per_out];
                for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-4,
                        "{repr} image {i} value {j}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// The summary writes dilation into the formula and says how 'same' splits its
    /// padding.
    #[test]
    fn the_summary_explains_dilation_and_same() {
        for (conv, input, text) in [
            (
                Conv2d::new(1, 2, 4).padding(ConvPadding::Same),
                [1, 28, 28],
                "(28 + 1 + 2 − 4)/1 + 1 = 28; padding='same': d·(k−1) = 1·(4−1) = 3 = \
                 1 before + 2 after",
            ),
            (
                Conv2d::new(1, 2, 3).stride(2).dilation(2),
                [1, 11, 11],
                "⌊(11 + 2·0 − 2·(3−1) − 1)/2⌋ + 1 = 4",
            ),
            (
                Conv2d::new(1, 2, 5),
                [1, 28, 28],
                "(28 + 2·0 − 5)/1 + 1 = 24",
            ),
        ] {
            let net = Sequential::new(input).add(conv).unwrap();
            assert_eq!(net.steps()[0].arithmetic, text);
        }
    }

    /// Refusals the library API gives (a spec points at the argument before this).
    #[test]
    fn bad_options_are_refused_when_built() {
        for (conv, input, words) in [
            (
                LazyConv2d::new(2, 3).groups(2),
                [3, 6, 6],
                "groups=2 does not divide in_channels 3",
            ),
            (
                Conv2d::new(3, 2, 3).stride(2).padding(ConvPadding::Same),
                [3, 6, 6],
                "padding='same' needs stride 1",
            ),
            (
                Conv2d::new(1, 2, 3).dilation(3),
                [1, 6, 6],
                "kernel height 3 at dilation 3 (spanning 3·(3−1) + 1 = 7) is larger than \
                 the input height 6",
            ),
        ] {
            let err = Sequential::new(input).add(conv).unwrap_err().to_string();
            assert!(err.contains(words), "{err}");
        }
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

    /// Columns past IMPLICIT_COLS_BYTES are packed from the image, and the input
    /// gradient made in strips: forward, weight gradient and input gradient are bitwise
    /// the written-out im2col product's, image by image.
    #[test]
    fn columns_packed_from_the_image_give_the_written_out_results() {
        let (n, c, oc, hw) = (2, 8, 5, 40);
        let g = ConvGeom {
            c,
            h: hw,
            w: hw,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
            pb: 0,
            pr: 0,
            dh: 1,
            dw: 1,
            oh: hw - 2,
            ow: hw - 2,
        };
        assert!(g.col_len() * 4 > IMPLICIT_COLS_BYTES);
        let mut rng = Rng::new(7);
        let x = random(&[n, c, hw, hw], &mut rng);
        let dout = random(&[n, oc, hw - 2, hw - 2], &mut rng);
        let mut net = Sequential::new([c, hw, hw])
            .add(Conv2d::new(c, oc, 3).bias(false))
            .unwrap();
        net.zero_grad();
        let out = net.forward(&x, Pass::Train).unwrap();
        let dinp = net.backward(&dout).unwrap();
        let weight = net.named_params()[0].1.value.data().to_vec();
        let (ckk, p) = (g.col_rows(), g.col_cols());
        let (mut want_dw, mut want_out, mut want_dinp) = (vec![0.0f32; oc * ckk], vec![], vec![]);
        for i in 0..n {
            let inp = &x.data()[i * g.image_len()..(i + 1) * g.image_len()];
            let d = &dout.data()[i * oc * p..(i + 1) * oc * p];
            let mut col = vec![0.0; g.col_len()];
            im2col(&g, inp, &mut col);
            let mut o = vec![0.0; oc * p];
            gemm_ldc(
                1.0,
                MatRef::new(&weight, oc, ckk),
                MatRef::new(&col, ckk, p),
                0.0,
                &mut o,
                p,
            );
            want_out.extend(o);
            let mut part = vec![0.0; oc * ckk];
            let (dm, cm) = (MatRef::new(d, oc, p), MatRef::new(&col, ckk, p));
            gemm_ldc(1.0, dm, cm.t(), 0.0, &mut part, ckk);
            for (w, v) in want_dw.iter_mut().zip(&part) {
                *w += v;
            }
            let mut dcol = vec![0.0; g.col_len()];
            gemm_ldc(
                1.0,
                MatRef::new(&weight, oc, ckk).t(),
                dm,
                0.0,
                &mut dcol,
                p,
            );
            let mut di = vec![0.0; g.image_len()];
            col2im(&g, &dcol, &mut di);
            want_dinp.extend(di);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(out.data()), bits(&want_out), "forward");
        assert_eq!(bits(dinp.data()), bits(&want_dinp), "input gradient");
        let grad = net.named_params()[0]
            .1
            .grad()
            .expect("backward ran")
            .data()
            .to_vec();
        assert_eq!(bits(&grad), bits(&want_dw), "weight gradient");
    }
}
