//! The one table of the layers a spec may name: for each, its PyTorch name, its
//! constructor's signature (argument names, order, defaults), how a bound call becomes
//! the layer, how many parameters it will allocate, and a one-line doc.
//!
//! The spec binder ([`crate::spec`]) checks calls against these signatures, its "did you
//! mean" suggestions and lists of names come from here, and [`render`] prints the table
//! (for `seqnet layers` and the docs). Adding a layer is one entry in [`LAYERS`]; see
//! the recipe in [`crate::layers`].

use std::fmt::Write as _;

use crate::error::Result;
use crate::layers::{
    AdaptiveAvgPool2d, AdaptiveMaxPool2d, AdaptiveSize, AvgPool2d, BatchNorm, BatchNorm1d,
    BatchNorm2d, Conv2d, ConvPadding, Dropout, Dropout2d, ELU, Flatten, GELU, Identity, Layer,
    LazyConv2d, LazyLinear, LeakyReLU, Linear, LogSoftmax, MaxPool2d, ReLU, SiLU, Sigmoid, Size2,
    Softmax, Tanh,
};
use crate::spec::{Bound, NodeKind, show2};

/// One argument of a PyTorch constructor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpec {
    pub name: &'static str,
    /// PyTorch's default as it spells it; `None` for a required argument.
    pub default: Option<&'static str>,
    /// Accepted by keyword only: the `in_channels=0` / `in_features=0` PyTorch prints for
    /// lazy layers, which is not in their signature.
    pub keyword_only: bool,
}

/// A required argument.
pub const fn req(name: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        default: None,
        keyword_only: false,
    }
}

/// Python's `*args` (`name` = "*args") or `**kwargs` (`name` = "**kwargs"): any further
/// positional or keyword arguments are accepted and ignored, as `nn.Identity` does.
pub const fn rest(name: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        default: Some(""),
        keyword_only: false,
    }
}

/// An optional argument with PyTorch's default.
pub const fn opt(name: &'static str, default: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        default: Some(default),
        keyword_only: false,
    }
}

/// A keyword-only argument with its default.
pub const fn kw(name: &'static str, default: &'static str) -> ArgSpec {
    ArgSpec {
        name,
        default: Some(default),
        keyword_only: true,
    }
}

/// One layer a spec may name.
pub struct LayerEntry {
    /// PyTorch's class name, e.g. `Conv2d`; a spec may also write `nn.Conv2d`.
    pub name: &'static str,
    /// The constructor's arguments in PyTorch's order, with its defaults.
    pub args: &'static [ArgSpec],
    /// For lazy layers, the keyword-only argument a leading positional `0` fills:
    /// PyTorch prints `LazyConv2d(0, 20, kernel_size=…)` although its signature starts
    /// at out_channels.
    pub lazy_in: Option<&'static str>,
    /// One line for `seqnet layers` and the docs.
    pub doc: &'static str,
    /// A call that builds on a `[1, 6, 6]` image or 6 features, for the docs and tests.
    pub example: &'static str,
    /// The layer from a call bound to `args`, or the spec error that says what is wrong.
    pub(crate) build: fn(&Bound) -> Result<Box<dyn Layer>>,
    /// The parameters (weight and bias) the layer will allocate on `input`, found
    /// without building it, so that [`crate::spec::build_within`] refuses an absurd
    /// network before allocating. `None` for layers without parameters, and when
    /// building fails anyway before allocating (sizes that do not fit the input, a
    /// weight above [`crate::shape::MAX_PARAMS_PER_LAYER`]): the layer's own message is
    /// the better one.
    pub(crate) planned_params: fn(&Bound, &[usize]) -> Option<u128>,
}

impl LayerEntry {
    /// `Conv2d(in_channels, out_channels, kernel_size, stride=1, …)`: PyTorch's
    /// signature, without keyword-only placeholders.
    pub fn signature(&self) -> String {
        let parts: Vec<String> = self
            .args
            .iter()
            .filter(|p| !p.keyword_only)
            .map(|p| match p.default {
                _ if p.name.starts_with('*') => p.name.to_string(),
                Some(d) => format!("{}={d}", p.name),
                None => p.name.to_string(),
            })
            .collect();
        format!("{}({})", self.name, parts.join(", "))
    }
}

