"""Small, exact rewrites of the BlazePose landmark flatbuffer before quantization.

The shipped model stores float16 weights behind DEQUANTIZE ops; ai-edge-quantizer only quantizes
float32 constants, so it silently changes nothing unless they are expanded first. The model also
computes a 256x256 segmentation mask the station never reads; pruning that branch is exact (the
other outputs are bit-identical) and removes the model's most memory-heavy layers. Static
calibration needs a serving signature, which the shipped file lacks. All three are done here with
the schema and flatbuffer utilities that ai_edge_litert ships.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from device.errors import ModelError

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "input_1"
# Model output tensor -> the part of the network that produces it.
OUTPUT_BRANCH = {
    "Identity": "regression",  # 39 x (x, y, z, visibility, presence)
    "Identity_1": "regression",  # pose presence flag
    "Identity_4": "regression",  # world landmarks
    "Identity_3": "heatmap",  # 64x64x39 heatmap used to refine x/y
    "Identity_2": "segmentation",  # 256x256 mask, unused by the station
}
SEGMENTATION_OUTPUT = "Identity_2"


def _fb():
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    return schema, flatbuffer_utils


def _name(tensor) -> str:
    name = tensor.name
    return name.decode() if isinstance(name, bytes) else str(name)


@dataclass(frozen=True)
class LayerInfo:
    """One operator of the landmark model: its quantizer scope name, op type and group."""

    scope: str  # output tensor name; ai-edge-quantizer matches recipes against "<name>;"
    op: str
    group: str  # e.g. "backbone_64", "regression_2", "heatmap_16"


class LandmarkGraph:
    """A mutable landmark model (flatbuffer object API) with the rewrites the quantizer needs."""

    def __init__(self, model_bytes: bytes):
        schema, fbu = _fb()
        self._schema, self._fbu = schema, fbu
        try:
            self.model = fbu.read_model_from_bytearray(bytearray(model_bytes))
        except Exception as err:  # flatbuffers raises bare struct/index errors on garbage
            raise ModelError(f"not a TFLite flatbuffer ({err}); run `station models fetch`") from None
        if len(self.model.subgraphs) != 1:
            raise ModelError(f"expected a single-subgraph landmark model, got {len(self.model.subgraphs)}")
        self._op_names = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}

    @property
    def subgraph(self):
        return self.model.subgraphs[0]

    def op_name(self, op) -> str:
        code = self._fbu.get_builtin_code_from_operator_code(self.model.operatorCodes[op.opcodeIndex])
        return self._op_names.get(code, str(code))

    def output_names(self) -> list[str]:
        sg = self.subgraph
        return [_name(sg.tensors[i]) for i in sg.outputs]

    def expand_float16(self) -> int:
        """Replace each float16 constant + DEQUANTIZE pair by one float32 constant. Exact: float16
        to float32 is lossless, and it is what the interpreter computes at load time anyway."""
        sg, schema = self.subgraph, self._schema
        kept, expanded = [], 0
        for op in sg.operators:
            if self.op_name(op) == "DEQUANTIZE":
                source = sg.tensors[op.inputs[0]]
                buffer = self.model.buffers[source.buffer]
                if source.type == schema.TensorType.FLOAT16 and buffer.data is not None and len(buffer.data):
                    values = np.frombuffer(bytes(buffer.data), np.float16).astype(np.float32)
                    buffer.data = np.frombuffer(values.tobytes(), np.uint8)
                    sg.tensors[op.outputs[0]].buffer = source.buffer
                    source.buffer = 0
                    expanded += 1
                    continue
            kept.append(op)
        sg.operators = kept
        self._drop_unused_tensors()
        return expanded

    def prune_outputs(self, drop: Iterable[str]) -> int:
        """Remove model outputs and every operator that only fed them; returns ops removed."""
        drop = set(drop)
        sg = self.subgraph
        missing = drop - set(self.output_names())
        if missing:
            raise ModelError(f"model has no output(s) {sorted(missing)}")
        sg.outputs = [i for i in sg.outputs if _name(sg.tensors[i]) not in drop]
        needed = set(sg.outputs)
        kept = []
        for op in reversed(sg.operators):
            if any(o in needed for o in op.outputs):
                kept.append(op)
                needed.update(i for i in op.inputs if i >= 0)
        removed = len(sg.operators) - len(kept)
        sg.operators = kept[::-1]
        for signature in self.model.signatureDefs or []:
            signature.outputs = [t for t in signature.outputs if _name(t) not in drop]
        self._drop_unused_tensors()
        return removed

    def add_signature(self) -> None:
        """A serving signature naming the input and outputs, as static calibration requires."""
        schema, sg = self._schema, self.subgraph

        def entry(name: str, index: int):
            item = schema.TensorMapT()
            item.name, item.tensorIndex = name, index
            return item

        signature = schema.SignatureDefT()
        signature.signatureKey = SIGNATURE_KEY
        signature.subgraphIndex = 0
        signature.inputs = [entry(INPUT_NAME, sg.inputs[0])]
        signature.outputs = [entry(_name(sg.tensors[i]), i) for i in sg.outputs]
        self.model.signatureDefs = [signature]

    def layers(self) -> list[LayerInfo]:
        """Every operator with a group name derived from the graph: which outputs it feeds
        (shared backbone, heatmap decoder, regression tail) and its spatial resolution."""
        sg = self.subgraph
        reaches: dict[int, set[str]] = {i: {OUTPUT_BRANCH.get(_name(sg.tensors[i]), "other")} for i in sg.outputs}
        layers = []
        for op in reversed(sg.operators):
            branches: set[str] = set().union(*(reaches.get(o, set()) for o in op.outputs))
            for t in op.inputs:
                if t >= 0:
                    reaches.setdefault(t, set()).update(branches)
            name = self.op_name(op)
            # A PAD belongs to the resolution it pads, not the padded size.
            shaped = sg.tensors[op.inputs[0] if name == "PAD" else op.outputs[0]]
            shape = list(shaped.shape)
            resolution = int(shape[1]) if len(shape) == 4 else 1
            branch = "backbone" if len(branches) > 1 else next(iter(branches), "other")
            layers.append(LayerInfo(_name(sg.tensors[op.outputs[0]]), name, f"{branch}_{resolution}"))
        return layers[::-1]

    def to_bytes(self) -> bytes:
        self._fbu._compact_buffers_array(self.model)  # noqa: SLF001 - drops the emptied buffers
        return bytes(self._fbu.convert_object_to_bytearray(self.model))

    def _drop_unused_tensors(self) -> None:
        sg = self.subgraph
        used = set(sg.inputs) | set(sg.outputs)
        for op in sg.operators:
            used.update(i for i in op.inputs if i >= 0)
            used.update(op.outputs)
        order = sorted(used)
        remap = {old: new for new, old in enumerate(order)}
        live_buffers = {sg.tensors[i].buffer for i in order}
        for index, buffer in enumerate(self.model.buffers):
            if index not in live_buffers:
                buffer.data = None
        sg.tensors = [sg.tensors[i] for i in order]
        for op in sg.operators:
            op.inputs = [remap[i] if i >= 0 else -1 for i in op.inputs]
            op.outputs = [remap[i] for i in op.outputs]
        sg.inputs = [remap[i] for i in sg.inputs]
        sg.outputs = [remap[i] for i in sg.outputs]
        for signature in self.model.signatureDefs or []:
            for item in list(signature.inputs or []) + list(signature.outputs or []):
                item.tensorIndex = remap[item.tensorIndex]


def float_landmark_graph(shipped: bytes, prune_segmentation: bool) -> LandmarkGraph:
    """The shipped model as float32 with a serving signature, optionally without the mask branch."""
    graph = LandmarkGraph(shipped)
    graph.expand_float16()
    graph.add_signature()
    if prune_segmentation:
        graph.prune_outputs([SEGMENTATION_OUTPUT])
    return graph


def halve_person_mask(graph: LandmarkGraph) -> int:
    """Run the mask's last refinement blocks at 128x128 instead of upsampling to 256x256 first.

    The segmentation branch ends by upsampling its 128x128x8 features to 256x256 and refining them
    there (two depthwise blocks and a 3x3 output convolution): about a third of the whole model's
    memory traffic, spent on a mask whose outline the station reads along a few rays
    (device/pose/outline.py interpolates between mask pixels and scales by the mask's own size).
    Dropping the upsample and running the same weights at 128x128 gives a 128x128 mask over the
    same crop. Every other output is untouched (bit-identical landmarks); the mask itself differs,
    so a variant built this way is judged on the clips like any other (models/quantize.py).
    Returns the number of tensors resized."""
    sg = graph.subgraph
    mask = next((i for i in sg.outputs if _name(sg.tensors[i]) == SEGMENTATION_OUTPUT), None)
    if mask is None:
        raise ModelError("model has no person mask output to halve")
    full = int(sg.tensors[mask].shape[1])
    upsample = [op for op in sg.operators if graph.op_name(op) == "RESIZE_BILINEAR"
                and int(sg.tensors[op.outputs[0]].shape[1]) == full]
    if len(upsample) != 1:
        raise ModelError(f"expected one upsampling to the {full}x{full} mask, found {len(upsample)}")
    up = upsample[0]
    source, target = up.inputs[0], up.outputs[0]
    half = int(sg.tensors[source].shape[1])
    sg.operators = [op for op in sg.operators if op is not up]
    for op in sg.operators:
        op.inputs = [source if i == target else i for i in op.inputs]
    # Everything downstream of the upsample is at `full` resolution; only the model input also is,
    # and it feeds the backbone, not this branch.
    downstream, resized = {source}, 0
    for op in sg.operators:
        if any(i in downstream for i in op.inputs):
            downstream.update(op.outputs)
    for index in downstream - {source}:
        tensor = sg.tensors[index]
        shape = [int(d) for d in tensor.shape]
        if len(shape) == 4 and shape[1] == shape[2] == full:
            tensor.shape = np.array([shape[0], half, half, shape[3]], np.int32)
            if tensor.shapeSignature is not None:
                tensor.shapeSignature = np.array(tensor.shape, np.int32)
            resized += 1
    graph._drop_unused_tensors()
    return resized


def half_mask_float16(shipped: bytes) -> bytes:
    """The shipped float16 model with its person mask made at 128x128 (halve_person_mask)."""
    graph = LandmarkGraph(shipped)
    halve_person_mask(graph)
    return graph.to_bytes()


def pruned_float16(shipped: bytes) -> bytes:
    """The shipped float16 model without the segmentation branch (weights untouched)."""
    graph = LandmarkGraph(shipped)
    graph.prune_outputs([SEGMENTATION_OUTPUT])
    return graph.to_bytes()
