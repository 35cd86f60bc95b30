"""The package's layers point down and nothing imports in a circle (module-level and deferred
imports inside functions alike), and ``python -m rtseg`` works."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rtseg"

#: Lowest layer first. A module may import its own layer or lower ones, never a higher one.
LAYERS = [
    # 0: the bottom: no rtseg module above these
    ("rtseg._version", "rtseg.errors", "rtseg.constants", "rtseg.io", "rtseg.progress", "rtseg.runtime", "rtseg.distributed", "rtseg.config",
     "rtseg.datasets", "rtseg.metrics", "rtseg.checkpoint", "rtseg.models", "rtseg.class_weights",
     "rtseg.visualize", "rtseg.onnx_runtimes", "rtseg.onnx_model", "rtseg.weights"),
    # 1: engine and deploy (the one weights loader they share is below them), the backends (a
    # runner per way of running a network, built on deploy's export and quantisation), and
    # rtseg.benchmarks, the inference (on the backends) and training (on engine) benchmarks
    ("rtseg.engine", "rtseg.deploy", "rtseg.backends", "rtseg.benchmarks", "rtseg.compress", "rtseg.zoo"),
    # 2: running trained models on images, video and datasets
    ("rtseg.inference", "rtseg.evaluation", "rtseg.streaming", "rtseg.video", "rtseg.serve"),
    # 3: the command line and the package's front door
    ("rtseg.cli", "rtseg.__main__", "rtseg"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    best = None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rtseg"):
                # "from rtseg.cli import bench" imports the submodule rtseg.cli.bench; the package
                # itself counts only where a name is not a submodule ("from rtseg import distributed"
                # is a bottom-layer import, not one of the package's front door)
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                deps.update(subs)
                if len(subs) < len(node.names):
                    deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("rtseg"))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_every_import_points_down_or_sideways():
    wrong = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
             for m, deps in _imports().items() for d in deps if _layer(d) > _layer(m)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _imports()
    # A package's __init__ importing its own submodules is how packages work; everything else
    # must form a DAG.
    edges = {m: {d for d in deps if not (d.startswith(m + ".") and m in graph)} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_python_dash_m_rtseg_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "rtseg", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("rtseg ")
    done = subprocess.run([sys.executable, "-m", "rtseg", "eval", "--weights", "nothing-here.pt",
                           "--dataset", "camvid"], capture_output=True, text=True)
    assert done.returncode == 2
    from rtseg.checkpoint import SHIPPED_WEIGHTS

    assert done.stderr.strip().splitlines() == ["rtseg eval: error: weights not found: 'nothing-here.pt' is "
                                                f"neither a file nor a shipped model ({', '.join(sorted(SHIPPED_WEIGHTS))})"]


def _top(module: str) -> str:
    return ".".join(module.split(".")[:2])


#: Inside a layer, what the foundations may use (every other rtseg module is refused): the
#: networks are plain nn.Modules (loading a pretrained backbone reads a checkpoint), the data
#: knows no networks, and the metrics, config, device and process-group helpers stand alone.
ONLY_FROM = {
    "rtseg.models": {"rtseg.errors", "rtseg.checkpoint"},
    "rtseg.datasets": {"rtseg.constants", "rtseg.errors", "rtseg.io", "rtseg.progress"},
    "rtseg.metrics": {"rtseg.constants"},
    "rtseg.config": {"rtseg.errors"},
    "rtseg.runtime": {"rtseg.errors"},
    "rtseg.distributed": {"rtseg.errors"},
}

#: Side by side in a layer and apart by design: training and deployment share what lies below
#: them, and the image -> mask path is what the rest of its layer is built on.
NEVER = [
    ("rtseg.engine", "rtseg.deploy"),
    ("rtseg.deploy", "rtseg.engine"),
    ("rtseg.inference", "rtseg.evaluation"),
    ("rtseg.inference", "rtseg.video"),
    ("rtseg.inference", "rtseg.streaming"),
    ("rtseg.inference", "rtseg.serve"),
]


def test_rules_within_layers():
    wrong = []
    for m, deps in _imports().items():
        for d in deps:
            src, dst = _top(m), _top(d)
            if src == dst:
                continue
            if src in ONLY_FROM and dst not in ONLY_FROM[src]:
                wrong.append(f"{m} imports {d}: {src} may use only {sorted(ONLY_FROM[src])}")
            if (src, dst) in NEVER:
                wrong.append(f"{m} imports {d}: {src} and {dst} are kept apart")
    assert not wrong, "\n".join(wrong)