const CONV2D: &[ArgSpec] = &[
    req("in_channels"),
    req("out_channels"),
    req("kernel_size"),
    opt("stride", "1"),
    opt("padding", "0"),
    opt("dilation", "1"),
    opt("groups", "1"),
    opt("bias", "True"),
    opt("padding_mode", "'zeros'"),
];
const LAZY_CONV2D: &[ArgSpec] = &[
    req("out_channels"),
    req("kernel_size"),
    opt("stride", "1"),
    opt("padding", "0"),
    opt("dilation", "1"),
    opt("groups", "1"),
    opt("bias", "True"),
    opt("padding_mode", "'zeros'"),
    kw("in_channels", "0"),
];

/// The layers, in the order `seqnet layers` lists them.
pub const LAYERS: &[LayerEntry] = &[
    LayerEntry {
        name: "Conv2d",
        args: CONV2D,
        lazy_in: None,
        doc: "2-D convolution over [C, H, W] feature maps, with weight and bias",
        example: "Conv2d(1, 2, 3)",
        build: |b| conv2d(b, false),
        planned_params: |b, input| conv_params(b, input, false),
    },
    LayerEntry {
        name: "LazyConv2d",
        args: LAZY_CONV2D,
        lazy_in: Some("in_channels"),
        doc: "Conv2d whose in_channels is inferred from its input",
        example: "LazyConv2d(2, 3)",
        build: |b| conv2d(b, true),
        planned_params: |b, input| conv_params(b, input, true),
    },
    LayerEntry {
        name: "Linear",
        args: &[req("in_features"), req("out_features"), opt("bias", "True")],
        lazy_in: None,
        doc: "fully connected layer y = x Wᵀ + b over flat features",
        example: "Linear(6, 3)",
        build: |b| linear(b, false),
        planned_params: |b, input| linear_params(b, input, false),
    },
    LayerEntry {
        name: "LazyLinear",
        args: &[
            req("out_features"),
            opt("bias", "True"),
            kw("in_features", "0"),
        ],
        lazy_in: Some("in_features"),
        doc: "Linear whose in_features is inferred from its input",
        example: "LazyLinear(3)",
        build: |b| linear(b, true),
        planned_params: |b, input| linear_params(b, input, true),
    },
    LayerEntry {
        name: "MaxPool2d",
        args: &[
            req("kernel_size"),
            opt("stride", "None"),
            opt("padding", "0"),
            opt("dilation", "1"),
            opt("return_indices", "False"),
            opt("ceil_mode", "False"),
        ],
        lazy_in: None,
        doc: "2-D max pooling; stride defaults to the kernel size",
        example: "MaxPool2d(2)",
        build: maxpool2d,
        planned_params: no_params,
    },
    LayerEntry {
        name: "AvgPool2d",
        args: &[
            req("kernel_size"),
            opt("stride", "None"),
            opt("padding", "0"),
            opt("ceil_mode", "False"),
            opt("count_include_pad", "True"),
            opt("divisor_override", "None"),
        ],
        lazy_in: None,
        doc: "2-D average pooling; stride defaults to the kernel size",
        example: "AvgPool2d(2)",
        build: avgpool2d,
        planned_params: no_params,
    },
    LayerEntry {
        name: "BatchNorm1d",
        args: BATCHNORM_ARGS,
        lazy_in: None,
        doc: "normalises each channel of (N, C) or (N, C, L) over the batch, then γ·x̂ + β",
        example: "BatchNorm1d(6)",
        build: |b| batchnorm(b, BatchNorm1d::new),
        planned_params: batchnorm_params,
    },
    LayerEntry {
        name: "BatchNorm2d",
        args: BATCHNORM_ARGS,
        lazy_in: None,
        doc: "normalises each channel of (N, C, H, W) over the batch, then γ·x̂ + β",
        example: "BatchNorm2d(1)",
        build: |b| batchnorm(b, BatchNorm2d::new),
        planned_params: batchnorm_params,
    },
    LayerEntry {
        name: "AdaptiveAvgPool2d",
        args: &[req("output_size")],
        lazy_in: None,
        doc: "average over output_size windows tiling the image (1: global average pooling)",
        example: "AdaptiveAvgPool2d((2, 3))",
        build: |b| Ok(Box::new(AdaptiveAvgPool2d::new(adaptive_size(b)?))),
        planned_params: no_params,
    },
    LayerEntry {
        name: "AdaptiveMaxPool2d",
        args: &[req("output_size"), opt("return_indices", "False")],
        lazy_in: None,
        doc: "max over output_size windows tiling the image (1: global max pooling)",
        example: "AdaptiveMaxPool2d((2, 3))",
        build: |b| {
            let size = adaptive_size(b)?;
            b.only("return_indices", b.flag("return_indices")?, false)?;
            Ok(Box::new(AdaptiveMaxPool2d::new(size)))
        },
        planned_params: no_params,
    },
    LayerEntry {
        name: "ReLU",
        args: &[opt("inplace", "False")],
        lazy_in: None,
        doc: "max(0, x), element-wise",
        example: "ReLU()",
        build: |b| {
            // inplace only saves memory in PyTorch; the result is the same.
            b.flag("inplace")?;
            Ok(Box::new(ReLU::new()))
        },
        planned_params: no_params,
    },
    LayerEntry {
        name: "LeakyReLU",
        args: &[opt("negative_slope", "0.01"), opt("inplace", "False")],
        lazy_in: None,
        doc: "x for x > 0, negative_slope·x otherwise, element-wise",
        example: "LeakyReLU(negative_slope=0.2)",
        build: |b| {
            let slope = b.float_or_default("negative_slope", "a float, e.g. 0.01")?;
            b.flag("inplace")?;
            Ok(Box::new(LeakyReLU::new(slope)))
        },
        planned_params: no_params,
    },
    LayerEntry {
        name: "ELU",
        args: &[opt("alpha", "1.0"), opt("inplace", "False")],
        lazy_in: None,
        doc: "x for x > 0, alpha·(e^x - 1) otherwise, element-wise",
        example: "ELU(alpha=0.5)",
        build: |b| {
            let alpha = b.float_or_default("alpha", "a float, e.g. 1.0")?;
            b.flag("inplace")?;
            Ok(Box::new(ELU::new(alpha)))
        },
        planned_params: no_params,
    },
    LayerEntry {
        name: "GELU",
        args: &[opt("approximate", "'none'")],
        lazy_in: None,
        doc: "x·Φ(x) (Φ the normal CDF), element-wise; approximate='tanh' for the tanh form",
        example: "GELU(approximate='tanh')",
        build: |b| {
            let tanh = b.choice("approximate", &["none", "tanh"])? == Some("tanh");
            Ok(Box::new(if tanh { GELU::tanh() } else { GELU::new() }))
        },
        planned_params: no_params,
    },
    LayerEntry {
        name: "Sigmoid",
        args: &[],
        lazy_in: None,
        doc: "1 / (1 + e^-x), element-wise",
        example: "Sigmoid()",
        build: |_| Ok(Box::new(Sigmoid::new())),
        planned_params: no_params,
    },
    LayerEntry {
        name: "SiLU",
        args: &[opt("inplace", "False")],
        lazy_in: None,
        doc: "x·σ(x) (swish), element-wise",
        example: "SiLU()",
        build: |b| {
            b.flag("inplace")?;
            Ok(Box::new(SiLU::new()))
        },
        planned_params: no_params,
    },
    LayerEntry {
        name: "Tanh",
        args: &[],
        lazy_in: None,
        doc: "tanh(x), element-wise",
        example: "Tanh()",
        build: |_| Ok(Box::new(Tanh::new())),
        planned_params: no_params,
    },
    LayerEntry {
        name: "Flatten",
        args: &[opt("start_dim", "1"), opt("end_dim", "-1")],
        lazy_in: None,
        doc: "flattens each image's [C, H, W] into [C·H·W] features",
        example: "Flatten()",
        build: flatten,
        planned_params: no_params,
    },
    LayerEntry {
        name: "Identity",
        args: &[rest("*args"), rest("**kwargs")],
        lazy_in: None,
        doc: "the input unchanged; any arguments are accepted and ignored, as in PyTorch",
        example: "Identity()",
        build: |_| Ok(Box::new(Identity::new())),
        planned_params: no_params,
    },
    LayerEntry {
        name: "Dropout",
        args: &[opt("p", "0.5"), opt("inplace", "False")],
        lazy_in: None,
        doc: "zeroes each value with probability p in training, scaling the rest by 1/(1-p)",
        example: "Dropout(0.5)",
        build: dropout,
        planned_params: no_params,
    },
    LayerEntry {
        name: "Dropout2d",
        args: &[opt("p", "0.5"), opt("inplace", "False")],
        lazy_in: None,
        doc: "zeroes each whole channel with probability p in training, scaling the rest by 1/(1-p)",
        example: "Dropout2d(0.5)",
        build: |b| Ok(Box::new(Dropout2d::new(dropout_p(b)?))),
        planned_params: no_params,
    },
    LayerEntry {
        name: "Softmax",
        args: &[opt("dim", "None")],
        lazy_in: None,
        doc: "exponentials normalised to sum to 1 over dim (seqnet needs dim=1)",
        example: "Softmax(dim=1)",
        build: softmax,
        planned_params: no_params,
    },
    LayerEntry {
        name: "LogSoftmax",
        args: &[opt("dim", "None")],
        lazy_in: None,
        doc: "the logarithm of Softmax, computed stably",
        example: "LogSoftmax(dim=1)",
        build: softmax,
        planned_params: no_params,
    },
];

