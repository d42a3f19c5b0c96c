//! The GEMM micro-kernel for WebAssembly with SIMD (`wasm32`, `+simd128`): the browser
//! build's [`Kernel::Simd128`](super::gemm::Kernel). Same 6 × 16 tile ([`MR`] × [`NR`])
//! and packed panels as the portable kernel, whose twin it is.
//!
//! Why a kernel of its own: the portable kernel keeps its 6 × 16 tile in 24 four-lane
//! accumulators. wasm has no register limit, but the browser's compiler maps the values to
//! the CPU's registers (15 allocatable xmm registers in V8 on x86-64), so 24 accumulators
//! plus the four loads of B spill on every step of k. Here the tile is computed in two
//! halves of 6 × 8: 12 accumulators, two loads of B and one broadcast of A, which fit. The
//! A panel is read twice (it is small and stays in L1); a tile of at most 8 columns (the
//! last one of a narrow product) skips the second half.
//!
//! Arithmetic, in the plain simd128 build: a multiply, then an add (`f32x4_mul`,
//! `f32x4_add`), never fused. Each element of C is therefore the same sum, rounded the
//! same way, as in the portable kernel: bitwise equal to it (tested), so a run is bitwise
//! repeatable on any browser.
//!
//! In the relaxed-SIMD build (`+simd128,+relaxed-simd`, which web/build.sh makes beside
//! the plain one, and the page loads where the browser validates relaxed SIMD) the
//! multiply-add of the inner loop is `f32x4_relaxed_madd`: one fused multiply-add
//! instruction where the CPU has one (V8 on x86-64 with FMA, on arm64), else a multiply
//! and an add. Which of the two is the engine's choice for the machine, fixed for it: a
//! run is bitwise repeatable on one machine and browser, but its last bits can differ
//! from the plain build's and between machines. So that build is tested against the
//! naive product within rounding, not bitwise. Why: one instruction instead of two in
//! the loop that is 40 % of the page's training time.

use super::gemm::{MR, NR};
use core::arch::wasm32::*;

/// Four-lane vectors per row in one half of the tile.
const HV: usize = 2;
/// Columns in one half of the tile.
const HALF: usize = 4 * HV;
const _: () = assert!(NR == 2 * HALF);

/// a·b + c per lane: the product rounded, then the sum (the portable kernel's rounding).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
pub(super) fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_add(f32x4_mul(a, b), c)
}

/// a·b + c per lane, fused or not as the engine chooses for this machine (see the top).
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
pub(super) fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_relaxed_madd(a, b, c)
}

/// One tile: C[..mr, ..nr] = alpha·(Ap · Bp) + beta·C (C not read when beta = 0), with
/// Ap packed in MR-row panels (kc × MR) and Bp in NR-column panels (kc × NR).
///
/// # Safety
/// `c` must be valid for reads and writes of an mr × nr tile with row stride `ldc`
/// (mr ≤ MR, nr ≤ NR), and not alias `ap` or `bp`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel(
    kc: usize,
    ap: &[f32],
    bp: &[f32],
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    assert!(ap.len() >= kc * MR && bp.len() >= kc * NR);
    assert!(mr <= MR && nr <= NR);
    for h in 0..NR / HALF {
        let j0 = h * HALF;
        if j0 >= nr {
            break;
        }
        // SAFETY: the asserts bound the panel reads (HALF values at j0 of each of kc
        // rows of NR); the tile's columns j0..min(nr, j0 + HALF) are in C by contract.
        unsafe {
            half(
                kc,
                ap,
                bp,
                j0,
                c.add(j0),
                ldc,
                mr,
                (nr - j0).min(HALF),
                alpha,
                beta,
            )
        }
    }
}

