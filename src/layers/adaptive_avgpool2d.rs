//! AdaptiveAvgPool2d: the mean of each of OH×OW windows that tile the input plane,
//! whatever its size. PyTorch: `nn.AdaptiveAvgPool2d(output_size)`, output_size an int
//! or an (OH, OW) tuple whose None entries keep the input's size.
//!
//! PyTorch's window rule, per dimension (n in, m out): window i covers
//! [⌊i·n/m⌋, ⌈(i+1)·n/m⌉), so windows may overlap (7 → 3: [0,3), [2,5), [4,7)) and
//! differ in size. Input C×H×W per image; output C×OH×OW. Backward spreads each output
//! gradient evenly over its window.

use std::fmt;

use super::image_wise::{self, ImageStep, ImageWise, PerImage};
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep};
use crate::tensor::Tensor;

/// An adaptive pool's output_size as given: one int, or a pair whose `None` entries keep
/// the input's size (PyTorch prints what it was given, `1` or `(1, 1)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdaptiveSize {
    Int(usize),
    Pair(Option<usize>, Option<usize>),
}

impl AdaptiveSize {
    /// (OH, OW) for an H×W input.
    pub fn resolve(self, h: usize, w: usize) -> (usize, usize) {
        match self {
            AdaptiveSize::Int(s) => (s, s),
            AdaptiveSize::Pair(a, b) => (a.unwrap_or(h), b.unwrap_or(w)),
        }
    }
}

impl From<usize> for AdaptiveSize {
    fn from(s: usize) -> Self {
        AdaptiveSize::Int(s)
    }
}

impl From<(usize, usize)> for AdaptiveSize {
    fn from((a, b): (usize, usize)) -> Self {
        AdaptiveSize::Pair(Some(a), Some(b))
    }
}

/// `1`, `(2, 3)`, `(2, None)`: as PyTorch prints output_size.
impl fmt::Display for AdaptiveSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |v: Option<usize>| v.map_or("None".to_string(), |v| v.to_string());
        match self {
            AdaptiveSize::Int(s) => write!(f, "{s}"),
            AdaptiveSize::Pair(a, b) => write!(f, "({}, {})", side(*a), side(*b)),
        }
    }
}

/// PyTorch's adaptive windows for `n` inputs to `m` outputs: [⌊i·n/m⌋, ⌈(i+1)·n/m⌉).
pub fn adaptive_windows(n: usize, m: usize) -> Vec<(usize, usize)> {
    (0..m)
        .map(|i| (i * n / m, ((i + 1) * n).div_ceil(m)))
        .collect()
}

/// The (kernel, stride) of windows that are all one size and evenly spaced, as a plain
/// pooling layer's (no padding, floor mode); `None` if they are not.
pub fn uniform_windows(windows: &[(usize, usize)]) -> Option<(usize, usize)> {
    let (s0, e0) = *windows.first()?;
    let k = e0 - s0;
    let stride = windows.get(1).map_or(1, |w| w.0 - s0);
    let even = windows
        .iter()
        .enumerate()
        .all(|(i, &(s, e))| e - s == k && s == s0 + i * stride);
    (even && s0 == 0 && stride > 0).then_some((k, stride))
}

/// What both adaptive pools know once built: sizes and each dimension's windows.
#[derive(Clone, Debug)]
pub(super) struct AdaptiveGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub rows: Vec<(usize, usize)>,
    pub cols: Vec<(usize, usize)>,
}

impl AdaptiveGeom {
    pub fn plane_in(&self) -> usize {
        self.h * self.w
    }

    pub fn plane_out(&self) -> usize {
        self.rows.len() * self.cols.len()
    }
}

/// Shared by both adaptive pools: checks the input and explains the output shape.
pub(super) fn build_adaptive(
    ctx: &BuildContext,
    layer: &str,
    size: AdaptiveSize,
) -> Result<(AdaptiveGeom, ShapeStep), String> {
    let &[c, h, w] = ctx.input else {
        return Err(ctx.needs_images(layer));
    };
    let (oh, ow) = size.resolve(h, w);
    if oh == 0 || ow == 0 {
        return Err(format!(
            "output_size {size} has a zero side; each side must be at least 1"
        ));
    }
    let g = AdaptiveGeom {
        c,
        h,
        w,
        rows: adaptive_windows(h, oh),
        cols: adaptive_windows(w, ow),
    };
    let span = |ws: &[(usize, usize)]| ws.iter().map(|(s, e)| e - s).sum::<usize>();
    let explain = |n: usize, m: usize, ws: &[(usize, usize)]| match uniform_windows(ws) {
        Some((k, s)) if m > 1 => format!("{n} → {m} (windows of {k}, stride {s})"),
        Some(_) => format!("{n} → {m} (one window of {n})"),
        None => format!("{n} → {m} (windows ⌊i·{n}/{m}⌋ to ⌈(i+1)·{n}/{m}⌉, uneven)"),
    };
    let step = ShapeStep {
        out: vec![c, oh, ow],
        arithmetic: format!(
            "height {}, width {}",
            explain(h, oh, &g.rows),
            explain(w, ow, &g.cols)
        ),
        macs: (c * span(&g.rows) * span(&g.cols)) as u64,
    };
    Ok((g, step))
}

/// Adaptive average pooling. PyTorch: `nn.AdaptiveAvgPool2d`.
#[derive(Clone, Debug)]
pub struct AdaptiveAvgPool2d {
    output_size: AdaptiveSize,
    geom: Option<AdaptiveGeom>,
}

