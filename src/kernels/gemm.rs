//! Matrix multiply, C = alpha·A·B + beta·C, on row-major slices with explicit strides
//! (so a transpose is only a stride swap, never a copy).
//!
//! The fast path is the `matrixmultiply` crate (packed, cache-blocked, AVX2/FMA
//! micro-kernels chosen at run time). It is called single-threaded: its result then does
//! not depend on the thread count, which the bitwise-reproducibility promise needs;
//! parallelism comes from the layers splitting the batch instead.

/// A strided view of a matrix: `rows × cols`, element (i, j) at `i*rs + j*cs`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, by swapping strides.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn last_index(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs
        }
    }
}

/// C (`a.rows × b.cols`, row-major, contiguous) = alpha·A·B + beta·C.
pub fn gemm(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: inner dimensions differ");
    assert!(c.len() >= m * n, "gemm: output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k > 0 {
        assert!(a.last_index() < a.data.len() && b.last_index() < b.data.len());
    }
    // SAFETY: the asserts above prove every index matrixmultiply touches lies inside the
    // three slices (A: (m-1)·rs + (k-1)·cs, B likewise, C: m·n contiguous); C is a
    // unique &mut, so it cannot alias A or B.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The reference: three loops, accumulating in f64. Slow, obviously right.
pub fn gemm_naive(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows);
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c[i * n + j] as f64
            };
            c[i * n + j] = (alpha as f64 * acc + old) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.symmetric(1.0)).collect()
    }

    #[test]
    fn fast_matches_naive_on_awkward_sizes_and_transposes() {
        let mut rng = Rng::new(11);
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 17, 5),
            (17, 3, 33),
            (20, 25, 576),
            (10, 640, 100),
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
                let init = random(&mut rng, m * n);
                let (mut fast, mut slow) = (init.clone(), init);
                gemm(0.5, a, b, 1.0, &mut fast);
                gemm_naive(0.5, a, b, 1.0, &mut slow);
                for (i, (x, y)) in fast.iter().zip(&slow).enumerate() {
                    assert!(
                        (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                        "m={m} k={k} n={n} ta={ta} tb={tb}: index {i}: fast {x} naive {y}"
                    );
                }
            }
        }
    }
}
