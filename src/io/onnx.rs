//! ONNX export: the network as an ONNX model (IR version 8, opset 17) that onnxruntime,
//! OpenCV's dnn module, TensorRT, … can run. A network with GELU is written for opset 20
//! (IR version 9), the first with a `Gelu` operator; every other network stays at 17.
//!
//! | seqnet | ONNX node |
//! |---|---|
//! | `Conv2d` | `Conv` (kernel_shape, strides, pads, dilations 1, group 1) |
//! | `ReLU`, `Sigmoid`, `Tanh` | `Relu`, `Sigmoid`, `Tanh` |
//! | `LeakyReLU` | `LeakyRelu` (alpha = negative_slope) |
//! | `BatchNorm1d`, `BatchNorm2d` | `BatchNormalization` (epsilon; running statistics) |
//! | `SiLU` | `Sigmoid` then `Mul` (x·σ(x); opset 17 has no Swish) |
//! | `ELU` | `Elu` (alpha) |
//! | `GELU` | `Gelu` (approximate 'none' or 'tanh'; opset 20) |
//! | `MaxPool2d` | `MaxPool` (kernel_shape, strides, pads, ceil_mode) |
//! | `AvgPool2d` | `AveragePool` (kernel_shape, strides, pads, ceil_mode, count_include_pad) |
//! | `AdaptiveAvgPool2d` | `GlobalAveragePool` (output 1×1), else `AveragePool` when the windows are one size and evenly spaced (refused otherwise) |
//! | `AdaptiveMaxPool2d` | `GlobalMaxPool` (output 1×1), else `MaxPool` when the windows are one size and evenly spaced (refused otherwise) |
//! | `Flatten` | `Flatten` (axis 1) |
//! | `Identity` | `Identity` |
//! | `Linear` | `Gemm` (transB 1, so the weight stays `[out, in]` as in PyTorch) |
//! | `Softmax`, `LogSoftmax` | `Softmax`, `LogSoftmax` (axis 1) |
//! | `Dropout`, `Dropout2d` | nothing: they are the identity at inference |
//!
//! The graph input is `input`, float `[N, C, H, W]` with a symbolic batch size `N`; the
//! output is `logits`, `[N, classes]` (whatever the last layer gives, so after a final
//! Softmax these are probabilities, as with `seqnet predict`). The weights are
//! initialisers named like the safetensors tensors (`0.weight`, `0.bias`, …). The
//! model's pixel normalisation, if any, is not part of the graph, exactly as
//! `seqnet predict --input` takes tensors as they are: it is recorded in the metadata
//! (`seqnet.normalize`, with `seqnet.spec` and `seqnet.input`) and in the doc string.
//!
//! The protobuf is written by hand (a few varints and length-delimited fields, no
//! protoc and no generated code). Message and field numbers are those of
//! `onnx/onnx.proto` in the onnx/onnx repository:
//!
//! - `ModelProto`: ir_version 1, producer_name 2, producer_version 3, doc_string 6,
//!   graph 7, opset_import 8, metadata_props 14;
//! - `OperatorSetIdProto`: domain 1, version 2; `StringStringEntryProto`: key 1, value 2;
//! - `GraphProto`: node 1, name 2, initializer 5, doc_string 10, input 11, output 12;
//! - `NodeProto`: input 1, output 2, name 3, op_type 4, attribute 5;
//! - `AttributeProto`: name 1, f 2, i 3, s 4, ints 8, type 20 (`AttributeType` FLOAT 1,
//!   INT 2, STRING 3, INTS 7);
//! - `TensorProto`: dims 1, data_type 2 (`DataType` FLOAT = 1), name 8, raw_data 9
//!   (little-endian IEEE 754);
//! - `ValueInfoProto`: name 1, type 2; `TypeProto`: tensor_type 1;
//!   `TypeProto.Tensor`: elem_type 1, shape 2; `TensorShapeProto`: dim 1;
//!   `TensorShapeProto.Dimension`: dim_value 1, dim_param 2.

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::model::ModelInfo;
use crate::layers::{Buffer, LayerDesc, Size2};
use crate::sequential::Sequential;

