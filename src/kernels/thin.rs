//! Products with few rows: a mini-batch of a few images through a Linear layer,
//! out (m × n) = inp (m × k) · weightᵀ, where the weight is n × k row-major as Linear
//! stores it.
//!
//! Why not the packed GEMM there: with m = 10 rows, packing weightᵀ (a transpose of the
//! whole weight, every step, since the weight changes every step) costs as much as the
//! multiply-adds it feeds. Here both operands are read as they lie: every output is the
//! dot product of an input row and a weight row, both contiguous, so the weight streams
//! through once per block of rows with no copy.
//!
//! Each output is summed the same way whatever the blocking or thread split: eight
//! lane-wise partial sums over k (fused multiply-adds in k order), reduced pairwise, plus
//! the k % 8 tail one by one; so the result does not depend on the thread count.

use rayon::prelude::*;

/// out[r, j] += inp[r, :] · w[j, :] for r < m, j < n (`out` has row stride `ldc`), the
/// columns j split between the threads of the current rayon pool in runs of whole
/// blocks; bitwise the same for any thread count.
pub fn rows_dot_par(
    inp: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    out: &mut [f32],
    ldc: usize,
) {
    check(inp, m, k, w, n, out, ldc);
    let threads = rayon::current_num_threads();
    // Below ~0.3 MFLOP a fork costs more than it saves.
    let out = OutPtr(out.as_mut_ptr());
    if threads <= 1 || m * n * k < 150_000 {
        // SAFETY: `check` bounded out (m rows of ldc ≥ n), borrowed mutably here.
        return unsafe { rows_dot_cols(inp, m, k, w, 0, n, out, ldc) };
    }
    // Parts of whole column blocks; the output columns of one part are written by one
    // task only. `out` is shared as a pointer because the parts interleave in memory.
    let blocks = n.div_ceil(NB);
    let per = blocks.div_ceil(threads);
    (0..threads).into_par_iter().for_each(|t| {
        let (j0, j1) = ((t * per * NB).min(n), ((t + 1) * per * NB).min(n));
        if j0 < j1 {
            // SAFETY: as above; tasks write disjoint column ranges [j0, j1).
            unsafe { rows_dot_cols(inp, m, k, w, j0, j1, out, ldc) };
        }
    });
}

/// The output, written through a pointer by tasks that own disjoint column ranges.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: only used to give tasks their disjoint column ranges of one output.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}
impl OutPtr {
    /// out[at] += v.
    ///
    /// # Safety
    /// `at` in bounds of the output, and no other task writes it.
    unsafe fn add(self, at: usize, v: f32) {
        // SAFETY: the caller's.
        unsafe { *self.0.add(at) += v }
    }
}

fn check(inp: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &[f32], ldc: usize) {
    let need = |a: usize, b: usize| a.checked_mul(b).expect("rows_dot: size overflows");
    assert!(inp.len() >= need(m, k), "rows_dot: input length");
    assert!(w.len() >= need(n, k), "rows_dot: weight length");
    assert!(ldc >= n, "rows_dot: ldc < n");
    if m > 0 {
        assert!(out.len() >= need(m - 1, ldc) + n, "rows_dot: output length");
    }
}

/// Output columns [j0, j1) of every row.
///
/// # Safety
/// `check` passed for this output, j1 ≤ n, and no other task writes these columns.
#[allow(clippy::too_many_arguments)]
unsafe fn rows_dot_cols(
    inp: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    j0: usize,
    j1: usize,
    out: OutPtr,
    ldc: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features; the rest is the caller's.
        return unsafe { avx2::rows_dot_cols(inp, m, k, w, j0, j1, out, ldc) };
    }
    // SAFETY: the module was built with simd128; the rest is the caller's.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return unsafe { wasm::rows_dot_cols(inp, m, k, w, j0, j1, out, ldc) };
    #[allow(unreachable_code)]
    for r in 0..m {
        for j in j0..j1 {
            let v = dot(&inp[r * k..(r + 1) * k], &w[j * k..(j + 1) * k]);
            // SAFETY: the caller's.
            unsafe { out.add(r * ldc + j, v) };
        }
    }
}

