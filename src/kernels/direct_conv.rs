//! Direct convolution for one input channel, stride 1, no padding: the first layer of
//! every MNIST network (`Conv2d(1, 20, 5)` on 28×28).
//!
//! Why not im2col + GEMM there: the GEMM's inner dimension is only kh·kw (25), its row
//! count (20 filters) does not fill the micro-kernel's 6-row tiles, and lowering the
//! image to columns (then packing them) costs as much as the products. Measured per
//! image, book-relu, 1 thread: the GEMM path's forward took 11.1 µs and its weight
//! gradient 15.8 µs, for 5.6 µs of arithmetic each at the FMA units' peak.
//!
//! Here the output row is the vector: four filters × sixteen output columns are kept
//! in registers while the 25 taps stream past, so every input load feeds four FMAs.
//! The weight gradient is the same sum turned around: for two filters and one kernel
//! row, kw lane-wise partial sums run along the output rows.
//!
//! Only with AVX2 + FMA: a portable version of these loops did not stay in registers and
//! was slower than im2col + GEMM (measured), so other CPUs keep that path, whose GEMM has
//! its own portable kernel.
//!
//! Sizes use the vocabulary of [`super::im2col::ConvGeom`] (`c` must be 1).

use super::im2col::ConvGeom;

/// Whether [`forward`] and [`weight_grad`] handle this geometry on this CPU: one input
/// channel (so groups = 1), stride 1, no padding on any side, dilation 1.
pub fn applies(g: &ConvGeom) -> bool {
    g.c == 1 && g.is_simple() && (1..=MAX_KW).contains(&g.kw) && g.kh >= 1 && has_avx2_fma()
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Kernel widths handled (each is its own monomorphised loop).
const MAX_KW: usize = 7;

/// out (oc × oh·ow) = bias + weight (oc × kh·kw) ⊛ inp (h × w); `weight` holds the
/// filters row-major, as Conv2d stores them. Each output is bias, then the taps in
/// (ky, kx) order, fused multiply-adds.
// Elsewhere than x86_64 `applies` is false, `check` panics and nothing is left to use.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub fn forward(g: &ConvGeom, weight: &[f32], bias: Option<&[f32]>, inp: &[f32], out: &mut [f32]) {
    check(g, weight, inp, out.len());
    // SAFETY: `check` asserted `applies`, so the CPU has AVX2 and FMA, and the bounds.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        avx2::forward(g, weight, bias, inp, out)
    }
}

/// dw (oc × kh·kw) = Σ over output positions of dout (oc × oh·ow) times the input pixel
/// each tap saw: one image's term of dL/dweight (written, not added).
pub fn weight_grad(g: &ConvGeom, inp: &[f32], dout: &[f32], dw: &mut [f32]) {
    check(g, dw, inp, dout.len());
    // SAFETY: as in `forward`.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        avx2::weight_grad(g, inp, dout, dw)
    }
}

/// The bounds the AVX2 loops rely on (they index through raw pointers), in checked
/// arithmetic: ConvGeom's fields are public, and a wrapped sum would pass a bad geometry.
fn check(g: &ConvGeom, weight: &[f32], inp: &[f32], out_len: usize) {
    assert!(applies(g), "direct convolution: unsupported geometry {g:?}");
    let taps =
        g.kh.checked_mul(g.kw)
            .expect("direct convolution: kh·kw overflows");
    assert_eq!(weight.len() % taps, 0, "direct convolution: weight length");
    let oc = weight.len() / taps;
    assert_eq!(inp.len(), g.image_len(), "direct convolution: input length");
    let plane = g.oh.checked_mul(g.ow);
    assert_eq!(
        Some(out_len),
        plane.and_then(|p| p.checked_mul(oc)),
        "direct convolution: output length"
    );
    // Every window lies in the image: oh + kh − 1 ≤ h and ow + kw − 1 ≤ w.
    let fits = |o: usize, k: usize, len: usize| o.checked_add(k - 1).is_some_and(|e| e <= len);
    assert!(
        fits(g.oh, g.kh, g.h) && fits(g.ow, g.kw, g.w),
        "direct convolution: windows leave the image {g:?}"
    );
}

/// Filters per register block in the forward pass.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const FB: usize = 4;

