//! The layers, one file each, and the [`Layer`] trait they share.
//!
//! A layer is built once by [`crate::Sequential`] for the shape it will receive (this is
//! where lazy sizes are inferred, shapes are checked and parameters initialised); after
//! that, `forward` and `backward` trust the shapes and only `debug_assert!` them.
//! Shapes here are per image: `[C, H, W]` for feature maps, `[F]` for flat features; the
//! batch dimension N is added in front of them at run time.
//!
//! # Adding a layer
//!
//! One file in `src/layers/`, one registry entry, and tests:
//!
//! 1. `src/layers/<name>.rs`: the layer type and its [`Layer`] impl (`build` checks and
//!    explains the input shape, `repr` prints PyTorch's constructor call, which a spec
//!    must read back to the same layer); `mod <name>;` and `pub use` it here.
//! 2. One [`registry::LayerEntry`] in [`registry::LAYERS`]: the PyTorch name, the
//!    constructor's arguments with PyTorch's defaults ([`registry::req`], [`registry::opt`],
//!    [`registry::kw`]), the function that makes the layer from the bound arguments
//!    (rejecting, with a spec error, values seqnet does not implement), the parameter
//!    planner (`no_params` for a layer without weights), a one-line doc and an example
//!    call. The spec parser, its "did you mean" suggestions, [`crate::spec::LAYER_NAMES`]
//!    and [`registry::render`] read the table; nothing else lists layer names.
//! 3. Tests: the layer's forward and backward against PyTorch's numbers and a gradient
//!    check in its file; the registry's own tests then build its example and check that
//!    its repr parses back.

mod activation;
mod adaptive_avgpool2d;
mod adaptive_maxpool2d;
mod avgpool2d;
mod batchnorm;
mod conv2d;
mod desc;
mod dropout;
mod dropout2d;
mod elu;
mod flatten;
mod gelu;
mod identity;
mod image_wise;
mod leaky_relu;
mod linear;
mod maxpool2d;
pub mod registry;
mod relu;
mod sigmoid;
mod silu;
mod softmax;
mod tanh;

pub use activation::{Activation, Elementwise, Keeps};
pub use adaptive_avgpool2d::{AdaptiveAvgPool2d, AdaptiveSize, adaptive_windows, uniform_windows};
pub use adaptive_maxpool2d::AdaptiveMaxPool2d;
pub use avgpool2d::AvgPool2d;
pub use batchnorm::{BatchNorm, BatchNorm1d, BatchNorm2d};
pub use conv2d::{Conv2d, ConvPadding, LazyConv2d};
pub use desc::{LayerDesc, OutputKind};
pub use dropout::Dropout;
pub use dropout2d::Dropout2d;
pub use elu::{ELU, ELUFn};
pub use flatten::Flatten;
pub use gelu::{GELU, GELUFn};
pub use identity::Identity;
pub use image_wise::PerImage;
pub(crate) use image_wise::{ImageStep, ImageWise, Slots};
pub use leaky_relu::{LeakyReLU, LeakyReLUFn};
pub use linear::{LazyLinear, Linear};
pub use maxpool2d::MaxPool2d;
pub use relu::ReLU;
pub use sigmoid::{Sigmoid, SigmoidFn};
pub use silu::{SiLU, SiLUFn};
pub use softmax::{LogSoftmax, Softmax, SoftmaxOver};
pub use tanh::{Tanh, TanhFn};

use crate::rng::Rng;
use crate::tensor::Tensor;

/// Which forward pass a layer runs. PyTorch: `model.train()` / `model.eval()` /
/// `torch.inference_mode()`, passed explicitly instead of kept as hidden state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Training: dropout is active, and each layer keeps what its backward needs.
    Train,
    /// Evaluation: dropout is the identity; layers still keep what backward needs, so a
    /// backward may follow (a gradient with respect to the input, say).
    Eval,
    /// Inference: Eval's numbers, and nothing is kept for a backward pass (faster and
    /// smaller). A backward after it is refused.
    Infer,
}

/// The older name of [`Pass`], from when there were two passes.
pub type Mode = Pass;

/// How fresh parameters are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// PyTorch's default: weights kaiming-uniform with a = √5, i.e. U(±1/√fan_in), and
    /// biases U(±1/√fan_in).
    #[default]
    PyTorch,
    /// Nielsen's network3.py: weights N(0, 1/n_out) (n_out = the units each input
    /// reaches, divided by the pooling that follows a conv layer), biases N(0, 1).
    Book,
}

