"""Training benchmarks (``rtseg bench --train``, ``--train-throughput``): one training step's
peak memory and time, training images/s of rtseg's training path against plain eager PyTorch,
one process or several under torchrun. The inference benchmarks are :mod:`rtseg.benchmarks.inference`;
:func:`rtseg.benchmarks.benchmark` fronts both."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from rtseg.benchmarks.measure import bench_argv, machine_info, peak_rss_mb, reset_peak_rss, run_bench_process
from rtseg.errors import RtsegError

#: Training paths ``rtseg bench --train-throughput --train-path`` measures.
TRAIN_PATHS = ("rtseg", "eager")


def _loss_for(model: nn.Module, x: torch.Tensor):
    """The training loss with a 0.4 weight for each auxiliary output the model returns."""
    from rtseg.engine.losses import SegmentationLoss

    with torch.no_grad():
        out = model(x)
    aux = sorted(k for k in out if k.startswith("aux")) if isinstance(out, dict) else []
    return SegmentationLoss(aux_weights=[0.4] * len(aux))


def training_step_memory(model: nn.Module, size: tuple[int, int], batch: int, grad_checkpoint: bool,
                         steps: int = 2) -> dict:
    """Peak resident memory and time of training steps (forward, loss, backward) at batch
    ``batch``, with or without gradient checkpointing. Run each setting in a fresh process
    (``rtseg bench --train``) for a clean peak."""
    if grad_checkpoint:
        if not hasattr(model, "set_grad_checkpointing"):
            raise RtsegError(f"{type(model).__name__} has no gradient checkpointing")
        model.set_grad_checkpointing(True)
    model.train()
    x = torch.randn(batch, 3, *size)
    target = torch.randint(0, 2, (batch, *size))
    loss_fn = _loss_for(model, x)
    base = peak_rss_mb()
    reset_peak_rss()
    start_rss = peak_rss_mb()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), target).backward()
        times.append((time.perf_counter() - start) * 1000)
    peak = peak_rss_mb()
    return {"mode": "train", "batch": batch, "size": list(size), "grad_checkpoint": grad_checkpoint,
            "peak_mem_mb": round(peak, 1), "step_peak_over_start_mb": round(peak - start_rss, 1),
            "process_peak_before_mb": round(base, 1), "median_step_ms": round(statistics.median(times), 1)}


@dataclass
class _TrainingRun:
    """One process's share of a throughput run: the step to time and how it was set up."""

    step: object  # () -> None: forward, loss, backward, Adam step on the fixed batch
    world_size: int
    amp_dtype: torch.dtype | None
    channels_last: bool


def _build_training_run(model_name: str, size: tuple[int, int], batch: int, num_classes: int,
                        fast: bool) -> _TrainingRun:
    """The model (a DDP replica inside torchrun), a fixed random batch and its Adam step.
    ``fast``: rtseg's path (channels-last, native mixed precision, compiled); else plain eager."""
    from torch.nn.parallel import DistributedDataParallel

    from rtseg import distributed
    from rtseg.models import create_model
    from rtseg.runtime import autocast_dtype, bf16_channels_last_unsafe_convs, mixed_precision

    info, device = distributed.setup(torch.device("cpu"))
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=num_classes).train()
    # As training does (rtseg.engine.train.training_channels_last): NCHW where oneDNN's bf16
    # channels-last weight gradient would be wrong for this model.
    channels_last = fast and not (autocast_dtype(device) == torch.bfloat16 and bf16_channels_last_unsafe_convs(model))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    net = DistributedDataParallel(model) if info.enabled else model
    if fast:
        net = torch.compile(net, dynamic=False, options=None if channels_last else {"layout_optimization": False})
    torch.manual_seed(1 + info.rank)
    # (batch, 3, H, W) frames and (batch, H, W) labels, the same every step.
    x = torch.randn(batch, 3, *size).contiguous(memory_format=memory_format)
    target = torch.randint(0, num_classes, (batch, *size))
    loss_fn = _loss_for(model, x)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with mixed_precision(device, enabled=fast):
            outputs = net(x)
        loss_fn(outputs, target).backward()
        optimizer.step()

    return _TrainingRun(step, info.world_size, autocast_dtype(device) if fast else None, channels_last)


def _time_training_steps(run: _TrainingRun, steps: int, warmup: int) -> tuple[float, float, list[float]]:
    """(warm-up seconds, slowest process's seconds for the timed steps, this process's step ms)."""
    from rtseg import distributed

    warm_start = time.perf_counter()
    for _ in range(warmup):
        run.step()
    warmup_s = time.perf_counter() - warm_start
    distributed.barrier()
    times, start = [], time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        run.step()
        times.append((time.perf_counter() - t) * 1000)
    distributed.barrier()
    elapsed = max(distributed.all_gather_objects(time.perf_counter() - start))
    return warmup_s, elapsed, times


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
    if path not in TRAIN_PATHS:
        raise RtsegError(f"--train-path {path!r}: expected one of {', '.join(TRAIN_PATHS)}")
    fast = path == "rtseg"
    run = _build_training_run(model_name, size, batch, num_classes, fast)
    warmup_s, elapsed, times = _time_training_steps(run, steps, warmup)
    amp = str(run.amp_dtype).replace("torch.", "") if run.amp_dtype else "float32"
    return {"mode": "train-throughput", "model": model_name, "path": path, "size": list(size),
            "batch_per_process": batch, "processes": run.world_size, "threads": torch.get_num_threads(),
            "channels_last": run.channels_last, "amp": amp, "compiled": fast, "steps": steps, "warmup_steps": warmup,
            "warmup_s": round(warmup_s, 1), "images_per_s": round(run.world_size * batch * steps / elapsed, 2),
            "median_step_ms": round(statistics.median(times), 1), "machine": machine_info()}