/// One output (filter o, row y, column x) on its own: bias, then the taps in (ky, kx)
/// order, fused multiply-adds — the order every register block keeps per output. The
/// columns past the last block of 8 use it.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn output_at(
    g: &ConvGeom,
    weight: &[f32],
    bias: f32,
    o: usize,
    inp: &[f32],
    y: usize,
    x: usize,
) -> f32 {
    let taps = g.kh * g.kw;
    let mut acc = bias;
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            acc = weight[o * taps + ky * g.kw + kx].mul_add(inp[(y + ky) * g.w + x + kx], acc);
        }
    }
    acc
}

/// Filters per register block in the weight gradient (the AVX2 loop assumes 2).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const GB: usize = 2;
/// Lanes of the partial sums.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const L: usize = 8;

/// The eight lanes added pairwise, in a fixed order.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn reduce_lanes(v: &[f32; L]) -> f32 {
    let q = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// The loops, register blocks in AVX2 intrinsics. Forward: FB filters × 16 (or 8) output
/// columns of accumulators while the taps stream past. Weight gradient: dw[o, ky, kx] =
/// Σ_y Σ_x dout[o, y, x] · inp[y + ky, x + kx], for GB filters and one kernel row, KW
/// lane-wise partial sums over the output rows (8 columns at a time), reduced pairwise;
/// columns past the last multiple of 8 are added one by one.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{ConvGeom, FB, GB, L, output_at, reduce_lanes};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA; `check` must have passed for these slices.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward(
        g: &ConvGeom,
        weight: &[f32],
        bias: Option<&[f32]>,
        inp: &[f32],
        out: &mut [f32],
    ) {
        let (kh, kw, oh, ow) = (g.kh, g.kw, g.oh, g.ow);
        let taps = kh * kw;
        let oc = weight.len() / taps;
        let plane = oh * ow;
        let mut o0 = 0;
        while o0 < oc {
            let fb = FB.min(oc - o0);
            // A short last block repeats its first filter: computed, not stored.
            let filter: [usize; FB] = std::array::from_fn(|f| o0 + if f < fb { f } else { 0 });
            let b: [f32; FB] = std::array::from_fn(|f| bias.map_or(0.0, |b| b[filter[f]]));
            for y in 0..oh {
                let mut x0 = 0;
                // SAFETY (both blocks): `check` bounds every input row read
                // (y + ky < h, x0 + kx + X ≤ ow + kw − 1 ≤ w) and output write.
                while x0 + 16 <= ow {
                    unsafe { block::<2>(g, weight, &filter, &b, inp, out, fb, y, x0) };
                    x0 += 16;
                }
                while x0 + 8 <= ow {
                    unsafe { block::<1>(g, weight, &filter, &b, inp, out, fb, y, x0) };
                    x0 += 8;
                }
                for x in x0..ow {
                    for (f, &o) in filter.iter().enumerate().take(fb) {
                        out[o * plane + y * ow + x] = output_at(g, weight, b[f], o, inp, y, x);
                    }
                }
            }
            o0 += fb;
        }
        debug_assert_eq!(plane * oc, out.len());
    }

    /// Outputs (filters, y, x0..x0 + 8·V): FB × V ymm accumulators.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const V: usize>(
        g: &ConvGeom,
        weight: &[f32],
        filter: &[usize; FB],
        bias: &[f32; FB],
        inp: &[f32],
        out: &mut [f32],
        fb: usize,
        y: usize,
        x0: usize,
    ) {
        let (kh, kw, w, ow) = (g.kh, g.kw, g.w, g.ow);
        let taps = kh * kw;
        let plane = g.oh * ow;
        // SAFETY: the caller's bounds (see `forward`).
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); V]; FB];
            for (a, &b) in acc.iter_mut().zip(bias) {
                *a = [_mm256_set1_ps(b); V];
            }
            let wp: [*const f32; FB] =
                std::array::from_fn(|f| weight.as_ptr().add(filter[f] * taps));
            for ky in 0..kh {
                let row = inp.as_ptr().add((y + ky) * w + x0);
                for kx in 0..kw {
                    let t = ky * kw + kx;
                    let xs: [__m256; V] =
                        std::array::from_fn(|v| _mm256_loadu_ps(row.add(kx + 8 * v)));
                    for (a, p) in acc.iter_mut().zip(&wp) {
                        let wv = _mm256_broadcast_ss(&*p.add(t));
                        for (a, &x) in a.iter_mut().zip(&xs) {
                            *a = _mm256_fmadd_ps(wv, x, *a);
                        }
                    }
                }
            }
            for (f, a) in acc.iter().enumerate().take(fb) {
                let o = out.as_mut_ptr().add(filter[f] * plane + y * ow + x0);
                for (v, &a) in a.iter().enumerate() {
                    _mm256_storeu_ps(o.add(8 * v), a);
                }
            }
        }
    }

    /// # Safety
    /// As [`forward`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_grad(g: &ConvGeom, inp: &[f32], dout: &[f32], dw: &mut [f32]) {
        // SAFETY: passed on.
        unsafe {
            match g.kw {
                1 => weight_grad_kw::<1>(g, inp, dout, dw),
                2 => weight_grad_kw::<2>(g, inp, dout, dw),
                3 => weight_grad_kw::<3>(g, inp, dout, dw),
                4 => weight_grad_kw::<4>(g, inp, dout, dw),
                5 => weight_grad_kw::<5>(g, inp, dout, dw),
                6 => weight_grad_kw::<6>(g, inp, dout, dw),
                7 => weight_grad_kw::<7>(g, inp, dout, dw),
                kw => unreachable!("direct convolution: kernel width {kw}"),
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn weight_grad_kw<const KW: usize>(
        g: &ConvGeom,
        inp: &[f32],
        dout: &[f32],
        dw: &mut [f32],
    ) {
        let (kh, w, oh, ow) = (g.kh, g.w, g.oh, g.ow);
        let taps = kh * KW;
        let oc = dw.len() / taps;
        let plane = oh * ow;
        let full = ow / L * L;
        let mut o0 = 0;
        while o0 < oc {
            let gb = GB.min(oc - o0);
            // A short last block repeats its first filter: computed, not stored.
            let filter = [o0, o0 + gb - 1];
            for ky in 0..kh {
                let mut acc = [[_mm256_setzero_ps(); KW]; GB];
                let mut tail = [[0.0f32; KW]; GB];
                for y in 0..oh {
                    let irow = &inp[(y + ky) * w..(y + ky) * w + ow + KW - 1];
                    // Plain indexing, not array::from_fn: its closure is not compiled
                    // with AVX2, so calling it spilled every accumulator (measured).
                    let at0 = filter[0] * plane + y * ow;
                    let at1 = filter[GB - 1] * plane + y * ow;
                    let (d0, d1) = (&dout[at0..at0 + ow], &dout[at1..at1 + ow]);
                    // SAFETY: x0 + 8 ≤ full ≤ ow bounds the dout loads, x0 + kx + 8 ≤
                    // ow + KW − 1 the input loads (the slices above are that long).
                    unsafe {
                        let mut x0 = 0;
                        while x0 < full {
                            let ds = [
                                _mm256_loadu_ps(d0.as_ptr().add(x0)),
                                _mm256_loadu_ps(d1.as_ptr().add(x0)),
                            ];
                            for kx in 0..KW {
                                let xs = _mm256_loadu_ps(irow.as_ptr().add(x0 + kx));
                                for (a, &d) in acc.iter_mut().zip(&ds) {
                                    a[kx] = _mm256_fmadd_ps(d, xs, a[kx]);
                                }
                            }
                            x0 += L;
                        }
                    }
                    for x in full..ow {
                        for kx in 0..KW {
                            for (t, d) in tail.iter_mut().zip([d0, d1]) {
                                t[kx] = d[x].mul_add(irow[x + kx], t[kx]);
                            }
                        }
                    }
                }
                for f in 0..gb {
                    for kx in 0..KW {
                        let mut lanes = [0.0f32; L];
                        // SAFETY: L floats into an array of L.
                        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[f][kx]) };
                        dw[(o0 + f) * taps + ky * KW + kx] = reduce_lanes(&lanes) + tail[f][kx];
                    }
                }
            }
            o0 += gb;
        }
    }
}