/// The portable dot product, in the order described at the top.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let full = a.len() / 8 * 8;
    for (ca, cb) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] = madd(ca[l], cb[l], lanes[l]);
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in a[full..].iter().zip(&b[full..]) {
        tail = madd(*x, *y, tail);
    }
    reduce(&lanes) + tail
}

/// x·y + acc, fused as the AVX2 loops do. Except on wasm32: WebAssembly has no scalar fused
/// multiply-add, so `f32::mul_add` there is a software routine many times slower than the
/// product it rounds (it made the browser build's Linear layers crawl); a multiply then
/// an add keeps the same order of sums, rounded twice.
#[inline(always)]
fn madd(x: f32, y: f32, acc: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    return x * y + acc;
    #[cfg(not(target_arch = "wasm32"))]
    x.mul_add(y, acc)
}

fn reduce(v: &[f32; 8]) -> f32 {
    let q = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// The loops above with WebAssembly SIMD.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[path = "thin_wasm.rs"]
mod wasm;

/// Weight rows per register block.
const NB: usize = 3;
/// Input rows per register block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const MB: usize = 4;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MB, NB, OutPtr, reduce};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2 and FMA, and [`super::rows_dot_cols`]'s contract.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn rows_dot_cols(
        inp: &[f32],
        m: usize,
        k: usize,
        w: &[f32],
        j0: usize,
        j1: usize,
        out: OutPtr,
        ldc: usize,
    ) {
        let mut j = j0;
        while j < j1 {
            let nb = NB.min(j1 - j);
            let mut r = 0;
            while r < m {
                let mb = MB.min(m - r);
                // SAFETY: rows r..r+mb of inp and j..j+nb of w exist (check); the
                // block writes out[r.., j..] inside m × ldc.
                unsafe {
                    match (mb, nb) {
                        (4, 3) => block::<4, 3>(inp, k, w, r, j, out, ldc),
                        (4, 2) => block::<4, 2>(inp, k, w, r, j, out, ldc),
                        (4, 1) => block::<4, 1>(inp, k, w, r, j, out, ldc),
                        (3, 3) => block::<3, 3>(inp, k, w, r, j, out, ldc),
                        (3, 2) => block::<3, 2>(inp, k, w, r, j, out, ldc),
                        (3, 1) => block::<3, 1>(inp, k, w, r, j, out, ldc),
                        (2, 3) => block::<2, 3>(inp, k, w, r, j, out, ldc),
                        (2, 2) => block::<2, 2>(inp, k, w, r, j, out, ldc),
                        (2, 1) => block::<2, 1>(inp, k, w, r, j, out, ldc),
                        (1, 3) => block::<1, 3>(inp, k, w, r, j, out, ldc),
                        (1, 2) => block::<1, 2>(inp, k, w, r, j, out, ldc),
                        _ => block::<1, 1>(inp, k, w, r, j, out, ldc),
                    }
                }
                r += mb;
            }
            j += nb;
        }
    }

    /// Outputs (r..r+R, j..j+N): R × N accumulators of eight lanes each.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize, const N: usize>(
        inp: &[f32],
        k: usize,
        w: &[f32],
        r: usize,
        j: usize,
        out: OutPtr,
        ldc: usize,
    ) {
        let full = k / 8 * 8;
        let ip = inp[r * k..(r + R) * k].as_ptr();
        let wp = w[j * k..(j + N) * k].as_ptr();
        // SAFETY: p < full ≤ k keeps every 8-value load inside its row of the slices
        // above.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); N]; R];
            let mut p = 0;
            while p < full {
                let mut wv = [_mm256_setzero_ps(); N];
                for (q, v) in wv.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(wp.add(q * k + p));
                }
                for (a, row) in acc.iter_mut().enumerate() {
                    let x = _mm256_loadu_ps(ip.add(a * k + p));
                    for (q, v) in row.iter_mut().enumerate() {
                        *v = _mm256_fmadd_ps(x, wv[q], *v);
                    }
                }
                p += 8;
            }
            for (a, row) in acc.iter().enumerate() {
                for (q, v) in row.iter().enumerate() {
                    let mut lanes = [0.0f32; 8];
                    _mm256_storeu_ps(lanes.as_mut_ptr(), *v);
                    let mut tail = 0.0f32;
                    for t in full..k {
                        tail = (*ip.add(a * k + t)).mul_add(*wp.add(q * k + t), tail);
                    }
                    out.add((r + a) * ldc + j + q, reduce(&lanes) + tail);
                }
            }
        }
    }
}

