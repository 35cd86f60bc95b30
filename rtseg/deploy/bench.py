"""Speed, size and memory of a model on one inference backend (``rtseg bench``, ``make bench``).

:func:`time_network` times a network; :func:`benchmark_inference` is ``rtseg bench`` without the
training modes (weights or an architecture, single run or fresh-process repeats);
:func:`benchmark_suite` is ``make bench``'s table. The training benchmarks are
:mod:`rtseg.engine.bench_train`; :func:`rtseg.bench.benchmark` fronts both."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg.errors import RtsegError

# count_flops / count_params / machine_info live beside the models and in rtseg.measure; the names
# stay importable from here for existing callers (tests/test_models.py, tools/serve_load.py).
from rtseg.measure import bench_argv, machine_info, peak_rss_mb, reset_peak_rss, run_bench_process, time_calls
from rtseg.models.stats import count_flops, count_params
from rtseg.onnx_runtimes import RUNTIMES, load_runner

__all__ = ["BACKENDS", "BENCH_SUITE", "bench_markdown", "benchmark_inference", "benchmark_suite", "count_flops",
           "count_params", "machine_info", "time_network"]

#: Backends that run an ONNX graph; the ``-int8`` ones quantise the float graph first (QDQ).
GRAPH_BACKENDS = ("onnxruntime", "onnxruntime-int8", "opencv", "openvino", "openvino-int8")
#: ``torch-int8``: PyTorch's own static int8 (PT2E, oneDNN int8 convolutions; rtseg.deploy.pt2e).
#: ``torch-bf16``: compiled in bfloat16 (CPUs with native bf16 only; rtseg.runtime.Bfloat16Inference).
BACKENDS = ("torch", "torch-compile", "torch-bf16", "torch-int8", *GRAPH_BACKENDS)
#: Backends calibrated on frames (``--calibrate``; synthetic frames without it).
INT8_BACKENDS = ("torch-int8", "onnxruntime-int8", "openvino-int8")


def _runtime(backend: str) -> str:
    """The runtime that runs a graph backend's file: ``openvino-int8`` -> ``openvino``."""
    return backend.removesuffix("-int8")


def _frames_or_synthetic(calibration: list[np.ndarray] | None, size: tuple[int, int]) -> list[np.ndarray]:
    return calibration or [np.random.default_rng(i).standard_normal((1, 3, *size)).astype(np.float32)
                           for i in range(8)]


def _graph_for(model: nn.Module | None, size: tuple[int, int], backend: str, tmp: Path, onnx_file,
               calibration: list[np.ndarray] | None, metadata: dict | None) -> Path:
    """The ONNX file ``backend`` times: ``onnx_file`` as it is, or ``model`` exported for the
    backend's runtime (int8: quantised on ``calibration``, synthetic frames when None)."""
    if onnx_file is not None:
        return Path(onnx_file)
    from rtseg.deploy.export import export_onnx

    path = tmp / "model.onnx"
    export_onnx(model, path, size, metadata=metadata, target=_runtime(backend))
    if backend not in INT8_BACKENDS:
        return path
    from rtseg.deploy.quantize import quantize_int8

    # The model's float modules, as `rtseg export --int8` ships it.
    quantize_int8(path, tmp / "int8.onnx", _frames_or_synthetic(calibration, size),
                  keep_float=list(getattr(model, "int8_keep_float", ())))
    return tmp / "int8.onnx"


def _graph_runner(path: Path, backend: str, threads: int, x: torch.Tensor):
    """(runner, torch_runner) for a graph: ``runner(inp=None)`` runs (1, 3, H, W) ``x`` or ``inp``,
    ``torch_runner`` maps a tensor to a logits tensor (the image -> mask timing)."""
    run = load_runner(path, _runtime(backend), threads, input_shape=tuple(x.shape))
    xa = x.numpy()

    def runner(inp=None):
        return run(xa if inp is None else inp.numpy())

    return runner, lambda inp: torch.from_numpy(run(inp.numpy()))