/// A learnable tensor and the gradient accumulated for it by `backward`.
#[derive(Clone, Debug)]
pub struct Param {
    pub value: Tensor,
    /// Read through [`Param::grad`]; layers add to it through [`Param::grad_mut`] or
    /// write it whole through [`Param::grad_to_write`].
    grad: Tensor,
    /// [`Param::zero_grad`] was called and no backward has written since, so `grad`
    /// holds an old step's numbers, which count as zero. Clearing lazily saves a pass
    /// over memory: the first backward of a step overwrites the gradient instead of
    /// adding to zeros. For the book's 1000-wide layers that made training 12 % faster
    /// (BENCHMARKS.md). PyTorch's `zero_grad(set_to_none=True)` saves the same
    /// pass by dropping the tensor.
    grad_is_zero: bool,
}

impl Param {
    pub fn new(value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        // No gradient until a backward writes one, as a new tensor's `.grad` is None.
        Param {
            value,
            grad,
            grad_is_zero: true,
        }
    }

    /// Sets the gradient to zero (lazily: see the field).
    pub fn zero_grad(&mut self) {
        self.grad_is_zero = true;
    }

    /// The gradient accumulated since the last [`Param::zero_grad`], or `None` if no
    /// backward has written it since then or since the parameter was made (it is zero;
    /// PyTorch's `p.grad is None`).
    pub fn grad(&self) -> Option<&Tensor> {
        (!self.grad_is_zero).then_some(&self.grad)
    }

    /// The gradient, to add to (or to replace whole).
    pub fn grad_mut(&mut self) -> &mut Tensor {
        if self.grad_is_zero {
            self.grad.data_mut().fill(0.0);
            self.grad_is_zero = false;
        }
        &mut self.grad
    }

    /// The gradient's buffer and whether it holds a gradient to add to (`true`), or
    /// stale numbers that the caller must overwrite, every element (`false`, the first
    /// write after [`Param::zero_grad`]).
    pub fn grad_to_write(&mut self) -> (&mut Tensor, bool) {
        let add = !std::mem::replace(&mut self.grad_is_zero, false);
        (&mut self.grad, add)
    }

    /// The value to update and the gradient to update it with (`None`: zero).
    pub fn value_and_grad(&mut self) -> (&mut Tensor, Option<&Tensor>) {
        (&mut self.value, (!self.grad_is_zero).then_some(&self.grad))
    }
}

/// A buffer of a layer: state that is saved with the weights but not learned.
#[derive(Debug)]
pub enum Buffer<'a> {
    F32(&'a Tensor),
    /// A 0-d integer tensor (BatchNorm's num_batches_tracked, I64 as PyTorch writes it).
    I64(i64),
}

/// A buffer to load into.
#[derive(Debug)]
pub enum BufferMut<'a> {
    F32(&'a mut Tensor),
    I64(&'a mut i64),
}

/// What a layer does to one image's shape, found when the network is built.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeStep {
    /// The output shape per image.
    pub out: Vec<usize>,
    /// How the output shape follows from the input, e.g. `(28 + 2·0 − 5)/1 + 1 = 24`.
    pub arithmetic: String,
    /// Multiply-accumulates per image in the forward pass.
    pub macs: u64,
}

/// What [`Layer::build`] is told about its place in the network.
pub struct BuildContext<'a> {
    /// The shape of one image arriving at this layer.
    pub input: &'a [usize],
    /// Who produces that input, for messages: `layer 3 Flatten` or `the input`.
    pub source: String,
    /// When the input is flat and came out of a Flatten, the shape it flattened; lets a
    /// message say `2880 = 20 × 12 × 12`.
    pub flattened_from: Option<Vec<usize>>,
    /// Draws the layer's first parameters (PyTorch's default) and its dropout stream.
    pub rng: &'a mut Rng,
}

/// What [`Layer::init_params`] needs to draw a layer's parameters.
pub struct InitContext<'a> {
    pub scheme: Init,
    pub rng: &'a mut Rng,
    /// The area of the pooling window that follows this layer (1 if none): the book's
    /// initialisation divides a conv layer's fan-out by it.
    pub next_pool: usize,
    /// True for the last layer with parameters: the book initialises its softmax layer
    /// to zeros.
    pub is_output: bool,
}

impl InitContext<'_> {
    /// Draws a `count`-value weight and a `bias_count`-value bias with the scheme.
    /// `fan_in` is the inputs each output sums; `fan_out` the outputs each input reaches.
    pub fn draw(
        &mut self,
        count: usize,
        bias_count: usize,
        fan_in: usize,
        fan_out: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        match (self.scheme, self.is_output) {
            (Init::PyTorch, _) => (
                init_pytorch(self.rng, count, fan_in),
                init_pytorch(self.rng, bias_count, fan_in),
            ),
            // network3.py's SoftmaxLayer starts from zeros.
            (Init::Book, true) => (vec![0.0; count], vec![0.0; bias_count]),
            (Init::Book, false) => {
                let n_out = (fan_out / self.next_pool.max(1)).max(1);
                (
                    init_normal(self.rng, count, (1.0 / n_out as f64).sqrt()),
                    init_normal(self.rng, bias_count, 1.0),
                )
            }
        }
    }
}

