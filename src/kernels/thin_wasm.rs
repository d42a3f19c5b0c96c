//! [`super::rows_dot_par`]'s loops for WebAssembly with SIMD (`wasm32`, `+simd128`): a
//! Linear layer's forward at a small mini-batch in the browser.
//!
//! The portable loops take one output at a time, row by row: the whole weight (1.15 MB
//! for the seed network's Linear(2880, 100)) streams from memory once per image, and
//! every multiply-add needs two loads. Here, as in the AVX2 loops, the weight rows are
//! the outer loop: a block of 2 weight rows stays in L1 while every input row passes, and
//! 2 input rows × 2 weight rows (8 four-lane accumulators, 4 loads of weights and 2 of
//! inputs per 8 values of k: 14 values, which fit the 15 vector registers V8 allocates on
//! x86-64) share their loads.
//!
//! Each output is summed in the order of the portable [`super::dot`]: eight lanes (two
//! vectors of four) of products added in k order, reduced pairwise, plus the k % 8 tail
//! one by one. In the plain simd128 build each multiply-add is a multiply then an add,
//! as in the portable loops on wasm, so the results are bitwise theirs (tested), on any
//! browser. In the relaxed-SIMD build it is `f32x4_relaxed_madd` (see
//! [`super::super::gemm_wasm::madd`]): fused where the machine has FMA, so the last bits
//! can differ from the portable loops' (tested within rounding of an f64 reference), and
//! are the same run to run on one machine.

use super::super::gemm_wasm::madd;
use super::{OutPtr, reduce};
use core::arch::wasm32::*;

/// Input rows per block.
const RB: usize = 2;
/// Weight rows (output columns) per block.
const NB: usize = 2;

/// Output columns [j0, j1) of every row: out[r, j] += inp[r, :] · w[j, :].
///
/// # Safety
/// [`super::rows_dot_cols`]'s contract: `check` passed for this output, j1 ≤ n, and no
/// other task writes these columns.
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
            let rb = RB.min(m - r);
            // SAFETY: rows r..r+rb of inp and j..j+nb of w exist (check); the block
            // writes out[r.., j..] inside m × ldc, in columns the caller owns.
            unsafe {
                match (rb, nb) {
                    (2, 2) => block::<2, 2>(inp, k, w, r, j, out, ldc),
                    (2, _) => block::<2, 1>(inp, k, w, r, j, out, ldc),
                    (_, 2) => block::<1, 2>(inp, k, w, r, j, out, ldc),
                    _ => block::<1, 1>(inp, k, w, r, j, out, ldc),
                }
            }
            r += rb;
        }
        j += nb;
    }
}

/// Outputs (r..r+R, j..j+N).
///
/// # Safety
/// As [`rows_dot_cols`], for these rows and columns.
#[inline(always)]
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
    // SAFETY: p + 8 ≤ full ≤ k keeps every four-value load inside its row of the slices
    // above; the tail reads t < k of the same rows.
    unsafe {
        let mut acc = [[[f32x4_splat(0.0); 2]; N]; R];
        let mut p = 0;
        while p < full {
            let wv: [[v128; 2]; N] = core::array::from_fn(|q| {
                let s = wp.add(q * k + p);
                [v128_load(s.cast()), v128_load(s.add(4).cast())]
            });
            for (a, row) in acc.iter_mut().enumerate() {
                let s = ip.add(a * k + p);
                let x = [v128_load(s.cast()), v128_load(s.add(4).cast())];
                for (v, wq) in row.iter_mut().zip(&wv) {
                    // lanes[l] = x·y + lanes[l].
                    v[0] = madd(x[0], wq[0], v[0]);
                    v[1] = madd(x[1], wq[1], v[1]);
                }
            }
            p += 8;
        }
        for (a, row) in acc.iter().enumerate() {
            for (q, v) in row.iter().enumerate() {
                let mut lanes = [0.0f32; 8];
                v128_store(lanes.as_mut_ptr().cast(), v[0]);
                v128_store(lanes.as_mut_ptr().add(4).cast(), v[1]);
                let mut tail = 0.0f32;
                for t in full..k {
                    tail += *ip.add(a * k + t) * *wp.add(q * k + t);
                }
                out.add((r + a) * ldc + j + q, reduce(&lanes) + tail);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OutPtr, dot, rows_dot_par};
    use crate::rng::Rng;

    /// Bitwise the portable dot products in the plain simd128 build (in the relaxed-SIMD
    /// build, within rounding of an f64 reference), on awkward sizes: k not a multiple of
    /// 8 (and below 8), odd numbers of rows and columns (blocks of 1), a padded output
    /// whose padding must stay untouched; through [`rows_dot_par`] (which runs these
    /// loops here) and on a column range starting past 0 (bitwise the full range's).
    #[test]
    fn simd128_rows_dot_is_bitwise_the_portable_dot() {
        let bitwise = cfg!(not(target_feature = "relaxed-simd"));
        let mut rng = Rng::new(31);
        for (m, k, n) in [
            (10, 2880, 100),
            (1, 7, 5),
            (7, 33, 11),
            (16, 100, 10),
            (5, 8, 4),
            (3, 1, 3),
            (2, 17, 1),
        ] {
            let inp: Vec<f32> = (0..m * k).map(|_| rng.symmetric(1.0)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rng.symmetric(1.0)).collect();
            let ldc = n + 2;
            let start: Vec<f32> = (0..m * ldc).map(|_| rng.symmetric(1.0)).collect();
            let mut want = start.clone();
            for r in 0..m {
                for j in 0..n {
                    want[r * ldc + j] += dot(&inp[r * k..(r + 1) * k], &w[j * k..(j + 1) * k]);
                }
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            let mut got = start.clone();
            rows_dot_par(&inp, m, k, &w, n, &mut got, ldc);
            if bitwise {
                assert_eq!(bits(&got), bits(&want), "{m}×{k}×{n}");
            }
            for r in 0..m {
                for j in 0..ldc {
                    let (i, y) = (r * ldc + j, start[r * ldc + j]);
                    if j >= n {
                        assert_eq!(got[i].to_bits(), y.to_bits(), "{m}×{k}×{n}: pad ({r}, {j})");
                        continue;
                    }
                    let (a, b) = (&inp[r * k..(r + 1) * k], &w[j * k..(j + 1) * k]);
                    let exact = a
                        .iter()
                        .zip(b)
                        .map(|(&x, &y)| x as f64 * y as f64)
                        .sum::<f64>();
                    let want64 = y as f64 + exact;
                    let tol = 1e-5 * (1.0 + want64.abs()) * (k as f64).sqrt();
                    assert!(
                        (got[i] as f64 - want64).abs() <= tol,
                        "{m}×{k}×{n}: ({r}, {j}): {} vs f64 {want64}",
                        got[i]
                    );
                }
            }

            // Columns 1..n only: column 0 keeps its start value, the others are the
            // full range's.
            let mut part = start.clone();
            // SAFETY: m rows of ldc ≥ n in `part`, borrowed mutably here; 1 ≤ n.
            unsafe { super::rows_dot_cols(&inp, m, k, &w, 1, n, OutPtr(part.as_mut_ptr()), ldc) };
            for r in 0..m {
                for j in 0..ldc {
                    let i = r * ldc + j;
                    let expect = if (1..n).contains(&j) {
                        got[i]
                    } else {
                        start[i]
                    };
                    assert_eq!(
                        part[i].to_bits(),
                        expect.to_bits(),
                        "{m}×{k}×{n}: ({r}, {j})"
                    );
                }
            }
        }
    }
}
