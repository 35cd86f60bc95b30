"""Speed, size and memory of a model on one backend (``rtseg bench``, ``make bench``).

:func:`time_network` times a network; :func:`benchmark` is the API of ``rtseg bench`` (weights or
an architecture, single run, fresh-process repeats, training step); :func:`benchmark_suite` is
``make bench``'s table."""

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


def count_flops(model: nn.Module, size: tuple[int, int], device: str | torch.device = "cpu") -> float:
    """Floating-point operations of one (1, 3, H, W) forward pass (a multiply-add counts 2), as
    counted by torch's FlopCounterMode (convolutions and matrix products). ``device="meta"``
    (a model built under ``torch.device("meta")``) counts from shapes alone, without computing:
    instant even for FCN8s-VGG16 at 1024x2048."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, *size, device=device))
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


def time_network(model: nn.Module | None, size: tuple[int, int], backend: str, threads: int = 0, *,
                 warmup: int = 5, iters: int = 30, end_to_end=None, calibration: list[np.ndarray] | None = None,
                 metadata: dict | None = None, onnx_file: str | Path | None = None) -> dict:
    """Median / p90 latency of the network alone at batch 1, FPS, parameters, GFLOPs, peak memory.

    ``end_to_end``: optional ``(runner) -> callable`` timing the image -> mask path around the
    network (pre- and post-processing included). ``calibration``: frames for int8.
    ``onnx_file``: time this exported graph as it is (backend onnxruntime; ``model`` is None).
    """
    if backend not in BACKENDS:
        raise RtsegError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if onnx_file is not None and backend != "onnxruntime":
        raise RtsegError(f"{onnx_file} is an ONNX graph: it runs with --backend onnxruntime only "
                         f"(not {backend}); give a checkpoint or a shipped model for the other backends")
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
        if backend.startswith("onnxruntime"):
            from rtseg.deploy.onnx_model import make_session

            path = Path(onnx_file) if onnx_file is not None else Path(tmp) / "model.onnx"
            if onnx_file is None:
                from rtseg.deploy.export import export_onnx

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
                from rtseg.runtime import compile_for_inference

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


def _onnx_params(path) -> int:
    """Parameters stored in an ONNX graph's initialisers (BN folded, so a little fewer)."""
    import onnx

    proto = onnx.load(str(path))
    return int(sum(np.prod(t.dims) for t in proto.graph.initializer if len(t.dims) > 0))


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


#: Training paths ``rtseg bench --train-throughput --train-path`` measures.
TRAIN_PATHS = ("rtseg", "eager")


def training_throughput(model_name: str, size: tuple[int, int], batch: int, steps: int = 20, warmup: int = 3,
                        num_classes: int = 11, path: str = "rtseg") -> dict:
    """Training images/s of ``model_name`` on random frames: forward, cross-entropy (with the
    model's auxiliary outputs), backward and an Adam step, ``batch`` frames per process.

    ``path``: ``rtseg`` is what ``rtseg train`` runs with the recipe defaults plus
    ``run.compile=true``: channels-last, mixed precision where the device computes it natively
    (bf16 on CPUs with AVX512-BF16/AMX), the network compiled by inductor. ``eager`` is the plain
    baseline: float32, NCHW, eager PyTorch, the same network. The warm-up steps (compilation
    included) are timed apart as ``warmup_s``. Inside a torchrun launch the model is a DDP replica
    in every process (gloo on the CPU) and images/s counts all processes; ``median_step_ms`` is
    rank 0's."""
    from torch.nn.parallel import DistributedDataParallel

    from rtseg.engine import distributed
    from rtseg.engine.losses import SegmentationLoss
    from rtseg.models import create_model
    from rtseg.runtime import autocast_dtype, mixed_precision

    if path not in TRAIN_PATHS:
        raise RtsegError(f"--train-path {path!r}: expected one of {', '.join(TRAIN_PATHS)}")
    fast = path == "rtseg"
    info, device = distributed.setup(torch.device("cpu"))
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=num_classes).train()
    memory_format = torch.channels_last if fast else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    net = DistributedDataParallel(model) if info.enabled else model
    if fast:
        net = torch.compile(net, dynamic=False)
    amp_dtype = autocast_dtype(device) if fast else None
    torch.manual_seed(1 + info.rank)
    x = torch.randn(batch, 3, *size).contiguous(memory_format=memory_format)
    target = torch.randint(0, num_classes, (batch, *size))
    with torch.no_grad():
        out = model(x)
    aux = sorted(k for k in out if k.startswith("aux")) if isinstance(out, dict) else []
    loss_fn = SegmentationLoss(aux_weights=[0.4] * len(aux))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with mixed_precision(device, enabled=fast):
            outputs = net(x)
        loss_fn(outputs, target).backward()
        optimizer.step()

    warm_start = time.perf_counter()
    for _ in range(warmup):
        step()
    warmup_s = time.perf_counter() - warm_start
    distributed.barrier()
    times, start = [], time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1000)
    distributed.barrier()
    elapsed = max(distributed.all_gather_objects(time.perf_counter() - start))
    return {"mode": "train-throughput", "model": model_name, "path": path, "size": list(size),
            "batch_per_process": batch, "processes": info.world_size, "threads": torch.get_num_threads(),
            "channels_last": fast, "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "float32",
            "compiled": fast, "steps": steps, "warmup_steps": warmup, "warmup_s": round(warmup_s, 1),
            "images_per_s": round(info.world_size * batch * steps / elapsed, 2),
            "median_step_ms": round(statistics.median(times), 1), "machine": machine_info()}