/// The ONNX operator set the nodes are written for.
pub const OPSET: i64 = 17;
/// The ONNX IR version of the file (IR 8 came with opset 17, ONNX 1.12).
pub const IR_VERSION: i64 = 8;
/// The operator set of a network with GELU: `Gelu` arrived in opset 20 (ONNX 1.15).
pub const OPSET_GELU: i64 = 20;
/// The IR version that goes with [`OPSET_GELU`] (IR 9, ONNX 1.15).
pub const IR_VERSION_GELU: i64 = 9;
/// The graph's input name.
pub const INPUT: &str = "input";
/// The graph's output name.
pub const OUTPUT: &str = "logits";

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED32: u8 = 5;
const LEN: u8 = 2;

/// `TensorProto.DataType.FLOAT`.
const FLOAT: i64 = 1;

/// One protobuf message being written.
#[derive(Default)]
struct Pb {
    buf: Vec<u8>,
}

impl Pb {
    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.raw_varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// An int32/int64/enum field (negative values as ten-byte two's complement, as
    /// protobuf encodes them).
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, VARINT);
        self.raw_varint(v as u64);
    }

    fn float(&mut self, field: u32, v: f32) {
        self.key(field, FIXED32);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.raw_varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn message(&mut self, field: u32, m: Pb) {
        self.bytes(field, &m.buf);
    }
}

/// A node attribute.
#[derive(Clone, Debug, PartialEq)]
enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