/// Every layer a spec may name, in the order `seqnet layers` lists them.
pub fn layers() -> &'static [LayerEntry] {
    LAYERS
}

/// The entry named `name` (without an `nn.` prefix), if seqnet has that layer.
pub fn find(name: &str) -> Option<&'static LayerEntry> {
    LAYERS.iter().find(|e| e.name == name)
}

/// The names of [`LAYERS`], in order.
pub const NAMES: &[&str] = &names::<{ LAYERS.len() }>();

const fn names<const N: usize>() -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = LAYERS[i].name;
        i += 1;
    }
    out
}

/// Widest line of [`render`], in characters: a 100-column terminal shows it whole.
pub const RENDER_WIDTH: usize = 100;

/// The table as text: each layer's signature with PyTorch's defaults, wrapped between
/// arguments to [`RENDER_WIDTH`] with the continuation aligned after the `(`, and its
/// doc on the next line.
///
/// ```text
/// Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
///        bias=True, padding_mode='zeros')
///     2-D convolution over [C, H, W] feature maps, with weight and bias
/// ```
pub fn render() -> String {
    let mut out = String::new();
    for entry in LAYERS {
        let indent = " ".repeat(entry.name.chars().count() + 1);
        let lines = crate::summary::wrap_at(&entry.signature(), RENDER_WIDTH - indent.len(), ", ");
        let _ = writeln!(
            out,
            "{}\n    {}",
            lines.join(&format!("\n{indent}")),
            entry.doc
        );
    }
    out
}

