//! Max and average pooling over one (h × w) plane. The layers call these for every
//! (image, channel) plane; planes are independent, so that loop is the parallel one.

/// Window geometry of a pooling pass over one plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// Rows `[y0, y1)` and columns `[x0, x1)` of output (oy, ox)'s window, clipped to the
    /// input; and the window's size clipped only to the padded input (PyTorch's divisor
    /// for `count_include_pad=True`).
    fn window(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize, usize) {
        let ys = (oy * self.sh) as isize - self.ph as isize;
        let xs = (ox * self.sw) as isize - self.pw as isize;
        let ye = (ys + self.kh as isize).min((self.h + self.ph) as isize);
        let xe = (xs + self.kw as isize).min((self.w + self.pw) as isize);
        let padded_size = ((ye - ys) * (xe - xs)) as usize;
        let y0 = ys.max(0) as usize;
        let x0 = xs.max(0) as usize;
        let y1 = (ye.min(self.h as isize)).max(0) as usize;
        let x1 = (xe.min(self.w as isize)).max(0) as usize;
        (y0, y1, x0, x1, padded_size)
    }
}

/// out[oy, ox] = max of the window; `argmax` remembers which input index won, for
/// backward. Ties go to the first in row-major order and NaN wins, as in PyTorch.
pub fn maxpool_forward(g: &PoolGeom, inp: &[f32], out: &mut [f32], argmax: &mut [u32]) {
    let inside = g.ph == 0
        && g.pw == 0
        && g.oh > 0
        && g.ow > 0
        && (g.oh - 1) * g.sh + g.kh <= g.h
        && (g.ow - 1) * g.sw + g.kw <= g.w;
    if !inside {
        return maxpool_forward_naive(g, inp, out, argmax);
    }
    debug_assert!(inp.len() >= g.h * g.w && out.len() >= g.oh * g.ow);
    // Every window lies inside the plane: no clipping, and the common 2 × 2 window is
    // unrolled. The comparisons are the reference's, in the same order.
    for oy in 0..g.oh {
        let y0 = oy * g.sh;
        let orow = &mut out[oy * g.ow..(oy + 1) * g.ow];
        let arow = &mut argmax[oy * g.ow..(oy + 1) * g.ow];
        if g.kh == 2 && g.kw == 2 {
            let r0 = &inp[y0 * g.w..(y0 + 1) * g.w];
            let r1 = &inp[(y0 + 1) * g.w..(y0 + 2) * g.w];
            let (i0, w) = ((y0 * g.w) as u32, g.w as u32);
            // The reference's scan, without branches: a candidate replaces the best if
            // the best is not NaN and the candidate is not ≤ it (greater, or NaN).
            let pick = |best: &mut f32, idx: &mut u32, v: f32, i: u32| {
                // `!(v <= best)` is `v > best || v.is_nan()` when best is not NaN, in
                // one comparison (the two-test form made the whole layer 5× slower).
                #[allow(clippy::neg_cmp_op_on_partial_ord)]
                let take = !best.is_nan() && !(v <= *best);
                *best = if take { v } else { *best };
                *idx = if take { i } else { *idx };
            };
            if g.sw == 2 {
                let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2));
                for (ox, ((o, a), (p0, p1))) in
                    orow.iter_mut().zip(arow.iter_mut()).zip(pairs).enumerate()
                {
                    let x = i0 + 2 * ox as u32;
                    let (mut best, mut idx) = (p0[0], x);
                    pick(&mut best, &mut idx, p0[1], x + 1);
                    pick(&mut best, &mut idx, p1[0], x + w);
                    pick(&mut best, &mut idx, p1[1], x + w + 1);
                    *o = best;
                    *a = idx;
                }
            } else {
                for (ox, (o, a)) in orow.iter_mut().zip(arow.iter_mut()).enumerate() {
                    let x0 = ox * g.sw;
                    let x = i0 + x0 as u32;
                    let (mut best, mut idx) = (r0[x0], x);
                    pick(&mut best, &mut idx, r0[x0 + 1], x + 1);
                    pick(&mut best, &mut idx, r1[x0], x + w);
                    pick(&mut best, &mut idx, r1[x0 + 1], x + w + 1);
                    *o = best;
                    *a = idx;
                }
            }
        } else {
            for (ox, (o, a)) in orow.iter_mut().zip(arow.iter_mut()).enumerate() {
                let x0 = ox * g.sw;
                let mut best = f32::NEG_INFINITY;
                let mut best_idx = y0 * g.w + x0;
                'window: for y in y0..y0 + g.kh {
                    for (x, &v) in inp[y * g.w + x0..y * g.w + x0 + g.kw].iter().enumerate() {
                        if v > best || v.is_nan() {
                            best = v;
                            best_idx = y * g.w + x0 + x;
                            if v.is_nan() {
                                break 'window;
                            }
                        }
                    }
                }
                *o = best;
                *a = best_idx as u32;
            }
        }
    }
}