def training_speedup(model_name: str, size: tuple[int, int], batch: int, steps: int, runs: int,
                     threads: int, num_classes: int = 11, show_progress: bool = True) -> dict:
    """rtseg's training path against the plain eager baseline (:func:`training_throughput`),
    each in ``runs`` fresh processes, alternating (eager, rtseg, eager, ...) so both see the same
    drift of a shared machine. Reports each path's median images/s and their ratio."""
    import json
    import subprocess
    import sys

    from rtseg.progress import progress

    rows: dict[str, list[dict]] = {p: [] for p in TRAIN_PATHS}
    order = [p for _ in range(runs) for p in ("eager", "rtseg")]
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(progress(order, desc="train bench runs", unit="run", enabled=show_progress)):
            out = Path(tmp) / f"run{i}.json"
            argv = ["--model", model_name, "--train-throughput", "--train-path", path, "--size", f"{size[0]}x{size[1]}",
                    "--batch", str(batch), "--steps", str(steps), "--threads", str(threads),
                    "--num-classes", str(num_classes), "--json", str(out)]
            done = subprocess.run([sys.executable, "-m", "rtseg", "bench", *argv], capture_output=True, text=True)
            if done.returncode != 0:
                raise RtsegError(f"training bench run {i + 1}/{len(order)} ({path}) failed: "
                                 f"{done.stderr.strip()[-500:]}")
            rows[path].append(json.loads(out.read_text()))
    summary: dict = {"mode": "train-speedup", "model": model_name, "size": list(size), "batch": batch,
                     "threads": rows["eager"][0]["threads"], "steps": steps, "runs": runs}
    for path, path_rows in rows.items():
        rates = [r["images_per_s"] for r in path_rows]
        summary[path] = {"images_per_s": round(statistics.median(rates), 2), "run_images_per_s": rates,
                         "median_step_ms": round(statistics.median(r["median_step_ms"] for r in path_rows), 1),
                         "warmup_s": round(statistics.median(r["warmup_s"] for r in path_rows), 1),
                         **{k: path_rows[0][k] for k in ("channels_last", "amp", "compiled")}}
    summary["speedup"] = round(summary["rtseg"]["images_per_s"] / summary["eager"]["images_per_s"], 2)
    summary["machine"] = rows["rtseg"][0]["machine"]
    return summary


def _launch_torchrun(processes: int, argv: list[str]) -> dict:
    """Run ``rtseg bench ARGV`` in ``processes`` local processes under torchrun; rank 0's row."""
    import json
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                               str(processes), "-m", "rtseg", "bench", *argv, "--json", str(out)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            raise RtsegError(f"torchrun with {processes} processes failed: {done.stderr.strip()[-500:]}")
        return json.loads(out.read_text())


def _random_classes(num_classes: int):
    from rtseg.datasets.classes import ClassTable

    return ClassTable(tuple(f"class{i}" for i in range(num_classes)),
                      tuple((i * 37 % 256, i * 91 % 256, i * 53 % 256) for i in range(num_classes)))


def _bench_once(model_name: str | None, weights: str | None, size: tuple[int, int], backend: str, threads: int,
                iters: int, calibrate: str | None, data_root, num_classes: int) -> dict:
    from rtseg.constants import IMAGENET_MEAN, IMAGENET_STD
    from rtseg.datasets.transforms import normalize
    from rtseg.deploy.onnx_model import metadata_from_checkpoint
    from rtseg.models import create_model
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
    if backend == "onnxruntime-int8" and calibrate:
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
    return {"model": model_name, "weights": weights, **result, "machine": machine_info()}