fn no_params(_: &Bound, _: &[usize]) -> Option<u128> {
    None
}

/// Conv2d's weight and bias on a `[C, H, W]` input.
fn conv_params(b: &Bound, input: &[usize], lazy: bool) -> Option<u128> {
    let bias = b.flag("bias").ok()?.unwrap_or(true);
    let &[c, _, _] = input else { return None };
    if !lazy && b.size("in_channels", 1).ok()?? != c {
        return None;
    }
    let out = b.size("out_channels", 1).ok()??;
    let k = b.size2("kernel_size", 1).ok()??;
    let groups = b.size("groups", 1).ok()?.unwrap_or(1);
    if c % groups != 0 || out % groups != 0 {
        return None;
    }
    // Two sizes below 2^64 multiply within u128; the third may not (checked below).
    let fan_in = (k.0 as u128 * k.1 as u128).checked_mul((c / groups) as u128)?;
    weight_and_bias(out as u128, fan_in, bias)
}

/// Linear's weight and bias on a `[F]` input.
fn linear_params(b: &Bound, input: &[usize], lazy: bool) -> Option<u128> {
    let bias = b.flag("bias").ok()?.unwrap_or(true);
    let &[features] = input else { return None };
    if !lazy && b.size("in_features", 1).ok()?? != features {
        return None;
    }
    let out = b.size("out_features", 1).ok()??;
    weight_and_bias(out as u128, features as u128, bias)
}

fn weight_and_bias(out: u128, fan_in: u128, bias: bool) -> Option<u128> {
    let weight = out.checked_mul(fan_in)?;
    if weight > crate::shape::MAX_PARAMS_PER_LAYER as u128 {
        return None;
    }
    Some(weight + if bias { out } else { 0 })
}

/// BatchNorm1d's and BatchNorm2d's signature (torch 2.15: `bias` is keyword-only).
const BATCHNORM_ARGS: &[ArgSpec] = &[
    req("num_features"),
    opt("eps", "1e-05"),
    opt("momentum", "0.1"),
    opt("affine", "True"),
    opt("track_running_stats", "True"),
    opt("device", "None"),
    opt("dtype", "None"),
    kw("bias", "True"),
];

