"""Speed, size and memory of a model on one inference backend (``rtseg bench``, ``make bench``).

:func:`time_network` times a network; :func:`benchmark_inference` is ``rtseg bench`` without the
training modes (weights or an architecture, single run or fresh-process repeats);
:func:`benchmark_suite` is ``make bench``'s table. The training benchmarks are
:mod:`rtseg.benchmarks.training`; :func:`rtseg.benchmarks.benchmark` fronts both."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import torch
from torch import nn

# count_flops / count_params / machine_info live beside the models and in rtseg.benchmarks.measure; the names
# stay importable from here for existing callers (the model tests, the serving load script).
from rtseg.benchmarks.measure import (
    bench_argv,
    machine_info,
    peak_rss_mb,
    reset_peak_rss,
    run_bench_process,
    time_calls,
)
from rtseg.constants import IMAGENET_MEAN, IMAGENET_STD
from rtseg.errors import RtsegError
from rtseg.models.stats import count_flops, count_params
from rtseg.onnx_runtimes import RUNTIMES

__all__ = ["BACKENDS", "BENCH_SUITE", "bench_markdown", "benchmark_inference", "benchmark_suite", "count_flops",
           "count_params", "machine_info", "time_network"]

from rtseg.backends import BuildOptions, build_runner, default_calibration, file_runner, get_backend, list_backends

#: Every backend of the registry (rtseg.backends), in its order.
BACKENDS = tuple(list_backends())
#: Backends calibrated on frames (``--calibrate``; the shipped street frames without it).
INT8_BACKENDS = tuple(b for b in BACKENDS if get_backend(b).requires.calibration)


def _runners(model: nn.Module | None, backend: str, x: torch.Tensor, options: BuildOptions, onnx_file):
    """(runner, torch_runner) for the timing: ``runner(inp=None)`` runs (1, 3, H, W) ``x`` or
    ``inp``; ``torch_runner`` maps a tensor to a logits tensor (the image -> mask timing). Built by
    the backend registry, as every command builds it; static-size backends are built here, before
    the clock starts."""
    if onnx_file is not None:
        run = file_runner(str(onnx_file), backend, options)
    else:
        run = build_runner(model, backend, size=tuple(x.shape[-2:]), options=options)
    if hasattr(run, "runner"):  # PerShape: export / quantise / compile for this shape now
        run = run.runner(tuple(x.shape))
    xc = x.contiguous(memory_format=torch.channels_last) if backend.startswith("torch") else x

    def runner(inp=None):
        with torch.inference_mode():
            return run(xc if inp is None else inp)

    return runner, runner


def _latency(times: list[float], prefix: str = "") -> dict:
    med = statistics.median(times)
    if prefix:
        return {f"{prefix}median_ms": round(med, 2), f"{prefix}fps": round(1000 / med, 1)}
    return {"median_ms": round(med, 2), "p90_ms": round(float(np.percentile(times, 90)), 2), "fps": round(1000 / med, 1)}


def _check_network_backend(backend: str, onnx_file) -> None:
    get_backend(backend)  # one line naming --backend when unknown
    if onnx_file is not None and backend not in RUNTIMES:
        raise RtsegError(f"{onnx_file} is an ONNX graph: it runs with --backend {'|'.join(RUNTIMES)} only "
                         f"(not {backend}); give a checkpoint or a shipped model for the other backends")


def time_network(model: nn.Module | None, size: tuple[int, int], backend: str, threads: int = 0, *,
                 warmup: int = 5, iters: int = 30, end_to_end=None, calibration: list[np.ndarray] | None = None,
                 onnx_file: str | Path | None = None,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD) -> dict:
    """Median / p90 latency of the network alone at batch 1, FPS, parameters, GFLOPs, peak memory.

    ``end_to_end``: optional ``(runner) -> callable`` timing the image -> mask path around the
    network (pre- and post-processing included). ``calibration``: (H, W, 3) uint8 frames for
    int8 (default: the street frames the package carries). ``onnx_file``: time this exported
    graph as it is (an ONNX runtime backend; ``model`` is None). ONNX backends given a model
    export it for their runtime (``rtseg export --target``).
    """
    _check_network_backend(backend, onnx_file)
    if threads > 0:
        torch.set_num_threads(threads)
    x = torch.randn(1, 3, *size)
    result = {"backend": backend, "size": list(size), "threads": threads or torch.get_num_threads()}
    if model is not None:
        model = model.eval()
        result.update(params=count_params(model), gflops=round(count_flops(model, size) / 1e9, 3))
    else:
        result.update(params=_onnx_params(onnx_file), gflops=float("nan"))
    b = get_backend(backend)
    options = BuildOptions(threads=threads, mean=tuple(mean), std=tuple(std),
                           calibration=(calibration or default_calibration()) if b.requires.calibration else None)
    if b.onnx_runtime is not None:
        if onnx_file is not None:
            path = Path(onnx_file)
        else:
            from rtseg.backends.graph import cached_graph

            path = cached_graph(model, tuple(size), b.onnx_runtime, bool(getattr(b, "int8", False)), options)
        result["file_mb"] = round(path.stat().st_size / 2**20, 3)
    reset_peak_rss()
    runner, torch_runner = _runners(model, backend, x, options, onnx_file)
    times = time_calls(runner, warmup, iters)
    result["peak_mem_mb"] = round(peak_rss_mb(), 1)
    result.update(_latency(times))
    if end_to_end is not None:
        e2e = time_calls(end_to_end(torch_runner), max(1, warmup // 2), max(5, iters // 2))
        result.update(_latency(e2e, prefix="e2e_"))
    return result


def _onnx_params(path) -> int:
    """Parameters stored in an ONNX graph's initialisers (BN folded, so a little fewer)."""
    import onnx

    proto = onnx.load(str(path))
    return int(sum(np.prod(t.dims) for t in proto.graph.initializer if len(t.dims) > 0))