def _torch_runner(model: nn.Module, backend: str, x: torch.Tensor, calibration: list[np.ndarray] | None = None):
    """(runner, torch_runner) for rtseg's PyTorch path: BN folded, channels-last, optionally
    compiled (``torch-bf16``: in bfloat16; ``torch-int8``: quantised on ``calibration``,
    synthetic frames when None)."""
    from rtseg.models.fold import fold_batchnorm

    if backend == "torch-int8":
        from rtseg.deploy.pt2e import check_support, compile_int8

        check_support("--backend torch-int8")
        net = compile_int8(model, _frames_or_synthetic(calibration, tuple(x.shape[-2:])))
    else:
        net = fold_batchnorm(model).to(memory_format=torch.channels_last)
    if backend == "torch-bf16":
        from rtseg.runtime import Bfloat16Inference, check_bf16_support

        check_bf16_support("--backend torch-bf16")
        net = Bfloat16Inference(net)
    if backend in ("torch-compile", "torch-bf16"):
        from rtseg.runtime import compile_for_inference

        net = compile_for_inference(net)
    xc = x.contiguous(memory_format=torch.channels_last)

    def runner(inp=None):
        with torch.inference_mode():
            return net(xc if inp is None else inp.contiguous(memory_format=torch.channels_last))

    return runner, runner


def _latency(times: list[float], prefix: str = "") -> dict:
    med = statistics.median(times)
    if prefix:
        return {f"{prefix}median_ms": round(med, 2), f"{prefix}fps": round(1000 / med, 1)}
    return {"median_ms": round(med, 2), "p90_ms": round(float(np.percentile(times, 90)), 2), "fps": round(1000 / med, 1)}


def _check_network_backend(backend: str, onnx_file) -> None:
    if backend not in BACKENDS:
        raise RtsegError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if onnx_file is not None and backend not in RUNTIMES:
        raise RtsegError(f"{onnx_file} is an ONNX graph: it runs with --backend {'|'.join(RUNTIMES)} only "
                         f"(not {backend}); give a checkpoint or a shipped model for the other backends")


def time_network(model: nn.Module | None, size: tuple[int, int], backend: str, threads: int = 0, *,
                 warmup: int = 5, iters: int = 30, end_to_end=None, calibration: list[np.ndarray] | None = None,
                 metadata: dict | None = None, onnx_file: str | Path | None = None) -> dict:
    """Median / p90 latency of the network alone at batch 1, FPS, parameters, GFLOPs, peak memory.

    ``end_to_end``: optional ``(runner) -> callable`` timing the image -> mask path around the
    network (pre- and post-processing included). ``calibration``: frames for int8.
    ``onnx_file``: time this exported graph as it is (an ONNX runtime backend; ``model`` is None).
    ONNX backends given a model export it for their runtime (``rtseg export --target``).
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
    with tempfile.TemporaryDirectory() as tmp:
        if backend in GRAPH_BACKENDS:
            path = _graph_for(model, size, backend, Path(tmp), onnx_file, calibration, metadata)
            result["file_mb"] = round(path.stat().st_size / 2**20, 3)
            reset_peak_rss()
            runner, torch_runner = _graph_runner(path, backend, threads, x)
        else:
            runner, torch_runner = _torch_runner(model, backend, x, calibration)
            reset_peak_rss()
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
    from rtseg.onnx_model import metadata_from_checkpoint
    from rtseg.runtime import class_map
    from rtseg.weights import load_weights

    onnx_file, meta = None, None
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
            meta = metadata_from_checkpoint(loaded.checkpoint, size)
    else:
        torch.manual_seed(0)  # the same random network in every run (and its export checks alike)
        model = create_model(model_name, num_classes=num_classes)
        classes, mean, std = _random_classes(num_classes), IMAGENET_MEAN, IMAGENET_STD
    calibration = None
    if backend in INT8_BACKENDS and calibrate:
        from rtseg.deploy.quantize import calibration_frames, parse_calibration

        ds, split, n = parse_calibration(calibrate)
        calibration = calibration_frames(ds, split, n, tuple(size), mean, std, data_root)
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    palette = classes.palette_array()

    def end_to_end(runner):
        def run():
            x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None], mean, std)
            mask = class_map(runner(x))[0].to(torch.uint8).numpy()
            return palette[mask]
        return run

    result = time_network(model, tuple(size), backend, threads, iters=iters, end_to_end=end_to_end,
                          calibration=calibration, metadata=meta, onnx_file=onnx_file)
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
    :func:`rtseg.bench.benchmark`): ``runs`` > 1 repeats in fresh processes."""
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
