//! The layers a spec may name: each call bound to its signature and constructed.

use super::LAYER_NAMES;
use super::binder::{
    AVGPOOL2D, Bound, CONV2D, DROPOUT, FLATTEN, LAZY_CONV2D, LAZY_LINEAR, LINEAR, MAXPOOL2D,
    NO_ARGS, RELU, SOFTMAX, closest,
};
use super::error::{clip, spec_error};
use super::parser::{Call, NodeKind};
use super::printer::show2;
use crate::error::{Error, Result};
use crate::layers::{
    AvgPool2d, Conv2d, Dropout, Flatten, Layer, LazyConv2d, LazyLinear, Linear, LogSoftmax,
    MaxPool2d, ReLU, Sigmoid, Size2, Softmax, Tanh,
};

/// PyTorch layers seqnet does not implement: named as such rather than as typos.
pub(super) const NOT_IMPLEMENTED: &[&str] = &[
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv3d",
    "ConvTranspose2d",
    "Dropout2d",
    "ELU",
    "Embedding",
    "GELU",
    "GRU",
    "Hardtanh",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "LocalResponseNorm",
    "LSTM",
    "MaxPool1d",
    "PReLU",
    "ReLU6",
    "RNN",
    "SiLU",
    "Softmax2d",
    "Softplus",
    "Unflatten",
    "Upsample",
    "ZeroPad2d",
];

pub(super) fn make_layer(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    match call.name.as_str() {
        "Conv2d" => conv2d(text, call, false),
        "LazyConv2d" => conv2d(text, call, true),
        "Linear" => linear(text, call, false),
        "LazyLinear" => linear(text, call, true),
        "MaxPool2d" => maxpool2d(text, call),
        "AvgPool2d" => avgpool2d(text, call),
        "ReLU" => {
            let b = Bound::new(text, call, "ReLU", RELU, None)?;
            // inplace only saves memory in PyTorch; the result is the same.
            b.flag("inplace")?;
            Ok(Box::new(ReLU::new()))
        }
        "Sigmoid" => {
            Bound::new(text, call, "Sigmoid", NO_ARGS, None)?;
            Ok(Box::new(Sigmoid::new()))
        }
        "Tanh" => {
            Bound::new(text, call, "Tanh", NO_ARGS, None)?;
            Ok(Box::new(Tanh::new()))
        }
        "Flatten" => flatten(text, call),
        "Dropout" => dropout(text, call),
        "Softmax" => softmax(text, call, "Softmax"),
        "LogSoftmax" => softmax(text, call, "LogSoftmax"),
        _ => Err(unknown_layer(text, call)),
    }
}

pub(super) fn unknown_layer(text: &str, call: &Call) -> Error {
    let name = call.name.as_str();
    let shown = clip(name);
    let last = name.rsplit('.').next().unwrap_or(name);
    let supported = LAYER_NAMES.join(", ");
    let message = if last != name && LAYER_NAMES.contains(&last) {
        format!("unknown prefix in '{shown}'; write nn.{last}, torch.nn.{last} or just {last}")
    } else if NOT_IMPLEMENTED.contains(&last) {
        format!(
            "PyTorch's nn.{last} is not implemented in seqnet; the layers it has are {supported}"
        )
    } else {
        match closest(last, LAYER_NAMES.iter().copied()) {
            Some(s) => format!(
                "unknown layer '{shown}'; did you mean {s}? The layers seqnet has are \
                 {supported}"
            ),
            None => format!("unknown layer '{shown}'; the layers seqnet has are {supported}"),
        }
    };
    spec_error(text, call.name_span.clone(), message)
}