def _random_classes(num_classes: int):
    from rtseg.datasets.classes import ClassTable

    return ClassTable(tuple(f"class{i}" for i in range(num_classes)),
                      tuple((i * 37 % 256, i * 91 % 256, i * 53 % 256) for i in range(num_classes)))


def _bench_once(model_name: str | None, weights: str | None, size: tuple[int, int], backend: str, threads: int,
                iters: int, calibrate: str | None, data_root, num_classes: int) -> dict:
    from rtseg.constants import IMAGENET_MEAN, IMAGENET_STD
    from rtseg.datasets.transforms import normalize
    from rtseg.models import create_model
    from rtseg.runtime import class_map
    from rtseg.weights import load_weights

    onnx_file = None
    if weights:
        loaded = load_weights(weights, threads=threads)
        classes, mean, std = loaded.classes, loaded.mean, loaded.std
        model_name = loaded.name
        if loaded.is_onnx:
            model, onnx_file = None, loaded.source
            if loaded.fixed_size and tuple(loaded.fixed_size) != tuple(size):
                raise RtsegError(f"{weights} is a static graph for {loaded.fixed_size[0]}x{loaded.fixed_size[1]}; "
                                 f"bench it with --size {loaded.fixed_size[0]}x{loaded.fixed_size[1]}")
        else:
            model = loaded.model
    else:
        torch.manual_seed(0)  # the same random network in every run (and its export checks alike)
        model = create_model(model_name, num_classes=num_classes)
        classes, mean, std = _random_classes(num_classes), IMAGENET_MEAN, IMAGENET_STD
    calibration = None
    if backend in INT8_BACKENDS and calibrate:
        from rtseg.deploy.quantize import calibration_images

        calibration = calibration_images(calibrate, data_root)
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    palette = classes.palette_array()

    def end_to_end(runner):
        def run():
            x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None], mean, std)
            mask = class_map(runner(x))[0].to(torch.uint8).numpy()
            return palette[mask]
        return run

    result = time_network(model, tuple(size), backend, threads, iters=iters, end_to_end=end_to_end,
                          calibration=calibration, onnx_file=onnx_file, mean=mean, std=std)
    if backend in INT8_BACKENDS:  # which int8 instructions the figures come from
        from rtseg.runtime import cpu_flags

        result["cpu_int8_flags"] = cpu_flags()
    return {"model": model_name, "weights": weights, **result, "machine": machine_info()}


