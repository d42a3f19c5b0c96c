//! Implicit im2col: an image's columns handed to the GEMM panel by panel, packed straight
//! from the image, never written out whole.
//!
//! Why: fast-mnist's second convolution (32 channels, 26 × 26, 3 × 3) has 288 × 576
//! columns, 663 KB an image, more than a core's L2. Written out by [`im2col`] they go
//! to memory, are read back to be packed, and in training are made a second time for
//! the weight gradient. The image itself (86 KB) stays in L2, and a packed panel (at most
//! KC × NR values, 16 KB) in L1, so packing from the image does the same copies without
//! the round trip. The values in each panel are exactly those of packing the written-out
//! columns, so every product is bitwise the same (the tests below compare the two).
//!
//! Stride 1, no padding, dilation 1 ([`ConvGeom::is_simple`]) only: row (ci, ky, kx) of
//! the columns at output position q = (oy, ox) is the pixel at
//! `ci·h·w + (oy + ky)·w + (ox + kx)`, a tap offset plus a position offset, and
//! positions in one output row are neighbours in the image.
//!
//! [`im2col`]: super::im2col::im2col

use super::gemm::{Kernel, PackB};
use super::im2col::ConvGeom;

/// One image's columns (c·kh·kw × oh·ow, as `im2col` writes them), the B of a
/// convolution's forward product weight · col.
#[derive(Clone, Copy)]
pub struct ImageCols<'a> {
    g: ConvGeom,
    inp: &'a [f32],
}

/// Their transpose (oh·ow × c·kh·kw), the B of the weight gradient dout · colᵀ.
#[derive(Clone, Copy)]
pub struct ImageColsT<'a>(ImageCols<'a>);

impl<'a> ImageCols<'a> {
    /// The columns of image `inp` for geometry `g`.
    ///
    /// # Panics
    /// If the geometry is not simple, its window does not fit the image, or `inp` is not
    /// one image. These checks bound every read the packers make.
    pub fn new(g: &ConvGeom, inp: &'a [f32]) -> Self {
        let fits =
            |o: usize, k: usize, n: usize| k >= 1 && o.checked_add(k - 1).is_some_and(|e| e <= n);
        assert!(
            g.is_simple() && fits(g.oh, g.kh, g.h) && fits(g.ow, g.kw, g.w) && g.ow > 0,
            "implicit im2col: needs stride 1, no padding, dilation 1 and a window inside the image"
        );
        assert_eq!(inp.len(), g.image_len(), "implicit im2col: input length");
        ImageCols { g: *g, inp }
    }

    /// The transpose, for the weight gradient.
    pub fn t(self) -> ImageColsT<'a> {
        ImageColsT(self)
    }

    /// The image offset where row k's tap starts (channel ci, tap ky, kx), and the
    /// tap's (ky, kx), so that the next rows can be stepped to without dividing.
    fn tap(&self, k: usize) -> Tap {
        let g = &self.g;
        let per_channel = g.kh * g.kw;
        let (ci, r) = (k / per_channel, k % per_channel);
        let (ky, kx) = (r / g.kw, r % g.kw);
        Tap {
            at: ci * g.h * g.w + ky * g.w + kx,
            ky,
            kx,
        }
    }

    /// The image offset of output position q's window: (oy, ox) → oy·w + ox.
    fn pos(&self, q: usize) -> usize {
        (q / self.g.ow) * self.g.w + q % self.g.ow
    }
}

/// A kernel tap while walking the rows of the columns in order.
struct Tap {
    at: usize,
    ky: usize,
    kx: usize,
}

impl Tap {
    /// Steps to the next row: the next kx, else the next ky, else the next channel.
    #[inline(always)]
    fn advance(&mut self, g: &ConvGeom) {
        self.at += 1;
        self.kx += 1;
        if self.kx == g.kw {
            self.kx = 0;
            self.at += g.w - g.kw;
            self.ky += 1;
            if self.ky == g.kh {
                self.ky = 0;
                self.at += (g.h - g.kh) * g.w;
            }
        }
    }
}

