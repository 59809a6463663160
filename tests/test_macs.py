"""`station models macs`: multiply-accumulates counted from the graph, pinned on a tiny network
whose count is done by hand, and on the real models' known layer shapes."""
from __future__ import annotations

import json

import numpy as np

from models.macs import count_macs, count_model_file


def tiny_model() -> bytes:
    """A real, runnable TFLite graph: 8x8x3 image -> 3x3 conv to 4 channels (stride 1, SAME)
    -> 3x3 depthwise (stride 2, SAME) -> flatten -> fully connected to 10.

    By hand: conv 8*8*4 outputs x 3*3*3 = 6912; depthwise 4*4*4 outputs x 3*3 = 576;
    fully connected 10 outputs x 64 inputs = 640; 8128 in all."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    model = s.ModelT()
    model.version = 3
    model.buffers = [s.BufferT()]
    sg = s.SubGraphT()
    sg.tensors = []

    def tensor(shape, data=None):
        t = s.TensorT()
        t.shape, t.type = list(shape), s.TensorType.FLOAT32
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.asarray(data, np.float32).tobytes(), np.uint8)
            model.buffers.append(b)
            t.buffer = len(model.buffers) - 1
        t.name = f"t{len(sg.tensors)}"
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    codes = []

    def op(code, inputs, outputs, options_type=0, options=None):
        if code not in codes:
            codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = codes.index(code), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        sg.operators.append(o)

    sg.operators = []
    rng = np.random.default_rng(0)
    image = tensor([1, 8, 8, 3])
    conv = tensor([1, 8, 8, 4])
    options = s.Conv2DOptionsT()
    options.padding, options.strideW, options.strideH = s.Padding.SAME, 1, 1
    op(s.BuiltinOperator.CONV_2D, [image, tensor([4, 3, 3, 3], rng.random((4, 3, 3, 3))), tensor([4], np.zeros(4))],
       [conv], s.BuiltinOptions.Conv2DOptions, options)
    depthwise = tensor([1, 4, 4, 4])
    options = s.DepthwiseConv2DOptionsT()
    options.padding, options.strideW, options.strideH, options.depthMultiplier = s.Padding.SAME, 2, 2, 1
    op(s.BuiltinOperator.DEPTHWISE_CONV_2D, [conv, tensor([1, 3, 3, 4], rng.random((1, 3, 3, 4))), tensor([4], np.zeros(4))],
       [depthwise], s.BuiltinOptions.DepthwiseConv2DOptions, options)
    flat = tensor([1, 64])
    options = s.ReshapeOptionsT()
    options.newShape = [1, 64]
    op(s.BuiltinOperator.RESHAPE, [depthwise], [flat], s.BuiltinOptions.ReshapeOptions, options)
    out = tensor([1, 10])
    op(s.BuiltinOperator.FULLY_CONNECTED, [flat, tensor([10, 64], rng.random((10, 64))), tensor([10], np.zeros(10))],
       [out], s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT())
    sg.inputs, sg.outputs = [image], [out]
    model.subgraphs = [sg]
    model.operatorCodes = []
    for code in codes:
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
        model.operatorCodes.append(c)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_the_tiny_network_is_counted_as_by_hand():
    from ai_edge_litert.interpreter import Interpreter

    data = tiny_model()
    interp = Interpreter(model_content=data)  # a real graph the runtime accepts and runs
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], np.ones((1, 8, 8, 3), np.float32))
    interp.invoke()
    assert interp.get_tensor(interp.get_output_details()[0]["index"]).shape == (1, 10)

    count = count_macs(data)
    assert count.by_op == {"CONV_2D": 6912, "DEPTHWISE_CONV_2D": 576, "FULLY_CONNECTED": 640}
    assert count.macs == 8128 and count.layers == 3
    assert count.element_ops == 0  # the reshape only relabels


def test_the_models_cli_counts_the_detector_and_the_landmark_model(models_dir, settings, tmp_path, capsys):
    from device.commands.cli import main

    out = tmp_path / "macs.json"
    assert main(["models", "macs", "--models-dir", str(models_dir), "--json", str(out)]) == 0
    rows = {r["model"]: r for r in json.loads(out.read_text())["models"]}
    printed = capsys.readouterr().out
    # The files are pinned by sha256 (models/manifest.toml), so their counts are exact constants.
    # The detector's largest layer alone, a 1x1 conv 1152 -> 192 channels at 14x14, is
    # 14*14*192*1152 = 43,352,064 of them.
    assert rows["pose_detector"]["mmacs"] == 429.9
    assert rows["pose_landmark_full"]["mmacs"] == 386.1
    assert rows["pose_landmark_full"]["conv_2d_mmacs"] == 330.9 and rows["pose_landmark_full"]["depthwise_conv_2d_mmacs"] == 55.3
    assert count_model_file(models_dir / "pose_detection.tflite").macs == 429_859_360
    assert "pose_detector" in printed and "mmacs" in printed
