//! The network as text: PyTorch constructor calls, or PyTorch's own `print(model)`.
//!
//! A spec lists layers in order. Each layer is written as PyTorch's constructor call,
//! so a network can be copied from Python code or from the output of `print(model)`,
//! and [`crate::Sequential::spec`] prints one back that this module reads to the same
//! network.
//!
//! ```text
//! spec     := item (separator* item)*
//! separator:= '->' | '→' | ',' | whitespace | newline | '#' comment to the end of the line
//! item     := ['(' index ')' ':'] layer
//!           | [word '='] ['nn.' | 'torch.nn.'] 'Sequential' '(' item* ')'
//! layer    := ['nn.' | 'torch.nn.'] Name ['(' [arg (',' arg)* [',']] ')']
//! arg      := value | keyword '=' value          (positional arguments come first)
//! value    := term (('+' | '-') term)*
//! term     := signed (('*' | '//') signed)*
//! signed   := ['-'] atom
//! atom     := int | float | True | False | None | 'string' | "string" | word
//!           | '(' value, … ')' | '[' value, … ']'
//! ```
//!
//! - Names and arguments are PyTorch's, with its defaults: `Conv2d(1, 20, 5, stride=2)`,
//!   `MaxPool2d(kernel_size=(2, 3))`, `Dropout(p=.5)`. `()` may be left out: `ReLU`.
//! - `(0): Conv2d(...)` is how PyTorch prints the children of an `nn.Sequential`; the
//!   indices must count 0, 1, 2, … because seqnet names parameters by position
//!   (`0.weight`), as PyTorch's state_dict does.
//! - A bare word stands for the string, because PyTorch prints `padding=same` and
//!   `padding_mode=reflect` unquoted.
//! - Numbers follow Python: `5` is an int; `0.5`, `.5`, `1e-3` are floats; `(5)` is 5
//!   and `(5,)` a 1-tuple.
//! - Integer arithmetic is evaluated as Python would, so sizes can be pasted as written:
//!   `Linear(64 * 4 * 4, 10)`, `Conv2d(1, 32, 3, padding=3//2)`, `(2 + 1) * 8`. `*` and
//!   `//` (floor division) bind tighter than `+` and `-`; `/` (which gives a float in
//!   Python), arithmetic on floats, division by zero and results beyond 64 bits are
//!   errors that name the layer and the argument.
//!
//! Every error is an [`Error::Spec`](crate::Error::Spec) with the line and column in its
//! message and an excerpt with a caret under the offending text.
//!
//! ```
//! use seqnet::spec;
//!
//! let arrows = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() \
//!               -> LazyLinear(100) -> ReLU() -> Linear(100, 10)";
//! let printed = "Sequential(
//!   (0): Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))
//!   (1): ReLU()
//!   (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
//!   (3): Flatten(start_dim=1, end_dim=-1)
//!   (4): Linear(in_features=2880, out_features=100, bias=True)
//!   (5): ReLU()
//!   (6): Linear(in_features=100, out_features=10, bias=True)
//! )";
//! let a = spec::build(arrows, &[1, 28, 28], 0)?;
//! let b = spec::build(printed, &[1, 28, 28], 0)?;
//! assert_eq!(a.spec(), b.spec());
//! assert_eq!(a.num_params(), 289_630);
//!
//! let err = spec::build("Conv2d(1, 20, 5 -> ReLU()", &[1, 28, 28], 0).unwrap_err();
//! assert!(err.to_string().starts_with(
//!     "spec: line 1, column 17: expected ')' to close 'Conv2d(' opened at column 1"));
//! # Ok::<(), seqnet::Error>(())
//! ```

mod binder;
mod error;
mod lexer;
mod parser;
mod printer;

use std::ops::Range;

pub(crate) use binder::Bound;
pub(crate) use binder::closest;
use binder::{make_layer, planned_params};
pub(crate) use parser::{Node, NodeKind};
use parser::{parse_calls, public_value};
pub(crate) use printer::show2;

use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::sequential::Sequential;

/// The layer names a spec may use (each also with an `nn.` or `torch.nn.` prefix): those
/// of [`crate::layers::registry`], in its order.
pub const LAYER_NAMES: &[&str] = crate::layers::registry::NAMES;

/// Longest spec read, in bytes. Real networks take a few hundred; the cap keeps a
/// mistaken input (a dataset file passed as the spec) from being scanned at length.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;

/// Most layers a spec may list.
pub const MAX_LAYERS: usize = 10_000;

/// One layer call as written, e.g. `Conv2d(1, 20, kernel_size=5)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerCall {
    /// The layer name without an `nn.` or `torch.nn.` prefix, e.g. `Conv2d`. Not
    /// checked against [`LAYER_NAMES`] by [`parse`]; [`to_layers`] does that.
    pub name: String,
    /// Positional arguments, in order.
    pub args: Vec<Value>,
    /// Keyword arguments, in the order written.
    pub kwargs: Vec<(String, Value)>,
    /// The byte range of the call in the text, from the name (with its prefix) to the
    /// closing `)`.
    pub span: Range<usize>,
}