pub(super) fn conv2d(text: &str, call: &Call, lazy: bool) -> Result<Box<dyn Layer>> {
    let (layer, sig) = if lazy {
        ("LazyConv2d", LAZY_CONV2D)
    } else {
        ("Conv2d", CONV2D)
    };
    let b = Bound::new(text, call, layer, sig, lazy.then_some("in_channels"))?;
    let in_channels = if lazy {
        b.lazy_placeholder("in_channels", "Conv2d({}, out_channels, kernel_size)")?;
        None
    } else {
        let c = b.required(b.size("in_channels", 0)?, "in_channels")?;
        if c == 0 {
            let node = b
                .get("in_channels")
                .map_or(call.span.clone(), |n| n.span.clone());
            return Err(b.bad(
                node,
                "in_channels must be at least 1, got 0; to infer it from the input, use \
                 LazyConv2d(out_channels, kernel_size)",
            ));
        }
        Some(c)
    };
    let out_channels = b.required(b.size("out_channels", 1)?, "out_channels")?;
    let kernel = b.required(b.size2("kernel_size", 1)?, "kernel_size")?;
    let stride = b.size2("stride", 1)?.unwrap_or(Size2(1, 1));
    let padding = conv_padding(&b, kernel, stride)?;
    let dilation = b.size2("dilation", 1)?.map(show2);
    b.only("dilation", dilation, "1".to_string())?;
    b.only("groups", b.size("groups", 1)?, 1)?;
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
    Ok(Box::new(conv.stride(stride).padding(padding).bias(bias)))
}

/// Conv2d's padding: numbers, or PyTorch's 'valid' (none) and 'same' (the output keeps
/// the input size, which with stride 1 and an odd kernel is k // 2 on each side).
pub(super) fn conv_padding(b: &Bound, kernel: Size2, stride: Size2) -> Result<Size2> {
    let Some(node) = b.get("padding") else {
        return Ok(Size2(0, 0));
    };
    let NodeKind::Str(mode) = &node.kind else {
        return Ok(b.size2("padding", 0)?.unwrap_or(Size2(0, 0)));
    };
    match mode.as_str() {
        "valid" => Ok(Size2(0, 0)),
        "same" if stride != Size2(1, 1) => Err(b.bad(
            node.span.clone(),
            format!(
                "padding='same' needs stride 1 (PyTorch rejects it for strided \
                 convolutions), but stride is {}; give the padding as numbers",
                show2(stride)
            ),
        )),
        "same" if kernel.0 % 2 == 0 || kernel.1 % 2 == 0 => Err(b.bad(
            node.span.clone(),
            format!(
                "padding='same' with the even kernel_size {} needs more padding on one \
                 side than the other, which seqnet does not implement; use an odd \
                 kernel_size or give the padding as numbers",
                show2(kernel)
            ),
        )),
        "same" => Ok(Size2(kernel.0 / 2, kernel.1 / 2)),
        _ => Err(b.expects(
            "padding",
            node,
            "an int, a (height, width) tuple, 'valid' or 'same'",
        )),
    }
}

pub(super) fn linear(text: &str, call: &Call, lazy: bool) -> Result<Box<dyn Layer>> {
    let (layer, sig) = if lazy {
        ("LazyLinear", LAZY_LINEAR)
    } else {
        ("Linear", LINEAR)
    };
    let b = Bound::new(text, call, layer, sig, lazy.then_some("in_features"))?;
    let in_features = if lazy {
        b.lazy_placeholder("in_features", "Linear({}, out_features)")?;
        None
    } else {
        let f = b.required(b.size("in_features", 0)?, "in_features")?;
        if f == 0 {
            let node = b
                .get("in_features")
                .map_or(call.span.clone(), |n| n.span.clone());
            return Err(b.bad(
                node,
                "in_features must be at least 1, got 0; to infer it from the input, use \
                 LazyLinear(out_features)",
            ));
        }
        Some(f)
    };
    let out_features = b.required(b.size("out_features", 1)?, "out_features")?;
    let bias = b.flag("bias")?.unwrap_or(true);
    let linear = match in_features {
        Some(f) => Linear::new(f, out_features),
        None => LazyLinear::new(out_features),
    };
    Ok(Box::new(linear.bias(bias)))
}

/// What MaxPool2d and AvgPool2d share: kernel, stride (None: the kernel), padding.
pub(super) fn pool_sizes(b: &Bound) -> Result<(Size2, Option<Size2>, Size2)> {
    let kernel = b.required(b.size2("kernel_size", 1)?, "kernel_size")?;
    let stride = if b.is_none("stride") {
        None
    } else {
        b.size2("stride", 1)?
    };
    let padding = b.size2("padding", 0)?.unwrap_or(Size2(0, 0));
    Ok((kernel, stride, padding))
}

pub(super) fn maxpool2d(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, "MaxPool2d", MAXPOOL2D, None)?;
    let (kernel, stride, padding) = pool_sizes(&b)?;
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