impl PackB for ImageCols<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.g.col_rows(), self.g.col_cols())
    }

    /// `panel[p·TN + j]` = col(pc + p, j0 + j): for each row, the panel's positions as
    /// runs of neighbours (one per output row they touch) copied from the image.
    fn pack_panel<const TN: usize>(
        &self,
        _kern: Kernel,
        pc: usize,
        kc: usize,
        j0: usize,
        cols: usize,
        panel: &mut [f32],
    ) {
        let (rows, n) = self.shape();
        assert!(pc + kc <= rows && j0 + cols <= n && cols <= TN && panel.len() >= kc * TN);
        let src = self.inp.as_ptr();
        if cols == TN && TN.is_multiple_of(8) && self.g.ow.is_multiple_of(8) && j0.is_multiple_of(8)
        {
            // Output rows a multiple of 8 wide (fast-mnist's 24): every 8 positions of the
            // panel are 8 neighbours in the image, the same for every row of the columns.
            let mut at = [0usize; TN];
            for (c8, a) in at.iter_mut().enumerate().take(TN / 8) {
                *a = self.pos(j0 + 8 * c8);
            }
            let mut tap = self.tap(pc);
            for dst in panel[..kc * TN].chunks_exact_mut(TN) {
                for (c8, &a) in at.iter().enumerate().take(TN / 8) {
                    // SAFETY: as below, for the run of 8 positions j0 + 8·c8 .. + 8, which
                    // lie in one output row (ow and j0 are multiples of 8); the writes
                    // are dst[8·c8 .. 8·c8 + 8] ⊂ dst (TN values).
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            src.add(tap.at + a),
                            dst.as_mut_ptr().add(8 * c8),
                            8,
                        )
                    };
                }
                tap.advance(&self.g);
            }
            return;
        }
        // (first j, image offset, length) of each run of positions in one output row.
        let mut runs = [(0usize, 0usize, 0usize); TN];
        let (mut nruns, mut j) = (0, 0);
        while j < cols {
            let q = j0 + j;
            let len = (self.g.ow - q % self.g.ow).min(cols - j);
            runs[nruns] = (j, self.pos(q), len);
            nruns += 1;
            j += len;
        }
        let mut tap = self.tap(pc);
        for dst in panel[..kc * TN].chunks_exact_mut(TN) {
            for &(j, at, len) in &runs[..nruns] {
                // SAFETY: the run's last read is tap(k) + pos(q) for some row k < rows and
                // position q < n (asserted above), at most (c−1)·h·w + (kh−1)·w + kw−1 +
                // (oh−1)·w + ow−1 < c·h·w = inp.len() (`new` checked the window fits);
                // the writes are dst[j..j + len] with j + len ≤ cols ≤ TN = dst.len().
                unsafe { copy_run(src.add(tap.at + at), dst.as_mut_ptr().add(j), len) };
            }
            dst[cols..].fill(0.0);
            tap.advance(&self.g);
        }
    }
}

impl PackB for ImageColsT<'_> {
    fn shape(&self) -> (usize, usize) {
        let (r, c) = self.0.shape();
        (c, r)
    }

    /// `panel[p·TN + j]` = col(j0 + j, pc + p): eight positions of one output row are
    /// eight neighbours in the image for every tap, so a full panel is packed as 8 × 8
    /// transposes (AVX2) wherever eight positions lie in one output row, else value by
    /// value.
    fn pack_panel<const TN: usize>(
        &self,
        kern: Kernel,
        pc: usize,
        kc: usize,
        j0: usize,
        cols: usize,
        panel: &mut [f32],
    ) {
        let cols_of = &self.0;
        let g = &cols_of.g;
        let (rows, n) = self.shape();
        assert!(pc + kc <= rows && j0 + cols <= n && cols <= TN && panel.len() >= kc * TN);
        // The image offset of each of the panel's taps (rows of the columns).
        let mut taps = [0usize; TN];
        let mut tap = cols_of.tap(j0);
        for t in &mut taps[..cols] {
            *t = tap.at;
            tap.advance(g);
        }
        #[cfg(target_arch = "x86_64")]
        let simd = kern != Kernel::Portable && cols == TN && TN.is_multiple_of(8);
        #[cfg(not(target_arch = "x86_64"))]
        let simd = {
            let _ = kern;
            false
        };
        let (mut oy, mut ox) = (pc / g.ow, pc % g.ow);
        let mut p = 0;
        while p < kc {
            let at = oy * g.w + ox;
            let step = if simd && p + 8 <= kc && ox + 8 <= g.ow {
                8
            } else {
                1
            };
            if step == 8 {
                #[cfg(target_arch = "x86_64")]
                for h in 0..TN / 8 {
                    let rows = std::array::from_fn(|jj| {
                        // SAFETY: taps[h·8 + jj] + at + 7 is the offset of col(row,
                        // position) for a row < rows and a position < n (the 8 positions
                        // lie in one output row), < inp.len() as in ImageCols.
                        unsafe { cols_of.inp.as_ptr().add(taps[h * 8 + jj] + at) }
                    });
                    // SAFETY: AVX2 runs here (a SIMD kernel was chosen); 8 readable values
                    // per row (above); writes at (p + q)·TN + h·8 .. + 8 ≤ kc·TN.
                    unsafe {
                        super::gemm::avx2::transpose8x8(
                            rows,
                            panel.as_mut_ptr().add(p * TN + h * 8),
                            TN,
                        )
                    };
                }
            } else {
                let dst = &mut panel[p * TN..(p + 1) * TN];
                for (d, &t) in dst.iter_mut().zip(&taps[..cols]) {
                    *d = cols_of.inp[t + at];
                }
                dst[cols..].fill(0.0);
            }
            p += step;
            ox += step;
            if ox == g.ow {
                ox = 0;
                oy += 1;
            }
        }
    }
}

