//! Matrix multiply, C = alpha·A·B + beta·C, on row-major slices with explicit strides
//! (so a transpose is only a stride swap, never a copy).
//!
//! seqnet's own packed GEMM (the BLIS scheme): A is packed into panels of [`MR`] rows
//! and B into panels of [`NR`] columns, [`KC`] deep, and a register-blocked micro-kernel
//! computes each MR × NR tile of C. The micro-kernel is chosen once per process at run
//! time ([`kernel`]): AVX-512F on x86-64 CPUs that have it ([`MR_512`] × [`NR_512`]
//! tile in zmm registers), else AVX2 + FMA (6 × 16 tile, 12 ymm accumulators), else
//! portable Rust that the compiler vectorises for the baseline target. The environment
//! variable `SEQNET_KERNEL=avx2` (or `portable`) caps the choice, for A/B runs. The two
//! SIMD kernels give bitwise equal results (see [`Kernel`]).
//!
//! Reproducibility: every element of C is the sum over k in increasing order, in blocks
//! of [`KC`] (a constant), whatever the sizes of the other dimensions and however the
//! rows or columns of C are split between threads ([`gemm_par`] splits at multiples of
//! MR or NR, so each tile is computed by the same instructions). The result therefore
//! does not depend on the thread count.

use std::cell::RefCell;

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

    /// A `rows × cols` matrix whose rows start `rs` values apart (row-major, padded).
    pub fn with_row_stride(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            rs,
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

    /// Columns `start..start + len` of this matrix.
    pub fn cols_range(self, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= self.cols);
        let off = if len == 0 { 0 } else { start * self.cs };
        MatRef {
            data: &self.data[off.min(self.data.len())..],
            cols: len,
            ..self
        }
    }

    /// Rows `start..start + len` of this matrix.
    pub fn rows_range(self, start: usize, len: usize) -> Self {
        debug_assert!(start + len <= self.rows);
        let off = if len == 0 { 0 } else { start * self.rs };
        MatRef {
            data: &self.data[off.min(self.data.len())..],
            rows: len,
            ..self
        }
    }

    fn last_index(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs
        }
    }

    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// Rows of the AVX2/FMA and portable micro-kernels' tile.
pub const MR: usize = 6;
/// Columns of the AVX2/FMA and portable micro-kernels' tile.
pub const NR: usize = 16;
/// Rows of the AVX-512 micro-kernel's tile. 10 × 32 (20 of the 32 zmm registers
/// accumulate, enough to hide the FMA latency) fills the tiles of the book networks'
/// products exactly, where 12 or 14 rows would leave up to a sixth of each tile idle:
/// their sides are 10, 40, 100 and 500 rows by 64 and 640 columns.
pub const MR_512: usize = 10;
/// Columns of the AVX-512 micro-kernel's tile (a multiple of 16: one zmm register holds
/// 16 values).
pub const NR_512: usize = 32;
/// Depth of one packed block: the k-sum is split at multiples of this, whatever the
/// micro-kernel.
pub const KC: usize = 256;
/// Rows of A packed at once (kept in L2), rounded down to a multiple of the tile's rows.
const MC: usize = 120;
/// Columns of B packed at once, rounded down to a multiple of the tile's columns.
const NC: usize = 16 * 256;

/// C (`a.rows × b.cols`, row-major, contiguous) = alpha·A·B + beta·C. With beta = 0, C
/// is not read (it may hold anything, even NaN).
pub fn gemm(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32]) {
    gemm_ldc(alpha, a, b, beta, c, b.cols);
}

/// [`gemm`] with C's rows `ldc` values apart.
pub fn gemm_ldc(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    gemm_with(kernel(), alpha, a, b, beta, c, ldc);
}

/// [`gemm_ldc`] on a micro-kernel of the caller's choice (one of
/// [`Kernel::available`]), for tests and A/B measurements.
pub fn gemm_with(
    kern: Kernel,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(
        kern.runs_here(),
        "gemm: this CPU cannot run the {kern:?} kernel"
    );
    let (m, k, n) = check(&a, &b, c.len(), ldc);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `check` proved every index of A, B and C (m rows of ldc ≥ n) in bounds;
    // C is a unique &mut, so it cannot alias A or B; the CPU runs `kern` (asserted).
    unsafe { gemm_raw(kern, m, n, k, alpha, &a, &b, beta, c.as_mut_ptr(), ldc) }
}

/// [`gemm_ldc`] with the rows or columns of C split between the threads of the current
/// rayon pool. The result is bitwise the same as [`gemm_ldc`]'s for any thread count.
pub fn gemm_par(alpha: f32, a: MatRef, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    let (m, k, n) = check(&a, &b, c.len(), ldc);
    if m == 0 || n == 0 {
        return;
    }
    let kern = kernel();
    let (tm, tn) = kern.tile();
    // On wasm32-unknown-unknown (no threads) rayon-core's global pool cannot spawn its
    // workers and falls back to a one-thread pool made of the calling thread
    // (`default_global_registry` in rayon-core's registry.rs, since rayon-core 1.11), so
    // this is 1 and the product runs here; par_iter, join and scope elsewhere in the crate
    // likewise run inline. A pool built with ThreadPoolBuilder gets no such fallback: its
    // build() fails there.
    let threads = rayon::current_num_threads();
    // Below ~0.3 MFLOP a fork costs more than it saves.
    if threads <= 1 || m * n * k.max(1) < 150_000 {
        // SAFETY: as in gemm_with.
        unsafe { gemm_raw(kern, m, n, k, alpha, &a, &b, beta, c.as_mut_ptr(), ldc) };
        return;
    }
    let c_ptr = SendPtr(c.as_mut_ptr());
    // Split the larger dimension (the other operand's packing is repeated per part).
    if n.div_ceil(tn) >= m.div_ceil(tm) {
        let parts = split(n.div_ceil(tn), threads);
        rayon::scope(|s| {
            for (start, len) in parts {
                let (j0, j1) = (start * tn, ((start + len) * tn).min(n));
                let (a, b) = (&a, b.cols_range(j0, j1 - j0));
                s.spawn(move |_| {
                    // SAFETY: parts cover disjoint column ranges of C, all in bounds.
                    unsafe {
                        gemm_raw(
                            kern,
                            m,
                            j1 - j0,
                            k,
                            alpha,
                            a,
                            &b,
                            beta,
                            c_ptr.get().add(j0),
                            ldc,
                        )
                    }
                });
            }
        });
    } else {
        let parts = split(m.div_ceil(tm), threads);
        rayon::scope(|s| {
            for (start, len) in parts {
                let (i0, i1) = (start * tm, ((start + len) * tm).min(m));
                let (a, b) = (a.rows_range(i0, i1 - i0), &b);
                s.spawn(move |_| {
                    // SAFETY: parts cover disjoint row ranges of C, all in bounds.
                    unsafe {
                        gemm_raw(
                            kern,
                            i1 - i0,
                            n,
                            k,
                            alpha,
                            &a,
                            b,
                            beta,
                            c_ptr.get().add(i0 * ldc),
                            ldc,
                        )
                    }
                });
            }
        });
    }
}

