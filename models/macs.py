"""Multiply-accumulates per inference, counted from a model's graph.

The Pi performance budget (deploy/README.md) starts from how much arithmetic each model asks for:
published throughput figures for the Pi's cores are in multiply-accumulates (or FLOPs = 2 MACs)
per second, so MACs per frame turn them into frames per second on paper. Only the layers that
dominate a convolutional network's work are counted (convolutions, depthwise convolutions,
transposed convolutions, fully connected layers and matrix products); the element-wise and
activation operators between them are counted apart, as element operations, because they cost a
memory pass rather than arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from pathlib import Path

from device.errors import ModelError
from models.graph import LandmarkGraph

# Operators whose work is products summed over an input window: name -> how to count them.
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")
# Operators that only move or relabel data (no arithmetic at all).
# DENSIFY expands the detector's sparse weights once; the count is of the dense layers it feeds.
FREE_OPS = {"RESHAPE", "DEQUANTIZE", "QUANTIZE", "DENSIFY", "CONCATENATION", "PAD", "SLICE", "STRIDED_SLICE",
            "SQUEEZE", "TRANSPOSE", "GATHER", "EXPAND_DIMS", "PACK", "UNPACK", "SPLIT", "SHAPE", "DEPTH_TO_SPACE"}


@dataclass
class MacCount:
    """One model's count: MACs of the arithmetic layers (total and per operator) and the element
    operations of the rest."""

    macs: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    layers: int = 0
    element_ops: int = 0

    def add(self, op: str, macs: int) -> None:
        self.macs += macs
        self.by_op[op] = self.by_op.get(op, 0) + macs
        self.layers += 1


def _dims(tensor) -> list[int]:
    """A tensor's shape with an unknown (batch) dimension taken as 1."""
    return [max(int(d), 1) for d in (tensor.shape if tensor.shape is not None else [])]


def layer_macs(op_name: str, inputs: list, outputs: list) -> int:
    """MACs of one operator from its tensors' shapes (NHWC activations, TFLite weight layouts)."""
    out = _dims(outputs[0])
    if op_name == "CONV_2D":  # filter [out_channels, kh, kw, in_channels]
        _, kh, kw, cin = _dims(inputs[1])
        return prod(out) * kh * kw * cin
    if op_name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, out_channels]: one window per output value
        _, kh, kw, _ = _dims(inputs[1])
        return prod(out) * kh * kw
    if op_name == "TRANSPOSE_CONV":  # inputs: output shape, filter [out_channels, kh, kw, in_channels], data
        cout, kh, kw, _ = _dims(inputs[1])
        return prod(_dims(inputs[2])) * kh * kw * cout
    if op_name == "FULLY_CONNECTED":  # weights [units, depth]; every output value sums `depth` products
        _, depth = _dims(inputs[1])
        return prod(out) * depth
    if op_name == "BATCH_MATMUL":  # [..., m, k] x [..., k, n] (an adj_x flag would only transpose it)
        a = _dims(inputs[0])
        return prod(out) * a[-1]
    raise ModelError(f"no MAC rule for {op_name}")


def count_macs(model_bytes: bytes) -> MacCount:
    graph = LandmarkGraph(model_bytes)  # parses any single-subgraph TFLite model
    tensors = graph.subgraph.tensors
    count = MacCount()
    for op in graph.subgraph.operators:
        name = graph.op_name(op)
        ins = [tensors[i] if i >= 0 else None for i in op.inputs]
        outs = [tensors[i] for i in op.outputs]
        if name in MAC_OPS:
            count.add(name, layer_macs(name, ins, outs))
        elif name not in FREE_OPS:
            count.element_ops += sum(prod(_dims(t)) for t in outs)
    return count


def count_model_file(path: Path) -> MacCount:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err}. Run `station models fetch`") from None
    return count_macs(data)