fn batchnorm(b: &Bound, make: fn(usize) -> BatchNorm) -> Result<Box<dyn Layer>> {
    let c = b.required(b.size("num_features", 1)?, "num_features")?;
    let eps = b.float_or_default("eps", "a float, e.g. 1e-05")?;
    if eps <= 0.0 {
        return Err(b.fail(
            b.span_of("eps"),
            format!("eps must be positive (it keeps √(σ² + eps) away from 0), got {eps}"),
        ));
    }
    let momentum = if b.is_none("momentum") {
        None
    } else {
        Some(b.float_or_default("momentum", "a float in [0, 1] or None")?)
    };
    for name in ["device", "dtype"] {
        if let Some(node) = b.get(name).filter(|_| !b.is_none(name)) {
            return Err(b.bad(
                node.span.clone(),
                format!("{name} must be None: seqnet keeps f32 on the CPU"),
            ));
        }
    }
    let layer = make(c)
        .eps(eps)
        .momentum(momentum)
        .affine(b.flag("affine")?.unwrap_or(true))
        .track_running_stats(b.flag("track_running_stats")?.unwrap_or(true))
        .bias(b.flag("bias")?.unwrap_or(true));
    Ok(Box::new(layer))
}

fn batchnorm_params(b: &Bound, _input: &[usize]) -> Option<u128> {
    let c = b.size("num_features", 1).ok()?? as u128;
    let affine = b.flag("affine").ok()?.unwrap_or(true);
    let bias = b.flag("bias").ok()?.unwrap_or(true);
    Some(if affine {
        c + if bias { c } else { 0 }
    } else {
        0
    })
}

/// PyTorch layers seqnet does not implement: named as such rather than as typos.
pub(crate) const NOT_IMPLEMENTED: &[&str] = &[
    "AvgPool1d",
    "Conv1d",
    "Conv3d",
    "ConvTranspose2d",
    "Embedding",
    "GRU",
    "Hardtanh",
    "LayerNorm",
    "LocalResponseNorm",
    "LSTM",
    "MaxPool1d",
    "PReLU",
    "ReLU6",
    "RNN",
    "Softmax2d",
    "Softplus",
    "Unflatten",
    "Upsample",
    "ZeroPad2d",
];

/// A layer's input size, in_channels or in_features (`name`): `None` for the lazy
/// layer, which infers it (its print's placeholder 0 is accepted; `fixed` is the
/// non-lazy call to suggest for any other number), else at least 1, 0 pointing to
/// `lazy_call`.
fn input_size(
    b: &Bound,
    name: &str,
    lazy: bool,
    fixed: &str,
    lazy_call: &str,
) -> Result<Option<usize>> {
    if lazy {
        b.lazy_placeholder(name, fixed)?;
        return Ok(None);
    }
    let n = b.required(b.size(name, 0)?, name)?;
    if n == 0 {
        return Err(b.bad(
            b.span_of(name),
            format!(
                "{name} must be at least 1, got 0; to infer it from the input, use {lazy_call}"
            ),
        ));
    }
    Ok(Some(n))
}

fn conv2d(b: &Bound, lazy: bool) -> Result<Box<dyn Layer>> {
    let in_channels = input_size(
        b,
        "in_channels",
        lazy,
        "Conv2d({}, out_channels, kernel_size)",
        "LazyConv2d(out_channels, kernel_size)",
    )?;
    let out_channels = b.required(b.size("out_channels", 1)?, "out_channels")?;
    let kernel = b.required(b.size2("kernel_size", 1)?, "kernel_size")?;
    let stride = b.size2("stride", 1)?.unwrap_or(Size2(1, 1));
    let padding = conv_padding(b, stride)?;
    let dilation = b.size2("dilation", 1)?.unwrap_or(Size2(1, 1));
    let groups = b.size("groups", 1)?.unwrap_or(1);
    // PyTorch's rule, checked here where the spec can point at groups; a LazyConv2d's
    // in_channels is known only when it is built, which checks it then.
    let refusal =
        crate::layers::conv2d::groups_refusal(in_channels.unwrap_or(groups), out_channels, groups);
    if let (Some(msg), Some(node)) = (refusal, b.get("groups")) {
        return Err(b.bad(node.span.clone(), msg));
    }
    let bias = b.flag("bias")?.unwrap_or(true);
    if let Some(node) = b.get("padding_mode") {
        match &node.kind {
            NodeKind::Str(m) if m == "zeros" => {}
            NodeKind::Str(m) if ["reflect", "replicate", "circular"].contains(&m.as_str()) => {
                return Err(b.bad(
                    node.span.clone(),
                    format!("padding_mode='{m}' is not implemented in seqnet (only 'zeros')"),
                ));
            }
            _ => {
                return Err(b.expects(
                    "padding_mode",
                    node,
                    "one of 'zeros', 'reflect', 'replicate' or 'circular'",
                ));
            }
        }
    }
    let conv = match in_channels {
        Some(c) => Conv2d::new(c, out_channels, kernel),
        None => LazyConv2d::new(out_channels, kernel),
    };
    Ok(Box::new(
        conv.stride(stride)
            .padding(padding)
            .dilation(dilation)
            .groups(groups)
            .bias(bias),
    ))
}