impl AdaptiveAvgPool2d {
    /// `AdaptiveAvgPool2d(1)` (global average pooling), `AdaptiveAvgPool2d((3, 2))`, …
    pub fn new(output_size: impl Into<AdaptiveSize>) -> Self {
        AdaptiveAvgPool2d {
            output_size: output_size.into(),
            geom: None,
        }
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn describe(&self) -> LayerDesc {
        LayerDesc::AdaptiveAvgPool2d {
            output_size: self.output_size,
        }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let (g, step) = build_adaptive(ctx, "AdaptiveAvgPool2d", self.output_size)?;
        self.geom = Some(g);
        Ok(step)
    }

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        let g = self
            .geom
            .as_ref()
            .expect("AdaptiveAvgPool2d used before Sequential built it");
        debug_assert_eq!(&inp.shape()[1..], &[g.c, g.h, g.w]);
        let shape = [g.c, g.rows.len(), g.cols.len()];
        image_wise::forward_batch(self, inp, out, &shape, pass);
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        let g = self.geom.as_ref().expect("built");
        let shape = [g.c, g.h, g.w];
        image_wise::backward_batch(self, dout, dinp, &shape);
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }
}

impl ImageWise for AdaptiveAvgPool2d {
    fn output_len(&self) -> usize {
        let g = self.geom.as_ref().expect("built");
        g.c * g.plane_out()
    }

    fn forward_images(&mut self, _n: usize, _pass: Pass) -> Box<dyn ImageStep + '_> {
        Box::new(AvgForward(self.geom.as_ref().expect("built")))
    }

    fn backward_images(&mut self, _n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        Box::new(AvgBackward(self.geom.as_ref().expect("built")))
    }
}

struct AvgForward<'a>(&'a AdaptiveGeom);

impl ImageStep for AvgForward<'_> {
    unsafe fn run(&self, _i: usize, inp: &[f32], out: Option<&mut [f32]>) {
        let g = self.0;
        let out = out.expect("a forward step has an output");
        for (ip, op) in inp.chunks(g.plane_in()).zip(out.chunks_mut(g.plane_out())) {
            let mut o = op.iter_mut();
            for &(y0, y1) in &g.rows {
                for &(x0, x1) in &g.cols {
                    // PyTorch's kernel: the window's sum in row order, / kh / kw.
                    let mut sum = 0.0f32;
                    for y in y0..y1 {
                        for &v in &ip[y * g.w + x0..y * g.w + x1] {
                            sum += v;
                        }
                    }
                    *o.next().expect("sized") = sum / (y1 - y0) as f32 / (x1 - x0) as f32;
                }
            }
        }
    }
}

struct AvgBackward<'a>(&'a AdaptiveGeom);

impl ImageStep for AvgBackward<'_> {
    unsafe fn run(&self, _i: usize, dout: &[f32], dinp: Option<&mut [f32]>) {
        // forward: out = Σ window / (kh·kw); dinp[window] += dout / kh / kw
        let Some(dinp) = dinp else { return };
        let g = self.0;
        dinp.fill(0.0);
        for (dp, gp) in dinp
            .chunks_mut(g.plane_in())
            .zip(dout.chunks(g.plane_out()))
        {
            let mut d = gp.iter();
            for &(y0, y1) in &g.rows {
                for &(x0, x1) in &g.cols {
                    let share = d.next().expect("sized") / (y1 - y0) as f32 / (x1 - x0) as f32;
                    for y in y0..y1 {
                        for v in &mut dp[y * g.w + x0..y * g.w + x1] {
                            *v += share;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_pytorch_rule() {
        assert_eq!(adaptive_windows(7, 3), [(0, 3), (2, 5), (4, 7)]);
        assert_eq!(adaptive_windows(6, 3), [(0, 2), (2, 4), (4, 6)]);
        assert_eq!(adaptive_windows(2, 4), [(0, 1), (0, 1), (1, 2), (1, 2)]);
        assert_eq!(uniform_windows(&adaptive_windows(7, 3)), Some((3, 2)));
        assert_eq!(uniform_windows(&adaptive_windows(6, 3)), Some((2, 2)));
        assert_eq!(uniform_windows(&adaptive_windows(7, 1)), Some((7, 1)));
        assert_eq!(uniform_windows(&adaptive_windows(10, 4)), None);
        assert_eq!(uniform_windows(&adaptive_windows(2, 4)), None);
    }

    /// 1×7×5 → (3, None): rows [0,3), [2,5), [4,7); columns kept. Values and the
    /// gradient that spreads over the overlapping windows.
    #[test]
    fn uneven_windows_average_and_spread() {
        let net = crate::spec::build("AdaptiveAvgPool2d((3, None))", &[1, 7, 5], 0).unwrap();
        assert_eq!(net.output_shape(), [1, 3, 5]);
        assert_eq!(
            net.layers()[0].repr(),
            "AdaptiveAvgPool2d(output_size=(3, None))"
        );
        let mut layer = AdaptiveAvgPool2d::new(AdaptiveSize::Pair(Some(3), None));
        layer.geom = Some(AdaptiveGeom {
            c: 1,
            h: 7,
            w: 1,
            rows: adaptive_windows(7, 3),
            cols: adaptive_windows(1, 1),
        });
        let x = Tensor::from_vec(&[1, 1, 7, 1], (0..7).map(|v| v as f32).collect()).unwrap();
        let y = layer.forward(&x, Pass::Train);
        assert_eq!(y.data(), &[1.0, 3.0, 5.0]);
        let d = layer.backward(&Tensor::from_vec(&[1, 1, 3, 1], vec![3.0, 6.0, 9.0]).unwrap());
        assert_eq!(d.data(), &[1.0, 1.0, 3.0, 2.0, 5.0, 3.0, 3.0]);
    }
}