impl BuildContext<'_> {
    /// The refusal of a layer that needs images (`C×H×W`) but receives another rank,
    /// saying what to change: the input shape of a grey image without its channel, or
    /// the order of the layers after a Flatten.
    pub fn needs_images(&self, layer: &str) -> String {
        let got = crate::shape::fmt_shape(self.input);
        let fix = match self.input {
            [h, w] => {
                format!("a grey image has one channel: give the input shape as 1×{h}×{w} (C×H×W)")
            }
            [_] if self.flattened_from.is_some() => {
                format!("{layer} must come before Flatten")
            }
            [f] => format!(
                "{f} flat values are not an image: reshape the input to C×H×W (e.g. \
                 1×28×28 for 784 pixels), or put {layer} before any Flatten"
            ),
            _ => "give the input shape as C×H×W, e.g. 1×28×28".to_string(),
        };
        format!(
            "expects images shaped C×H×W but receives {got} from {}; {fix}",
            self.source
        )
    }

    /// `2880 = 20 × 12 × 12 features from layer 3 Flatten` or `784 features from the input`.
    pub fn describe_features(&self, features: usize) -> String {
        match &self.flattened_from {
            Some(dims) if dims.len() > 1 => {
                let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
                format!(
                    "{features} = {} features from {}",
                    parts.join(" × "),
                    self.source
                )
            }
            _ => format!("{features} features from {}", self.source),
        }
    }
}

/// One layer of a [`crate::Sequential`] network.
///
/// Contract: `build` is called exactly once before the first forward pass;
/// `backward_into` follows the Train or Eval `forward_into` whose batch it
/// differentiates, adds parameter gradients to its params' gradients through
/// [`Param::grad_mut`] or [`Param::grad_to_write`] (PyTorch's accumulate semantics: call
/// `zero_grad` between steps), and writes the gradient with respect to the layer's input
/// when asked for one.
///
/// Both passes write into buffers the caller keeps from step to step
/// ([`crate::Sequential`] keeps one per layer), and a layer keeps its own state
/// (masks, saved inputs) in buffers it reuses, so training allocates nothing once the
/// first step is done. The allocating [`Layer::forward`] and [`Layer::backward`] are
/// conveniences on top.
pub trait Layer: Send + Sync + std::fmt::Debug {
    /// What the layer is: its PyTorch class and arguments, typed.
    fn describe(&self) -> LayerDesc;

    /// The PyTorch class name: `Conv2d`, `ReLU`, ... (for messages).
    fn kind(&self) -> &'static str {
        self.describe().kind()
    }

    /// PyTorch's repr, e.g. `Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))`. It is
    /// also the canonical spec of the layer: the spec parser reads it back.
    fn repr(&self) -> String {
        self.describe().to_string()
    }

    /// Checks the input shape, infers lazy sizes, allocates and initialises parameters
    /// (PyTorch's default). The error is the message only; [`crate::Sequential`]
    /// prefixes the layer index and repr.
    fn build(&mut self, ctx: &mut BuildContext) -> Result<ShapeStep, String>;

    /// Re-draws the parameters with another scheme (after `build`). PyTorch:
    /// `model.apply(init_fn)`.
    fn init_params(&mut self, _ctx: &mut InitContext) {}

    /// Computes the output for a batch into `out` (reshaping it and reusing its
    /// allocation), keeping what backward needs unless `pass` is [`Pass::Infer`].
    fn forward_into(&mut self, inp: &Tensor, out: &mut Tensor, pass: Pass);

    /// Given dL/d(output) of the last forward, adds dL/d(parameters) and writes
    /// dL/d(input) into `dinp` (reshaping it); `None`: the caller needs only the
    /// parameter gradients (the first layer of a network), and the layer may skip the
    /// input gradient's work.
    fn backward_into(&mut self, dout: &Tensor, dinp: Option<&mut Tensor>);

    /// [`Layer::forward_into`] into a new tensor.
    fn forward(&mut self, inp: &Tensor, pass: Pass) -> Tensor {
        let mut out = Tensor::default();
        self.forward_into(inp, &mut out, pass);
        out
    }

    /// [`Layer::backward_into`] into a new tensor, returned.
    fn backward(&mut self, dout: &Tensor) -> Tensor {
        let mut dinp = Tensor::default();
        self.backward_into(dout, Some(&mut dinp));
        dinp
    }

    /// Named parameters in PyTorch's state_dict order (`weight`, then `bias`).
    fn params(&self) -> Vec<(&'static str, &Param)> {
        Vec::new()
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        Vec::new()
    }

    /// Named buffers in PyTorch's state_dict order: state saved with the weights but
    /// not learned (BatchNorm's running statistics).
    fn buffers(&self) -> Vec<(&'static str, Buffer<'_>)> {
        Vec::new()
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, BufferMut<'_>)> {
        Vec::new()
    }

    /// The layer's per-image steps, when it treats every image on its own:
    /// [`crate::Sequential`] then runs it image by image together with its image-wise
    /// neighbours. Only seqnet's own layers can give one (see `image_wise.rs`).
    fn per_image(&mut self) -> Option<PerImage<'_>> {
        None
    }

    /// The random generator a layer draws from while training (dropout masks), so a
    /// checkpoint can store and restore it.
    fn rng_mut(&mut self) -> Option<&mut Rng> {
        None
    }
}

