//! Linear: every output a weighted sum of every input. PyTorch: `nn.Linear(in_features,
//! out_features, bias=True)`; `LazyLinear(out_features)` infers `in_features` when built.
//!
//! input (N, I) -> output (N, O); weight (O, I) as in PyTorch, bias (O).
//! out = inp · weightᵀ + bias, one matrix multiply for the whole batch.

use super::{
    BuildContext, Init, InitContext, Layer, LayerDesc, Param, Pass, ShapeStep, checked_param_count,
};
use crate::kernels::gemm::{MatRef, gemm_par};
use crate::kernels::thin;
use crate::tensor::Tensor;

/// Fully connected layer. PyTorch: `nn.Linear`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `None` until built for a `LazyLinear`.
    in_features: Option<usize>,
    out_features: usize,
    has_bias: bool,
    weight: Option<Param>,
    bias: Option<Param>,
    /// The last forward input, kept for dweight.
    inp: Tensor,
}

/// `LazyLinear(out_features)`: a [`Linear`] whose `in_features` is read off the input
/// when the network is built. PyTorch: `nn.LazyLinear`.
pub struct LazyLinear;

impl LazyLinear {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(out_features: usize) -> Linear {
        Linear::with_in(None, out_features)
    }
}

impl Linear {
    /// `Linear(in_features, out_features)` with a bias.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        Linear::with_in(Some(in_features), out_features)
    }

    fn with_in(in_features: Option<usize>, out_features: usize) -> Self {
        Linear {
            in_features,
            out_features,
            has_bias: true,
            weight: None,
            bias: None,
            inp: Tensor::zeros(&[0]),
        }
    }

    /// PyTorch's `bias=`.
    pub fn bias(mut self, bias: bool) -> Self {
        self.has_bias = bias;
        self
    }
}

impl Layer for Linear {
    fn describe(&self) -> LayerDesc {
        LayerDesc::Linear {
            in_features: self.in_features,
            out_features: self.out_features,
            bias: self.has_bias,
        }
    }

    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String> {
        if self.out_features == 0 {
            return Err("out_features must be at least 1".into());
        }
        let &[features] = ctx.input else {
            let (total, _) =
                crate::shape::product_explained(ctx.input).unwrap_or((0, String::new()));
            return Err(format!(
                "expects flat features but receives images shaped {} from {}; put Flatten() \
                 before it (it would then receive {total} features)",
                crate::shape::fmt_shape(ctx.input),
                ctx.source
            ));
        };
        let inferred = self.in_features.is_none();
        match self.in_features {
            Some(i) if i != features => {
                return Err(format!(
                    "receives {}; use Linear({features}, {}) or LazyLinear({})",
                    ctx.describe_features(features),
                    self.out_features,
                    self.out_features
                ));
            }
            _ => self.in_features = Some(features),
        }
        let wdims = [self.out_features, features];
        let wcount = checked_param_count("Linear", &wdims)?;
        self.init_params(&mut InitContext {
            scheme: Init::PyTorch,
            rng: ctx.rng,
            next_pool: 1,
            is_output: false,
        });
        let arithmetic = if inferred {
            format!("in_features inferred: {}", ctx.describe_features(features))
        } else {
            format!("{features} → {}", self.out_features)
        };
        Ok(ShapeStep {
            out: vec![self.out_features],
            arithmetic,
            macs: wcount as u64,
        })
    }

    fn init_params(&mut self, ctx: &mut InitContext) {
        let (i, o) = (self.in_features.expect("built"), self.out_features);
        let (wvals, bvals) = ctx.draw(o * i, o, i, o);
        self.weight = Some(Param::new(
            Tensor::from_vec(&[o, i], wvals).expect("weight length"),
        ));
        self.bias = self
            .has_bias
            .then(|| Param::new(Tensor::from_vec(&[o], bvals).expect("bias length")));
    }

    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass) {
        let n = inp.batch();
        let (i, o) = (self.in_features.expect("built"), self.out_features);
        debug_assert_eq!(inp.shape(), &[n, i]);
        super::recycle(out, &[n, o]);
        if let Some(b) = &self.bias {
            for row in out.data_mut().chunks_mut(o) {
                row.copy_from_slice(b.value.data());
            }
        }
        let w = &self.weight.as_ref().expect("built").value;
        // out (N × O) = inp (N × I) · weightᵀ (I × O) + bias, as dot products of rows:
        // for a training mini-batch the GEMM's packing of weightᵀ costs as much as the
        // products (kernels/thin.rs), and one kernel for every batch size keeps an
        // image's output the same bits whatever batch it comes in.
        if self.bias.is_none() {
            out.data_mut().fill(0.0);
        }
        thin::rows_dot_par(inp.data(), n, i, w.data(), o, out.data_mut(), o);
        // Backward's dweight needs the input; inference keeps none.
        if pass == Pass::Infer {
            self.inp.reuse_as(&[0, i]);
        } else {
            self.inp.clone_from(inp);
        }
    }

    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>) {
        let n = self.inp.batch();
        let (i, o) = (self.in_features.expect("built"), self.out_features);
        assert_eq!(
            dout.shape(),
            &[n, o],
            "Linear::backward needs the Train or Eval forward of the same images first"
        );
        // forward: out[n, o] = bias[o] + Σ_i weight[o, i] · inp[n, i]
        // dbias[o] += Σ_n dout[n, o]
        if let Some(b) = &mut self.bias {
            let db = b.grad_mut().data_mut();
            for row in dout.data().chunks(o) {
                for (d, &g) in db.iter_mut().zip(row) {
                    *d += g;
                }
            }
        }
        let w = self.weight.as_mut().expect("built");
        // dweight (O × I) += doutᵀ (O × N) · inp (N × I): each element sums over the
        // batch in image order, whatever the split between threads. The first write
        // after zero_grad overwrites (beta = 0) rather than clearing first: 0 + x is x,
        // so the bits are the same and a pass over the weights' size is saved.
        let (dw, add) = w.grad_to_write();
        gemm_par(
            1.0,
            MatRef::new(dout.data(), n, o).t(),
            MatRef::new(self.inp.data(), n, i),
            if add { 1.0 } else { 0.0 },
            dw.data_mut(),
            i,
        );
        // dinp (N × I) = dout (N × O) · weight (O × I)
        let Some(dinp) = dinp else { return };
        super::recycle(dinp, &[n, i]);
        gemm_par(
            1.0,
            MatRef::new(dout.data(), n, o),
            MatRef::new(w.value.data(), o, i),
            0.0,
            dinp.data_mut(),
            i,
        );
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        super::weight_bias(&self.weight, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        super::weight_bias_mut(&mut self.weight, &mut self.bias)
    }
}