/// `units` split into at most `parts` contiguous runs of near-equal length.
fn split(units: usize, parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.min(units).max(1);
    let (q, r) = (units / parts, units % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 0..parts {
        let len = q + usize::from(p < r);
        out.push((start, len));
        start += len;
    }
    out
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint parts of one output to scoped threads.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole Send wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

fn check(a: &MatRef, b: &MatRef, c_len: usize, ldc: usize) -> (usize, usize, usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: inner dimensions differ");
    assert!(ldc >= n, "gemm: ldc smaller than the row length");
    if m == 0 || n == 0 {
        return (m, k, n);
    }
    assert!(c_len >= (m - 1) * ldc + n, "gemm: output too small");
    if k > 0 {
        assert!(
            a.last_index() < a.data.len() && b.last_index() < b.data.len(),
            "gemm: a view reaches past its slice"
        );
    }
    (m, k, n)
}

thread_local! {
    /// Packed panels of A and B, reused across calls on this thread.
    static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A micro-kernel. Each computes every element of C the same way: the products
/// a[i, p]·b[p, j] summed over p in increasing order, in blocks of [`KC`], then
/// combined with alpha and beta. The SIMD kernels (AVX2/FMA and AVX-512) fuse each
/// multiply-add and combine as beta·c + (alpha·sum) with one fused multiply-add, so
/// their results are bitwise equal whatever their tiles; the portable kernel rounds
/// each product before adding it (fused multiply-adds are slow without FMA hardware),
/// so its last bits can differ from theirs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kernel {
    /// Plain Rust that the compiler vectorises for the baseline target: 6 × 16 tile.
    Portable,
    /// AVX2 and FMA: 6 × 16 tile, 12 ymm accumulators.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX-512F (with AVX2 and FMA): [`MR_512`] × [`NR_512`] tile in zmm registers.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// WebAssembly SIMD (simd128): 6 × 16 tile in two halves, bitwise equal to the
    /// portable kernel; built with relaxed-simd, its multiply-adds may be fused and its
    /// name is "relaxed-simd" (see gemm_wasm.rs).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
}

impl Kernel {
    /// Rows and columns of the kernel's tile of C.
    pub const fn tile(self) -> (usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => (MR_512, NR_512),
            _ => (MR, NR),
        }
    }

    /// The name `SEQNET_KERNEL` takes: "portable", "avx2" or "avx512".
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => "avx2",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => "avx512",
            #[cfg(all(
                target_arch = "wasm32",
                target_feature = "simd128",
                not(target_feature = "relaxed-simd")
            ))]
            Kernel::Simd128 => "simd128",
            // The same kernel with fused multiply-adds where the engine has them.
            #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
            Kernel::Simd128 => "relaxed-simd",
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn runs_here(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => Kernel::Avx2Fma.runs_here() && is_x86_feature_detected!("avx512f"),
            // Compiled in only for a wasm target with simd128, which every engine running
            // the module then has (it would not validate otherwise).
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Kernel::Simd128 => true,
        }
    }

    /// The kernels this CPU can run, fastest first.
    pub fn available() -> Vec<Kernel> {
        let all = [
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Kernel::Simd128,
            Kernel::Portable,
        ];
        all.into_iter().filter(|k| k.runs_here()).collect()
    }
}

/// The micro-kernel this process runs (chosen once): the fastest this CPU has, AVX-512,
/// then AVX2/FMA, then portable. The environment variable `SEQNET_KERNEL` (`avx512`,
/// `avx2` or `portable`) caps the choice, for A/B measurements: a kernel the CPU lacks
/// falls back to the next one down, and any other value is ignored.
/// (`SEQNET_PORTABLE_KERNELS`, set to anything, still means `portable`.)
pub fn kernel() -> Kernel {
    use std::sync::OnceLock;
    static CHOSEN: OnceLock<Kernel> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let available = Kernel::available();
        let cap = if std::env::var_os("SEQNET_PORTABLE_KERNELS").is_some() {
            Some(Kernel::Portable)
        } else {
            std::env::var("SEQNET_KERNEL").ok().and_then(|v| {
                [
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx512,
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx2Fma,
                    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                    Kernel::Simd128,
                    Kernel::Portable,
                ]
                .into_iter()
                .find(|k| k.name() == v.trim().to_ascii_lowercase())
            })
        };
        // `available` is fastest first, and the order of the enum's variants is
        // slowest first; the cap keeps those at or below it.
        available
            .into_iter()
            .find(|k| cap.is_none_or(|c| rank(*k) <= rank(c)))
            .unwrap_or(Kernel::Portable)
    })
}