def _bench_fresh_processes(argv: list[str], runs: int, progress: bool = True) -> dict:
    """Run the same single benchmark ``runs`` times, each in a fresh process one after the other
    (compilation, caches and allocator start cold every time), and summarise: on a shared
    machine the latency drifts over minutes, which one run's median cannot show."""
    from rtseg.progress import progress_bar

    rows = [run_bench_process(argv, what=f"bench run {i + 1}/{runs}")
            for i in progress_bar(range(runs), desc="bench runs", unit="run", progress=progress)]
    medians = [r["median_ms"] for r in rows]
    summary = dict(rows[0])
    summary.update(runs=runs, run_median_ms=medians, median_ms=round(statistics.median(medians), 2),
                   p90_ms=round(statistics.median(r["p90_ms"] for r in rows), 2),
                   fps=round(1000 / statistics.median(medians), 1), min_run_median_ms=min(medians),
                   max_run_median_ms=max(medians))
    for key in ("e2e_median_ms", "peak_mem_mb"):
        if key in rows[0]:
            summary[key] = round(statistics.median(r[key] for r in rows), 2)
    return summary


def benchmark_inference(model: str | None, weights: str | Path | None, *, size: tuple[int, int], backend: str,
                        threads: int, iters: int, runs: int, num_classes: int, calibrate: str | None,
                        data_root: str | Path | None, progress: bool = True) -> dict:
    """``rtseg bench`` on ``backend`` at batch 1 (arguments already checked by
    :func:`rtseg.benchmarks.benchmark`): ``runs`` > 1 repeats in fresh processes."""
    if backend not in BACKENDS:
        raise RtsegError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if runs > 1:
        argv = bench_argv({"size": size, "backend": backend, "threads": threads, "iters": iters,
                           "num_classes": num_classes, "model": model, "weights": weights,
                           "calibrate": calibrate, "data_root": data_root})
        return _bench_fresh_processes(argv, runs, progress)
    return _bench_once(model, str(weights) if weights else None, size, backend, threads, iters, calibrate,
                       data_root, num_classes)


#: make bench: (model, weights, backends, iterations)
BENCH_SUITE = (
    ("enet", "enet-camvid",
     ("torch", "torch-compile", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-int8"), 100),
    ("fcn8s_mobilenetv3", None, ("torch", "onnxruntime", "onnxruntime-int8"), 20),
    ("fcn8s", None, ("torch",), 3),
)


def benchmark_suite(size: tuple[int, int] = (360, 480), threads: int = 2, calibrate: str | None = None,
                    data_root: str | Path | None = None, log=print) -> list[dict]:
    """Every model x backend of ``make bench`` (:data:`BENCH_SUITE`); one row each."""
    rows = []
    for model_name, weights, backends, iters in BENCH_SUITE:
        for backend in backends:
            log(f"bench {model_name} {backend} ...")
            rows.append(_bench_once(model_name, weights, tuple(size), backend, threads, iters, calibrate,
                                    data_root, 11))
            log(f"  median {rows[-1]['median_ms']} ms, p90 {rows[-1]['p90_ms']} ms")
    return rows


def bench_markdown(rows: list[dict]) -> str:
    """The suite's rows as a markdown table headed by the machine."""
    m = rows[0]["machine"]
    head = (f"Measured on {m['cpu']} ({m['cores']} cores), torch {m['torch']}, onnxruntime "
            f"{m.get('onnxruntime', '-')}; batch 1, {rows[0]['size'][1]}x{rows[0]['size'][0]} (WxH), "
            f"{rows[0]['threads']} threads.\n\n")
    lines = ["| model | backend | params (M) | GFLOPs | median ms | p90 ms | FPS | image->mask ms | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['params'] / 1e6:.2f} | {r['gflops']:.2f} | "
                     f"{r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['fps']:.1f} | "
                     f"{r.get('e2e_median_ms', float('nan')):.1f} | {r['peak_mem_mb']:.0f} |")
    return head + "\n".join(lines) + "\n"
