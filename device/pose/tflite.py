"""One small adapter over the TFLite interpreter.

tflite_runtime is used where it is installed (older Pi images), else ai_edge_litert, its maintained
successor. tflite-runtime 2.14 fails under numpy 2, so ai-edge-litert is the default dependency.
"""
from __future__ import annotations

import importlib
import inspect
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar, Union

import numpy as np

from device.errors import ModelError
from device.stats import median

RUNTIMES = {
    "tflite_runtime": "tflite_runtime.interpreter",
    "ai_edge_litert": "ai_edge_litert.interpreter",
}


def interpreter_class(preference: str = "auto") -> tuple[str, Any]:
    """Return (runtime name, Interpreter class) for the preferred or first importable runtime."""
    names = list(RUNTIMES) if preference == "auto" else [preference]
    failures = []
    for name in names:
        try:
            module = importlib.import_module(RUNTIMES[name])
        except ImportError as err:
            failures.append(f"{name}: {err}")
            continue
        return name, module.Interpreter
    raise ModelError(
        "no TFLite runtime is importable (" + "; ".join(failures) + "). "
        "Install it with `pip install ai-edge-litert` (or tflite-runtime with numpy<2)"
    )


def interpreter_options(interpreter_cls: Any, threads: int) -> dict[str, Any]:
    """The interpreter's numerics, chosen rather than left to a runtime's defaults.

    XNNPACK (TFLite's default CPU delegate, the AUTO op resolver) runs the whole graph in float32 on
    every CPU: the float16 weights are widened once at load, and its float16 arithmetic is used only
    when a delegate flag or the model asks for it, which these options do not. So a Pi 4 (Cortex-A72,
    no fp16 arithmetic) and a Pi 5 (Cortex-A76, with it) compute the same float32 graph; what may
    still differ between CPUs is the order of the sums inside XNNPACK's per-CPU kernels, far below
    the model's own one-pixel noise (deploy/test-arm64.sh measures it). `latest_features` is kept
    off so that a runtime upgrade does not switch new kernels on behind the station's back. Options
    an older runtime (tflite_runtime) does not know are left out."""
    wanted: dict[str, Any] = {"num_threads": threads, "experimental_default_delegate_latest_features": False}
    module = importlib.import_module(interpreter_cls.__module__)
    resolver = getattr(module, "OpResolverType", None)
    if resolver is not None:
        wanted["experimental_op_resolver_type"] = resolver.AUTO
    known = inspect.signature(interpreter_cls.__init__).parameters
    return {name: value for name, value in wanted.items() if name in known}


T = TypeVar("T")


class TFLiteModel:
    """A loaded .tflite model: one float input, outputs addressed by their shape."""

    def __init__(self, path: Path, threads: int = 1, runtime: str = "auto"):
        self.path = Path(path)
        self.runtime, interpreter_cls = interpreter_class(runtime)
        try:
            self._interp = interpreter_cls(model_path=str(self.path), **interpreter_options(interpreter_cls, threads))
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"cannot load model {self.path}: {err}. Run `station models fetch` to restore it") from None
        inputs = self._interp.get_input_details()
        if len(inputs) != 1:
            raise ModelError(f"{self.path} has {len(inputs)} inputs, expected 1")
        self._input = inputs[0]
        self._outputs = self._interp.get_output_details()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"])

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in o["shape"]) for o in self._outputs]

    def find_output(self, shape: tuple[int, ...]) -> Optional[int]:
        """Position of the output with this shape (output order differs between conversions), or
        None for a model without one (an output some variants lack)."""
        return next((i for i, s in enumerate(self.output_shapes) if s == tuple(shape)), None)

    def output_index(self, shape: tuple[int, ...]) -> int:
        """`find_output` for an output every variant has: a model without it is not one we load."""
        index = self.find_output(shape)
        if index is None:
            raise ModelError(f"{self.path} has no output of shape {shape} (outputs: {self.output_shapes})")
        return index

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Copy `tensor` in, invoke, and return a copy of every output."""
        self._interp.set_tensor(self._input["index"], tensor.astype(np.float32, copy=False))
        self._interp.invoke()
        return [self._interp.get_tensor(o["index"]) for o in self._outputs]

    # The live loop's path: no copy of the input or of outputs it reads only a part of. The
    # interpreter refuses to invoke while a view of its buffers is alive, so views are only
    # handed to a function and never returned.

    def fill_input(self, fill: Callable[[np.ndarray], object]) -> None:
        """Let `fill` write the next input where the interpreter keeps it (its (1, ...) view)."""
        view = self._interp.tensor(self._input["index"])()
        try:
            fill(view)
        finally:
            del view

    def invoke(self) -> None:
        self._interp.invoke()

    def output(self, index: int) -> np.ndarray:
        """A copy of output `index` of the last invoke."""
        return self._interp.get_tensor(self._outputs[index]["index"])

    def read_output(self, index: int, read: Callable[[np.ndarray], T]) -> T:
        """`read` applied to a view of output `index` of the last invoke (it must not keep the view)."""
        view = self._interp.tensor(self._outputs[index]["index"])()
        try:
            return read(view)
        finally:
            del view


def time_models(models: Mapping[str, Path], inputs: Union[list[np.ndarray], Mapping[str, list[np.ndarray]]],
                rounds: int = 3, threads: int = 2, runtime: str = "auto", warmup: int = 3) -> dict[str, float]:
    """Median ms per bare model call, round-robin across models so that load from anything else on
    the machine falls on all of them alike. Only ratios within one call are meaningful. `inputs`
    is one list for all models or a list per model name."""
    per_model = inputs if isinstance(inputs, Mapping) else {name: inputs for name in models}
    loaded = {name: TFLiteModel(Path(path), threads, runtime) for name, path in models.items()}
    for name, model in loaded.items():
        for x in per_model[name][:warmup]:
            model.run(x[None])
    samples: dict[str, list[float]] = {name: [] for name in loaded}
    steps = max(len(v) for v in per_model.values())
    for _ in range(rounds):
        for i in range(steps):
            for name, model in loaded.items():
                x = per_model[name][i % len(per_model[name])]
                t0 = time.perf_counter()
                model.run(x[None])
                samples[name].append((time.perf_counter() - t0) * 1000)
    out: dict[str, float] = {}
    for name, v in samples.items():
        ms = median(v)
        if ms is None:  # nothing was timed: no round, or no input for this model
            raise ValueError(f"no timing for {name}: rounds={rounds}, {len(per_model[name])} inputs")
        out[name] = ms
    return out