/// Kernels by speed: portable 0, AVX2 1, AVX-512 2.
fn rank(k: Kernel) -> u8 {
    match k {
        Kernel::Portable => 0,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2Fma => 1,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => 2,
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Kernel::Simd128 => 1,
    }
}

/// # Safety
/// C must be valid for writes at `i*ldc + j` for i < m, j < n, and not alias A or B; A
/// and B must hold every element their views describe; the CPU must run `kern`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    kern: Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &MatRef,
    b: &MatRef,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    if k == 0 {
        // C = beta·C.
        for i in 0..m {
            for j in 0..n {
                // SAFETY: in bounds by the contract.
                unsafe {
                    let p = c.add(i * ldc + j);
                    *p = if beta == 0.0 { 0.0 } else { beta * *p };
                }
            }
        }
        return;
    }
    // SAFETY: the caller's contract.
    unsafe {
        match kern {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                blocked::<MR_512, NR_512, _>(kern, m, n, k, alpha, a, b, beta, c, ldc)
            }
            _ => blocked::<MR, NR, _>(kern, m, n, k, alpha, a, b, beta, c, ldc),
        }
    }
}

/// The BLIS loops for a TM × TN tile (the tile of `kern`).
///
/// # Safety
/// As [`gemm_raw`], with k > 0.
#[allow(clippy::too_many_arguments)]
unsafe fn blocked<const TM: usize, const TN: usize, B: PackB>(
    kern: Kernel,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &MatRef,
    b: &B,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    debug_assert_eq!(kern.tile(), (TM, TN));
    let (mc_blk, nc_blk) = ((MC / TM).max(1) * TM, (NC / TN).max(1) * TN);
    // With several blocks of rows, each block of B (KC × NC) serves them all, so it is
    // packed whole; with one, B is packed a panel at a time just before the tiles that
    // use it, so the panel (KC × TN) stays in L1. Either way each tile sees the same
    // panel, so the result is the same.
    let whole_b = m > mc_blk;
    PACK.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let (ap, bp) = &mut *bufs;
        let nc_max = if whole_b {
            n.min(nc_blk).div_ceil(TN) * TN
        } else {
            TN
        };
        let mc_max = m.min(mc_blk).div_ceil(TM) * TM;
        let kc_max = k.min(KC);
        if bp.len() < kc_max * nc_max {
            bp.resize(kc_max * nc_max, 0.0);
        }
        if ap.len() < kc_max * mc_max {
            ap.resize(kc_max * mc_max, 0.0);
        }
        for jc in (0..n).step_by(nc_blk) {
            let nc = (n - jc).min(nc_blk);
            for pc in (0..k).step_by(KC) {
                let kc = (k - pc).min(KC);
                let beta_k = if pc == 0 { beta } else { 1.0 };
                if whole_b {
                    for (jr, panel) in (0..nc).step_by(TN).zip(bp.chunks_exact_mut(kc * TN)) {
                        b.pack_panel::<TN>(kern, pc, kc, jc + jr, (nc - jr).min(TN), panel);
                    }
                }
                for ic in (0..m).step_by(mc_blk) {
                    let mc = (m - ic).min(mc_blk);
                    pack_a::<TM>(a, ic, mc, pc, kc, ap);
                    for jr in (0..nc).step_by(TN) {
                        let nr = (nc - jr).min(TN);
                        let bpanel = if whole_b {
                            &bp[jr * kc..jr * kc + kc * TN]
                        } else {
                            b.pack_panel::<TN>(kern, pc, kc, jc + jr, nr, &mut bp[..kc * TN]);
                            &bp[..kc * TN]
                        };
                        for ir in (0..mc).step_by(TM) {
                            let mr = (mc - ir).min(TM);
                            let apanel = &ap[ir * kc..ir * kc + kc * TM];
                            // SAFETY: the tile (ic+ir.., jc+jr..) of mr × nr lies in C.
                            unsafe {
                                let ct = c.add((ic + ir) * ldc + jc + jr);
                                micro(kern, kc, apanel, bpanel, ct, ldc, mr, nr, alpha, beta_k);
                            }
                        }
                    }
                }
            }
        }
    });
}

/// The B operand of a product, handed to the micro-kernel as panels: a matrix in memory
/// ([`MatRef`]), or one made on the fly and never stored whole (an image's im2col
/// columns or their transpose: [`crate::kernels::im2col::ImageCols`]).
pub trait PackB {
    /// Rows (the product's inner dimension) and columns.
    fn shape(&self) -> (usize, usize);
    /// Packs rows `pc..pc+kc` and columns `j0..j0+cols` (cols ≤ TN) into one panel:
    /// `panel[p·TN + j]` = B(pc + p, j0 + j), zero for j ≥ cols; `panel` holds kc·TN
    /// values. `kern` says which SIMD the copies may use.
    fn pack_panel<const TN: usize>(
        &self,
        kern: Kernel,
        pc: usize,
        kc: usize,
        j0: usize,
        cols: usize,
        panel: &mut [f32],
    );
}

impl PackB for MatRef<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    fn pack_panel<const TN: usize>(
        &self,
        kern: Kernel,
        pc: usize,
        kc: usize,
        j0: usize,
        cols: usize,
        panel: &mut [f32],
    ) {
        pack_b::<TN>(kern, self, pc, kc, j0, cols, panel);
    }
}

/// A matrix A packed once into the micro-kernel's panels, for many products A·B with
/// the same A (a layer's weight, multiplied with every image of a batch).
#[derive(Clone, Debug)]
pub struct PackedA {
    data: Vec<f32>,
    m: usize,
    k: usize,
    /// The kernel whose tile the panels are cut for.
    kern: Kernel,
}

impl Default for PackedA {
    fn default() -> Self {
        PackedA {
            data: Vec::new(),
            m: 0,
            k: 0,
            kern: Kernel::Portable,
        }
    }
}