/// One graph node, before encoding.
#[derive(Clone, Debug, PartialEq)]
struct Node {
    op: &'static str,
    name: String,
    inputs: Vec<String>,
    attrs: Vec<(&'static str, Attr)>,
    /// The layer's output is this node's output times the layer's input (a `Mul` node
    /// follows): SiLU as x·Sigmoid(x).
    times_input: bool,
}

fn attribute(name: &str, a: &Attr) -> Pb {
    let mut p = Pb::default();
    p.string(1, name);
    match a {
        Attr::Float(f) => {
            p.float(2, *f);
            p.int(20, 1);
        }
        Attr::Int(i) => {
            p.int(3, *i);
            p.int(20, 2);
        }
        Attr::Str(s) => {
            p.string(4, s);
            p.int(20, 3);
        }
        Attr::Ints(v) => {
            // `repeated int64 ints = 8` is not declared packed (proto2): one entry each.
            for &i in v {
                p.int(8, i);
            }
            p.int(20, 7);
        }
    }
    p
}

fn node_proto(n: &Node, output: &str) -> Pb {
    let mut p = Pb::default();
    for i in &n.inputs {
        p.string(1, i);
    }
    p.string(2, output);
    p.string(3, &n.name);
    p.string(4, n.op);
    for (name, a) in &n.attrs {
        p.message(5, attribute(name, a));
    }
    p
}

fn tensor_proto(name: &str, dims: &[usize], values: &[f32]) -> Pb {
    let mut p = Pb::default();
    // `repeated int64 dims = 1`, unpacked like every proto2 repeated scalar here.
    for &d in dims {
        p.int(1, d as i64);
    }
    p.int(2, FLOAT);
    p.string(8, name);
    let mut raw = Vec::with_capacity(values.len() * 4);
    for v in values {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    p.bytes(9, &raw);
    p
}

/// A float tensor value `name` shaped `[N, dims...]` with a symbolic batch `N`.
fn value_info(name: &str, dims: &[usize]) -> Pb {
    let mut shape = Pb::default();
    let mut batch = Pb::default();
    batch.string(2, "N");
    shape.message(1, batch);
    for &d in dims {
        let mut dim = Pb::default();
        dim.int(1, d as i64);
        shape.message(1, dim);
    }
    let mut tensor = Pb::default();
    tensor.int(1, FLOAT);
    tensor.message(2, shape);
    let mut ty = Pb::default();
    ty.message(1, tensor);
    let mut p = Pb::default();
    p.string(1, name);
    p.message(2, ty);
    p
}

fn string_entry(key: &str, value: &str) -> Pb {
    let mut p = Pb::default();
    p.string(1, key);
    p.string(2, value);
    p
}

/// An exported model.
#[derive(Clone, Debug)]
pub struct Onnx {
    /// The serialised `ModelProto`.
    pub bytes: Vec<u8>,
    /// The op_type of each node, in order.
    pub ops: Vec<&'static str>,
    /// The layers left out (Dropout), as `index repr`.
    pub omitted: Vec<String>,
    /// The operator set written: [`OPSET`], or [`OPSET_GELU`] for a network with GELU.
    pub opset: i64,
}

fn unsupported(index: usize, repr: &str, why: &str) -> Error {
    Error::Input(format!(
        "layer {index} {repr} cannot be exported to ONNX: {why}"
    ))
}

/// The `ceil_mode` to write for a pooling layer whose PyTorch `ceil_mode` is `ceil`, given
/// `(size, kernel, stride, padding)` for height and width; `None` if none fits.
///
/// PyTorch (and seqnet) compute ⌈(n + 2p − k)/s⌉ + 1 windows in ceil mode, minus one
/// if the last would start in the right padding (`(out − 1)·s ≥ n + p`). ONNX's
/// formula (onnx's shape inference) has no such exception. When the exception applies,
/// (n + 2p − k) is not a multiple of s and the count left is exactly the floor mode's,
/// with the same windows, so ceil_mode 0 is written: every runtime then agrees. A
/// dimension whose windows divide evenly gives the same count in both modes.
fn onnx_ceil_mode(ceil: bool, dims: [(usize, i64, i64, i64); 2]) -> Option<bool> {
    if !ceil {
        return Some(false);
    }
    let needs = |(n, k, s, p): (usize, i64, i64, i64)| -> Option<bool> {
        let span = n as i64 + 2 * p - k;
        if s <= 0 || span < 0 || span % s == 0 {
            return None; // either mode
        }
        let ceil_out = span / s + 2;
        let pytorch = if (ceil_out - 1) * s >= n as i64 + p {
            ceil_out - 1
        } else {
            ceil_out
        };
        Some(pytorch == ceil_out)
    };
    match (needs(dims[0]), needs(dims[1])) {
        (Some(a), Some(b)) if a != b => None,
        (Some(x), _) | (_, Some(x)) => Some(x),
        (None, None) => Some(false),
    }
}

/// `(h, w)` as ONNX's ints.
fn ints(s: Size2) -> (i64, i64) {
    (s.0 as i64, s.1 as i64)
}

/// The ONNX nodes for the network, one per layer except Dropout; `None` for a layer
/// that is left out. Each layer's geometry comes from its typed description.
fn nodes(net: &Sequential) -> Result<Vec<Option<Node>>> {
    let mut out = Vec::new();
    for (i, layer) in net.layers().iter().enumerate() {
        let desc = layer.describe();
        let repr = desc.to_string();
        let bad = |why: &str| unsupported(i, &repr, why);
        let params: Vec<String> = layer
            .params()
            .iter()
            .map(|(name, _)| format!("{i}.{name}"))
            .collect();
        let name = format!("{i}.{}", desc.kind());
        let simple = |op: &'static str| Node {
            op,
            name: name.clone(),
            inputs: Vec::new(),
            attrs: Vec::new(),
            times_input: false,
        };
        let geometry = |kernel: Size2, stride: Size2, pad: Size2| -> Vec<(&'static str, Attr)> {
            let (k, s, p) = (ints(kernel), ints(stride), ints(pad));
            vec![
                ("kernel_shape", Attr::Ints(vec![k.0, k.1])),
                ("strides", Attr::Ints(vec![s.0, s.1])),
                ("pads", Attr::Ints(vec![p.0, p.1, p.0, p.1])),
            ]
        };
        // Pooling: the ceil_mode ONNX needs to count PyTorch's windows.
        let pool_ceil = |kernel: Size2, stride: Size2, pad: Size2, ceil: bool| {
            let &[_, h, w] = net.layer_input(i) else {
                return Err(bad("its input is not C×H×W"));
            };
            let (k, s, p) = (ints(kernel), ints(stride), ints(pad));
            onnx_ceil_mode(ceil, [(h, k.0, s.0, p.0), (w, k.1, s.1, p.1)]).ok_or_else(|| {
                bad(
                    "with ceil_mode=True, PyTorch drops the last window in one dimension \
                     (it would start in the padding) but not in the other, which no ONNX \
                     ceil_mode reproduces; use ceil_mode=False or padding that divides evenly",
                )
            })
        };
        // Adaptive pooling: global pooling for a 1×1 output, else a plain pool when the
        // windows are one size and evenly spaced.
        let adaptive = |size: crate::layers::AdaptiveSize, global: &'static str, plain| {
            let &[_, h, w] = net.layer_input(i) else {
                return Err(bad("its input is not C×H×W"));
            };
            let (oh, ow) = size.resolve(h, w);
            if (oh, ow) == (1, 1) {
                return Ok(simple(global));
            }
            let rows = crate::layers::uniform_windows(&crate::layers::adaptive_windows(h, oh));
            let cols = crate::layers::uniform_windows(&crate::layers::adaptive_windows(w, ow));
            let (Some((kh, sh)), Some((kw, sw))) = (rows, cols) else {
                return Err(bad(&format!(
                    "its windows for {h}×{w} → {oh}×{ow} differ in size or spacing, which no \
                     ONNX pooling node expresses; choose an output_size whose windows are \
                     even (e.g. one that divides the input size)"
                )));
            };
            let mut attrs = geometry(Size2(kh, kw), Size2(sh, sw), Size2(0, 0));
            attrs.push(("ceil_mode", Attr::Int(0)));
            Ok(Node {
                attrs,
                ..simple(plain)
            })
        };
        let node = match desc {
            LayerDesc::Conv2d {
                kernel_size,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                // 'same' and 'valid' as numbers: [top, left, bottom, right], the odd one
                // of an even 'same' at the bottom and right, as PyTorch pads.
                let pads = padding
                    .sides(kernel_size, dilation)
                    .ok_or_else(|| bad("its padding overflows"))?;
                let mut attrs = geometry(kernel_size, stride, Size2(0, 0));
                attrs[2] = ("pads", Attr::Ints(pads.iter().map(|&p| p as i64).collect()));
                let d = ints(dilation);
                attrs.push(("dilations", Attr::Ints(vec![d.0, d.1])));
                attrs.push(("group", Attr::Int(groups as i64)));
                Some(Node {
                    attrs,
                    ..simple("Conv")
                })
            }
            LayerDesc::MaxPool2d {
                kernel_size,
                stride,
                padding,
                ceil_mode,
            } => {
                let mut attrs = geometry(kernel_size, stride, padding);
                let ceil = pool_ceil(kernel_size, stride, padding, ceil_mode)?;
                attrs.push(("ceil_mode", Attr::Int(i64::from(ceil))));
                Some(Node {
                    attrs,
                    ..simple("MaxPool")
                })
            }
            LayerDesc::AvgPool2d {
                kernel_size,
                stride,
                padding,
                ceil_mode,
                count_include_pad,
            } => {
                let mut attrs = geometry(kernel_size, stride, padding);
                let ceil = pool_ceil(kernel_size, stride, padding, ceil_mode)?;
                attrs.push(("ceil_mode", Attr::Int(i64::from(ceil))));
                attrs.push(("count_include_pad", Attr::Int(i64::from(count_include_pad))));
                Some(Node {
                    attrs,
                    ..simple("AveragePool")
                })
            }
            // Inference uses the running statistics: BatchNormalization's mean and var.
            LayerDesc::BatchNorm {
                eps,
                affine,
                bias,
                track_running_stats,
                ..
            } => {
                if !(affine && bias && track_running_stats) {
                    return Err(bad(
                        "ONNX's BatchNormalization needs γ, β and running statistics: \
                         export a BatchNorm with affine=True, bias=True and \
                         track_running_stats=True",
                    ));
                }
                let mut node = Node {
                    attrs: vec![("epsilon", Attr::Float(eps))],
                    ..simple("BatchNormalization")
                };
                node.inputs
                    .extend(["running_mean", "running_var"].map(|b| format!("{i}.{b}")));
                Some(node)
            }
            LayerDesc::AdaptiveAvgPool2d { output_size } => {
                Some(adaptive(output_size, "GlobalAveragePool", "AveragePool")?)
            }
            LayerDesc::AdaptiveMaxPool2d { output_size } => {
                Some(adaptive(output_size, "GlobalMaxPool", "MaxPool")?)
            }
            LayerDesc::ReLU => Some(simple("Relu")),
            LayerDesc::LeakyReLU { negative_slope } => Some(Node {
                attrs: vec![("alpha", Attr::Float(negative_slope))],
                ..simple("LeakyRelu")
            }),
            LayerDesc::ELU { alpha } => Some(Node {
                attrs: vec![("alpha", Attr::Float(alpha))],
                ..simple("Elu")
            }),
            LayerDesc::GELU { tanh } => Some(Node {
                attrs: vec![("approximate", Attr::Str(if tanh { "tanh" } else { "none" }))],
                ..simple("Gelu")
            }),
            LayerDesc::Sigmoid => Some(simple("Sigmoid")),
            LayerDesc::SiLU => Some(Node {
                times_input: true,
                ..simple("Sigmoid")
            }),
            LayerDesc::Tanh => Some(simple("Tanh")),
            LayerDesc::Identity => Some(simple("Identity")),
            LayerDesc::Flatten => Some(Node {
                attrs: vec![("axis", Attr::Int(1))],
                ..simple("Flatten")
            }),
            LayerDesc::Linear { .. } => Some(Node {
                attrs: vec![
                    ("alpha", Attr::Float(1.0)),
                    ("beta", Attr::Float(1.0)),
                    ("transB", Attr::Int(1)),
                ],
                ..simple("Gemm")
            }),
            // seqnet normalises over dim 1 whatever the spelling (dim=1, or -1 on flat
            // features): axis 1 in ONNX.
            LayerDesc::Softmax { .. } => Some(Node {
                attrs: vec![("axis", Attr::Int(1))],
                ..simple("Softmax")
            }),
            LayerDesc::LogSoftmax { .. } => Some(Node {
                attrs: vec![("axis", Attr::Int(1))],
                ..simple("LogSoftmax")
            }),
            LayerDesc::Dropout { .. } | LayerDesc::Dropout2d { .. } => None,
            other => return Err(bad(&format!("no ONNX mapping for {}", other.kind()))),
        };
        out.push(node.map(|mut n| {
            // The data input goes in front once the graph is wired; the parameters come
            // first, then what the node added (BatchNorm's statistics).
            let extra = std::mem::replace(&mut n.inputs, params);
            n.inputs.extend(extra);
            n
        }));
    }
    Ok(out)
}

