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

/// x·y + acc, fused as the AVX2 loops do. Except on wasm32: WebAssembly has no fused
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
}