/// The reference for [`forward`]: the definition, one output at a time.
pub fn forward_naive(
    g: &ConvGeom,
    weight: &[f32],
    bias: Option<&[f32]>,
    inp: &[f32],
    out: &mut [f32],
) {
    let taps = g.kh * g.kw;
    for (o, plane) in out.chunks_exact_mut(g.oh * g.ow).enumerate() {
        for y in 0..g.oh {
            for x in 0..g.ow {
                let mut acc = bias.map_or(0.0, |b| b[o]) as f64;
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        acc += weight[o * taps + ky * g.kw + kx] as f64
                            * inp[(y + ky) * g.w + x + kx] as f64;
                    }
                }
                plane[y * g.ow + x] = acc as f32;
            }
        }
    }
}

/// The reference for [`weight_grad`]: the definition, one weight at a time.
pub fn weight_grad_naive(g: &ConvGeom, inp: &[f32], dout: &[f32], dw: &mut [f32]) {
    let taps = g.kh * g.kw;
    for (o, filter) in dw.chunks_exact_mut(taps).enumerate() {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let mut acc = 0.0f64;
                for y in 0..g.oh {
                    for x in 0..g.ow {
                        acc += dout[o * g.oh * g.ow + y * g.ow + x] as f64
                            * inp[(y + ky) * g.w + x + kx] as f64;
                    }
                }
                filter[ky * g.kw + kx] = acc as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn geom(h: usize, w: usize, kh: usize, kw: usize) -> ConvGeom {
        ConvGeom {
            c: 1,
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
        }
    }

    fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
        (0..len).map(|_| rng.symmetric(1.0)).collect()
    }

    fn assert_close(got: &[f32], want: &[f32], scale: f32, what: &str) {
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{what}: element {i}: {a} vs {b}"
            );
        }
    }

    /// Awkward sizes: output widths that are not multiples of 8 or 16 (and narrower
    /// than 8), filter counts that leave short register blocks, every kernel width.
    #[test]
    fn fast_matches_naive_on_awkward_sizes() {
        let mut rng = Rng::new(11);
        for (h, w, kh, kw, oc) in [
            (28, 28, 5, 5, 20),
            (9, 30, 3, 7, 3),
            (6, 11, 2, 1, 5),
            (7, 7, 7, 7, 1),
            (12, 25, 4, 2, 7),
            (5, 40, 1, 3, 6),
            (10, 9, 3, 6, 2),
        ] {
            let g = geom(h, w, kh, kw);
            assert!(applies(&g));
            let taps = kh * kw;
            let (inp, weight, bias) = (
                random(h * w, &mut rng),
                random(oc * taps, &mut rng),
                random(oc, &mut rng),
            );
            let len = oc * g.oh * g.ow;
            for b in [Some(&bias[..]), None] {
                let (mut got, mut want) = (vec![f32::NAN; len], vec![0.0; len]);
                forward(&g, &weight, b, &inp, &mut got);
                forward_naive(&g, &weight, b, &inp, &mut want);
                assert_close(&got, &want, taps as f32, &format!("forward {g:?}"));
            }
            let dout = random(len, &mut rng);
            let (mut got, mut want) = (vec![f32::NAN; oc * taps], vec![0.0; oc * taps]);
            weight_grad(&g, &inp, &dout, &mut got);
            weight_grad_naive(&g, &inp, &dout, &mut want);
            let scale = (g.oh * g.ow) as f32;
            assert_close(&got, &want, scale, &format!("weight grad {g:?}"));
        }
    }

    /// ConvGeom's fields are public: a geometry whose sizes wrap must be refused before
    /// the AVX2 loops index through raw pointers.
    #[test]
    #[should_panic(expected = "direct convolution")]
    fn a_wrapping_geometry_is_refused() {
        let mut g = geom(8, 8, 5, 5);
        (g.oh, g.ow) = (usize::MAX - 3, usize::MAX - 3);
        let mut out = vec![0.0; 16];
        forward(&g, &[0.0; 25], None, &[0.0; 64], &mut out);
    }

    #[test]
    fn other_geometries_are_left_to_im2col() {
        let mut g = geom(28, 28, 5, 5);
        g.c = 2;
        assert!(!applies(&g));
        let mut g = geom(28, 28, 5, 5);
        g.sw = 2;
        assert!(!applies(&g));
        assert!(!applies(&geom(28, 28, 3, 8)));
        // Dilation, and padding on one side only (padding='same' with an even kernel
        // pads only below and right when d·(k−1) = 1).
        let mut g = geom(28, 28, 5, 5);
        g.dw = 2;
        assert!(!applies(&g));
        let mut g = geom(28, 28, 2, 2);
        (g.pb, g.pr, g.oh, g.ow) = (1, 1, 28, 28);
        assert!(!applies(&g));
    }
}