/// Encodes the network as an ONNX `ModelProto`. `info` supplies the metadata (spec,
/// input shape, normalisation, class names).
pub fn export(net: &Sequential, info: &ModelInfo) -> Result<Onnx> {
    let layers = nodes(net)?;
    let mut omitted = Vec::new();
    let mut graph = Pb::default();
    let mut ops = Vec::new();
    let last = layers.iter().rposition(Option::is_some);
    let mut current = INPUT.to_string();
    for (i, node) in layers.into_iter().enumerate() {
        let Some(mut node) = node else {
            omitted.push(format!("{i} {}", net.layers()[i].repr()));
            continue;
        };
        let output = if Some(i) == last {
            OUTPUT.to_string()
        } else {
            format!("{i}.{}.out", node.op)
        };
        node.inputs.insert(0, current.clone());
        if node.times_input {
            // Not `{i}.{op}.out`: that is the layer's own output name (the Mul's).
            let inner = format!("{i}.{}.gate", node.op);
            graph.message(1, node_proto(&node, &inner));
            let mul = Node {
                op: "Mul",
                name: format!("{}.Mul", node.name),
                inputs: vec![current, inner],
                attrs: Vec::new(),
                times_input: false,
            };
            graph.message(1, node_proto(&mul, &output));
            ops.extend([node.op, mul.op]);
        } else {
            graph.message(1, node_proto(&node, &output));
            ops.push(node.op);
        }
        current = output;
    }
    if last.is_none() {
        // Nothing but Dropout (or nothing at all): the model is the identity.
        let node = Node {
            op: "Identity",
            name: "identity".into(),
            inputs: vec![INPUT.into()],
            attrs: Vec::new(),
            times_input: false,
        };
        graph.message(1, node_proto(&node, OUTPUT));
        ops.push("Identity");
    }
    graph.string(2, "seqnet");
    for (name, p) in net.named_params() {
        graph.message(5, tensor_proto(&name, p.value.shape(), p.value.data()));
    }
    // F32 buffers that nodes read (BatchNorm's running statistics); counts are not.
    for (name, b) in net.named_buffers() {
        if let Buffer::F32(t) = b {
            graph.message(5, tensor_proto(&name, t.shape(), t.data()));
        }
    }
    let doc = match info.normalize {
        Some(n) => format!(
            "{}\n\nInput: pixels/255, then {} per channel (not part of the graph).",
            net.spec(),
            n.describe().replace('−', "-"),
        ),
        None => format!("{}\n\nInput: pixels/255.", net.spec()),
    };
    graph.string(10, &doc);
    graph.message(11, value_info(INPUT, net.input_shape()));
    graph.message(12, value_info(OUTPUT, net.output_shape()));

    // The oldest opset that has every node: 17, or 20 for Gelu.
    let (opset_version, ir_version) = if ops.contains(&"Gelu") {
        (OPSET_GELU, IR_VERSION_GELU)
    } else {
        (OPSET, IR_VERSION)
    };
    let mut model = Pb::default();
    model.int(1, ir_version);
    model.string(2, "seqnet");
    model.string(3, env!("CARGO_PKG_VERSION"));
    model.string(6, &doc);
    model.message(7, graph);
    let mut opset = Pb::default();
    opset.int(2, opset_version);
    model.message(8, opset);
    let mut meta = vec![
        ("seqnet.spec".to_string(), net.spec()),
        (
            "seqnet.input".to_string(),
            net.input_shape()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x"),
        ),
    ];
    if let Some(n) = info.normalize {
        meta.push(("seqnet.normalize".into(), n.to_string()));
    }
    if let Some(c) = &info.classes {
        meta.push((
            "seqnet.classes".into(),
            serde_json::to_string(c).unwrap_or_default(),
        ));
    }
    for (k, v) in &meta {
        model.message(14, string_entry(k, v));
    }
    Ok(Onnx {
        bytes: model.buf,
        ops,
        omitted,
        opset: opset_version,
    })
}