/// An argument value, with Python's types.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
    /// A quoted string, or a bare word such as `same` (PyTorch prints some strings
    /// unquoted).
    Str(String),
    Tuple(Vec<Value>),
}

/// Parses the text into layer calls, checking syntax only: brackets, separators,
/// literals, and the `(i):` indices of PyTorch's print. Names and arguments are checked
/// by [`to_layers`].
pub fn parse(text: &str) -> Result<Vec<LayerCall>> {
    parse_calls(text)?
        .into_iter()
        .map(|call| {
            let mut args = Vec::new();
            let mut kwargs = Vec::new();
            for arg in call.args {
                let subject = match &arg.key {
                    Some((key, _)) => format!("{}: {key}", call.name),
                    None => format!("{} argument {}", call.name, args.len() + 1),
                };
                let value = public_value(text, arg.value, &subject)?;
                match arg.key {
                    Some((key, _)) => kwargs.push((key, value)),
                    None => args.push(value),
                }
            }
            Ok(LayerCall {
                name: call.name,
                args,
                kwargs,
                span: call.span,
            })
        })
        .collect()
}

/// Parses the text and constructs each layer with PyTorch's argument names, order and
/// defaults. The layers are not built yet: sizes that depend on the input (and checks
/// such as Dropout's `p` range or Softmax's `dim`) are settled by [`Sequential`].
pub fn to_layers(text: &str) -> Result<Vec<Box<dyn Layer>>> {
    parse_calls(text)?
        .iter()
        .map(|call| make_layer(text, call))
        .collect()
}

/// Builds the network the text describes for images of shape `input`, drawing the
/// parameters from `seed`: `Sequential::new(input).seed(seed)`, then each layer of
/// [`to_layers`] added in order.
///
/// A network of more than [`MAX_NETWORK_PARAMS`] parameters is refused before the layer
/// that would cross the limit allocates anything.
pub fn build(text: &str, input: &[usize], seed: u64) -> Result<Sequential> {
    build_within(
        text,
        input,
        seed,
        MAX_NETWORK_PARAMS,
        &format!("the {MAX_NETWORK_PARAMS} seqnet allocates for one network"),
    )
}

/// The most parameters [`build`] allocates for one network (4 GiB of f32, as for one
/// layer): a larger network is almost certainly a typo, and several layers each just
/// under the per-layer limit would otherwise exhaust memory.
pub const MAX_NETWORK_PARAMS: usize = crate::shape::MAX_PARAMS_PER_LAYER;

/// [`build`] with a budget: a network of more than `max_params` parameters is refused
/// layer by layer, before the layer that would cross it allocates anything. `limit`
/// says what the budget is in the error message (`"the 2000 f32 values the file
/// holds"`). A model file's spec is built within the values the file holds, so a small
/// file cannot make seqnet allocate gigabytes.
pub fn build_within(
    text: &str,
    input: &[usize],
    seed: u64,
    max_params: usize,
    limit: &str,
) -> Result<Sequential> {
    let calls = parse_calls(text)?;
    let layers = calls
        .iter()
        .map(|call| make_layer(text, call))
        .collect::<Result<Vec<_>>>()?;
    if !input.is_empty() && !input.contains(&0) && crate::shape::checked_numel(input).is_none() {
        return Err(Error::Input(format!(
            "input shape {} has more than {} values per image; check the sizes for a typo",
            crate::shape::fmt_shape(input),
            crate::shape::MAX_ELEMENTS_PER_IMAGE
        )));
    }
    let mut net = Sequential::new(input.to_vec()).seed(seed);
    let mut used: u128 = 0;
    for (call, layer) in calls.iter().zip(layers) {
        if let Some(planned) = planned_params(text, call, net.output_shape()) {
            let total = used + planned;
            if total > max_params as u128 {
                return Err(Error::Shape {
                    index: net.layers().len(),
                    repr: layer.repr(),
                    message: format!(
                        "the network would need {total} parameters up to this layer, more \
                         than {limit}"
                    ),
                });
            }
        }
        net = net.add_boxed(layer)?;
        if let Some(added) = net.layers().last() {
            used += added
                .params()
                .iter()
                .map(|(_, p)| p.value.len() as u128)
                .sum::<u128>();
        }
    }
    Ok(net)
}

/// [`planned_params`] of the text's first call, for the registry's tests.
#[cfg(test)]
pub(crate) fn plan_for_test(text: &str, input: &[usize]) -> Option<u128> {
    let calls = parse_calls(text).ok()?;
    planned_params(text, &calls[0], input)
}

#[cfg(test)]
mod tests;