/// Most rows (images) [`backward_fused_par`] fuses; past this the two products go to the
/// packed GEMM, which is compute-bound there anyway.
pub const FUSED_MAX_ROWS: usize = 12;

/// Linear's two backward products at a small mini-batch, in one pass over the weight.
/// Not called by Linear yet: measured on book-dropout at mini-batch 10 (2026-12-03, a
/// busy machine, images per CPU-second), the AVX2 version made training about 17 %
/// slower than the two GEMMs. Callgrind with --cache-sim (which runs the AVX2
/// version; 640 images, 1 thread) shows why: 3.16 billion instructions against 3.06,
/// 2.89 billion data reads and writes against 1.12 (the strips read 2.0 billion values
/// for 1.06 billion instructions), and 41.7 million L1 instruction misses against 0.1
/// (L1 data misses fell, 79 million against 107). With 16 ymm registers, 10 rows of dx
/// partial sums plus 10 rows of input do not fit: they spill. The instruction misses
/// point at the twelve unrolled strip functions; not examined further. The AVX-512
/// version (32 registers) was not timed on its own. Next: keep the input rows in
/// memory operands for AVX2, time the AVX-512 version alone, and walk the outputs in
/// sub-blocks of about 64 rows so that a strip's neighbour finds the cache lines they
/// share in L1.
///
/// The products:
/// - dw (n_out × n_in) = doutᵀ · inp, added to dw when `add`, else written;
/// - dinp (m × n_in) = dout (m × n_out) · w (n_out × n_in), written.
///
/// With m ≤ [`FUSED_MAX_ROWS`] images, the two GEMMs ([`gemm_par`] twice) are each
/// bound by memory: the second packs all of w (4 MB for a 1000 × 1000 layer) before it
/// multiplies, and the first writes a dw of the same size. Here each strip of w (16
/// columns with AVX-512, 8 with AVX2) is read once, straight from the weight, and the
/// strip of dw written once, with the m rows of dinp for that strip held in registers.
///
/// Bitwise the same as the two [`gemm_par`] calls on the SIMD kernels: each dw element
/// is the fused multiply-add chain over the images, then added to dw, and each dinp
/// element the chains over blocks of [`KC`] outputs, added block after block, as the
/// GEMM does. So it runs only where the GEMM runs a SIMD kernel (AVX-512 or AVX2/FMA);
/// with the portable one, and for more rows, it calls [`gemm_par`] twice. The columns
/// are split between threads; the result does not depend on how.
///
/// [`gemm_par`]: crate::kernels::gemm::gemm_par
/// [`KC`]: crate::kernels::gemm::KC
#[allow(clippy::too_many_arguments)]
pub fn backward_fused_par(
    dout: &[f32],
    inp: &[f32],
    m: usize,
    n_out: usize,
    n_in: usize,
    w: &[f32],
    dw: &mut [f32],
    add: bool,
    dinp: &mut [f32],
) {
    use crate::kernels::gemm::{MatRef, gemm_par};
    assert!(
        dout.len() >= m * n_out && inp.len() >= m * n_in,
        "backward_fused: inputs"
    );
    assert!(
        w.len() >= n_out * n_in && dw.len() >= n_out * n_in,
        "backward_fused: weight"
    );
    assert!(dinp.len() >= m * n_in, "backward_fused: dinp");
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::gemm::kernel() != crate::kernels::gemm::Kernel::Portable
        && (1..=FUSED_MAX_ROWS).contains(&m)
        && n_out > 0
    {
        let wide = crate::kernels::gemm::kernel() == crate::kernels::gemm::Kernel::Avx512;
        let lanes = if wide { 16 } else { 8 };
        // doutᵀ, so that each output's m gradients sit together.
        let mut dout_t = vec![0.0f32; n_out * m];
        for (r, row) in dout[..m * n_out].chunks_exact(n_out).enumerate() {
            for (o, &v) in row.iter().enumerate() {
                dout_t[o * m + r] = v;
            }
        }
        let strips = n_in.div_ceil(lanes);
        let threads = rayon::current_num_threads();
        let ptrs = (OutPtr(dw.as_mut_ptr()), OutPtr(dinp.as_mut_ptr()));
        let run = |s0: usize, s1: usize| {
            let (dw, dinp) = ptrs;
            // SAFETY: the CPU has AVX-512F, or AVX2 and FMA (the kernel choice checked
            // it); the asserts above bound every access; callers get disjoint strips.
            unsafe {
                if wide {
                    fused_avx512::strips(&dout_t, inp, m, n_out, n_in, w, dw.0, add, dinp.0, s0, s1)
                } else {
                    fused_avx2::strips(&dout_t, inp, m, n_out, n_in, w, dw.0, add, dinp.0, s0, s1)
                }
            }
        };
        let run = &run;
        if threads <= 1 || m * n_out * n_in < 150_000 {
            run(0, strips);
        } else {
            let per = strips.div_ceil(threads);
            rayon::scope(|sc| {
                for t in 0..threads {
                    let (s0, s1) = ((t * per).min(strips), ((t + 1) * per).min(strips));
                    if s0 < s1 {
                        sc.spawn(move |_| run(s0, s1));
                    }
                }
            });
        }
        return;
    }
    gemm_par(
        1.0,
        MatRef::new(dout, m, n_out).t(),
        MatRef::new(inp, m, n_in),
        if add { 1.0 } else { 0.0 },
        dw,
        n_in,
    );
    gemm_par(
        1.0,
        MatRef::new(dout, m, n_out),
        MatRef::new(w, n_out, n_in),
        0.0,
        dinp,
        n_in,
    );
}

