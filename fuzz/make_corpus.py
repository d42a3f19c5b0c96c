#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/: small valid inputs that the
fuzzers mutate. Standard library only; run from anywhere: python3 fuzz/make_corpus.py"""
import gzip
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx_images(n, h, w, pixels):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes(pixels)


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def gz(data):
    # mtime=0: the same bytes every time.
    return gzip.compress(data, mtime=0)


def safetensors(tensors, meta):
    """tensors: list of (name, dtype, shape, raw bytes), written in name order."""
    header, offset, body = {}, 0, b""
    for name, dtype, shape, raw in sorted(tensors):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        body += raw
    if meta:
        header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def f32(values):
    return struct.pack("<%df" % len(values), *values)


# idx: images and labels, raw and gzipped, and a two-member gzip.
img = idx_images(2, 3, 4, [(i * 37) % 256 for i in range(24)])
lab = idx_labels([3, 1, 4, 1, 5])
put("idx", "images-raw", img)
put("idx", "images-gz", gz(img))
put("idx", "labels-raw", lab)
put("idx", "labels-gz", gz(lab))
put("idx", "images-two-members", gz(img[:10]) + gz(img[10:]))

# spec: three bytes choose the input shape (C = 1 + b0 % 3, H = 1 + b1 % 32,
# W = 1 + b2 % 32), then the text. [0, 27, 27] is 1x28x28; [0, 7, 7] is 1x8x8.
specs = {
    "seed": (b"\x00\x1b\x1b", "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(100) -> ReLU() -> Linear(100, 10)"),
    "print": (b"\x00\x07\x07", """Sequential(
  (0): Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (1): ReLU()
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=True)
  (3): Flatten(start_dim=1, end_dim=-1)
  (4): Dropout(p=0.25, inplace=False)
  (5): Linear(in_features=64, out_features=10, bias=True)
  (6): LogSoftmax(dim=1)
)"""),
    "lazy": (b"\x02\x0f\x0f", "nn.LazyConv2d(8, kernel_size=(3, 5), stride=2, padding='valid') → nn.Tanh → AvgPool2d(2, count_include_pad=False) → torch.nn.Flatten() → LazyLinear(out_features=10, bias=False) → Softmax(dim=-1)"),
    "nested": (b"\x00\x03\x03", "features = nn.Sequential(Conv2d(1, 2, 3, padding='same'), Sigmoid())  # comment\nclassifier = nn.Sequential(Flatten(), LazyLinear(3))"),
    "pool": (b"\x00\x1b\x1b", "MaxPool2d(kernel_size=3, stride=(2, 1), padding=1, ceil_mode=True), AvgPool2d(2, stride=None, divisor_override=None), Flatten(), Linear(182, 2)"),
}
for name, (shape, text) in specs.items():
    put("spec", name, shape + text.encode())

# model: a linear model and a small conv model, each with its metadata.
put("model", "linear", safetensors(
    [("1.weight", "F32", [2, 4], f32([0.5, -0.5, 0.25, 0, 1, 0, -1, 0.5])),
     ("1.bias", "F32", [2], f32([0.1, -0.1]))],
    {"seqnet.spec": "Flatten() -> Linear(4, 2)", "seqnet.input": "1x2x2", "format": "pt"}))
put("model", "conv", safetensors(
    [("0.weight", "F32", [2, 1, 3, 3], f32([0.1 * i for i in range(18)])),
     ("0.bias", "F32", [2], f32([0, 1])),
     ("4.weight", "F32", [3, 8], f32([0.01 * i for i in range(24)])),
     ("4.bias", "F32", [3], f32([0, 0, 0]))],
    {"seqnet.spec": "Conv2d(1, 2, 3) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(3)",
     "seqnet.input": "1x6x6", "seqnet.normalize": "0.1307,0.3081",
     "seqnet.classes": "[\"a\", \"b\", \"c\"]", "seqnet.seed": "7"}))