/// Copies `len` values from `src` to `dst`, 8 at a time then one by one.
///
/// # Safety
/// `src` must be readable and `dst` writable for `len` values; they must not overlap.
#[inline(always)]
unsafe fn copy_run(src: *const f32, dst: *mut f32, len: usize) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::{
        KC, MatRef, PackedA, gemm_from, gemm_ldc, gemm_packed_a, gemm_packed_a_from,
    };
    use crate::kernels::im2col::im2col;
    use crate::rng::Rng;

    fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.symmetric(1.0)).collect()
    }

    /// Simple geometries: output rows of 24 (fast-mnist), 10 and 8 wide, rows that are
    /// not a multiple of 8 wide, one-pixel outputs, and inner dimensions past KC.
    fn geometries() -> Vec<ConvGeom> {
        let g = |c: usize, h: usize, w: usize, kh: usize, kw: usize| ConvGeom {
            c,
            h,
            w,
            kh,
            kw,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
            pb: 0,
            pr: 0,
            dh: 1,
            dw: 1,
            oh: h - kh + 1,
            ow: w - kw + 1,
        };
        vec![
            g(32, 26, 26, 3, 3),
            g(32, 12, 12, 3, 3),
            g(64, 10, 10, 3, 3),
            g(3, 11, 13, 2, 4),
            g(5, 7, 9, 7, 1),
            g(2, 3, 3, 3, 3),
            g(40, 9, 20, 2, 2),
        ]
    }

    #[test]
    fn panels_are_those_of_the_written_out_columns() {
        let mut rng = Rng::new(11);
        for g in geometries() {
            let inp = random(&mut rng, g.image_len());
            let mut col = vec![0.0; g.col_len()];
            im2col(&g, &inp, &mut col);
            let (rows, n) = (g.col_rows(), g.col_cols());
            let written = MatRef::new(&col, rows, n);
            for kern in Kernel::available() {
                for (pc, kc) in [(0, rows.min(KC)), (rows / 3, rows - rows / 3)] {
                    for j0 in [0, n / 2, n.saturating_sub(5)] {
                        let cols = (n - j0).min(16);
                        let mut want = vec![f32::NAN; kc * 16];
                        let mut got = vec![f32::NAN; kc * 16];
                        written.pack_panel::<16>(kern, pc, kc, j0, cols, &mut want);
                        ImageCols::new(&g, &inp).pack_panel::<16>(kern, pc, kc, j0, cols, &mut got);
                        assert_eq!(got, want, "{g:?} {kern:?} rows {pc}+{kc} cols {j0}+{cols}");
                        // The transpose: rows are positions, columns taps.
                        let (tk, tj) = (n / 3, rows / 2);
                        let (tkc, tcols) = ((n - tk).min(KC), (rows - tj).min(16));
                        let mut want = vec![f32::NAN; tkc * 16];
                        let mut got = vec![f32::NAN; tkc * 16];
                        written
                            .t()
                            .pack_panel::<16>(kern, tk, tkc, tj, tcols, &mut want);
                        ImageCols::new(&g, &inp)
                            .t()
                            .pack_panel::<16>(kern, tk, tkc, tj, tcols, &mut got);
                        assert_eq!(got, want, "{g:?} {kern:?} transposed");
                    }
                }
            }
        }
    }

    /// The products the convolution makes, bitwise against the written-out columns.
    #[test]
    fn products_are_bitwise_those_of_im2col() {
        let mut rng = Rng::new(12);
        for g in geometries() {
            let (rows, n, oc) = (g.col_rows(), g.col_cols(), 7);
            let inp = random(&mut rng, g.image_len());
            let mut col = vec![0.0; g.col_len()];
            im2col(&g, &inp, &mut col);
            let weight = random(&mut rng, oc * rows);
            let mut packed = PackedA::new();
            packed.pack(MatRef::new(&weight, oc, rows));
            let (mut want, mut got) = (vec![0.5; oc * n], vec![0.5; oc * n]);
            gemm_packed_a(1.0, &packed, MatRef::new(&col, rows, n), 1.0, &mut want, n);
            gemm_packed_a_from(1.0, &packed, &ImageCols::new(&g, &inp), 1.0, &mut got, n);
            assert_eq!(got, want, "forward {g:?}");
            // Weight gradient: dout (oc × n) · colᵀ.
            let dout = random(&mut rng, oc * n);
            let (mut want, mut got) = (vec![0.0; oc * rows], vec![0.0; oc * rows]);
            let dout_m = MatRef::new(&dout, oc, n);
            gemm_ldc(
                1.0,
                dout_m,
                MatRef::new(&col, rows, n).t(),
                0.0,
                &mut want,
                rows,
            );
            gemm_from(
                1.0,
                dout_m,
                &ImageCols::new(&g, &inp).t(),
                0.0,
                &mut got,
                rows,
            );
            assert_eq!(got, want, "weight gradient {g:?}");
        }
    }

    #[test]
    #[should_panic(expected = "implicit im2col")]
    fn a_geometry_with_padding_is_refused() {
        let mut g = geometries()[0];
        g.ph = 1;
        ImageCols::new(&g, &vec![0.0; g.image_len()]);
    }
}