/// Conv2d's padding: numbers, or PyTorch's 'valid' (none) and 'same' (the output keeps
/// the input size; stride 1 only, as in PyTorch).
fn conv_padding(b: &Bound, stride: Size2) -> Result<ConvPadding> {
    let Some(node) = b.get("padding") else {
        return Ok(ConvPadding::Zeros(Size2(0, 0)));
    };
    let NodeKind::Str(mode) = &node.kind else {
        return Ok(ConvPadding::Zeros(
            b.size2("padding", 0)?.unwrap_or(Size2(0, 0)),
        ));
    };
    match mode.as_str() {
        "valid" => Ok(ConvPadding::Valid),
        "same" if stride != Size2(1, 1) => Err(b.bad(
            node.span.clone(),
            crate::layers::conv2d::same_needs_stride_1(stride),
        )),
        "same" => Ok(ConvPadding::Same),
        _ => Err(b.expects(
            "padding",
            node,
            "an int, a (height, width) tuple, 'valid' or 'same'",
        )),
    }
}

fn linear(b: &Bound, lazy: bool) -> Result<Box<dyn Layer>> {
    let in_features = input_size(
        b,
        "in_features",
        lazy,
        "Linear({}, out_features)",
        "LazyLinear(out_features)",
    )?;
    let out_features = b.required(b.size("out_features", 1)?, "out_features")?;
    let bias = b.flag("bias")?.unwrap_or(true);
    let linear = match in_features {
        Some(f) => Linear::new(f, out_features),
        None => LazyLinear::new(out_features),
    };
    Ok(Box::new(linear.bias(bias)))
}

/// What MaxPool2d and AvgPool2d share: kernel, stride (None: the kernel), padding.
fn pool_sizes(b: &Bound) -> Result<(Size2, Option<Size2>, Size2)> {
    let kernel = b.required(b.size2("kernel_size", 1)?, "kernel_size")?;
    let stride = if b.is_none("stride") {
        None
    } else {
        b.size2("stride", 1)?
    };
    let padding = b.size2("padding", 0)?.unwrap_or(Size2(0, 0));
    Ok((kernel, stride, padding))
}

fn maxpool2d(b: &Bound) -> Result<Box<dyn Layer>> {
    let (kernel, stride, padding) = pool_sizes(b)?;
    let dilation = b.size2("dilation", 1)?.map(show2);
    b.only("dilation", dilation, "1".to_string())?;
    b.only("return_indices", b.flag("return_indices")?, false)?;
    let ceil_mode = b.flag("ceil_mode")?.unwrap_or(false);
    let mut pool = MaxPool2d::new(kernel).padding(padding).ceil_mode(ceil_mode);
    if let Some(s) = stride {
        pool = pool.stride(s);
    }
    Ok(Box::new(pool))
}

fn avgpool2d(b: &Bound) -> Result<Box<dyn Layer>> {
    let (kernel, stride, padding) = pool_sizes(b)?;
    let ceil_mode = b.flag("ceil_mode")?.unwrap_or(false);
    let count_include_pad = b.flag("count_include_pad")?.unwrap_or(true);
    if !b.is_none("divisor_override")
        && let Some(d) = b.size("divisor_override", 1)?
    {
        return Err(b.bad(
            b.span_of("divisor_override"),
            format!(
                "divisor_override={d} is not implemented in seqnet (only None: the \
                     window area divides)"
            ),
        ));
    }
    let mut pool = AvgPool2d::new(kernel)
        .padding(padding)
        .ceil_mode(ceil_mode)
        .count_include_pad(count_include_pad);
    if let Some(s) = stride {
        pool = pool.stride(s);
    }
    Ok(Box::new(pool))
}

