"""The tree draws the pipeline: imports point one way and no module imports itself back.

frame (capture) -> pose -> analysis -> station (signals, rep log, live state) -> commands; the station
and the hub meet only in the contract (device/contract: topics, records), which both import; the page
(web) reads a store through the contract's RepReader and the live state; models/ is offline tooling that may use the pose engine
and the analysis but is never imported by the runtime. Read from the source with `ast`, so lazy
imports inside functions count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("device", "web", "models")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Internal modules this file imports (`from a.b import c` is a.b.c when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import device.pose.engine` -> the deepest known module
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {name: imports_of(path, known) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# Who may import whom: (importer prefix, imported prefixes it must never reach, why).
FORBIDDEN = [
    ("device.capture", ("device.pose", "device.analysis", "device.station", "device.commands", "web", "models"),
     "capture only delivers frames"),
    ("device.pose", ("device.capture", "device.analysis", "device.station", "device.commands", "web", "models"),
     "the pose engine sees pixels, not sources or the coach"),
    ("device.analysis", ("device.capture", "device.pose.engine", "device.pose.tflite", "device.pose.draw",
                         "device.station", "device.commands", "web", "models", "device.config"),
     "the analysis works on plain Pose records, testable without a model or a camera"),
    ("device.station", ("device.commands", "web", "models"), "the live loop never waits on the page or offline tooling"),
    ("web", ("device.capture", "device.pose", "device.commands", "device.station.loop", "device.station.assembly",
             "models", "device.analysis.analyzer", "device.analysis.kinematics"),
     "the page reads the store and the live state; it never runs the model or a benchmark"),
    ("models", ("device.station", "device.commands", "web"), "offline tooling uses the pose engine and analysis only"),
    ("device.hub", ("device.capture", "device.pose", "device.analysis.analyzer", "device.analysis.kinematics",
                    "device.station", "device.commands", "web", "models"),
     "the hub stores and shows the stations' reps; it never runs a camera, the model or the live loop, and it "
     "meets the stations only in the contract (device/contract)"),
    ("device.station", ("device.hub",), "a station works without a hub: it meets the hub only in the contract"),
    ("device.contract", ("device.capture", "device.pose", "device.analysis.analyzer", "device.analysis.kinematics",
                         "device.analysis.faults", "device.analysis.reps", "device.analysis.framing",
                         "device.station", "device.hub", "device.commands", "web", "models", "device.config"),
     "the contract is what a station and the hub agree on: plain records and topics, with the fault vocabulary "
     "its only reach into the analysis"),
]
BOTTOM = ("device.errors", "device.fileio", "device.stats")


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("importer,forbidden,why", FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_imports_point_one_way(importer, forbidden, why):
    wrong = sorted((m, t) for m, targets in import_graph().items() if under(m, importer)
                   for t in targets if under(t, *forbidden))
    assert wrong == [], why


# The commands that front offline tooling: `station models` (fetch, quantize) and `station synth` (the
# rendered-athlete bench, models/synth). No other part of the station may reach models/.
OFFLINE_COMMANDS = ("device.commands.models", "device.commands.synth")


def test_only_the_models_command_reaches_the_offline_tooling():
    wrong = sorted((m, t) for m, targets in import_graph().items() if under(m, "device") and m not in OFFLINE_COMMANDS
                   for t in targets if under(t, "models"))
    assert wrong == []


def test_only_the_synth_command_reaches_the_bench():
    """models/synth imports torch and anny (the [synth] extra): nothing but its command and its own
    modules may import it, so the station and the Pi install never need them."""
    wrong = sorted((m, t) for m, targets in import_graph().items()
                   if not under(m, "models.synth") and m != "device.commands.synth"
                   for t in targets if under(t, "models.synth"))
    assert wrong == []


def test_the_bottom_layer_imports_nothing_above_it():
    graph = import_graph()
    wrong = {m: sorted(t for t in graph[m] if t not in BOTTOM) for m in BOTTOM if graph[m] - set(BOTTOM)}
    assert wrong == {}


def test_no_test_code_ships_in_the_product():
    for name, path in product_modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not under(node.module, "support", "tests", "conftest"), name
            if isinstance(node, ast.Import):
                assert not any(under(a.name, "support", "tests", "conftest") for a in node.names), name


def test_every_module_is_in_a_subpackage_that_names_its_stage():
    top = sorted(p.name for p in (ROOT / "device").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "config.py", "errors.py", "fileio.py", "stats.py"]
    assert sorted(p.name for p in (ROOT / "device").iterdir() if p.is_dir() and p.name != "__pycache__") == \
        ["analysis", "capture", "commands", "contract", "hub", "pose", "station"]