/// Exports the network and writes the ONNX file atomically.
pub fn save(path: impl AsRef<Path>, net: &Sequential, info: &ModelInfo) -> Result<Onnx> {
    let onnx = export(net, info)?;
    crate::io::safetensors_file::write_bytes_atomic(path.as_ref(), &onnx.bytes)?;
    Ok(onnx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf reader for the tests: (field, wire type, payload) triples,
    /// the payload being the varint value's bytes for VARINT.
    fn fields(mut b: &[u8]) -> Vec<(u32, u8, Vec<u8>, u64)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
            match wire {
                VARINT => {
                    let v = varint(&mut b);
                    out.push((field, wire, Vec::new(), v));
                }
                LEN => {
                    let n = varint(&mut b) as usize;
                    out.push((field, wire, b[..n].to_vec(), 0));
                    b = &b[n..];
                }
                FIXED32 => {
                    out.push((field, wire, b[..4].to_vec(), 0));
                    b = &b[4..];
                }
                w => panic!("unexpected wire type {w}"),
            }
        }
        out
    }

    fn get(fs: &[(u32, u8, Vec<u8>, u64)], field: u32) -> Vec<&(u32, u8, Vec<u8>, u64)> {
        fs.iter().filter(|f| f.0 == field).collect()
    }

    fn text(f: &(u32, u8, Vec<u8>, u64)) -> String {
        String::from_utf8(f.2.clone()).unwrap()
    }

    #[test]
    fn varints_and_keys() {
        let mut p = Pb::default();
        p.raw_varint(300);
        assert_eq!(p.buf, [0xac, 0x02]);
        let mut p = Pb::default();
        p.int(1, 8);
        assert_eq!(p.buf, [0x08, 0x08]);
        let mut p = Pb::default();
        p.int(3, -1);
        assert_eq!(
            p.buf.len(),
            11,
            "negative int64: ten-byte varint after the key"
        );
        let mut p = Pb::default();
        p.string(4, "Relu");
        assert_eq!(p.buf, [0x22, 4, b'R', b'e', b'l', b'u']);
        let mut p = Pb::default();
        p.float(2, 1.0);
        assert_eq!(p.buf, [0x15, 0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn encodes_the_graph() {
        let net = crate::spec::build(
            "Conv2d(1, 2, 3, stride=2, padding=1) -> ReLU() -> MaxPool2d(2, ceil_mode=True) \
             -> Dropout(0.5) -> AvgPool2d(2, stride=1, padding=1, count_include_pad=False) \
             -> Flatten() -> LazyLinear(3) -> LogSoftmax(dim=1)",
            &[1, 9, 9],
            0,
        )
        .unwrap();
        let info = ModelInfo::for_net(&net);
        let onnx = export(&net, &info).unwrap();
        assert_eq!(
            onnx.ops,
            [
                "Conv",
                "Relu",
                "MaxPool",
                "AveragePool",
                "Flatten",
                "Gemm",
                "LogSoftmax"
            ]
        );
        assert_eq!(onnx.omitted, ["3 Dropout(p=0.5, inplace=False)"]);
        // ModelProto starts with ir_version 8 and imports opset 17 of the default domain.
        assert_eq!(&onnx.bytes[..2], &[0x08, 0x08]);
        let model = fields(&onnx.bytes);
        assert_eq!(text(get(&model, 2)[0]), "seqnet");
        let opset = fields(&get(&model, 8)[0].2);
        assert_eq!((opset[0].0, opset[0].3), (2, 17));
        let graph = fields(&get(&model, 7)[0].2);
        let nodes = get(&graph, 1);
        assert_eq!(nodes.len(), 7);
        // Conv: inputs input, 0.weight, 0.bias; pads [1, 1, 1, 1]; strides [2, 2].
        let conv = fields(&nodes[0].2);
        let inputs: Vec<String> = get(&conv, 1).into_iter().map(text).collect();
        assert_eq!(inputs, ["input", "0.weight", "0.bias"]);
        assert_eq!(text(get(&conv, 4)[0]), "Conv");
        let attrs: Vec<_> = get(&conv, 5).iter().map(|a| fields(&a.2)).collect();
        let named = |name: &str| {
            attrs
                .iter()
                .find(|a| text(get(a, 1)[0]) == name)
                .unwrap_or_else(|| panic!("no attribute {name}"))
                .clone()
        };
        let ints =
            |a: &[(u32, u8, Vec<u8>, u64)]| get(a, 8).iter().map(|f| f.3).collect::<Vec<_>>();
        assert_eq!(ints(&named("pads")), [1, 1, 1, 1]);
        assert_eq!(ints(&named("strides")), [2, 2]);
        assert_eq!(ints(&named("kernel_shape")), [3, 3]);
        assert_eq!(get(&named("strides"), 20)[0].3, 7, "type INTS");
        // The pools: ceil_mode and count_include_pad.
        let pool = fields(&nodes[2].2);
        let pool_attrs: Vec<_> = get(&pool, 5).iter().map(|a| fields(&a.2)).collect();
        let ceil = pool_attrs
            .iter()
            .find(|a| text(get(a, 1)[0]) == "ceil_mode")
            .unwrap();
        assert_eq!(get(ceil, 3)[0].3, 1);
        let avg = fields(&nodes[3].2);
        let cip = get(&avg, 5)
            .iter()
            .map(|a| fields(&a.2))
            .find(|a| text(get(a, 1)[0]) == "count_include_pad")
            .unwrap();
        assert_eq!(get(&cip, 3)[0].3, 0);
        // The last node writes `logits`; Gemm reads the output of Flatten.
        assert_eq!(text(get(&fields(&nodes[6].2), 2)[0]), "logits");
        let gemm = fields(&nodes[5].2);
        let gemm_in: Vec<String> = get(&gemm, 1).into_iter().map(text).collect();
        assert_eq!(gemm_in, ["5.Flatten.out", "6.weight", "6.bias"]);
        // Initialisers: named like the safetensors tensors, raw little-endian floats.
        let inits: Vec<_> = get(&graph, 5).iter().map(|t| fields(&t.2)).collect();
        let names: Vec<String> = inits.iter().map(|t| text(get(t, 8)[0])).collect();
        assert_eq!(names, ["0.weight", "0.bias", "6.weight", "6.bias"]);
        let dims: Vec<u64> = get(&inits[0], 1).iter().map(|f| f.3).collect();
        assert_eq!(dims, [2, 1, 3, 3]);
        let raw = &get(&inits[0], 9)[0].2;
        let w0 = net.named_params()[0].1.value.data()[0];
        assert_eq!(raw[..4], w0.to_le_bytes());
        // Input N×1×9×9 with a symbolic N.
        let input = fields(&get(&graph, 11)[0].2);
        assert_eq!(text(get(&input, 1)[0]), "input");
        let tensor = fields(&fields(&get(&input, 2)[0].2)[0].2);
        let shape = fields(&get(&tensor, 2)[0].2);
        let dims: Vec<_> = shape.iter().map(|d| fields(&d.2)).collect();
        assert_eq!(text(get(&dims[0], 2)[0]), "N");
        assert_eq!(get(&dims[3], 1)[0].3, 9);
    }

    #[test]
    fn ceil_mode_follows_pytorch_window_count() {
        // 9×9, k 2, s 2: ⌈7/2⌉ + 1 = 5 windows, the last starting inside: ceil mode.
        assert_eq!(
            onnx_ceil_mode(true, [(9, 2, 2, 0), (9, 2, 2, 0)]),
            Some(true)
        );
        // 14×14, k 3, s 3, p 1: ⌈13/3⌉ + 1 = 6, but the 6th starts at 15 ≥ 14 + 1, so
        // PyTorch keeps 5 = the floor mode's count.
        assert_eq!(
            onnx_ceil_mode(true, [(14, 3, 3, 1), (14, 3, 3, 1)]),
            Some(false)
        );
        // Even division: either mode; and the mode stays off when PyTorch's is off.
        assert_eq!(
            onnx_ceil_mode(true, [(8, 2, 2, 0), (8, 2, 2, 0)]),
            Some(false)
        );
        assert_eq!(
            onnx_ceil_mode(false, [(9, 2, 2, 0), (9, 2, 2, 0)]),
            Some(false)
        );
        // Height needs ceil, width needs floor: not expressible.
        assert_eq!(onnx_ceil_mode(true, [(9, 2, 2, 0), (14, 3, 3, 1)]), None);
        let net = crate::spec::build(
            "AvgPool2d(3, stride=3, padding=1, ceil_mode=True)",
            &[1, 14, 14],
            0,
        )
        .unwrap();
        assert_eq!(net.output_shape(), [1, 5, 5]);
        let net = crate::spec::build(
            "MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1), ceil_mode=True)",
            &[1, 9, 14],
            0,
        )
        .unwrap();
        let e = export(&net, &ModelInfo::for_net(&net))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be exported to ONNX"), "{e}");
    }

    /// SiLU is x·Sigmoid(x): a Sigmoid node and a Mul of the layer's input with it.
    #[test]
    fn silu_is_sigmoid_times_input() {
        let net = crate::spec::build("Flatten() -> Linear(4, 3) -> SiLU()", &[1, 2, 2], 0).unwrap();
        let onnx = export(&net, &ModelInfo::for_net(&net)).unwrap();
        assert_eq!(onnx.ops, ["Flatten", "Gemm", "Sigmoid", "Mul"]);
        let model = fields(&onnx.bytes);
        let graph = fields(&get(&model, 7)[0].2);
        let nodes = get(&graph, 1);
        let mul = fields(&nodes[3].2);
        let inputs: Vec<String> = get(&mul, 1).into_iter().map(text).collect();
        assert_eq!(inputs, ["1.Gemm.out", "2.Sigmoid.gate"]);
        assert_eq!(text(get(&mul, 2)[0]), "logits");
        // Not the last layer: the Sigmoid's and the Mul's outputs still differ (SSA).
        let net = crate::spec::build("Flatten() -> SiLU() -> Linear(4, 2)", &[1, 2, 2], 0).unwrap();
        let onnx = export(&net, &ModelInfo::for_net(&net)).unwrap();
        let model = fields(&onnx.bytes);
        let graph = fields(&get(&model, 7)[0].2);
        let outs: Vec<String> = get(&graph, 1)
            .iter()
            .map(|n| text(get(&fields(&n.2), 2)[0]))
            .collect();
        assert_eq!(
            outs,
            ["0.Flatten.out", "1.Sigmoid.gate", "1.Sigmoid.out", "logits"]
        );
    }

    /// Gelu needs opset 20 (and IR 9); a network without it stays at opset 17.
    #[test]
    fn gelu_raises_the_opset_to_20() {
        let net = crate::spec::build(
            "Flatten() -> Linear(4, 3) -> GELU(approximate='tanh') -> Linear(3, 2) -> GELU()",
            &[1, 2, 2],
            0,
        )
        .unwrap();
        let onnx = export(&net, &ModelInfo::for_net(&net)).unwrap();
        assert_eq!(onnx.ops, ["Flatten", "Gemm", "Gelu", "Gemm", "Gelu"]);
        assert_eq!(onnx.opset, 20);
        let model = fields(&onnx.bytes);
        assert_eq!(get(&model, 1)[0].3, 9, "IR version 9");
        let opset = fields(&get(&model, 8)[0].2);
        assert_eq!((opset[0].0, opset[0].3), (2, 20));
        let graph = fields(&get(&model, 7)[0].2);
        let gelu = fields(&get(&graph, 1)[2].2);
        let attr = fields(&get(&gelu, 5)[0].2);
        assert_eq!(text(get(&attr, 1)[0]), "approximate");
        assert_eq!(text(get(&attr, 4)[0]), "tanh");
        assert_eq!(get(&attr, 20)[0].3, 3, "type STRING");
        let plain = crate::spec::build("Flatten() -> Linear(4, 3)", &[1, 2, 2], 0).unwrap();
        assert_eq!(
            export(&plain, &ModelInfo::for_net(&plain)).unwrap().opset,
            17
        );
    }

    #[test]
    fn dropout_only_is_the_identity() {
        let net = crate::spec::build("Dropout(0.2)", &[1, 2, 2], 0).unwrap();
        let onnx = export(&net, &ModelInfo::for_net(&net)).unwrap();
        assert_eq!(onnx.ops, ["Identity"]);
    }
}
