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