/// An adaptive pool's output_size: an int of at least 1, or a pair of them in which
/// None keeps the input's size.
fn adaptive_size(b: &Bound) -> Result<AdaptiveSize> {
    let node = b.required(b.get("output_size"), "output_size")?;
    let what = "an int or an (OH, OW) tuple of ints (None keeps that side of the input)";
    match &node.kind {
        NodeKind::Tuple(items) => match items.as_slice() {
            [h, w] => {
                let side = |n: &crate::spec::Node| match n.kind {
                    NodeKind::None => Ok(None),
                    _ => b.count_of("output_size", n, 1).map(Some),
                };
                Ok(AdaptiveSize::Pair(side(h)?, side(w)?))
            }
            _ => Err(b.bad(
                node.span.clone(),
                format!(
                    "output_size expects {what}; {} has {} values, not 2",
                    b.src(node),
                    items.len()
                ),
            )),
        },
        NodeKind::Int(_) | NodeKind::BigInt => {
            Ok(AdaptiveSize::Int(b.count_of("output_size", node, 1)?))
        }
        _ => Err(b.expects("output_size", node, what)),
    }
}

fn flatten(b: &Bound) -> Result<Box<dyn Layer>> {
    for (name, supported) in [("start_dim", 1), ("end_dim", -1)] {
        if let (Some(v), Some(node)) = (b.int(name)?, b.get(name))
            && v != supported
        {
            return Err(b.bad(
                node.span.clone(),
                format!(
                    "{name}={v} is not implemented in seqnet; Flatten flattens every \
                         dimension after the batch (start_dim=1, end_dim=-1)"
                ),
            ));
        }
    }
    Ok(Box::new(Flatten::new()))
}

fn dropout(b: &Bound) -> Result<Box<dyn Layer>> {
    Ok(Box::new(Dropout::new(dropout_p(b)?)))
}

/// Dropout's and Dropout2d's p (finite; its range is Dropout's to check when built),
/// inplace accepted.
fn dropout_p(b: &Bound) -> Result<f32> {
    let p = b.float_or_default("p", "a float (the fraction dropped, e.g. 0.5)")?;
    b.flag("inplace")?;
    Ok(p)
}