/// Columns j0..j0 + HALF of the tile (the first `nr` of them stored).
///
/// # Safety
/// As [`kernel`], for the tile's columns from j0 (`c` points at column j0), nr ≤ HALF;
/// `ap` holds kc·MR values and `bp` kc·NR.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn half(
    kc: usize,
    ap: &[f32],
    bp: &[f32],
    j0: usize,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY: every load reads HALF values at j0 + NR·p (p < kc) of bp, or one value at
    // MR·p + i of ap: inside the lengths the caller checked. The stores and the loads of
    // C stay in the mr × nr tile.
    unsafe {
        let mut acc = [[f32x4_splat(0.0); HV]; MR];
        let (mut a, mut b) = (ap.as_ptr(), bp.as_ptr().add(j0));
        for _ in 0..kc {
            let bv: [v128; HV] = core::array::from_fn(|v| v128_load(b.add(4 * v).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = f32x4_splat(*a.add(i));
                for (r, &bv) in row.iter_mut().zip(&bv) {
                    // acc += a·b, in k order (the portable order).
                    *r = madd(ai, bv, *r);
                }
            }
            a = a.add(MR);
            b = b.add(NR);
        }
        let (va, vb) = (f32x4_splat(alpha), f32x4_splat(beta));
        if nr == HALF {
            for (i, row) in acc.iter().enumerate().take(mr) {
                let ci = c.add(i * ldc);
                for (v, &t) in row.iter().enumerate() {
                    let p = ci.add(4 * v).cast::<v128>();
                    let x = f32x4_mul(va, t);
                    // beta·c + alpha·sum, each product rounded: as the portable kernel.
                    let r = if beta == 0.0 {
                        x
                    } else {
                        f32x4_add(f32x4_mul(vb, v128_load(p)), x)
                    };
                    v128_store(p, r);
                }
            }
        } else {
            let mut tile = [[0.0f32; HALF]; MR];
            for (dst, row) in tile.iter_mut().zip(&acc) {
                for (v, &t) in row.iter().enumerate() {
                    v128_store(dst.as_mut_ptr().add(4 * v).cast(), t);
                }
            }
            for (i, row) in tile.iter().enumerate().take(mr) {
                for (j, &t) in row.iter().enumerate().take(nr) {
                    let p = c.add(i * ldc + j);
                    *p = if beta == 0.0 {
                        alpha * t
                    } else {
                        beta * *p + alpha * t
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::{KC, Kernel, MatRef, PackedA, gemm_naive, gemm_packed_a, gemm_with};
    use crate::rng::Rng;

    fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.symmetric(1.0)).collect()
    }

    /// Bitwise the portable kernel's results in the plain simd128 build (in the
    /// relaxed-SIMD build, whose multiply-adds may be fused, only within rounding of the
    /// naive product), on awkward sizes (1, 3, 17: not multiples of the tile, or of its
    /// halves), k past one KC block, every transpose, alpha and beta, a padded C (NaN past
    /// each row: a store outside the product would show), and the packed-A path (bitwise
    /// the unpacked one in both builds); and within rounding of the naive product.
    #[test]
    fn simd128_is_bitwise_the_portable_kernel() {
        let bitwise = cfg!(not(target_feature = "relaxed-simd"));
        let mut rng = Rng::new(29);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 17, 5),
            (7, 3, 8),
            (6, 5, 9),
            (17, 33, 16),
            (13, KC + 1, 31),
            (20, 25, 576),
            (10, 100, 17),
            (29, 2 * KC + 3, 97),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a_data = random(&mut rng, m * k);
                let b_data = random(&mut rng, k * n);
                let a = if ta {
                    MatRef::new(&a_data, k, m).t()
                } else {
                    MatRef::new(&a_data, m, k)
                };
                let b = if tb {
                    MatRef::new(&b_data, n, k).t()
                } else {
                    MatRef::new(&b_data, k, n)
                };
                let ldc = n + 3;
                let mut init = random(&mut rng, m * ldc);
                for row in init.chunks_exact_mut(ldc) {
                    row[n..].fill(f32::NAN);
                }
                for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (0.5, 0.75)] {
                    let what =
                        format!("m={m} k={k} n={n} ta={ta} tb={tb} alpha={alpha} beta={beta}");
                    let mut want = init.clone();
                    gemm_with(Kernel::Portable, alpha, a, b, beta, &mut want, ldc);
                    let mut got = init.clone();
                    gemm_with(Kernel::Simd128, alpha, a, b, beta, &mut got, ldc);
                    assert!(
                        !bitwise || bits(&got) == bits(&want),
                        "simd128 vs portable: {what}"
                    );
                    let mut packed = PackedA::new();
                    packed.pack_for(Kernel::Simd128, a);
                    let mut via_packed = init.clone();
                    gemm_packed_a(alpha, &packed, b, beta, &mut via_packed, ldc);
                    assert!(bits(&via_packed) == bits(&got), "simd128 packed A: {what}");
                    // Nothing stored past the product (the NaN padding stays).
                    let pad_kept = got
                        .chunks_exact(ldc)
                        .all(|r| r[n..].iter().all(|x| x.is_nan()));
                    assert!(pad_kept, "simd128 wrote the padding: {what}");

                    // The reference, on a C without padding.
                    let mut c0: Vec<f32> = init
                        .chunks_exact(ldc)
                        .flat_map(|row| row[..n].to_vec())
                        .collect();
                    gemm_naive(alpha, a, b, beta, &mut c0);
                    for i in 0..m {
                        for j in 0..n {
                            let (x, y) = (got[i * ldc + j], c0[i * n + j]);
                            assert!(
                                (x - y).abs() <= 1e-4 * (1.0 + y.abs()) * (k as f32).sqrt(),
                                "{what}: ({i}, {j}): simd128 {x} naive {y}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn simd128_is_the_kernel_here() {
        assert_eq!(Kernel::available(), vec![Kernel::Simd128, Kernel::Portable]);
        assert_eq!(super::super::gemm::kernel(), Kernel::Simd128);
        let name = if cfg!(target_feature = "relaxed-simd") {
            "relaxed-simd"
        } else {
            "simd128"
        };
        assert_eq!(Kernel::Simd128.name(), name);
    }
}
