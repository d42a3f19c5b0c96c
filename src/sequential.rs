//! Sequential: layers applied in order, built for one input shape. PyTorch:
//! `nn.Sequential(...)`, plus what PyTorch lacks: every layer is checked against the
//! shape it will receive when it is added, so a wrong size is an error that names the
//! layer and the numbers before any data flows.

use crate::error::{Error, Result};
use crate::layers::{BuildContext, Init, InitContext, Layer, Mode, Param, ShapeStep};
use crate::rng::Rng;
use crate::shape::fmt_shape;
use crate::tensor::Tensor;

/// A network: an input shape (per image) and layers, each built for the shape it receives.
#[derive(Debug)]
pub struct Sequential {
    input: Vec<usize>,
    layers: Vec<Box<dyn Layer>>,
    /// What each layer does to the shape, in order.
    steps: Vec<ShapeStep>,
    rng: Rng,
}

/// Most multiply-accumulates one layer may cost per image (about 17 billion).
pub const MAX_MACS_PER_LAYER: u64 = 1 << 34;

impl Sequential {
    /// An empty network for images of `input` shape (`[C, H, W]`, or `[F]` for flat
    /// vectors). Parameters are drawn PyTorch's way from seed 0 unless [`Sequential::seed`]
    /// says otherwise.
    pub fn new(input: impl Into<Vec<usize>>) -> Self {
        Sequential {
            input: input.into(),
            layers: Vec::new(),
            steps: Vec::new(),
            rng: Rng::new(0),
        }
    }

