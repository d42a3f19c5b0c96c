//! im2col / col2im: turn a convolution into one matrix multiply.
//!
//! inp (c, h, w) -> col (c·kh·kw, oh·ow): row `(ci, ky, kx)` holds, for every output
//! position `(oy, ox)`, the input pixel that kernel tap `(ky, kx)` of channel ci sees
//! there, `(oy·sh + ky·dh − ph, ox·sw + kx·dw − pw)` (zero in the padding). Then
//! out (oc, oh·ow) = weight (oc, c·kh·kw) · col. With groups, the rows of group g are
//! the channels of group g, so each group multiplies its own block of rows.
//!
//! Why im2col here: with 20 input channels and 5×5 kernels (the book's second layer) the
//! GEMM's inner dimension c·kh·kw = 500 gives it work. A first layer with one input
//! channel (inner dimension 25) is convolved directly instead: see direct_conv.rs.

/// Geometry of one convolution window pass over one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    /// Zero padding above (ph) and left of (pw) the image.
    pub ph: usize,
    pub pw: usize,
    /// Zero padding below and right of the image: ph and pw, except for PyTorch's
    /// padding='same' with an odd total d·(k−1), which puts the extra one here.
    pub pb: usize,
    pub pr: usize,
    /// Dilation: kernel taps dh rows and dw columns apart.
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    pub fn col_rows(&self) -> usize {
        self.c * self.kh * self.kw
    }
    pub fn col_cols(&self) -> usize {
        self.oh * self.ow
    }
    /// Values in one image, c·h·w (panics on overflow: a geometry no image can have).
    pub fn image_len(&self) -> usize {
        self.c
            .checked_mul(self.h)
            .and_then(|v| v.checked_mul(self.w))
            .expect("convolution geometry: c·h·w overflows")
    }
    /// Values in one image's columns, c·kh·kw·oh·ow (panics on overflow, as image_len).
    pub fn col_len(&self) -> usize {
        [self.kh, self.kw, self.oh, self.ow]
            .iter()
            .try_fold(self.c, |v, &d| v.checked_mul(d))
            .expect("convolution geometry: c·kh·kw·oh·ow overflows")
    }
    /// Stride 1, no padding on any side and dilation 1: the case with a fast path.
    pub fn is_simple(&self) -> bool {
        self.sh == 1
            && self.sw == 1
            && self.ph == 0
            && self.pw == 0
            && self.pb == 0
            && self.pr == 0
            && self.dh == 1
            && self.dw == 1
    }
}

/// Fills `col` (c·kh·kw × oh·ow) from one image `inp` (c × h × w).
pub fn im2col(g: &ConvGeom, inp: &[f32], col: &mut [f32]) {
    if !g.is_simple() {
        return im2col_naive(g, inp, col);
    }
    assert_eq!(inp.len(), g.image_len(), "im2col: input length");
    assert_eq!(col.len(), g.col_len(), "im2col: columns length");
    let (src, dst) = (inp.as_ptr(), col.as_mut_ptr());
    for_each_run(g, |at_image, at_col| {
        // SAFETY: for_each_run's offsets lie in the image and the columns, whose
        // lengths were checked above.
        unsafe { copy_run_raw(src.add(at_image), dst.add(at_col), g.ow) }
    });
}

/// Stride 1, no padding (the book's convolutions): row (ci, ky, kx) of the columns is,
/// output row by output row, the run of `ow` pixels of input row oy + ky that starts at
/// column kx. Calls `run(offset in the image, offset in the columns)` for every run, in
/// the columns' order. The runs are short (8 values in the book's second layer), so the
/// callers copy them through raw pointers after one bounds check per image: slice
/// indexing per run cost more than the copy itself (measured).
///
/// Every run lies in bounds: image offset + ow − 1 ≤ (c−1)·h·w + (kh−1 + oh−1)·w +
/// kw−1 + ow−1 < c·h·w (asserted here), column offset + ow ≤ c·kh·kw·oh·ow.
#[inline(always)]
fn for_each_run(g: &ConvGeom, run: impl FnMut(usize, usize)) {
    for_each_run_in_rows(g, 0, g.oh, run)
}

