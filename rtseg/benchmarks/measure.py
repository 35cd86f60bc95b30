"""Measuring primitives shared by the inference benchmarks (``rtseg.benchmarks.inference``) and the
training benchmarks (``rtseg.benchmarks.training``): peak resident memory, timed calls, the
machine's description, and one ``rtseg bench`` run in a fresh process."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rtseg.errors import RtsegError
from rtseg.runtime import ISA_CAP_VARIABLES, cpu_flags


def reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_calls(fn, warmup: int, iters: int) -> list[float]:
    """Milliseconds of each of ``iters`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


#: Runtime packages whose versions :func:`machine_info` records when they are installed.
_RUNTIME_PACKAGES = ("onnxruntime", "openvino")


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "isa": [name for name, on in cpu_flags().items() if on],
            "python": platform.python_version(), "torch": torch.__version__}
    caps = {v: os.environ[v] for v in ISA_CAP_VARIABLES if os.environ.get(v)}
    if caps:  # figures from a capped run are not this CPU's own: say so beside them
        info["isa_cap"] = caps
    for package in _RUNTIME_PACKAGES:
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            pass
    try:
        import cv2

        info["opencv"] = cv2.__version__
    except ImportError:  # pragma: no cover - a core dependency
        pass
    return info


def bench_argv(flags: dict[str, object]) -> list[str]:
    """The ``rtseg bench`` command-line flags for ``flags`` (option name to value, e.g.
    ``{"num_classes": 11, "size": (360, 480), "train_throughput": True}``): None and False are
    left out, True is a bare flag, a (height, width) pair is written ``HxW``. The one place that
    turns arguments back into flags, for the benchmarks that rerun themselves in fresh processes."""
    argv: list[str] = []
    for name, value in flags.items():
        if value is None or value is False or value == "":
            continue
        argv.append("--" + name.replace("_", "-"))
        if value is True:
            continue
        argv.append(f"{value[0]}x{value[1]}" if isinstance(value, (tuple, list)) else str(value))
    return argv


def run_bench_process(argv: list[str], what: str = "bench run", torchrun_processes: int = 0) -> dict:
    """``python -m rtseg bench ARGV --json TMP`` in a fresh process (under torchrun with
    ``torchrun_processes`` local processes when > 0; rank 0 writes the row) and its JSON row.
    A failed run raises an :class:`RtsegError` naming ``what`` with the end of its stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        launcher = [sys.executable, "-m", "rtseg"]
        if torchrun_processes > 0:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                        str(torchrun_processes), "-m", "rtseg"]
        done = subprocess.run([*launcher, "bench", *argv, "--json", str(out)], capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            raise RtsegError(f"{what} failed: {done.stderr.strip()[-500:]}")
        return json.loads(out.read_text())