pub(super) fn avgpool2d(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, "AvgPool2d", AVGPOOL2D, None)?;
    let (kernel, stride, padding) = pool_sizes(&b)?;
    let ceil_mode = b.flag("ceil_mode")?.unwrap_or(false);
    let count_include_pad = b.flag("count_include_pad")?.unwrap_or(true);
    if !b.is_none("divisor_override") {
        if let Some(d) = b.size("divisor_override", 1)? {
            let span = b
                .get("divisor_override")
                .map_or(call.span.clone(), |n| n.span.clone());
            return Err(b.bad(
                span,
                format!(
                    "divisor_override={d} is not implemented in seqnet (only None: the \
                     window area divides)"
                ),
            ));
        }
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

pub(super) fn flatten(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, "Flatten", FLATTEN, None)?;
    for (name, supported) in [("start_dim", 1), ("end_dim", -1)] {
        if let (Some(v), Some(node)) = (b.int(name)?, b.get(name)) {
            if v != supported {
                return Err(b.bad(
                    node.span.clone(),
                    format!(
                        "{name}={v} is not implemented in seqnet; Flatten flattens every \
                         dimension after the batch (start_dim=1, end_dim=-1)"
                    ),
                ));
            }
        }
    }
    Ok(Box::new(Flatten::new()))
}

pub(super) fn dropout(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, "Dropout", DROPOUT, None)?;
    let p = match b.get("p") {
        None => 0.5,
        Some(node) => {
            let p = match node.kind {
                NodeKind::Float(v) => v as f32,
                NodeKind::Int(v) => v as f32,
                _ => return Err(b.expects("p", node, "a float (the fraction dropped, e.g. 0.5)")),
            };
            // The range is Dropout's to check when built; a non-finite p would print as
            // `inf`, which no spec can read back.
            if !p.is_finite() {
                return Err(b.bad(
                    node.span.clone(),
                    format!("p must be a finite number in [0, 1), got {}", b.src(node)),
                ));
            }
            p
        }
    };
    b.flag("inplace")?;
    Ok(Box::new(Dropout::new(p)))
}

pub(super) fn softmax(text: &str, call: &Call, layer: &'static str) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, layer, SOFTMAX, None)?;
    let dim = if b.is_none("dim") {
        None
    } else {
        b.int("dim")?
    };
    let Some(dim) = dim else {
        let span = b.get("dim").map_or(call.span.clone(), |n| n.span.clone());
        return Err(b.fail(
            span,
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

/// The parameters (weight and bias) a Conv2d or Linear call allocates when built on
/// `input`, found without building it. `None` for layers without parameters, and when
/// building fails anyway before allocating (sizes that do not fit the input, a weight
/// above [`crate::shape::MAX_PARAMS_PER_LAYER`]): the layer's own message is the better one.
pub(super) fn planned_params(text: &str, call: &Call, input: &[usize]) -> Option<u128> {
    let (layer, sig, lazy_in, conv) = match call.name.as_str() {
        "Conv2d" => ("Conv2d", CONV2D, None, true),
        "LazyConv2d" => ("LazyConv2d", LAZY_CONV2D, Some("in_channels"), true),
        "Linear" => ("Linear", LINEAR, None, false),
        "LazyLinear" => ("LazyLinear", LAZY_LINEAR, Some("in_features"), false),
        _ => return None,
    };
    let b = Bound::new(text, call, layer, sig, lazy_in).ok()?;
    let bias = b.flag("bias").ok()?.unwrap_or(true);
    let (out, fan_in) = if conv {
        let &[c, _, _] = input else { return None };
        if lazy_in.is_none() && b.size("in_channels", 1).ok()?? != c {
            return None;
        }
        let out = b.size("out_channels", 1).ok()??;
        let k = b.size2("kernel_size", 1).ok()??;
        // Two sizes below 2^64 multiply within u128; the third may not (checked below).
        (
            out as u128,
            (k.0 as u128 * k.1 as u128).checked_mul(c as u128)?,
        )
    } else {
        let &[features] = input else { return None };
        if lazy_in.is_none() && b.size("in_features", 1).ok()?? != features {
            return None;
        }
        (b.size("out_features", 1).ok()?? as u128, features as u128)
    };
    let weight = out.checked_mul(fan_in)?;
    if weight > crate::shape::MAX_PARAMS_PER_LAYER as u128 {
        return None;
    }
    Some(weight + if bias { out } else { 0 })
}