/// [`for_each_run`] for output rows `oy0..oy0 + rows` only, with the column offsets of a
/// strip holding just those rows (c·kh·kw × rows·ow).
#[inline(always)]
fn for_each_run_in_rows(g: &ConvGeom, oy0: usize, rows: usize, mut run: impl FnMut(usize, usize)) {
    // In checked arithmetic: ConvGeom's fields are public, and a wrapped product or sum
    // would let a made-up geometry pass these checks.
    let fits =
        |o: usize, k: usize, n: usize| k >= 1 && o.checked_add(k - 1).is_some_and(|e| e <= n);
    assert!(
        g.is_simple()
            && fits(g.oh, g.kh, g.h)
            && fits(g.ow, g.kw, g.w)
            && oy0.checked_add(rows).is_some_and(|end| end <= g.oh),
        "im2col: window past the image"
    );
    let mut at_col = 0;
    for ci in 0..g.c {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let tap = ci * g.h * g.w + ky * g.w + kx;
                for oy in oy0..oy0 + rows {
                    run(tap + oy * g.w, at_col);
                    at_col += g.ow;
                }
            }
        }
    }
}

/// Copies `len` values from `src` to `dst`, 8 at a time then one by one.
///
/// # Safety
/// `src` must be readable and `dst` writable for `len` values; they must not overlap.
#[inline(always)]
unsafe fn copy_run_raw(src: *const f32, dst: *mut f32, len: usize) {
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: i + 8 ≤ len.
        unsafe { std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), 8) };
        i += 8;
    }
    while i < len {
        // SAFETY: i < len.
        unsafe { *dst.add(i) = *src.add(i) };
        i += 1;
    }
}