fn softmax(b: &Bound) -> Result<Box<dyn Layer>> {
    let layer = b.layer;
    let dim = if b.is_none("dim") {
        None
    } else {
        b.int("dim")?
    };
    let Some(dim) = dim else {
        return Err(b.fail(
            b.span_of("dim"),
            format!(
                "needs dim (PyTorch's implicit choice is deprecated); seqnet normalises \
                 over the classes: {layer}(dim=1)"
            ),
        ));
    };
    // The layer checks dim against the shape it receives when built.
    Ok(if layer == "Softmax" {
        Box::new(Softmax::new(dim))
    } else {
        Box::new(LogSoftmax::new(dim))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequential::Sequential;

    #[test]
    fn names_are_unique_and_are_the_spec_names() {
        let mut names: Vec<&str> = layers().iter().map(|e| e.name).collect();
        assert_eq!(names, NAMES);
        assert_eq!(NAMES, crate::spec::LAYER_NAMES);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), LAYERS.len(), "a name is listed twice");
        for name in NOT_IMPLEMENTED {
            assert!(find(name).is_none(), "{name} is both implemented and not");
        }
    }

    #[test]
    fn every_entry_round_trips() {
        for entry in layers() {
            assert!(
                entry.example.starts_with(&format!("{}(", entry.name)),
                "{}: example {}",
                entry.name,
                entry.example
            );
            // Built on an image or on flat features, whichever the layer takes.
            let net = [vec![1, 6, 6], vec![6]]
                .into_iter()
                .find_map(|input| crate::spec::build(entry.example, &input, 0).ok())
                .unwrap_or_else(|| panic!("{} does not build", entry.example));
            // Unbuilt, the repr names the entry; built, a lazy layer prints as the layer
            // it became (LazyLinear as Linear), as PyTorch's do.
            let unbuilt = crate::spec::to_layers(entry.example).unwrap()[0].repr();
            assert!(
                unbuilt.starts_with(&format!("{}(", entry.name)),
                "{unbuilt}"
            );
            let unbuilt_again = crate::spec::to_layers(&unbuilt)
                .unwrap_or_else(|e| panic!("{unbuilt} does not parse back: {e}"));
            assert_eq!(unbuilt_again[0].repr(), unbuilt);
            let repr = net.layers()[0].repr();
            let built = entry.name.strip_prefix("Lazy").unwrap_or(entry.name);
            assert!(
                repr.starts_with(&format!("{built}(")),
                "{}: {repr}",
                entry.name
            );
            let again = crate::spec::build(&repr, net.input_shape(), 0)
                .unwrap_or_else(|e| panic!("{repr} does not parse back: {e}"));
            assert_eq!(again.layers()[0].repr(), repr);
            assert_eq!(again.spec(), net.spec());
            // The signature names every argument but the keyword-only placeholders.
            let sig = entry.signature();
            for arg in entry.args.iter().filter(|a| !a.keyword_only) {
                assert!(sig.contains(arg.name), "{sig} lacks {}", arg.name);
            }
        }
    }

    #[test]
    fn render_lists_every_layer_with_its_doc() {
        let text = render();
        assert!(text.starts_with(
            "Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, \
             groups=1,\n       bias=True, padding_mode='zeros')\n    2-D convolution"
        ));
        let long: Vec<&str> = text
            .lines()
            .filter(|l| l.chars().count() > RENDER_WIDTH)
            .collect();
        assert!(long.is_empty(), "lines wider than {RENDER_WIDTH}: {long:?}");
        // Each entry is its signature, wrapped (continuation lines start with spaces),
        // then its doc indented by four.
        let mut entries: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            match line.strip_prefix("    ") {
                Some(doc) if !doc.starts_with(' ') => {
                    let last = entries.last_mut().expect("a signature before its doc");
                    last.1 = doc.to_string();
                }
                _ if line.starts_with(' ') => {
                    let last = entries.last_mut().expect("a signature to continue");
                    last.0 = format!("{} {}", last.0, line.trim_start());
                }
                _ => entries.push((line.to_string(), String::new())),
            }
        }
        let want: Vec<(String, String)> = layers()
            .iter()
            .map(|e| (e.signature(), e.doc.to_string()))
            .collect();
        assert_eq!(entries, want);
    }

    #[test]
    fn float_defaults_are_the_signatures() {
        let repr = |text: &str| crate::spec::to_layers(text).unwrap()[0].repr();
        for (bare, explicit) in [
            ("LeakyReLU()", "LeakyReLU(negative_slope=0.01)"),
            ("ELU()", "ELU(alpha=1.0)"),
            ("Dropout()", "Dropout(p=0.5)"),
            ("Dropout2d()", "Dropout2d(0.5)"),
            ("BatchNorm2d(3)", "BatchNorm2d(3, eps=1e-05, momentum=0.1)"),
        ] {
            assert_eq!(repr(bare), repr(explicit), "{bare}");
        }
        assert_ne!(repr("ELU()"), repr("ELU(alpha=0.5)"));
        let err = crate::spec::to_layers("BatchNorm2d(4, eps=0)").unwrap_err();
        assert!(
            err.to_string().contains("BatchNorm2d eps must be positive")
                && err.to_string().ends_with("\n                     ^"),
            "{err}"
        );
    }

    #[test]
    fn planned_params_match_what_building_allocates() {
        for (text, input) in [
            ("Conv2d(1, 2, 3)", &[1, 6, 6][..]),
            ("LazyConv2d(4, (3, 2), bias=False)", &[3, 6, 6][..]),
            (
                "Conv2d(4, 8, 3, padding='same', dilation=2, groups=2)",
                &[4, 6, 6][..],
            ),
            (
                "LazyConv2d(6, (3, 2), groups=6, bias=False)",
                &[6, 6, 6][..],
            ),
            ("Linear(6, 3)", &[6][..]),
            ("LazyLinear(5)", &[7][..]),
        ] {
            let net = crate::spec::build(text, input, 0).unwrap();
            let planned = crate::spec::plan_for_test(text, input);
            assert_eq!(planned, Some(net.num_params() as u128), "{text}");
        }
        let net = Sequential::new([1, 6, 6]);
        assert_eq!(
            crate::spec::plan_for_test("ReLU()", net.output_shape()),
            None
        );
    }
}
