"""Speed, size and memory of a model on one backend (``rtseg bench``, ``make bench``)."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg.errors import RtsegError

BACKENDS = ("torch", "torch-compile", "onnxruntime", "onnxruntime-int8")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, size: tuple[int, int]) -> float:
    """Floating-point operations of one (1, 3, H, W) forward pass (a multiply-add counts 2), as
    counted by torch's FlopCounterMode (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, *size))
    return float(counter.get_total_flops())


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(fn, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def benchmark(model: nn.Module, size: tuple[int, int], backend: str, threads: int = 0, *,
              warmup: int = 5, iters: int = 30, end_to_end=None, calibration: list[np.ndarray] | None = None,
              metadata: dict | None = None) -> dict:
    """Median / p90 latency of the network alone at batch 1, FPS, parameters, GFLOPs, peak memory.

    ``end_to_end``: optional ``(runner) -> callable`` timing the image -> mask path around the
    network (pre- and post-processing included). ``calibration``: frames for int8.
    """
    if backend not in BACKENDS:
        raise RtsegError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if threads > 0:
        torch.set_num_threads(threads)
    model = model.eval()
    params, flops = count_params(model), count_flops(model, size)
    x = torch.randn(1, 3, *size)
    result = {"backend": backend, "size": list(size), "threads": threads or torch.get_num_threads(),
              "params": params, "gflops": round(flops / 1e9, 3)}
    with tempfile.TemporaryDirectory() as tmp:
        if backend.startswith("onnxruntime"):
            from rtseg.deploy.export import export_onnx
            from rtseg.deploy.onnx_model import make_session

            path = Path(tmp) / "model.onnx"
            export_onnx(model, path, size, metadata=metadata)
            if backend == "onnxruntime-int8":
                from rtseg.deploy.quantize import quantize_int8

                frames = calibration or [np.random.default_rng(i).standard_normal((1, 3, *size)).astype(np.float32)
                                         for i in range(8)]
                quantize_int8(path, Path(tmp) / "int8.onnx", frames)
                path = Path(tmp) / "int8.onnx"
            result["file_mb"] = round(path.stat().st_size / 2**20, 3)
            _reset_peak_rss()
            session = make_session(path, threads)
            name = session.get_inputs()[0].name
            xa = x.numpy()

            def runner(inp=None):
                return session.run(None, {name: xa if inp is None else inp.numpy()})[0]

            def torch_runner(inp: torch.Tensor) -> torch.Tensor:
                return torch.from_numpy(session.run(None, {name: inp.numpy()})[0])
        else:
            from rtseg.deploy.fold import fold_batchnorm

            net = fold_batchnorm(model).to(memory_format=torch.channels_last)
            if backend == "torch-compile":
                from rtseg.inference import compile_for_inference

                net = compile_for_inference(net)
            _reset_peak_rss()
            xc = x.contiguous(memory_format=torch.channels_last)

            def runner(inp=None):
                with torch.inference_mode():
                    return net(xc if inp is None else inp.contiguous(memory_format=torch.channels_last))

            torch_runner = runner
        times = _time(runner, warmup, iters)
        result["peak_mem_mb"] = round(_peak_rss_mb(), 1)
        med = statistics.median(times)
        result.update(median_ms=round(med, 2), p90_ms=round(float(np.percentile(times, 90)), 2),
                      fps=round(1000 / med, 1))
        if end_to_end is not None:
            e2e = _time(end_to_end(torch_runner), max(1, warmup // 2), max(5, iters // 2))
            result.update(e2e_median_ms=round(statistics.median(e2e), 2),
                          e2e_fps=round(1000 / statistics.median(e2e), 1))
    return result


def training_step_memory(model: nn.Module, size: tuple[int, int], batch: int, grad_checkpoint: bool,
                         steps: int = 2) -> dict:
    """Peak resident memory and time of training steps (forward, loss, backward) at batch
    ``batch``, with or without gradient checkpointing. Run each setting in a fresh process
    (``rtseg bench --train``) for a clean peak."""
    from rtseg.engine.losses import SegmentationLoss

    if grad_checkpoint:
        if not hasattr(model, "set_grad_checkpointing"):
            raise RtsegError(f"{type(model).__name__} has no gradient checkpointing")
        model.set_grad_checkpointing(True)
    model.train()
    x = torch.randn(batch, 3, *size)
    target = torch.randint(0, 2, (batch, *size))
    with torch.no_grad():
        out = model(x)
    aux = sorted(k for k in out if k.startswith("aux")) if isinstance(out, dict) else []
    loss_fn = SegmentationLoss(aux_weights=[0.4] * len(aux))
    base = _peak_rss_mb()
    _reset_peak_rss()
    start_rss = _peak_rss_mb()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()
        times.append((time.perf_counter() - start) * 1000)
    peak = _peak_rss_mb()
    return {"mode": "train", "batch": batch, "size": list(size), "grad_checkpoint": grad_checkpoint,
            "peak_mem_mb": round(peak, 1), "step_peak_over_start_mb": round(peak - start_rss, 1),
            "process_peak_before_mb": round(base, 1), "median_step_ms": round(statistics.median(times), 1)}
