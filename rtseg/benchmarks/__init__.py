"""``rtseg bench`` / ``rtseg.benchmark``: one front door (:func:`benchmark`, here) for the
inference and the training benchmarks.

- :mod:`rtseg.benchmarks.inference`: latency, FPS, size and memory on a backend; ``make
  bench``'s suite and its table.
- :mod:`rtseg.benchmarks.training`: a training step's memory, training images/s.
- :mod:`rtseg.benchmarks.measure`: the measuring primitives both use: peak resident memory,
  timed calls, the machine's description, one ``rtseg bench`` run in a fresh process."""

from __future__ import annotations

from pathlib import Path

from rtseg.benchmarks.inference import BACKENDS, benchmark_inference
from rtseg.benchmarks.training import benchmark_training
from rtseg.errors import RtsegError


def _check_common(model: str | None, weights, backend: str, runs: int, iters: int, processes: int) -> None:
    from rtseg.models import list_models

    if not model and not weights:
        raise RtsegError("give --model NAME (random weights) or --weights W, or --suite")
    if model and model not in list_models():
        raise RtsegError(f"--model {model!r}: expected one of {', '.join(list_models())}")
    if backend not in BACKENDS and backend != "auto":
        raise RtsegError(f"--backend {backend!r}: expected auto or one of {', '.join(BACKENDS)}")
    for flag, value in (("--runs", runs), ("--iters", iters), ("--processes", processes)):
        if value < 1:
            raise RtsegError(f"{flag} {value}: expected 1 or more")


def benchmark(model: str | None = None, weights: str | Path | None = None, *, size: tuple[int, int] = (360, 480),
              backend: str = "torch", threads: int = 0, iters: int = 30, runs: int = 1, num_classes: int = 11,
              calibrate: str | None = None, data_root: str | Path | None = None, train: bool = False,
              batch: int = 2, grad_checkpoint: bool = False, train_throughput: bool = False, processes: int = 1,
              steps: int = 20, train_path: str = "rtseg", progress: bool = True) -> dict:
    """``rtseg bench``: time ``weights`` (shipped name, checkpoint or ``.onnx``) or the
    architecture ``model`` with random weights (``num_classes`` outputs) on ``backend`` at batch 1.

    Returns median / p90 ms, FPS, params, GFLOPs, peak resident memory and the image -> mask time.
    ``runs`` > 1: that many fresh processes one after another, summarised by the median of their
    medians. ``train``: one training step's time and memory instead (``model`` only).
    ``train_throughput``: training images/s with ``batch`` frames per process over ``steps``
    steps, in ``processes`` DDP processes (torchrun, ``threads`` each) (``model`` only), on
    ``train_path`` (rtseg's or the plain eager baseline; ``both``: each in ``runs`` fresh
    processes, alternating, and their ratio)."""
    _check_common(model, weights, backend, runs, iters, processes)
    size = tuple(int(v) for v in size)
    if backend == "auto":  # what video and serve pick here
        from rtseg.backends import choose

        onnx = str(weights) if weights is not None and str(weights).lower().endswith(".onnx") else None
        backend = choose("stream", onnx_file=onnx).backend
    if train or train_throughput:
        return benchmark_training(model, size=size, threads=threads, runs=runs, num_classes=num_classes,
                                  batch=batch, grad_checkpoint=grad_checkpoint, train_throughput=train_throughput,
                                  processes=processes, steps=steps, train_path=train_path,
                                  progress=progress)
    return benchmark_inference(model, weights, size=size, backend=backend, threads=threads, iters=iters, runs=runs,
                               num_classes=num_classes, calibrate=calibrate, data_root=data_root,
                               progress=progress)