/// The reference for [`im2col`], for any stride, padding and dilation.
pub fn im2col_naive(g: &ConvGeom, inp: &[f32], col: &mut [f32]) {
    debug_assert_eq!(inp.len(), g.image_len());
    debug_assert_eq!(col.len(), g.col_len());
    let ncols = g.col_cols();
    for ci in 0..g.c {
        let plane = &inp[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                let dst = &mut col[row * ncols..(row + 1) * ncols];
                for oy in 0..g.oh {
                    let y = (oy * g.sh + ky * g.dh) as isize - g.ph as isize;
                    let out_row = &mut dst[oy * g.ow..(oy + 1) * g.ow];
                    if y < 0 || y >= g.h as isize {
                        out_row.fill(0.0);
                        continue;
                    }
                    let src = &plane[y as usize * g.w..(y as usize + 1) * g.w];
                    for (ox, o) in out_row.iter_mut().enumerate() {
                        let x = (ox * g.sw + kx * g.dw) as isize - g.pw as isize;
                        *o = if x < 0 || x >= g.w as isize {
                            0.0
                        } else {
                            src[x as usize]
                        };
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `col` back onto the input pixel it
/// was copied from. `dinp` must be zeroed (or hold a gradient to add to).
pub fn col2im(g: &ConvGeom, col: &[f32], dinp: &mut [f32]) {
    if !g.is_simple() {
        return col2im_naive(g, col, dinp);
    }
    assert_eq!(dinp.len(), g.image_len(), "col2im: input length");
    assert!(col.len() >= g.col_len(), "col2im: columns length");
    // The runs of im2col, added back (vectorised), in the same order as the reference's.
    let (src, dst) = (col.as_ptr(), dinp.as_mut_ptr());
    for_each_run(g, |at_image, at_col| {
        // SAFETY: as in im2col: the offsets lie in the image and the columns.
        unsafe { add_run_raw(src.add(at_col), dst.add(at_image), g.ow) }
    });
}

/// [`col2im`] for a strip of the columns: `strip` holds the columns of output rows
/// `oy0..oy0 + rows` only (c·kh·kw × rows·ow, as im2col would write them for those rows),
/// added back onto `dinp`. Simple geometries only.
///
/// Strips added from the last output rows to the first give `dinp` bitwise what one
/// [`col2im`] of all the columns gives: every input pixel receives its terms in the
/// order of the taps (ky, kx), as there. Pixel row y takes tap ky from output row
/// y − ky, so the rows of a later strip (higher oy) bring the lower ky, and within a
/// strip the taps come in order.
pub fn col2im_rows(g: &ConvGeom, strip: &[f32], oy0: usize, rows: usize, dinp: &mut [f32]) {
    assert!(g.is_simple(), "col2im_rows: simple geometries only");
    assert_eq!(dinp.len(), g.image_len(), "col2im: input length");
    assert!(
        strip.len() >= g.col_rows() * rows * g.ow,
        "col2im: strip length"
    );
    let (src, dst) = (strip.as_ptr(), dinp.as_mut_ptr());
    for_each_run_in_rows(g, oy0, rows, |at_image, at_col| {
        // SAFETY: the offsets lie in the image and the strip (for_each_run_in_rows's
        // bounds, with the strip's length checked above).
        unsafe { add_run_raw(src.add(at_col), dst.add(at_image), g.ow) }
    });
}

/// `dst[i] += src[i]` for `len` values, 8 at a time then one by one.
///
/// # Safety
/// `src` must be readable and `dst` writable for `len` values; they must not overlap.
#[inline(always)]
unsafe fn add_run_raw(src: *const f32, dst: *mut f32, len: usize) {
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: i + 8 ≤ len; unaligned reads and writes of 8 values.
        unsafe {
            let a = std::ptr::read_unaligned(dst.add(i) as *const [f32; 8]);
            let b = std::ptr::read_unaligned(src.add(i) as *const [f32; 8]);
            let sum: [f32; 8] = std::array::from_fn(|j| a[j] + b[j]);
            std::ptr::write_unaligned(dst.add(i) as *mut [f32; 8], sum);
        }
        i += 8;
    }
    while i < len {
        // SAFETY: i < len.
        unsafe { *dst.add(i) += *src.add(i) };
        i += 1;
    }
}

/// The reference for [`col2im`], for any stride, padding and dilation.
pub fn col2im_naive(g: &ConvGeom, col: &[f32], dinp: &mut [f32]) {
    debug_assert_eq!(dinp.len(), g.image_len());
    let ncols = g.col_cols();
    for ci in 0..g.c {
        let plane = &mut dinp[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                let src = &col[row * ncols..(row + 1) * ncols];
                for oy in 0..g.oh {
                    let y = (oy * g.sh + ky * g.dh) as isize - g.ph as isize;
                    if y < 0 || y >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[y as usize * g.w..(y as usize + 1) * g.w];
                    for ox in 0..g.ow {
                        let x = (ox * g.sw + kx * g.dw) as isize - g.pw as isize;
                        if x >= 0 && x < g.w as isize {
                            dst[x as usize] += src[oy * g.ow + ox];
                        }
                    }
                }
            }
        }
    }
}

/// The reference convolution of one image, straight from the definition, with the
/// input channels split into `groups` (output channel o sees the C/groups channels of
/// group o / (oc/groups)): out[o, oy, ox] = bias[o] + Σ_{ci,ky,kx} weight[o, ci, ky, kx] ·
/// inp[g·C/groups + ci, oy·sh + ky·dh − ph, ox·sw + kx·dw − pw].
pub fn conv2d_naive(
    g: &ConvGeom,
    inp: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    oc: usize,
    groups: usize,
) -> Vec<f32> {
    let (cg, ocg) = (g.c / groups, oc / groups);
    let mut out = vec![0.0f32; oc * g.oh * g.ow];
    for o in 0..oc {
        let first = (o / ocg) * cg;
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut acc = bias.map_or(0.0, |b| b[o] as f64);
                for ci in 0..cg {
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let y = (oy * g.sh + ky * g.dh) as isize - g.ph as isize;
                            let x = (ox * g.sw + kx * g.dw) as isize - g.pw as isize;
                            if y < 0 || x < 0 || y >= g.h as isize || x >= g.w as isize {
                                continue;
                            }
                            let wv = weight[((o * cg + ci) * g.kh + ky) * g.kw + kx];
                            let iv = inp[((first + ci) * g.h + y as usize) * g.w + x as usize];
                            acc += wv as f64 * iv as f64;
                        }
                    }
                }
                out[(o * g.oh + oy) * g.ow + ox] = acc as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::{MatRef, gemm};
    use crate::rng::Rng;

    fn geom(
        c: usize,
        h: usize,
        w: usize,
        k: (usize, usize),
        s: (usize, usize),
        p: (usize, usize),
    ) -> ConvGeom {
        geom_full(c, h, w, k, s, (p.0, p.1, p.0, p.1), (1, 1))
    }

    /// Padding (top, left, bottom, right) and dilation (dh, dw).
    fn geom_full(
        c: usize,
        h: usize,
        w: usize,
        k: (usize, usize),
        s: (usize, usize),
        p: (usize, usize, usize, usize),
        d: (usize, usize),
    ) -> ConvGeom {
        ConvGeom {
            c,
            h,
            w,
            kh: k.0,
            kw: k.1,
            sh: s.0,
            sw: s.1,
            ph: p.0,
            pw: p.1,
            pb: p.2,
            pr: p.3,
            dh: d.0,
            dw: d.1,
            oh: (h + p.0 + p.2 - d.0 * (k.0 - 1) - 1) / s.0 + 1,
            ow: (w + p.1 + p.3 - d.1 * (k.1 - 1) - 1) / s.1 + 1,
        }
    }

    /// The fast paths promise the reference's values bit for bit, not just closely.
    fn assert_same_bits(fast: &[f32], slow: &[f32], g: &ConvGeom) {
        assert!(
            fast.iter()
                .zip(slow)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{g:?}"
        );
    }

    #[test]
    fn im2col_gemm_matches_naive_convolution() {
        let mut rng = Rng::new(5);
        let cases = [
            geom(1, 28, 28, (5, 5), (1, 1), (0, 0)),
            geom(3, 7, 9, (3, 2), (2, 1), (1, 1)),
            geom(2, 5, 4, (1, 1), (1, 2), (0, 1)),
            geom(1, 17, 3, (3, 3), (3, 3), (1, 1)),
            // padding='same' with even kernels (extra on the bottom/right) and dilation
            geom_full(2, 6, 7, (2, 4), (1, 1), (0, 1, 1, 2), (1, 1)),
            geom_full(3, 9, 8, (3, 2), (1, 1), (2, 1, 2, 2), (2, 3)),
            geom_full(2, 11, 10, (3, 3), (2, 3), (0, 1, 0, 1), (3, 2)),
        ];
        for g in cases {
            let oc = 3;
            let inp: Vec<f32> = (0..g.image_len()).map(|_| rng.symmetric(1.0)).collect();
            let weight: Vec<f32> = (0..oc * g.col_rows()).map(|_| rng.symmetric(1.0)).collect();
            let mut col = vec![0.0; g.col_len()];
            im2col(&g, &inp, &mut col);
            let mut out = vec![0.0; oc * g.col_cols()];
            gemm(
                1.0,
                MatRef::new(&weight, oc, g.col_rows()),
                MatRef::new(&col, g.col_rows(), g.col_cols()),
                0.0,
                &mut out,
            );
            let want = conv2d_naive(&g, &inp, &weight, None, oc, 1);
            for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-4, "{g:?} index {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn fast_im2col_matches_naive() {
        let mut rng = Rng::new(11);
        for g in [
            geom(20, 12, 12, (5, 5), (1, 1), (0, 0)),
            geom(1, 28, 28, (5, 5), (1, 1), (0, 0)),
            geom(3, 17, 5, (3, 1), (1, 1), (0, 0)),
            geom(2, 9, 30, (2, 9), (1, 1), (0, 0)),
            geom(1, 1, 1, (1, 1), (1, 1), (0, 0)),
            geom(2, 7, 9, (3, 3), (2, 1), (1, 0)),
        ] {
            let inp: Vec<f32> = (0..g.image_len()).map(|_| rng.symmetric(1.0)).collect();
            let mut fast = vec![f32::NAN; g.col_len()];
            let mut slow = vec![0.0; fast.len()];
            im2col(&g, &inp, &mut fast);
            im2col_naive(&g, &inp, &mut slow);
            assert_same_bits(&fast, &slow, &g);
        }
    }

    #[test]
    #[should_panic(expected = "overflows")]
    #[cfg(target_pointer_width = "64")] // 1 << 32 does not fit a 32-bit usize (wasm32)
    fn a_geometry_whose_sizes_overflow_is_refused() {
        // ConvGeom's fields are public: a made-up geometry whose c·h·w wraps to 0 must not
        // pass the bounds checks of the raw-pointer fast path.
        let g = geom(1 << 32, 1 << 32, 1, (1, 1), (1, 1), (0, 0));
        im2col(&g, &[], &mut []);
    }

    #[test]
    fn fast_col2im_matches_naive() {
        let mut rng = Rng::new(12);
        for g in [
            geom(20, 12, 12, (5, 5), (1, 1), (0, 0)),
            geom(32, 26, 26, (3, 3), (1, 1), (0, 0)),
            geom(4, 10, 10, (3, 3), (1, 1), (0, 0)),
            geom(2, 5, 11, (2, 9), (1, 1), (0, 0)),
            geom(3, 17, 5, (3, 1), (1, 1), (0, 0)),
            geom(1, 1, 1, (1, 1), (1, 1), (0, 0)),
            geom(2, 7, 9, (3, 3), (2, 1), (1, 0)),
        ] {
            let col: Vec<f32> = (0..g.col_len()).map(|_| rng.symmetric(1.0)).collect();
            let init: Vec<f32> = (0..g.image_len()).map(|_| rng.symmetric(1.0)).collect();
            let (mut fast, mut slow) = (init.clone(), init);
            col2im(&g, &col, &mut fast);
            col2im_naive(&g, &col, &mut slow);
            assert_same_bits(&fast, &slow, &g);
        }
    }

    #[test]
    fn strips_from_the_last_rows_add_back_as_col2im() {
        let mut rng = Rng::new(21);
        for g in [
            geom(3, 9, 8, (3, 3), (1, 1), (0, 0)),
            geom(2, 12, 12, (5, 5), (1, 1), (0, 0)),
            geom(4, 6, 26, (2, 3), (1, 1), (0, 0)),
        ] {
            let col: Vec<f32> = (0..g.col_len()).map(|_| rng.symmetric(1.0)).collect();
            let mut want = vec![0.0; g.image_len()];
            col2im(&g, &col, &mut want);
            for rows in [1, 2, 3, g.oh] {
                let mut got = vec![0.0; g.image_len()];
                let mut end = g.oh;
                while end > 0 {
                    let oy0 = end.saturating_sub(rows);
                    let n = end - oy0;
                    // The strip: these output rows of every row of the columns.
                    let strip: Vec<f32> = col
                        .chunks_exact(g.col_cols())
                        .flat_map(|r| r[oy0 * g.ow..end * g.ow].iter().copied())
                        .collect();
                    col2im_rows(&g, &strip, oy0, n, &mut got);
                    end = oy0;
                }
                assert_same_bits(&got, &want, &g);
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> == <x, col2im(y)> for random x, y: the defining property.
        let mut rng = Rng::new(9);
        for g in [
            geom(2, 6, 5, (3, 3), (2, 1), (1, 1)),
            geom_full(2, 9, 8, (2, 3), (1, 2), (0, 2, 1, 2), (3, 2)),
        ] {
            adjoint(&g, &mut rng);
        }
    }

    fn adjoint(g: &ConvGeom, rng: &mut Rng) {
        let g = *g;
        let x: Vec<f32> = (0..g.image_len()).map(|_| rng.symmetric(1.0)).collect();
        let y: Vec<f32> = (0..g.col_len()).map(|_| rng.symmetric(1.0)).collect();
        let mut col = vec![0.0; y.len()];
        im2col(&g, &x, &mut col);
        let mut back = vec![0.0; x.len()];
        col2im_naive(&g, &y, &mut back);
        let lhs: f64 = col.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }
}
