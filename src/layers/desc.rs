//! What a layer is, as typed values: its PyTorch class and the arguments that define it.
//!
//! Everything that needs to know a layer's kind or its geometry reads a [`LayerDesc`]
//! (the ONNX exporter, the summary, the softmax detection of the loss, the book's
//! initialisation, the spec printer) instead of comparing names or re-reading text.
//! Its `Display` is PyTorch's `print(model)` line, which the spec parser reads back.

use std::fmt;

use super::{AdaptiveSize, ConvPadding, Size2};

/// A layer's PyTorch class and arguments. `Lazy*` layers have `None` for the size they
/// infer until they are built.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LayerDesc {
    Conv2d {
        in_channels: Option<usize>,
        out_channels: usize,
        kernel_size: Size2,
        stride: Size2,
        padding: ConvPadding,
        dilation: Size2,
        groups: usize,
        bias: bool,
    },
    Linear {
        in_features: Option<usize>,
        out_features: usize,
        bias: bool,
    },
    MaxPool2d {
        kernel_size: Size2,
        stride: Size2,
        padding: Size2,
        ceil_mode: bool,
    },
    AvgPool2d {
        kernel_size: Size2,
        stride: Size2,
        padding: Size2,
        ceil_mode: bool,
        count_include_pad: bool,
    },
    /// `BatchNorm1d` (`dims` 1) or `BatchNorm2d` (`dims` 2).
    BatchNorm {
        dims: u8,
        num_features: usize,
        eps: f32,
        momentum: Option<f32>,
        affine: bool,
        bias: bool,
        track_running_stats: bool,
    },
    AdaptiveAvgPool2d {
        output_size: AdaptiveSize,
    },
    AdaptiveMaxPool2d {
        output_size: AdaptiveSize,
    },
    ReLU,
    LeakyReLU {
        negative_slope: f32,
    },
    ELU {
        alpha: f32,
    },
    /// `approximate='tanh'` when `tanh`, else the exact form (`'none'`).
    GELU {
        tanh: bool,
    },
    Sigmoid,
    SiLU,
    Tanh,
    Flatten,
    Identity,
    Dropout {
        p: f32,
    },
    Dropout2d {
        p: f32,
    },
    Softmax {
        dim: i64,
    },
    LogSoftmax {
        dim: i64,
    },
    /// A layer defined outside seqnet: its name and `print(model)` text. Nothing exports
    /// it to ONNX.
    Custom {
        kind: &'static str,
        repr: String,
    },
}

impl LayerDesc {
    /// The PyTorch class, lazy or not built yet aside: `Conv2d` for a `LazyConv2d` too.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerDesc::Conv2d { .. } => "Conv2d",
            LayerDesc::Linear { .. } => "Linear",
            LayerDesc::MaxPool2d { .. } => "MaxPool2d",
            LayerDesc::AvgPool2d { .. } => "AvgPool2d",
            LayerDesc::BatchNorm { dims: 1, .. } => "BatchNorm1d",
            LayerDesc::BatchNorm { .. } => "BatchNorm2d",
            LayerDesc::AdaptiveAvgPool2d { .. } => "AdaptiveAvgPool2d",
            LayerDesc::AdaptiveMaxPool2d { .. } => "AdaptiveMaxPool2d",
            LayerDesc::ReLU => "ReLU",
            LayerDesc::LeakyReLU { .. } => "LeakyReLU",
            LayerDesc::ELU { .. } => "ELU",
            LayerDesc::GELU { .. } => "GELU",
            LayerDesc::Sigmoid => "Sigmoid",
            LayerDesc::SiLU => "SiLU",
            LayerDesc::Tanh => "Tanh",
            LayerDesc::Flatten => "Flatten",
            LayerDesc::Identity => "Identity",
            LayerDesc::Dropout { .. } => "Dropout",
            LayerDesc::Dropout2d { .. } => "Dropout2d",
            LayerDesc::Softmax { .. } => "Softmax",
            LayerDesc::LogSoftmax { .. } => "LogSoftmax",
            LayerDesc::Custom { kind, .. } => kind,
        }
    }

    /// An activation applied to each value on its own, for which pooling before or
    /// after it computes the same function (ReLU, sigmoid and tanh are monotonic).
    pub fn is_monotonic_activation(&self) -> bool {
        matches!(self, LayerDesc::ReLU | LayerDesc::Sigmoid | LayerDesc::Tanh)
    }

    /// A pooling layer (max or average): the book's initialisation divides the fan-out
    /// of the convolution before it by its window.
    pub fn is_pooling(&self) -> bool {
        matches!(
            self,
            LayerDesc::MaxPool2d { .. } | LayerDesc::AvgPool2d { .. }
        )
    }

    /// What the network's outputs are when this is its last layer.
    pub fn output_kind(&self) -> OutputKind {
        match self {
            LayerDesc::Softmax { .. } => OutputKind::Probabilities,
            LayerDesc::LogSoftmax { .. } => OutputKind::LogProbabilities,
            _ => OutputKind::Logits,
        }
    }
}