impl PackedA {
    pub fn new() -> Self {
        PackedA::default()
    }

    /// Packs `a` for this process's [`kernel`], reusing the allocation.
    pub fn pack(&mut self, a: MatRef) {
        self.pack_for(kernel(), a);
    }

    /// Packs `a` for the micro-kernel `kern` (one of [`Kernel::available`]).
    pub fn pack_for(&mut self, kern: Kernel, a: MatRef) {
        assert!(
            kern.runs_here(),
            "gemm: this CPU cannot run the {kern:?} kernel"
        );
        let (m, k) = (a.rows, a.cols);
        if m > 0 && k > 0 {
            assert!(
                a.last_index() < a.data.len(),
                "gemm: a view reaches past its slice"
            );
        }
        let tm = kern.tile().0;
        let mpad = m.div_ceil(tm) * tm;
        self.data.resize(mpad * k, 0.0);
        self.m = m;
        self.k = k;
        self.kern = kern;
        for pc in (0..k).step_by(KC) {
            let kc = (k - pc).min(KC);
            let dst = &mut self.data[pc * mpad..];
            match tm {
                MR => pack_a::<MR>(&a, 0, m, pc, kc, dst),
                MR_512 => pack_a::<MR_512>(&a, 0, m, pc, kc, dst),
                _ => unreachable!("a tile of {tm} rows"),
            }
        }
    }

    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn cols(&self) -> usize {
        self.k
    }
}

/// C (`a.rows() × b.cols`, rows `ldc` apart) = alpha·A·B + beta·C with A packed
/// beforehand, on the kernel A was packed for. Bitwise the same as [`gemm_with`] on the
/// unpacked A and that kernel.
pub fn gemm_packed_a(alpha: f32, a: &PackedA, b: MatRef, beta: f32, c: &mut [f32], ldc: usize) {
    if a.m > 0 && a.k > 0 && b.rows > 0 && b.cols > 0 {
        assert!(
            b.last_index() < b.data.len(),
            "gemm: a view reaches past its slice"
        );
    }
    gemm_packed_a_from(alpha, a, &b, beta, c, ldc);
}

/// [`gemm_packed_a`] with B given by a [`PackB`] (for example an image's columns, packed
/// straight from the image). Bitwise the same as [`gemm_packed_a`] on B written out.
pub fn gemm_packed_a_from<B: PackB>(
    alpha: f32,
    a: &PackedA,
    b: &B,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let (m, k, n) = (a.m, a.k, b.shape().1);
    assert_eq!(k, b.shape().0, "gemm: inner dimensions differ");
    assert!(ldc >= n, "gemm: ldc smaller than the row length");
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: output too small");
    let kern = a.kern;
    let empty = MatRef::new(&[], m, 0);
    if k == 0 {
        // SAFETY: k = 0 touches only C, checked above.
        unsafe {
            gemm_raw(
                kern,
                m,
                n,
                0,
                alpha,
                &empty,
                &empty,
                beta,
                c.as_mut_ptr(),
                ldc,
            )
        };
        return;
    }
    // SAFETY: C holds m rows of ldc ≥ n (checked above) and no view aliases it; B packs
    // its own panels in safe code; `pack_for` checked that the CPU runs `kern`.
    unsafe {
        match kern {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                packed_blocked::<MR_512, NR_512, B>(alpha, a, b, beta, c.as_mut_ptr(), ldc)
            }
            _ => packed_blocked::<MR, NR, B>(alpha, a, b, beta, c.as_mut_ptr(), ldc),
        }
    }
}

/// [`gemm_ldc`] with B given by a [`PackB`]: bitwise the same as [`gemm_ldc`] on B
/// written out.
pub fn gemm_from<B: PackB>(alpha: f32, a: MatRef, b: &B, beta: f32, c: &mut [f32], ldc: usize) {
    let kern = kernel();
    let (m, k, n) = (a.rows, a.cols, b.shape().1);
    assert_eq!(k, b.shape().0, "gemm: inner dimensions differ");
    assert!(ldc >= n, "gemm: ldc smaller than the row length");
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: output too small");
    if k == 0 {
        let empty = MatRef::new(&[], m, 0);
        // SAFETY: k = 0 touches only C, checked above.
        unsafe {
            gemm_raw(
                kern,
                m,
                n,
                0,
                alpha,
                &empty,
                &empty,
                beta,
                c.as_mut_ptr(),
                ldc,
            )
        };
        return;
    }
    assert!(
        a.last_index() < a.data.len(),
        "gemm: a view reaches past its slice"
    );
    // SAFETY: A's view is in bounds and C holds m rows of ldc ≥ n (checked above); C is
    // a unique &mut; B packs its own panels in safe code; `kernel()` runs here.
    unsafe {
        match kern {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                blocked::<MR_512, NR_512, B>(kern, m, n, k, alpha, &a, b, beta, c.as_mut_ptr(), ldc)
            }
            _ => blocked::<MR, NR, B>(kern, m, n, k, alpha, &a, b, beta, c.as_mut_ptr(), ldc),
        }
    }
}

