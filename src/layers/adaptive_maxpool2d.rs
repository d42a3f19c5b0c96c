//! AdaptiveMaxPool2d: the max of each of OH×OW windows that tile the input plane.
//! PyTorch: `nn.AdaptiveMaxPool2d(output_size, return_indices=False)`; the windows are
//! AdaptiveAvgPool2d's (PyTorch's rule, see `adaptive_avgpool2d.rs`). The scan is
//! PyTorch's: rows then columns, a value replaces the best if greater or NaN, so ties go
//! to the first. Backward sends each output gradient to that input position.

use super::adaptive_avgpool2d::{AdaptiveGeom, AdaptiveSize, build_adaptive};
use super::image_wise::{self, ImageStep, ImageWise, PerImage, Slots};
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep};
use crate::tensor::Tensor;

/// Adaptive max pooling. PyTorch: `nn.AdaptiveMaxPool2d`.
#[derive(Clone, Debug)]
pub struct AdaptiveMaxPool2d {
    output_size: AdaptiveSize,
    geom: Option<AdaptiveGeom>,
    /// Per output element, the winning input index within its plane.
    argmax: Vec<u32>,
}

impl AdaptiveMaxPool2d {
    /// `AdaptiveMaxPool2d(1)` (global max pooling), `AdaptiveMaxPool2d((3, 2))`, …
    pub fn new(output_size: impl Into<AdaptiveSize>) -> Self {
        AdaptiveMaxPool2d {
            output_size: output_size.into(),
            geom: None,
            argmax: Vec::new(),
        }
    }
}

impl Layer for AdaptiveMaxPool2d {
    fn describe(&self) -> LayerDesc {
        LayerDesc::AdaptiveMaxPool2d {
            output_size: self.output_size,
        }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        let (g, step) = build_adaptive(ctx, "AdaptiveMaxPool2d", self.output_size)?;
        if g.h * g.w > u32::MAX as usize {
            return Err(format!("an input plane of {}×{} is too large", g.h, g.w));
        }
        self.geom = Some(g);
        Ok(step)
    }

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        let g = self
            .geom
            .as_ref()
            .expect("AdaptiveMaxPool2d used before Sequential built it");
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

impl ImageWise for AdaptiveMaxPool2d {
    fn output_len(&self) -> usize {
        let g = self.geom.as_ref().expect("built");
        g.c * g.plane_out()
    }

    /// The argmax is kept even for inference: the scan finds it anyway.
    fn forward_images(&mut self, n: usize, _pass: Pass) -> Box<dyn ImageStep + '_> {
        let g = self.geom.as_ref().expect("built");
        let len = g.c * g.plane_out();
        self.argmax.resize(n * len, 0);
        Box::new(MaxForward {
            g,
            argmax: Slots::new(&mut self.argmax, len),
        })
    }

    fn backward_images(&mut self, n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        let g = self.geom.as_ref().expect("built");
        let len = g.c * g.plane_out();
        assert_eq!(
            self.argmax.len(),
            n * len,
            "AdaptiveMaxPool2d::backward: dL/d(output) has {n} images, not the last forward's"
        );
        Box::new(MaxBackward {
            g,
            argmax: &self.argmax,
            len,
        })
    }
}

struct MaxForward<'a> {
    g: &'a AdaptiveGeom,
    argmax: Slots<'a, u32>,
}

impl ImageStep for MaxForward<'_> {
    unsafe fn run(&self, i: usize, inp: &[f32], out: Option<&mut [f32]>) {
        let g = self.g;
        let out = out.expect("a forward step has an output");
        // SAFETY: image i is this call's alone (the trait's contract).
        let argmax = unsafe { self.argmax.get(i) };
        for ((ip, op), ap) in inp
            .chunks(g.plane_in())
            .zip(out.chunks_mut(g.plane_out()))
            .zip(argmax.chunks_mut(g.plane_out()))
        {
            let mut k = 0;
            for &(y0, y1) in &g.rows {
                for &(x0, x1) in &g.cols {
                    let mut best = f32::NEG_INFINITY;
                    let mut best_idx = y0 * g.w + x0;
                    'scan: for y in y0..y1 {
                        for x in x0..x1 {
                            let v = ip[y * g.w + x];
                            if v > best || v.is_nan() {
                                best = v;
                                best_idx = y * g.w + x;
                                if v.is_nan() {
                                    break 'scan;
                                }
                            }
                        }
                    }
                    op[k] = best;
                    ap[k] = best_idx as u32;
                    k += 1;
                }
            }
        }
    }
}

struct MaxBackward<'a> {
    g: &'a AdaptiveGeom,
    argmax: &'a [u32],
    len: usize,
}

impl ImageStep for MaxBackward<'_> {
    unsafe fn run(&self, i: usize, dout: &[f32], dinp: Option<&mut [f32]>) {
        // forward: out = inp[argmax]; dinp[argmax] += dout (overlapping windows add up)
        let Some(dinp) = dinp else { return };
        let g = self.g;
        let argmax = &self.argmax[i * self.len..(i + 1) * self.len];
        dinp.fill(0.0);
        for ((dp, gp), ap) in dinp
            .chunks_mut(g.plane_in())
            .zip(dout.chunks(g.plane_out()))
            .zip(argmax.chunks(g.plane_out()))
        {
            for (&d, &a) in gp.iter().zip(ap) {
                dp[a as usize] += d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1×1×7×3 → (3, 1): rows [0,3), [2,5), [4,7). Ties go to the first in scan order;
    /// an input that wins two overlapping windows gets both gradients.
    #[test]
    fn uneven_windows_first_max_and_overlap() {
        let mut net = crate::spec::build("AdaptiveMaxPool2d((3, 1))", &[1, 7, 3], 0).unwrap();
        assert_eq!(
            net.layers()[0].repr(),
            "AdaptiveMaxPool2d(output_size=(3, 1))"
        );
        #[rustfmt::skip]
        let x = vec![
            0.0, 1.0, 0.0,
            0.0, 0.0, 0.0,
            9.0, 0.0, 0.0, // row 2: in windows 0 and 1
            0.0, 0.0, 0.0,
            4.0, 0.0, 4.0, // row 4: a tie, in windows 1 and 2
            0.0, 0.0, 0.0,
            0.0, 0.0, 0.0,
        ];
        let x = Tensor::from_vec(&[1, 1, 7, 3], x).unwrap();
        let y = net.forward(&x, Pass::Train).unwrap();
        assert_eq!(y.data(), &[9.0, 9.0, 4.0]);
        let layer = &mut net.layers_mut()[0];
        let d = layer.backward(&Tensor::from_vec(&[1, 1, 3, 1], vec![1.0, 2.0, 5.0]).unwrap());
        let mut want = [0.0; 21];
        want[6] = 3.0; // row 2, column 0: windows 0 and 1
        want[12] = 5.0; // row 4, column 0: the first of the tie
        assert_eq!(d.data(), &want[..]);
    }
}