/// What a network's outputs are, read off its last layer: how to turn them into
/// probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// Raw scores (PyTorch's usual ending, trained with cross-entropy): softmax them.
    Logits,
    /// The network ends in Softmax: already probabilities.
    Probabilities,
    /// The network ends in LogSoftmax: exponentiate them.
    LogProbabilities,
}

impl OutputKind {
    /// The kind of a network's outputs from its last layer (`None`: no layers, the
    /// outputs are the inputs, taken as logits).
    pub fn of_last(last: Option<&LayerDesc>) -> OutputKind {
        last.map_or(OutputKind::Logits, LayerDesc::output_kind)
    }
}

/// `(5, 5)`: PyTorch's repr of a pair.
fn pair(s: Size2) -> String {
    format!("({}, {})", s.0, s.1)
}

/// PyTorch's pooling layers print an int when height and width agree: `kernel_size=2`.
fn int_or_pair(s: Size2) -> String {
    if s.0 == s.1 { s.0.to_string() } else { pair(s) }
}

/// A float as Python's `repr` writes it (its shortest round-trip digits, scientific
/// below 1e-4 and from 1e16): `0.1`, `1.0`, `1e-05`. PyTorch's reprs print floats so.
pub(crate) fn py_float(v: f32) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    // `{:e}` gives the shortest digits that read back to the same f32: "1.5e-5".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    if (-4..16).contains(&exp) {
        let plain = format!("{v}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// PyTorch's `print(model)` line for the layer (torch 2.x), e.g.
/// `Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))`. A lazy layer not built yet
/// prints its class with 0 for the size it will infer.
impl fmt::Display for LayerDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerDesc::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                let (name, cin) = match in_channels {
                    Some(c) => ("Conv2d", *c),
                    None => ("LazyConv2d", 0),
                };
                write!(
                    f,
                    "{name}({cin}, {out_channels}, kernel_size={}, stride={}",
                    pair(*kernel_size),
                    pair(*stride)
                )?;
                // PyTorch prints what differs from the defaults, 'same' and 'valid' unquoted.
                match padding {
                    ConvPadding::Zeros(Size2(0, 0)) => {}
                    ConvPadding::Zeros(p) => write!(f, ", padding={}", pair(*p))?,
                    ConvPadding::Same => write!(f, ", padding=same")?,
                    ConvPadding::Valid => write!(f, ", padding=valid")?,
                }
                if *dilation != Size2(1, 1) {
                    write!(f, ", dilation={}", pair(*dilation))?;
                }
                if *groups != 1 {
                    write!(f, ", groups={groups}")?;
                }
                if !bias {
                    write!(f, ", bias=False")?;
                }
                write!(f, ")")
            }
            LayerDesc::Linear {
                in_features,
                out_features,
                bias,
            } => {
                let (name, fin) = match in_features {
                    Some(i) => ("Linear", *i),
                    None => ("LazyLinear", 0),
                };
                write!(
                    f,
                    "{name}(in_features={fin}, out_features={out_features}, bias={})",
                    py_bool(*bias)
                )
            }
            LayerDesc::MaxPool2d {
                kernel_size,
                stride,
                padding,
                ceil_mode,
            } => write!(
                f,
                "MaxPool2d(kernel_size={}, stride={}, padding={}, dilation=1, ceil_mode={})",
                int_or_pair(*kernel_size),
                int_or_pair(*stride),
                int_or_pair(*padding),
                py_bool(*ceil_mode)
            ),
            LayerDesc::AvgPool2d {
                kernel_size,
                stride,
                padding,
                ceil_mode,
                count_include_pad,
            } => {
                write!(
                    f,
                    "AvgPool2d(kernel_size={}, stride={}, padding={}",
                    int_or_pair(*kernel_size),
                    int_or_pair(*stride),
                    int_or_pair(*padding)
                )?;
                if *ceil_mode {
                    write!(f, ", ceil_mode=True")?;
                }
                if !count_include_pad {
                    write!(f, ", count_include_pad=False")?;
                }
                write!(f, ")")
            }
            LayerDesc::BatchNorm {
                dims,
                num_features,
                eps,
                momentum,
                affine,
                bias,
                track_running_stats,
            } => write!(
                f,
                "BatchNorm{dims}d({num_features}, eps={}, momentum={}, affine={}, bias={}, \
                 track_running_stats={})",
                py_float(*eps),
                momentum.map_or("None".to_string(), py_float),
                py_bool(*affine),
                py_bool(*bias),
                py_bool(*track_running_stats)
            ),
            LayerDesc::AdaptiveAvgPool2d { output_size } => {
                write!(f, "AdaptiveAvgPool2d(output_size={output_size})")
            }
            LayerDesc::AdaptiveMaxPool2d { output_size } => {
                write!(f, "AdaptiveMaxPool2d(output_size={output_size})")
            }
            LayerDesc::ReLU => write!(f, "ReLU()"),
            LayerDesc::LeakyReLU { negative_slope } => {
                write!(f, "LeakyReLU(negative_slope={})", py_float(*negative_slope))
            }
            LayerDesc::ELU { alpha } => write!(f, "ELU(alpha={})", py_float(*alpha)),
            LayerDesc::GELU { tanh } => {
                let approximate = if *tanh { "tanh" } else { "none" };
                write!(f, "GELU(approximate='{approximate}')")
            }
            LayerDesc::Sigmoid => write!(f, "Sigmoid()"),
            LayerDesc::SiLU => write!(f, "SiLU()"),
            LayerDesc::Tanh => write!(f, "Tanh()"),
            LayerDesc::Flatten => write!(f, "Flatten(start_dim=1, end_dim=-1)"),
            LayerDesc::Identity => write!(f, "Identity()"),
            LayerDesc::Dropout { p } => write!(f, "Dropout(p={p}, inplace=False)"),
            LayerDesc::Dropout2d { p } => write!(f, "Dropout2d(p={p}, inplace=False)"),
            LayerDesc::Softmax { dim } => write!(f, "Softmax(dim={dim})"),
            LayerDesc::LogSoftmax { dim } => write!(f, "LogSoftmax(dim={dim})"),
            LayerDesc::Custom { repr, .. } => write!(f, "{repr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::py_float;

    /// Python: repr(0.5), repr(1.0), repr(0.01), repr(1e-05), repr(0.0001), repr(1e16),
    /// repr(123.25), repr(-2.5e-07).
    #[test]
    fn floats_print_as_python_does() {
        let cases = [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (0.01, "0.01"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (1e16, "1e+16"),
            (123.25, "123.25"),
            (-2.5e-7, "-2.5e-07"),
            (0.0, "0.0"),
        ];
        for (v, want) in cases {
            assert_eq!(py_float(v), want, "{v}");
        }
    }
}