/// The loops of [`gemm_packed_a`] for a TM × TN tile (the tile of `a.kern`).
///
/// # Safety
/// As [`gemm_packed_a`] once its checks passed, with k > 0.
unsafe fn packed_blocked<const TM: usize, const TN: usize, B: PackB>(
    alpha: f32,
    a: &PackedA,
    b: &B,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    let (m, k, n, kern) = (a.m, a.k, b.shape().1, a.kern);
    debug_assert_eq!(kern.tile(), (TM, TN));
    let mpad = m.div_ceil(TM) * TM;
    let nc_blk = (NC / TN).max(1) * TN;
    PACK.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let bp = &mut bufs.1;
        if bp.len() < k.min(KC) * TN {
            bp.resize(k.min(KC) * TN, 0.0);
        }
        // A is packed already, so B is packed one panel at a time, just before the
        // tiles that use it: the panel (KC × TN, 16 KB) stays in L1, where a whole
        // block of B (KC × NC) would not fit even in L2 for a large image's columns.
        for jc in (0..n).step_by(nc_blk) {
            let nc = (n - jc).min(nc_blk);
            for pc in (0..k).step_by(KC) {
                let kc = (k - pc).min(KC);
                let beta_k = if pc == 0 { beta } else { 1.0 };
                let ablock = &a.data[pc * mpad..pc * mpad + kc * mpad];
                for jr in (0..nc).step_by(TN) {
                    let nr = (nc - jr).min(TN);
                    b.pack_panel::<TN>(kern, pc, kc, jc + jr, nr, &mut bp[..kc * TN]);
                    let bpanel = &bp[..kc * TN];
                    for ir in (0..m).step_by(TM) {
                        let mr = (m - ir).min(TM);
                        let apanel = &ablock[ir * kc..ir * kc + kc * TM];
                        // SAFETY: the tile (ir.., jc+jr..) of mr × nr lies in C (the
                        // caller's checks), which no view aliases.
                        unsafe {
                            let ct = c.add(ir * ldc + jc + jr);
                            micro(kern, kc, apanel, bpanel, ct, ldc, mr, nr, alpha, beta_k);
                        }
                    }
                }
            }
        }
    });
}

/// Packs rows `ic..ic+mc`, columns `pc..pc+kc` of A into TM-row panels: panel r holds,
/// for each p, the TM values A(ic + r·TM + i, pc + p), zero past the last row.
fn pack_a<const TM: usize>(a: &MatRef, ic: usize, mc: usize, pc: usize, kc: usize, ap: &mut [f32]) {
    for (r, panel) in ap[..mc.div_ceil(TM) * TM * kc]
        .chunks_exact_mut(TM * kc)
        .enumerate()
    {
        let i0 = ic + r * TM;
        let rows = (mc - r * TM).min(TM);
        if rows == TM && a.rs == 1 {
            // Column-contiguous A (a transposed row-major matrix): TM values per p.
            for (p, dst) in panel.chunks_exact_mut(TM).enumerate() {
                let s = i0 + (pc + p) * a.cs;
                let dst: &mut [f32; TM] = dst.try_into().expect("TM values");
                *dst = a.data[s..s + TM].try_into().expect("TM values");
            }
        } else if a.cs == 1 {
            // Row-major A: one stream per row (a last, partial panel repeats its final
            // row; those products land in rows of the tile that are never stored).
            let srcs: [&[f32]; TM] = std::array::from_fn(|i| {
                let s = (i0 + i.min(rows - 1)) * a.rs + pc;
                &a.data[s..s + kc]
            });
            for (p, dst) in panel.chunks_exact_mut(TM).enumerate() {
                for (d, src) in dst.iter_mut().zip(&srcs) {
                    *d = src[p];
                }
            }
        } else {
            for (p, dst) in panel.chunks_exact_mut(TM).enumerate() {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = if i < rows { a.at(i0 + i, pc + p) } else { 0.0 };
                }
            }
        }
    }
}

/// Packs rows `pc..pc+kc`, columns `jc..jc+nc` of B into TN-column panels: panel r holds,
/// for each p, the TN values B(pc + p, jc + r·TN + j), zero past the last column.
/// `kern` says whether AVX2 may be used for the copies.
fn pack_b<const TN: usize>(
    kern: Kernel,
    b: &MatRef,
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    bp: &mut [f32],
) {
    for (r, panel) in bp[..nc.div_ceil(TN) * TN * kc]
        .chunks_exact_mut(TN * kc)
        .enumerate()
    {
        let j0 = jc + r * TN;
        let cols = (nc - r * TN).min(TN);
        if b.cs == 1 && cols == TN {
            // Fixed-length copies: inlined moves, not memcpy calls.
            for (p, dst) in panel.chunks_exact_mut(TN).enumerate() {
                let s = (pc + p) * b.rs + j0;
                let dst: &mut [f32; TN] = dst.try_into().expect("TN values");
                *dst = b.data[s..s + TN].try_into().expect("TN values");
            }
        } else if b.cs == 1 {
            for (p, dst) in panel.chunks_exact_mut(TN).enumerate() {
                let s = (pc + p) * b.rs + j0;
                for (d, &v) in dst.iter_mut().zip(&b.data[s..s + cols]) {
                    *d = v;
                }
                dst[cols..].fill(0.0);
            }
        } else if b.rs == 1 && cols == TN {
            // Row-contiguous Bᵀ (a transposed row-major matrix): TN sequential streams,
            // one per column, written TN values at a time.
            let srcs: [&[f32]; TN] = std::array::from_fn(|j| {
                let s = (j0 + j) * b.cs + pc;
                &b.data[s..s + kc]
            });
            #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
            let mut done = 0;
            #[cfg(target_arch = "x86_64")]
            if kern != Kernel::Portable {
                // SAFETY: AVX2 is present (both SIMD kernels are chosen only with it);
                // the streams hold kc values each and the panel kc·TN.
                done = unsafe { avx2::transpose_streams(&srcs, kc, panel) };
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = kern;
            for (p, dst) in panel.chunks_exact_mut(TN).enumerate().skip(done) {
                for (d, src) in dst.iter_mut().zip(&srcs) {
                    *d = src[p];
                }
            }
        } else if b.rs == 1 {
            // The same for a last, partial panel.
            let srcs: Vec<&[f32]> = (0..cols)
                .map(|j| {
                    let s = (j0 + j) * b.cs + pc;
                    &b.data[s..s + kc]
                })
                .collect();
            for (p, dst) in panel.chunks_exact_mut(TN).enumerate() {
                for (d, src) in dst.iter_mut().zip(&srcs) {
                    *d = src[p];
                }
                dst[cols..].fill(0.0);
            }
        } else {
            for (p, dst) in panel.chunks_exact_mut(TN).enumerate() {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = if j < cols { b.at(pc + p, j0 + j) } else { 0.0 };
                }
            }
        }
    }
}