    /// Seeds the generator that draws the parameters of the layers added after this.
    /// PyTorch: `torch.manual_seed(seed)`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Rng::new(seed);
        self
    }

    /// Adds a layer, building it for the current output shape. PyTorch: the next
    /// argument of `nn.Sequential(...)`, checked now instead of at the first batch.
    // Named like PyTorch's `add_module`/`append`, not the `+` operator: it can fail.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, layer: impl Layer + 'static) -> Result<Self> {
        self.add_boxed(Box::new(layer))
    }

    /// [`Sequential::add`] for a layer already boxed (the spec parser makes these).
    pub fn add_boxed(mut self, mut layer: Box<dyn Layer>) -> Result<Self> {
        let index = self.layers.len();
        if index == 0 && (self.input.is_empty() || self.input.contains(&0)) {
            return Err(Error::Input(format!(
                "input shape {} must have positive sizes, e.g. 1×28×28",
                fmt_shape(&self.input)
            )));
        }
        let input = self.output_shape().to_vec();
        let source = match self.layers.last() {
            Some(prev) => format!("layer {} {}", index - 1, prev.kind()),
            None => "the input".to_string(),
        };
        let flattened_from = match self.layers.last() {
            Some(prev) if prev.kind() == "Flatten" => Some(self.layer_input(index - 1).to_vec()),
            _ => None,
        };
        let mut ctx = BuildContext {
            input: &input,
            source,
            flattened_from,
            rng: &mut self.rng,
        };
        let repr_before = layer.repr();
        let step = layer.build(&mut ctx).map_err(|message| Error::Shape {
            index,
            repr: repr_before,
            message,
        })?;
        // A layer whose work per image is absurd (a kernel of 500 with padding 500) would
        // build cheaply and then exhaust memory in its first forward pass (im2col holds
        // C·kh·kw × OH·OW values, no more than its MACs): refuse it now.
        if step.macs > MAX_MACS_PER_LAYER {
            return Err(Error::Shape {
                index,
                repr: layer.repr(),
                message: format!(
                    "would need {} multiply-adds per image, more than seqnet runs in one layer ({MAX_MACS_PER_LAYER}); check the kernel size, padding and stride",
                    step.macs
                ),
            });
        }
        self.layers.push(layer);
        self.steps.push(step);
        Ok(self)
    }

    /// Re-draws every parameter with `scheme` from `seed`. The book's scheme needs to
    /// see the whole network (a conv layer's pooling, the output layer), hence after
    /// building. PyTorch: `torch.manual_seed(seed); model.apply(init_fn)`.
    pub fn init(&mut self, scheme: Init, seed: u64) {
        let mut rng = Rng::new(seed);
        let last_with_params = self.layers.iter().rposition(|l| !l.params().is_empty());
        for i in 0..self.layers.len() {
            let next_pool = match self.layers.get(i + 1).map(|l| l.kind()) {
                Some("MaxPool2d") | Some("AvgPool2d") => {
                    let (a, b) = (self.layer_input(i + 1), &self.steps[i + 1].out);
                    (a[1] * a[2]) / (b[1] * b[2]).max(1)
                }
                _ => 1,
            };
            self.layers[i].init_params(&mut InitContext {
                scheme,
                rng: &mut rng,
                next_pool: next_pool.max(1),
                is_output: Some(i) == last_with_params,
            });
        }
    }

    /// The shape of one image entering the network.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// The shape of one image leaving the network (the input shape if it has no layers).
    pub fn output_shape(&self) -> &[usize] {
        self.steps.last().map_or(&self.input, |s| &s.out)
    }

    /// The shape of one image entering layer `index`.
    pub fn layer_input(&self, index: usize) -> &[usize] {
        if index == 0 {
            &self.input
        } else {
            &self.steps[index - 1].out
        }
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// What each layer does to the shape, in order.
    pub fn steps(&self) -> &[ShapeStep] {
        &self.steps
    }

    /// The canonical text form: each layer's PyTorch repr joined by ` -> `. The spec
    /// parser reads it back to the same network.
    pub fn spec(&self) -> String {
        let parts: Vec<String> = self.layers.iter().map(|l| l.repr()).collect();
        parts.join(" -> ")
    }

    /// Runs the batch `inp` (`[N, ...input shape]`) through every layer.
    pub fn forward(&mut self, inp: &Tensor, mode: Mode) -> Result<Tensor> {
        if inp.shape().len() != self.input.len() + 1 || inp.shape()[1..] != self.input[..] {
            return Err(Error::Input(format!(
                "the network takes batches shaped N×{} but was given {}; resize the images \
                 or build the network for this input shape",
                fmt_shape(&self.input),
                fmt_shape(inp.shape())
            )));
        }
        let mut x = inp.clone();
        for layer in &mut self.layers {
            x = layer.forward(&x, mode);
        }
        Ok(x)
    }

    /// Back-propagates `dout` (dL/d(output) of the last forward) through every layer,
    /// adding into each parameter's gradient, and returns dL/d(input).
    pub fn backward(&mut self, dout: &Tensor) -> Tensor {
        let mut d = dout.clone();
        for layer in self.layers.iter_mut().rev() {
            d = layer.backward(&d);
        }
        d
    }

    /// Sets every gradient to zero. PyTorch: `optimizer.zero_grad()`.
    pub fn zero_grad(&mut self) {
        for layer in &mut self.layers {
            for (_, p) in layer.params_mut() {
                p.grad.data_mut().fill(0.0);
            }
        }
    }

    /// Parameters with their PyTorch state_dict names (`0.weight`, `0.bias`, `4.weight`…:
    /// the index counts parameter-free layers too).
    pub fn named_params(&self) -> Vec<(String, &Param)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (name, p) in layer.params() {
                out.push((format!("{i}.{name}"), p));
            }
        }
        out
    }

    pub fn named_params_mut(&mut self) -> Vec<(String, &mut Param)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for (name, p) in layer.params_mut() {
                out.push((format!("{i}.{name}"), p));
            }
        }
        out
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.named_params().iter().map(|(_, p)| p.value.len()).sum()
    }

    /// Predicted class probabilities for a batch: softmax of the logits in Eval mode
    /// (or the outputs themselves if the network already ends in Softmax).
    pub fn predict(&mut self, inp: &Tensor) -> Result<Tensor> {
        let out = self.forward(inp, Mode::Eval)?;
        Ok(crate::loss::probabilities(
            &out,
            self.layers.last().map(|l| l.kind()),
        ))
    }
}
