//! The machinery shared by elementwise activations (Sigmoid, Tanh, …): a layer that
//! applies `f` to every value, image by image, and keeps per image the one value its
//! derivative needs (the input or the output) in a buffer reused from step to step.
//!
//! An activation is then only its function: a unit struct implementing [`Elementwise`]
//! in its own file, and `pub type Name = Activation<NameFn>`. ReLU has its own layer,
//! which keeps a one-byte mask instead of a float per value.

use super::image_wise::{self, ImageStep, ImageWise, PerImage, Slots};
use super::{BuildContext, Layer, LayerDesc, Pass, ShapeStep, passthrough};
use crate::tensor::Tensor;

/// Which value per element backward needs to compute the derivative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keeps {
    /// The layer's input x (GELU, SiLU: the derivative is not a function of the output).
    Input,
    /// The layer's output y (sigmoid: y·(1 − y); tanh: 1 − y²).
    Output,
}

/// An elementwise function and its derivative.
pub trait Elementwise: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// What backward needs: the input or the output.
    const KEEPS: Keeps;

    /// The layer's description (its PyTorch class and arguments).
    fn describe(&self) -> LayerDesc;

    /// y = f(x).
    fn value(&self, x: f32) -> f32;

    /// dy/dx, written in terms of the kept value (x or y, as [`Elementwise::KEEPS`]).
    fn derivative(&self, kept: f32) -> f32;
}

/// A layer applying an [`Elementwise`] function to every value. Any shape in, the same
/// shape out.
#[derive(Clone, Debug, Default)]
pub struct Activation<F> {
    f: F,
    /// Per image, the kept value of each element from the last Train or Eval forward.
    kept: Vec<f32>,
    /// Values per image: set by `build`, and by a batch forward called on the layer
    /// alone (which may not have been built).
    len: usize,
    /// Images in the last forward that kept its values.
    batch: usize,
}

impl<F: Elementwise> Activation<F> {
    /// The activation of `f`.
    pub fn of(f: F) -> Self {
        Activation {
            f,
            kept: Vec::new(),
            len: 0,
            batch: 0,
        }
    }

    /// The function it applies.
    pub fn function(&self) -> &F {
        &self.f
    }
}

impl<F: Elementwise> Layer for Activation<F> {
    fn describe(&self) -> LayerDesc {
        self.f.describe()
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        self.len = ctx.input.iter().product();
        Ok(passthrough(ctx.input))
    }

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        // Read off the batch (an empty batch says nothing about the size per image).
        if inp.batch() > 0 {
            self.len = inp.len() / inp.batch();
        }
        image_wise::forward_batch(self, inp, out, &inp.shape()[1..], pass);
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        image_wise::backward_batch(self, dout, dinp, &dout.shape()[1..]);
    }

    fn per_image(&mut self) -> Option<PerImage<'_>> {
        Some(PerImage::of(self))
    }
}

impl<F: Elementwise> ImageWise for Activation<F> {
    fn output_len(&self) -> usize {
        self.len
    }

    fn forward_images(&mut self, n: usize, pass: Pass) -> Box<dyn ImageStep + '_> {
        let keep = pass != Pass::Infer;
        self.batch = if keep { n } else { 0 };
        self.kept.resize(self.batch * self.len, 0.0);
        Box::new(ActivationForward {
            f: &self.f,
            kept: keep.then(|| Slots::new(&mut self.kept, self.len)),
        })
    }

    fn backward_images(&mut self, n: usize, _need_input_grad: bool) -> Box<dyn ImageStep + '_> {
        assert_eq!(
            self.batch,
            n,
            "{}::backward needs the Train or Eval forward of the same {n} images first \
             (inference keeps nothing)",
            self.f.describe().kind()
        );
        Box::new(ActivationBackward {
            f: &self.f,
            kept: &self.kept,
            len: self.len,
        })
    }
}

struct ActivationForward<'a, F> {
    f: &'a F,
    kept: Option<Slots<'a, f32>>,
}

impl<F: Elementwise> ImageStep for ActivationForward<'_, F> {
    unsafe fn run(&self, i: usize, inp: &[f32], out: Option<&mut [f32]>) {
        let out = out.expect("a forward step has an output");
        for (o, &x) in out.iter_mut().zip(inp) {
            *o = self.f.value(x);
        }
        if let Some(kept) = &self.kept {
            // SAFETY: image i is this call's alone (the trait's contract).
            let kept = unsafe { kept.get(i) };
            kept.copy_from_slice(match F::KEEPS {
                Keeps::Input => inp,
                Keeps::Output => out,
            });
        }
    }
}

struct ActivationBackward<'a, F> {
    f: &'a F,
    kept: &'a [f32],
    len: usize,
}

impl<F: Elementwise> ImageStep for ActivationBackward<'_, F> {
    unsafe fn run(&self, i: usize, dout: &[f32], dinp: Option<&mut [f32]>) {
        // forward: out = f(inp); dinp = dout · f′(inp)
        let Some(dinp) = dinp else { return };
        let kept = &self.kept[i * self.len..(i + 1) * self.len];
        for ((di, &d), &k) in dinp.iter_mut().zip(dout).zip(kept) {
            *di = d * self.f.derivative(k);
        }
    }
}