/// One tile: C[..mr, ..nr] = alpha·(Ap · Bp) + beta·C (C not read when beta = 0), with
/// Ap and Bp cut for `kern`'s tile.
///
/// # Safety
/// `c` must be valid for an mr × nr tile with row stride `ldc`; the CPU must run `kern`.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn micro(
    kern: Kernel,
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
    match kern {
        // SAFETY: the kernel is chosen only when the CPU has AVX-512F, AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { avx512::kernel(kc, ap, bp, c, ldc, mr, nr, alpha, beta) },
        // SAFETY: the kernel is chosen only when the CPU has AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2Fma => unsafe { avx2::kernel(kc, ap, bp, c, ldc, mr, nr, alpha, beta) },
        // SAFETY: the caller's contract (the module was built with simd128).
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Kernel::Simd128 => unsafe {
            super::gemm_wasm::kernel(kc, ap, bp, c, ldc, mr, nr, alpha, beta)
        },
        Kernel::Portable => unsafe { portable_kernel(kc, ap, bp, c, ldc, mr, nr, alpha, beta) },
    }
}

/// # Safety
/// As [`micro`].
#[allow(clippy::too_many_arguments)]
unsafe fn portable_kernel(
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
    let mut acc = [[0.0f32; NR]; MR];
    for (a, b) in ap[..kc * MR]
        .chunks_exact(MR)
        .zip(bp[..kc * NR].chunks_exact(NR))
    {
        for i in 0..MR {
            let ai = a[i];
            for j in 0..NR {
                acc[i][j] += ai * b[j];
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(mr) {
        for (j, &t) in row.iter().enumerate().take(nr) {
            // SAFETY: (i, j) is inside the tile.
            unsafe {
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

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// Packs TN column streams into a B panel (`panel[p·TN + j] = srcs[j][p]`) 8 × 8
    /// blocks at a time with in-register transposes; returns how many p it did (a
    /// multiple of 8), leaving the rest to the caller. Pure copies: no arithmetic.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_streams<const TN: usize>(
        srcs: &[&[f32]; TN],
        kc: usize,
        panel: &mut [f32],
    ) -> usize {
        let blocks = kc / 8;
        assert!(TN.is_multiple_of(8));
        assert!(srcs.iter().all(|s| s.len() >= kc) && panel.len() >= kc * TN);
        // SAFETY: the assert bounds every load (8 values at p < 8·blocks ≤ kc) and every
        // store (8 values at (p + q)·TN + h·8 + 8 ≤ kc·TN).
        unsafe {
            for blk in 0..blocks {
                let p = blk * 8;
                for h in 0..TN / 8 {
                    let rows = std::array::from_fn(|j| srcs[h * 8 + j].as_ptr().add(p));
                    transpose8x8(rows, panel.as_mut_ptr().add(p * TN + h * 8), TN);
                }
            }
        }
        blocks * 8
    }

    /// Writes the transpose of the 8 × 8 block whose row j is the 8 values at `rows[j]`:
    /// `dst[q·stride + j] = rows[j][q]`. Pure copies: no arithmetic.
    ///
    /// # Safety
    /// The CPU must support AVX2; each `rows[j]` must be readable for 8 values and `dst`
    /// writable at `q·stride .. q·stride + 8` for q < 8.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) unsafe fn transpose8x8(rows: [*const f32; 8], dst: *mut f32, stride: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|j| _mm256_loadu_ps(rows[j]));
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let out = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (q, &v) in out.iter().enumerate() {
                _mm256_storeu_ps(dst.add(q * stride), v);
            }
        }
    }

    /// The 6 × 16 AVX2/FMA micro-kernel: 12 ymm accumulators, 2 loads of B and 6
    /// broadcasts of A per step of k (15 of the 16 registers: nothing spills).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `c` must be valid for an mr × nr tile.
    #[target_feature(enable = "avx2,fma")]
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
        // SAFETY: the assert bounds every load; stores stay in the tile by contract.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            let (mut a, mut b) = (ap.as_ptr(), bp.as_ptr());
            for _ in 0..kc {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let ai = _mm256_broadcast_ss(&*a.add(i));
                    row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
                }
                a = a.add(MR);
                b = b.add(NR);
            }
            let va = _mm256_set1_ps(alpha);
            let vb = _mm256_set1_ps(beta);
            if mr == MR && nr == NR {
                for (i, row) in acc.iter().enumerate() {
                    let ci = c.add(i * ldc);
                    for (j, &v) in row.iter().enumerate() {
                        let p = ci.add(8 * j);
                        let x = _mm256_mul_ps(va, v);
                        let r = if beta == 0.0 {
                            x
                        } else {
                            _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), x)
                        };
                        _mm256_storeu_ps(p, r);
                    }
                }
            } else {
                let mut tile = [[0.0f32; NR]; MR];
                for (i, row) in acc.iter().enumerate() {
                    for (j, &v) in row.iter().enumerate() {
                        _mm256_storeu_ps(tile[i].as_mut_ptr().add(8 * j), v);
                    }
                }
                for (i, row) in tile.iter().enumerate().take(mr) {
                    for (j, &t) in row.iter().enumerate().take(nr) {
                        let p = c.add(i * ldc + j);
                        let x = alpha * t;
                        *p = if beta == 0.0 { x } else { beta.mul_add(*p, x) };
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR_512, NR_512};
    use std::arch::x86_64::*;

    /// zmm registers across the tile.
    const NV: usize = NR_512 / 16;

    /// The AVX-512 micro-kernel: MR_512 × NV zmm accumulators, NV loads of B and
    /// MR_512 broadcasts of A per step of k. Per element the same arithmetic as the AVX2
    /// kernel (fused multiply-adds over k from zero, then beta·c + alpha·sum with one
    /// more), so the two agree bit for bit. Partial tiles use masked loads and stores.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `c` must be valid for an mr × nr tile.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
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
        assert!(ap.len() >= kc * MR_512 && bp.len() >= kc * NR_512);
        assert!(mr <= MR_512 && nr <= NR_512);
        // SAFETY: the asserts bound every load of A and B; the stores (and loads of C)
        // stay in the mr × nr tile by contract, masked past nr.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NV]; MR_512];
            let (mut a, mut b) = (ap.as_ptr(), bp.as_ptr());
            for _ in 0..kc {
                let mut bv = [_mm512_setzero_ps(); NV];
                for v in 0..NV {
                    bv[v] = _mm512_loadu_ps(b.add(16 * v));
                }
                for i in 0..MR_512 {
                    let ai = _mm512_set1_ps(*a.add(i));
                    for v in 0..NV {
                        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
                    }
                }
                a = a.add(MR_512);
                b = b.add(NR_512);
            }
            let va = _mm512_set1_ps(alpha);
            let vb = _mm512_set1_ps(beta);
            if mr == MR_512 && nr == NR_512 {
                for i in 0..MR_512 {
                    let ci = c.add(i * ldc);
                    for v in 0..NV {
                        let p = ci.add(16 * v);
                        let x = _mm512_mul_ps(va, acc[i][v]);
                        let r = if beta == 0.0 {
                            x
                        } else {
                            _mm512_fmadd_ps(vb, _mm512_loadu_ps(p), x)
                        };
                        _mm512_storeu_ps(p, r);
                    }
                }
            } else {
                let mut masks = [0 as __mmask16; NV];
                for v in 0..NV {
                    let cols = nr.saturating_sub(16 * v).min(16);
                    masks[v] = ((1u32 << cols) - 1) as __mmask16;
                }
                // Rows past mr are skipped, not indexed at run time: the accumulators
                // stay in registers.
                for i in 0..MR_512 {
                    if i >= mr {
                        break;
                    }
                    let ci = c.add(i * ldc);
                    for v in 0..NV {
                        let p = ci.add(16 * v);
                        let x = _mm512_mul_ps(va, acc[i][v]);
                        let r = if beta == 0.0 {
                            x
                        } else {
                            _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(masks[v], p), x)
                        };
                        _mm512_mask_storeu_ps(p, masks[v], r);
                    }
                }
            }
        }
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
            (5, 300, 25),
            (20, 25, 576),
            (10, 640, 100),
            (129, 257, 49),
            (40, 520, 3100),
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
                for beta in [0.0, 1.0, 0.5] {
                    let init = random(&mut rng, m * n);
                    let mut slow = init.clone();
                    gemm_naive(0.5, a, b, beta, &mut slow);
                    for kern in Kernel::available() {
                        let mut fast = init.clone();
                        gemm_with(kern, 0.5, a, b, beta, &mut fast, n);
                        for (i, (x, y)) in fast.iter().zip(&slow).enumerate() {
                            assert!(
                                (x - y).abs() <= 1e-4 * (1.0 + y.abs()) * (k as f32).sqrt(),
                                "{kern:?} m={m} k={k} n={n} ta={ta} tb={tb} beta={beta}: \
                                 index {i}: fast {x} naive {y}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn packed_a_is_bitwise_equal_to_unpacked() {
        let mut rng = Rng::new(8);
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 17, 5),
            (40, 500, 64),
            (20, 25, 576),
            (17, 600, 3),
        ] {
            for ta in [false, true] {
                let a_data = random(&mut rng, m * k);
                let b_data = random(&mut rng, k * n);
                let a = if ta {
                    MatRef::new(&a_data, k, m).t()
                } else {
                    MatRef::new(&a_data, m, k)
                };
                let b = MatRef::new(&b_data, k, n);
                let init = random(&mut rng, m * n);
                let (mut want, mut got) = (init.clone(), init);
                gemm(1.0, a, b, 1.0, &mut want);
                let mut packed = PackedA::new();
                packed.pack(a);
                gemm_packed_a(1.0, &packed, b, 1.0, &mut got, n);
                assert!(
                    want.iter()
                        .zip(&got)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "m={m} k={k} n={n} ta={ta}"
                );
            }
        }
    }

    #[test]
    fn transposed_b_packing_matches_the_definition() {
        // B = Xᵀ for a row-major X: the in-register transpose path on AVX2 machines.
        let mut rng = Rng::new(21);
        for &(k, n) in &[(64, 500), (13, 16), (8, 33), (577, 20)] {
            let x = random(&mut rng, n * k);
            let b = MatRef::new(&x, n, k).t();
            for kern in Kernel::available() {
                let tn = kern.tile().1;
                let mut bp = vec![f32::NAN; k * n.div_ceil(tn) * tn];
                match tn {
                    NR => pack_b::<NR>(kern, &b, 0, k, 0, n, &mut bp),
                    _ => pack_b::<NR_512>(kern, &b, 0, k, 0, n, &mut bp),
                }
                for (r, panel) in bp.chunks_exact(k * tn).enumerate() {
                    for p in 0..k {
                        for j in 0..tn {
                            let col = r * tn + j;
                            let want = if col < n { x[col * k + p] } else { 0.0 };
                            assert_eq!(
                                panel[p * tn + j].to_bits(),
                                want.to_bits(),
                                "{kern:?} k={k} n={n}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn beta_zero_ignores_nan_in_c() {
        let a = [1.0, 2.0];
        let b = [3.0, 4.0];
        let mut c = [f32::NAN; 1];
        gemm(
            1.0,
            MatRef::new(&a, 1, 2),
            MatRef::new(&b, 2, 1),
            0.0,
            &mut c,
        );
        assert_eq!(c[0], 11.0);
    }

    #[test]
    fn parallel_split_is_bitwise_equal_to_serial() {
        let mut rng = Rng::new(3);
        for &(m, k, n) in &[(40, 500, 640), (500, 40, 130), (7, 600, 1000), (3, 3, 3)] {
            let a_data = random(&mut rng, m * k);
            let b_data = random(&mut rng, k * n);
            let a = MatRef::new(&a_data, m, k);
            let b = MatRef::new(&b_data, k, n);
            let init = random(&mut rng, m * n);
            let mut serial = init.clone();
            gemm_ldc(1.0, a, b, 1.0, &mut serial, n);
            for threads in [2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut par = init.clone();
                pool.install(|| gemm_par(1.0, a, b, 1.0, &mut par, n));
                assert!(
                    serial
                        .iter()
                        .zip(&par)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "m={m} k={k} n={n} threads={threads}"
                );
            }
        }
    }

    #[test]
    fn every_kernel_agrees_with_naive_tile_by_tile() {
        // The portable kernel is what a CPU without AVX2/FMA runs; check it here too,
        // and each kernel's partial tiles (m and n not multiples of any tile).
        let mut rng = Rng::new(4);
        for (m, k, n) in [(9, 70, 50), (15, 3, 33), (29, 1, 47)] {
            let a_data = random(&mut rng, m * k);
            let b_data = random(&mut rng, k * n);
            let (a, b) = (MatRef::new(&a_data, m, k), MatRef::new(&b_data, k, n));
            let mut want = vec![0.0; m * n];
            gemm_naive(1.0, a, b, 0.0, &mut want);
            for kern in Kernel::available() {
                let (tm, tn) = kern.tile();
                let mut ap = vec![0.0; k * m.div_ceil(tm) * tm];
                let mut bp = vec![0.0; k * n.div_ceil(tn) * tn];
                if tm == MR {
                    pack_a::<MR>(&a, 0, m, 0, k, &mut ap);
                    pack_b::<NR>(kern, &b, 0, k, 0, n, &mut bp);
                } else {
                    pack_a::<MR_512>(&a, 0, m, 0, k, &mut ap);
                    pack_b::<NR_512>(kern, &b, 0, k, 0, n, &mut bp);
                }
                // NaN past the product: a store outside the tile would show.
                let ldc = n + 3;
                let mut c = vec![f32::NAN; m * ldc];
                for jr in (0..n).step_by(tn) {
                    for ir in (0..m).step_by(tm) {
                        // SAFETY: the tile lies inside c; the CPU runs kern.
                        unsafe {
                            micro(
                                kern,
                                k,
                                &ap[ir * k..],
                                &bp[jr * k..],
                                c.as_mut_ptr().add(ir * ldc + jr),
                                ldc,
                                (m - ir).min(tm),
                                (n - jr).min(tn),
                                1.0,
                                0.0,
                            )
                        };
                    }
                }
                for i in 0..m {
                    for j in 0..ldc {
                        let x = c[i * ldc + j];
                        if j < n {
                            let y = want[i * n + j];
                            assert!((x - y).abs() < 1e-4, "{kern:?} {m}×{k}×{n}: {x} vs {y}");
                        } else {
                            assert!(x.is_nan(), "{kern:?} {m}×{k}×{n}: wrote past the tile");
                        }
                    }
                }
            }
        }
    }

    /// The SIMD kernels (AVX2/FMA and AVX-512, whichever this CPU has) give the same
    /// bits, whatever their tiles: awkward sizes, transposes, k past one KC block,
    /// alpha and beta, a padded C, and the packed-A path. Where the CPU has fewer than
    /// two of them there is nothing to compare (the test says so and passes).
    #[test]
    fn simd_kernels_are_bitwise_equal() {
        let simd: Vec<Kernel> = Kernel::available()
            .into_iter()
            .filter(|k| *k != Kernel::Portable)
            .collect();
        if simd.len() < 2 {
            eprintln!("simd_kernels_are_bitwise_equal: only {simd:?} here, nothing to compare");
            return;
        }
        let mut rng = Rng::new(17);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 17, 5),
            (13, 257, 31),
            (15, 600, 33),
            (40, 500, 64),
            (100, 10, 640),
            (10, 100, 640),
            (29, 513, 97),
            (500, 40, 64),
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
                let ldc = n + 2;
                let init = random(&mut rng, m * ldc);
                for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (0.5, 0.75)] {
                    let runs: Vec<(Kernel, Vec<u32>, Vec<u32>)> = simd
                        .iter()
                        .map(|&kern| {
                            let mut plain = init.clone();
                            gemm_with(kern, alpha, a, b, beta, &mut plain, ldc);
                            let mut packed = PackedA::new();
                            packed.pack_for(kern, a);
                            let mut via_packed = init.clone();
                            gemm_packed_a(alpha, &packed, b, beta, &mut via_packed, ldc);
                            (kern, bits(&plain), bits(&via_packed))
                        })
                        .collect();
                    let (k0, want, _) = &runs[0];
                    for (kern, plain, via_packed) in &runs {
                        let what =
                            format!("m={m} k={k} n={n} ta={ta} tb={tb} alpha={alpha} beta={beta}");
                        assert!(plain == want, "{kern:?} vs {k0:?}: {what}");
                        assert!(via_packed == want, "{kern:?} packed vs {k0:?}: {what}");
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_names_round_trip() {
        for kern in Kernel::available() {
            assert!(kern.runs_here());
            let (tm, tn) = kern.tile();
            assert!(tm > 0 && tn % 8 == 0, "{}", kern.name());
        }
        assert!(Kernel::available().contains(&kernel()));
        assert_eq!(Kernel::available().last(), Some(&Kernel::Portable));
    }
}
