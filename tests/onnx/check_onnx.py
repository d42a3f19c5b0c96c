#!/usr/bin/env python3
"""Checks ONNX files written by `seqnet export` against seqnet's own logits.

Usage: check_onnx.py MODEL.onnx INPUT.safetensors EXPECTED.safetensors [MODEL INPUT EXPECTED ...]

For each triple:
  1. onnx.checker.check_model(model, full_check=True) (structure and shape inference);
  2. the graph has input `input` [N, C, H, W] with a symbolic N and output `logits`;
  3. onnxruntime runs tensor `input` of INPUT.safetensors;
  4. its `logits` must equal tensor `logits` of EXPECTED.safetensors (written by
     `seqnet predict --input ... --output ...`) within max|a - b| <= 1e-5 * max|b|.

Exits 1 if any check fails, after reporting every triple.
"""

import sys

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file

RTOL = 1e-5


def check(model_path, input_path, expected_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}
    # Opset 17 (IR 8), or 20 (IR 9) for a graph with Gelu, the first opset that has it.
    gelu = any(n.op_type == "Gelu" for n in model.graph.node)
    want_opset, want_ir = (20, 9) if gelu else (17, 8)
    assert opset.get("", None) == want_opset, f"opset {opset}"
    assert model.ir_version == want_ir, f"ir_version {model.ir_version}"
    assert model.producer_name == "seqnet", model.producer_name
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "input" and out.name == "logits", (inp.name, out.name)
    batch = inp.type.tensor_type.shape.dim[0]
    assert batch.dim_param == "N", f"input batch dimension {batch}"
    ops = [n.op_type for n in model.graph.node]

    x = load_file(input_path)["input"]
    want = load_file(expected_path)["logits"]
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"input": x})
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    scale = float(np.max(np.abs(want)))
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    assert diff <= RTOL * max(scale, 1e-30), (
        f"max |onnxruntime - seqnet| = {diff:.3g} > {RTOL} * {scale:.3g}"
    )
    return f"{len(ops)} nodes ({', '.join(ops)}), batch {x.shape[0]}, max diff {diff:.2g} (scale {scale:.3g})"


def main(argv):
    args = argv[1:]
    if not args or len(args) % 3:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for i in range(0, len(args), 3):
        triple = args[i : i + 3]
        try:
            print(f"ok   {triple[0]}: {check(*triple)}")
        except Exception as e:  # report every model, then fail
            failed += 1
            print(f"FAIL {triple[0]}: {type(e).__name__}: {e}")
    total = len(args) // 3
    print(f"onnx: {total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