/// The reference for [`maxpool_forward`], for any window, padding and ceil mode.
pub fn maxpool_forward_naive(g: &PoolGeom, inp: &[f32], out: &mut [f32], argmax: &mut [u32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (y0, y1, x0, x1, _) = g.window(oy, ox);
            let mut best = f32::NEG_INFINITY;
            let mut best_idx = (y0 * g.w + x0) as u32;
            for y in y0..y1 {
                for x in x0..x1 {
                    let v = inp[y * g.w + x];
                    if v > best || v.is_nan() {
                        best = v;
                        best_idx = (y * g.w + x) as u32;
                        if v.is_nan() {
                            break;
                        }
                    }
                }
            }
            out[oy * g.ow + ox] = best;
            argmax[oy * g.ow + ox] = best_idx;
        }
    }
}

/// dinp[argmax[o]] += dout[o]; `dinp` must be zeroed first.
pub fn maxpool_backward(dout: &[f32], argmax: &[u32], dinp: &mut [f32]) {
    for (&d, &i) in dout.iter().zip(argmax) {
        dinp[i as usize] += d;
    }
}

/// out[oy, ox] = (sum of the window's input pixels) / divisor, where the divisor is the
/// window clipped to the padded input (`count_include_pad`) or to the input.
pub fn avgpool_forward(g: &PoolGeom, count_include_pad: bool, inp: &[f32], out: &mut [f32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (y0, y1, x0, x1, padded) = g.window(oy, ox);
            let mut sum = 0.0f32;
            for y in y0..y1 {
                for x in x0..x1 {
                    sum += inp[y * g.w + x];
                }
            }
            let divisor = if count_include_pad {
                padded
            } else {
                (y1 - y0) * (x1 - x0)
            };
            out[oy * g.ow + ox] = sum / divisor.max(1) as f32;
        }
    }
}

/// Spreads each dout evenly over its window; `dinp` must be zeroed first.
pub fn avgpool_backward(g: &PoolGeom, count_include_pad: bool, dout: &[f32], dinp: &mut [f32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (y0, y1, x0, x1, padded) = g.window(oy, ox);
            let divisor = if count_include_pad {
                padded
            } else {
                (y1 - y0) * (x1 - x0)
            };
            let share = dout[oy * g.ow + ox] / divisor.max(1) as f32;
            for y in y0..y1 {
                for x in x0..x1 {
                    dinp[y * g.w + x] += share;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn geom(h: usize, w: usize, k: (usize, usize), s: (usize, usize)) -> PoolGeom {
        PoolGeom {
            h,
            w,
            kh: k.0,
            kw: k.1,
            sh: s.0,
            sw: s.1,
            ph: 0,
            pw: 0,
            oh: (h - k.0) / s.0 + 1,
            ow: (w - k.1) / s.1 + 1,
        }
    }

    #[test]
    fn fast_maxpool_matches_naive_with_ties_and_nan() {
        let mut rng = Rng::new(2);
        for g in [
            geom(24, 24, (2, 2), (2, 2)),
            geom(17, 3, (2, 2), (2, 2)),
            geom(1, 1, (1, 1), (1, 1)),
            geom(9, 7, (3, 2), (2, 3)),
            geom(8, 8, (2, 2), (1, 1)),
        ] {
            // Few distinct values make ties common; a NaN or two must win their windows.
            let mut inp: Vec<f32> = (0..g.h * g.w)
                .map(|_| (rng.symmetric(2.0)).round())
                .collect();
            if inp.len() > 5 {
                inp[3] = f32::NAN;
                let last = inp.len() - 2;
                inp[last] = f32::NAN;
            }
            let len = g.oh * g.ow;
            let (mut o1, mut o2) = (vec![0.0; len], vec![0.0; len]);
            let (mut a1, mut a2) = (vec![0; len], vec![0; len]);
            maxpool_forward(&g, &inp, &mut o1, &mut a1);
            maxpool_forward_naive(&g, &inp, &mut o2, &mut a2);
            assert_eq!(a1, a2, "{g:?}");
            assert!(
                o1.iter().zip(&o2).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{g:?}"
            );
        }
    }
}