/// Gives `t` the shape `shape`, keeping its allocations. The values are left as they
/// were (stale); the caller overwrites them.
pub(crate) fn recycle(t: &mut Tensor, shape: &[usize]) {
    t.reuse_as(shape);
}

/// [`recycle`] for `n` images of `per_image` shape, values stale.
pub(crate) fn recycle_batch(t: &mut Tensor, n: usize, per_image: &[usize]) {
    t.reuse_as_batch(n, per_image);
}

/// Shapes the parameters of a freshly built layer, checking the size is allocatable.
pub(crate) fn checked_param_count(layer: &str, dims: &[usize]) -> Result<usize, String> {
    let mut total: usize = 1;
    for &d in dims {
        total = total.checked_mul(d).ok_or_else(|| too_many(layer, dims))?;
    }
    if total > crate::shape::MAX_PARAMS_PER_LAYER {
        return Err(too_many(layer, dims));
    }
    Ok(total)
}

fn too_many(layer: &str, dims: &[usize]) -> String {
    format!(
        "{layer} would need a weight of shape {} ({} parameters), more than seqnet \
         allocates for one layer ({}); check the sizes for a typo",
        crate::shape::fmt_shape(dims),
        dims.iter().map(|&d| d as u128).product::<u128>(),
        crate::shape::MAX_PARAMS_PER_LAYER
    )
}

/// Draws parameters the PyTorch way: U(±1/√fan_in) for weight and bias.
pub(crate) fn init_pytorch(rng: &mut Rng, count: usize, fan_in: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    (0..count).map(|_| rng.symmetric(bound)).collect()
}

/// Draws N(0, std²) values (the book's initialisation).
pub(crate) fn init_normal(rng: &mut Rng, count: usize, std: f64) -> Vec<f32> {
    (0..count).map(|_| (rng.normal() * std) as f32).collect()
}

/// Elementwise layers (ReLU, Sigmoid, Tanh) share this build: any shape passes through.
pub(crate) fn passthrough(input: &[usize]) -> ShapeStep {
    ShapeStep {
        out: input.to_vec(),
        arithmetic: "unchanged".to_string(),
        macs: 0,
    }
}

/// A size given as one int (`5`) or a `(height, width)` pair, as PyTorch accepts for
/// kernel_size, stride and padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size2(pub usize, pub usize);

impl From<usize> for Size2 {
    fn from(v: usize) -> Self {
        Size2(v, v)
    }
}

impl From<(usize, usize)> for Size2 {
    fn from(v: (usize, usize)) -> Self {
        Size2(v.0, v.1)
    }
}

impl Size2 {
    pub(crate) fn tuple(self) -> (usize, usize) {
        (self.0, self.1)
    }
}

/// The weight-then-bias list of a layer's optional parameters (state_dict order).
pub(crate) fn weight_bias<'a>(
    w: &'a Option<Param>,
    b: &'a Option<Param>,
) -> Vec<(&'static str, &'a Param)> {
    [("weight", w.as_ref()), ("bias", b.as_ref())]
        .into_iter()
        .filter_map(|(name, p)| p.map(|p| (name, p)))
        .collect()
}

pub(crate) fn weight_bias_mut<'a>(
    w: &'a mut Option<Param>,
    b: &'a mut Option<Param>,
) -> Vec<(&'static str, &'a mut Param)> {
    [("weight", w.as_mut()), ("bias", b.as_mut())]
        .into_iter()
        .filter_map(|(name, p)| p.map(|p| (name, p)))
        .collect()
}