#[cfg(target_arch = "x86_64")]
mod fused_avx512 {
    use crate::kernels::gemm::KC;
    use std::arch::x86_64::*;

    /// Strips `s0..s1` (16 columns each, the last one masked) of [`super::backward_fused_par`].
    ///
    /// # Safety
    /// AVX-512F; slices as checked there; dw and dinp valid for n_out × n_in and
    /// m × n_in values, and no one else writing these strips' columns.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn strips(
        dout_t: &[f32],
        inp: &[f32],
        m: usize,
        n_out: usize,
        n_in: usize,
        w: &[f32],
        dw: *mut f32,
        add: bool,
        dinp: *mut f32,
        s0: usize,
        s1: usize,
    ) {
        macro_rules! rows {
            ($($r:literal)*) => {
                match m {
                    $($r => for s in s0..s1 {
                        // SAFETY: the caller's contract.
                        unsafe { strip::<$r>(dout_t, inp, n_out, n_in, w, dw, add, dinp, s) }
                    },)*
                    _ => unreachable!("at most FUSED_MAX_ROWS rows"),
                }
            };
        }
        rows!(1 2 3 4 5 6 7 8 9 10 11 12);
    }

    /// One strip: columns 16·s.. of dw and dinp.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn strip<const M: usize>(
        dout_t: &[f32],
        inp: &[f32],
        n_out: usize,
        n_in: usize,
        w: &[f32],
        dw: *mut f32,
        add: bool,
        dinp: *mut f32,
        s: usize,
    ) {
        let j0 = 16 * s;
        let cols = (n_in - j0).min(16);
        let mask = ((1u32 << cols) - 1) as __mmask16;
        // SAFETY: every access is at row·n_in + j0 + (lanes under the mask) < the
        // slice's rows × n_in, or dout_t[o·M + r] with o < n_out, r < M.
        unsafe {
            let mut x = [_mm512_setzero_ps(); M];
            for r in 0..M {
                x[r] = _mm512_maskz_loadu_ps(mask, inp.as_ptr().add(r * n_in + j0));
            }
            let mut o0 = 0;
            while o0 < n_out {
                let o1 = (o0 + KC).min(n_out);
                let mut acc = [_mm512_setzero_ps(); M];
                for o in o0..o1 {
                    let wv = _mm512_maskz_loadu_ps(mask, w.as_ptr().add(o * n_in + j0));
                    let d = dout_t.as_ptr().add(o * M);
                    let mut g = _mm512_setzero_ps();
                    for r in 0..M {
                        let dr = _mm512_set1_ps(*d.add(r));
                        acc[r] = _mm512_fmadd_ps(dr, wv, acc[r]);
                        g = _mm512_fmadd_ps(dr, x[r], g);
                    }
                    let p = dw.add(o * n_in + j0);
                    let v = if add {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(mask, p), g)
                    } else {
                        g
                    };
                    _mm512_mask_storeu_ps(p, mask, v);
                }
                for r in 0..M {
                    let p = dinp.add(r * n_in + j0);
                    let v = if o0 == 0 {
                        acc[r]
                    } else {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(mask, p), acc[r])
                    };
                    _mm512_mask_storeu_ps(p, mask, v);
                }
                o0 = o1;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod fused_avx2 {
    use crate::kernels::gemm::KC;
    use std::arch::x86_64::*;

    /// [`super::fused_avx512::strips`] with strips of 8 columns.
    ///
    /// # Safety
    /// AVX2 and FMA; otherwise as [`super::fused_avx512::strips`].
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn strips(
        dout_t: &[f32],
        inp: &[f32],
        m: usize,
        n_out: usize,
        n_in: usize,
        w: &[f32],
        dw: *mut f32,
        add: bool,
        dinp: *mut f32,
        s0: usize,
        s1: usize,
    ) {
        macro_rules! rows {
            ($($r:literal)*) => {
                match m {
                    $($r => for s in s0..s1 {
                        // SAFETY: the caller's contract.
                        unsafe { strip::<$r>(dout_t, inp, n_out, n_in, w, dw, add, dinp, s) }
                    },)*
                    _ => unreachable!("at most FUSED_MAX_ROWS rows"),
                }
            };
        }
        rows!(1 2 3 4 5 6 7 8 9 10 11 12);
    }

    /// One strip: columns 8·s.. of dw and dinp.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn strip<const M: usize>(
        dout_t: &[f32],
        inp: &[f32],
        n_out: usize,
        n_in: usize,
        w: &[f32],
        dw: *mut f32,
        add: bool,
        dinp: *mut f32,
        s: usize,
    ) {
        let j0 = 8 * s;
        let cols = (n_in - j0).min(8);
        let lane = |l: i32| if (l as usize) < cols { -1 } else { 0 };
        // SAFETY: as in the AVX-512 strip; the masks keep loads and stores to the
        // strip's columns.
        unsafe {
            let mask = _mm256_setr_epi32(
                lane(0),
                lane(1),
                lane(2),
                lane(3),
                lane(4),
                lane(5),
                lane(6),
                lane(7),
            );
            let mut x = [_mm256_setzero_ps(); M];
            for r in 0..M {
                x[r] = _mm256_maskload_ps(inp.as_ptr().add(r * n_in + j0), mask);
            }
            let mut o0 = 0;
            while o0 < n_out {
                let o1 = (o0 + KC).min(n_out);
                let mut acc = [_mm256_setzero_ps(); M];
                for o in o0..o1 {
                    let wv = _mm256_maskload_ps(w.as_ptr().add(o * n_in + j0), mask);
                    let d = dout_t.as_ptr().add(o * M);
                    let mut g = _mm256_setzero_ps();
                    for r in 0..M {
                        let dr = _mm256_broadcast_ss(&*d.add(r));
                        acc[r] = _mm256_fmadd_ps(dr, wv, acc[r]);
                        g = _mm256_fmadd_ps(dr, x[r], g);
                    }
                    let p = dw.add(o * n_in + j0);
                    let v = if add {
                        _mm256_add_ps(_mm256_maskload_ps(p, mask), g)
                    } else {
                        g
                    };
                    _mm256_maskstore_ps(p, mask, v);
                }
                for r in 0..M {
                    let p = dinp.add(r * n_in + j0);
                    let v = if o0 == 0 {
                        acc[r]
                    } else {
                        _mm256_add_ps(_mm256_maskload_ps(p, mask), acc[r])
                    };
                    _mm256_maskstore_ps(p, mask, v);
                }
                o0 = o1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Awkward sizes (k not a multiple of 8, rows and columns leaving short blocks), the
    /// fast path against the portable dot products, and 1 vs 2 vs 3 threads bit for bit.
    #[test]
    fn fast_matches_portable_and_any_thread_count() {
        let mut rng = Rng::new(21);
        for (m, k, n) in [
            (10, 640, 1000),
            (1, 7, 5),
            (7, 33, 11),
            (16, 100, 10),
            (5, 8, 4),
        ] {
            let inp: Vec<f32> = (0..m * k).map(|_| rng.symmetric(1.0)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rng.symmetric(1.0)).collect();
            let start: Vec<f32> = (0..m * n).map(|_| rng.symmetric(1.0)).collect();
            let mut want = start.clone();
            for r in 0..m {
                for j in 0..n {
                    want[r * n + j] += dot(&inp[r * k..(r + 1) * k], &w[j * k..(j + 1) * k]);
                }
            }
            let mut first: Option<Vec<u32>> = None;
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut got = start.clone();
                pool.install(|| rows_dot_par(&inp, m, k, &w, n, &mut got, n));
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * k as f32,
                        "{m}×{k}×{n}: {i}: {a} vs {b}"
                    );
                }
                let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                match &first {
                    None => first = Some(bits),
                    Some(f) => assert_eq!(f, &bits, "{m}×{k}×{n}: {threads} threads"),
                }
            }
        }
    }

    /// Against the definition in f64.
    #[test]
    fn matches_the_definition() {
        let mut rng = Rng::new(22);
        let (m, k, n) = (6, 45, 7);
        let inp: Vec<f32> = (0..m * k).map(|_| rng.symmetric(1.0)).collect();
        let w: Vec<f32> = (0..n * k).map(|_| rng.symmetric(1.0)).collect();
        let mut got = vec![0.0f32; m * (n + 2)];
        rows_dot_par(&inp, m, k, &w, n, &mut got, n + 2);
        for r in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|p| inp[r * k + p] as f64 * w[j * k + p] as f64)
                    .sum();
                assert!((got[r * (n + 2) + j] as f64 - want).abs() < 1e-4);
            }
            assert_eq!(got[r * (n + 2) + n], 0.0, "padding columns untouched");
        }
    }

    /// The fused backward against the two GEMMs it replaces, bit for bit, on awkward
    /// sizes (columns not a multiple of 16, outputs past one KC block), with and
    /// without adding into dw, at 1, 2 and 3 threads; and against the definition.
    #[test]
    fn fused_backward_is_bitwise_the_two_gemms() {
        use crate::kernels::gemm::{MatRef, gemm_naive, gemm_par};
        let mut rng = Rng::new(23);
        for (m, n_out, n_in) in [
            (10, 1000, 640),
            (1, 7, 5),
            (7, 300, 33),
            (12, 513, 100),
            (3, 17, 16),
        ] {
            let mut v = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.symmetric(1.0)).collect() };
            let (dout, inp, w, dw0) = (v(m * n_out), v(m * n_in), v(n_out * n_in), v(n_out * n_in));
            for add in [false, true] {
                let (mut dw_want, mut dinp_want) = (dw0.clone(), vec![0.0; m * n_in]);
                gemm_par(
                    1.0,
                    MatRef::new(&dout, m, n_out).t(),
                    MatRef::new(&inp, m, n_in),
                    if add { 1.0 } else { 0.0 },
                    &mut dw_want,
                    n_in,
                );
                gemm_par(
                    1.0,
                    MatRef::new(&dout, m, n_out),
                    MatRef::new(&w, n_out, n_in),
                    0.0,
                    &mut dinp_want,
                    n_in,
                );
                let mut dinp_naive = vec![0.0; m * n_in];
                gemm_naive(
                    1.0,
                    MatRef::new(&dout, m, n_out),
                    MatRef::new(&w, n_out, n_in),
                    0.0,
                    &mut dinp_naive,
                );
                for (a, b) in dinp_want.iter().zip(&dinp_naive) {
                    assert!((a - b).abs() < 1e-4 * (n_out as f32).sqrt(), "{a} vs {b}");
                }
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let (mut dw, mut dinp) = (dw0.clone(), vec![f32::NAN; m * n_in]);
                    pool.install(|| {
                        backward_fused_par(&dout, &inp, m, n_out, n_in, &w, &mut dw, add, &mut dinp)
                    });
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let what = format!("{m}×{n_out}×{n_in} add={add} threads={threads}");
                    assert!(bits(&dw) == bits(&dw_want), "dw: {what}");
                    assert!(bits(&dinp) == bits(&dinp_want), "dinp: {what}");
                }
            }
        }
    }
}