def _throughput_argv(model_name: str, size: tuple[int, int], batch: int, steps: int, threads: int,
                     num_classes: int, path: str) -> list[str]:
    return bench_argv({"model": model_name, "train_throughput": True, "train_path": path, "size": size,
                       "batch": batch, "steps": steps, "threads": threads, "num_classes": num_classes})


def training_speedup(model_name: str, size: tuple[int, int], batch: int, steps: int, runs: int,
                     threads: int, num_classes: int = 11, progress: bool = True) -> dict:
    """rtseg's training path against the plain eager baseline (:func:`training_throughput`),
    each in ``runs`` fresh processes, alternating (eager, rtseg, eager, ...) so both see the same
    drift of a shared machine. Reports each path's median images/s and their ratio."""
    from rtseg.progress import progress_bar

    rows: dict[str, list[dict]] = {p: [] for p in TRAIN_PATHS}
    order = [p for _ in range(runs) for p in ("eager", "rtseg")]
    for i, path in enumerate(progress_bar(order, desc="train bench runs", unit="run", progress=progress)):
        argv = _throughput_argv(model_name, size, batch, steps, threads, num_classes, path)
        rows[path].append(run_bench_process(argv, what=f"training bench run {i + 1}/{len(order)} ({path})"))
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


def benchmark_training(model: str | None, *, size: tuple[int, int], threads: int, runs: int, num_classes: int,
                       batch: int, grad_checkpoint: bool, train_throughput: bool, processes: int, steps: int,
                       train_path: str, progress: bool = True) -> dict:
    """``rtseg bench --train`` (one step's memory and time) or ``--train-throughput`` (images/s,
    one process, ``processes`` under torchrun, or both paths compared), for the architecture
    ``model`` with random weights."""
    from rtseg.distributed import from_env
    from rtseg.models import create_model

    flag = "--train-throughput" if train_throughput else "--train"
    if not model:
        raise RtsegError(f"{flag} measures an architecture: give --model NAME")
    if not train_throughput:
        if threads > 0:
            torch.set_num_threads(threads)
        net = create_model(model, num_classes=num_classes)
        return {"model": model, **training_step_memory(net, size, batch, grad_checkpoint), "machine": machine_info()}
    if train_path not in (*TRAIN_PATHS, "both"):
        raise RtsegError(f"--train-path {train_path!r}: expected one of {', '.join(TRAIN_PATHS)}, both")
    if train_path == "both":
        if processes > 1:
            raise RtsegError("--train-path both compares one-process runs: leave out --processes")
        return training_speedup(model, size, batch, steps, runs, threads, num_classes, progress)
    if processes > 1 and not from_env().enabled:
        argv = _throughput_argv(model, size, batch, steps, threads, num_classes, train_path)
        return run_bench_process(argv, what=f"torchrun with {processes} processes", torchrun_processes=processes)
    if threads > 0:
        torch.set_num_threads(threads)
    return training_throughput(model, size, batch, steps, num_classes=num_classes, path=train_path)


def _loss_terms() -> dict:
    """The loss terms :func:`loss_term_cost` times: (N, C, H, W) float logits, (N, H, W) labels and
    an (N, C, H, W) float16 teacher map of log-probabilities (as training reads them) -> a scalar."""
    import torch.nn.functional as F

    from rtseg.engine.distill import channel_distillation_kl, distillation_kl
    from rtseg.engine.losses import lovasz_softmax

    return {"cross_entropy": lambda x, y, t: F.cross_entropy(x, y),
            "distill_pixel": lambda x, y, t: distillation_kl(x, t),
            "distill_channel": lambda x, y, t: channel_distillation_kl(x, t),
            "lovasz": lambda x, y, t: lovasz_softmax(x, y)}


def loss_term_cost(batch: int = 8, classes: int = 11, size: tuple[int, int] = (360, 480),
                   reps: int = 5, threads: int = 2) -> dict:
    """Seconds for the forward and backward pass of each loss term (best of ``reps``, the terms
    alternating), at a training batch's shape: what a distillation or Lovasz option adds to a
    step. ``{"terms": {name: seconds}, "shape": ..., "machine": ...}``."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, classes, *size, generator=g)
    labels = torch.randint(0, classes, (batch, *size), generator=g)
    teacher = torch.randn(batch, classes, *size, generator=g).log_softmax(1).half()
    terms = _loss_terms()
    times: dict[str, list[float]] = {name: [] for name in terms}
    for _ in range(reps):
        for name, term in terms.items():
            x = logits.clone().requires_grad_(True)
            start = time.perf_counter()
            term(x, labels, teacher).backward()
            times[name].append(time.perf_counter() - start)
    return {"terms": {name: round(min(t), 4) for name, t in times.items()},
            "shape": [batch, classes, *size], "reps": reps, "threads": threads, "machine": machine_info()}