def _bench_fresh_processes(argv: list[str], runs: int, show_progress: bool = True) -> dict:
    """Run the same single benchmark ``runs`` times, each in a fresh process one after the other
    (compilation, caches and allocator start cold every time), and summarise: on a shared
    machine the latency drifts over minutes, which one run's median cannot show."""
    import json
    import subprocess
    import sys

    from rtseg.progress import progress

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in progress(range(runs), desc="bench runs", unit="run", enabled=show_progress):
            out = Path(tmp) / f"run{i}.json"
            done = subprocess.run([sys.executable, "-m", "rtseg", "bench", *argv, "--json", str(out)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RtsegError(f"bench run {i + 1}/{runs} failed: {done.stderr.strip()[-500:]}")
            rows.append(json.loads(out.read_text()))
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


def benchmark(model: str | None = None, weights: str | Path | None = None, *, size: tuple[int, int] = (360, 480),
              backend: str = "torch", threads: int = 0, iters: int = 30, runs: int = 1, num_classes: int = 11,
              calibrate: str | None = None, data_root: str | Path | None = None, train: bool = False,
              batch: int = 2, grad_checkpoint: bool = False, train_throughput: bool = False, processes: int = 1,
              steps: int = 20, train_path: str = "rtseg", show_progress: bool = True) -> dict:
    """``rtseg bench``: time ``weights`` (shipped name, checkpoint or ``.onnx``) or the
    architecture ``model`` with random weights (``num_classes`` outputs) on ``backend`` at batch 1.

    Returns median / p90 ms, FPS, params, GFLOPs, peak resident memory and the image -> mask time.
    ``runs`` > 1: that many fresh processes one after another, summarised by the median of their
    medians. ``train``: one training step's time and memory instead (``model`` only).
    ``train_throughput``: training images/s with ``batch`` frames per process over ``steps``
    steps, in ``processes`` DDP processes (torchrun, ``threads`` each) (``model`` only), on
    ``train_path`` (rtseg's or the plain eager baseline; ``both``: each in ``runs`` fresh
    processes, alternating, and their ratio)."""
    from rtseg.models import list_models

    if not model and not weights:
        raise RtsegError("give --model NAME (random weights) or --weights W, or --suite")
    if model and model not in list_models():
        raise RtsegError(f"--model {model!r}: expected one of {', '.join(list_models())}")
    if backend not in BACKENDS:
        raise RtsegError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if runs < 1:
        raise RtsegError(f"--runs {runs}: expected 1 or more")
    if iters < 1:
        raise RtsegError(f"--iters {iters}: expected 1 or more")
    size = tuple(int(v) for v in size)
    if processes < 1:
        raise RtsegError(f"--processes {processes}: expected 1 or more")
    if train_throughput:
        from rtseg.engine.distributed import from_env

        if not model:
            raise RtsegError("--train-throughput measures an architecture: give --model NAME")
        if train_path not in (*TRAIN_PATHS, "both"):
            raise RtsegError(f"--train-path {train_path!r}: expected one of {', '.join(TRAIN_PATHS)}, both")
        if train_path == "both":
            if processes > 1:
                raise RtsegError("--train-path both compares one-process runs: leave out --processes")
            return training_speedup(model, size, batch, steps, runs, threads, num_classes, show_progress)
        if processes > 1 and not from_env().enabled:
            return _launch_torchrun(processes, ["--model", model, "--train-throughput", "--size", f"{size[0]}x{size[1]}",
                                                "--batch", str(batch), "--threads", str(threads), "--steps", str(steps),
                                                "--num-classes", str(num_classes), "--train-path", train_path])
        if threads > 0:
            torch.set_num_threads(threads)
        return training_throughput(model, size, batch, steps, num_classes=num_classes, path=train_path)
    if train:
        from rtseg.models import create_model

        if not model:
            raise RtsegError("--train measures an architecture: give --model NAME")
        if threads > 0:
            torch.set_num_threads(threads)
        net = create_model(model, num_classes=num_classes)
        return {"model": model, **training_step_memory(net, size, batch, grad_checkpoint), "machine": machine_info()}
    if runs > 1:
        argv = ["--size", f"{size[0]}x{size[1]}", "--backend", backend, "--threads", str(threads),
                "--iters", str(iters), "--num-classes", str(num_classes)]
        for flag, value in (("--model", model), ("--weights", weights), ("--calibrate", calibrate),
                            ("--data-root", data_root)):
            if value:
                argv += [flag, str(value)]
        return _bench_fresh_processes(argv, runs, show_progress)
    return _bench_once(model, str(weights) if weights else None, size, backend, threads, iters, calibrate,
                       data_root, num_classes)


#: make bench: (model, weights, backends, iterations)
BENCH_SUITE = (
    ("enet", "enet-camvid", ("torch", "torch-compile", "onnxruntime", "onnxruntime-int8"), 100),
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
