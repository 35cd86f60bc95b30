"""What this machine offers and how torch uses it: its CPU's instruction sets, threads, the
device, mixed precision in training, the allocator setting, and the class map of logits.

The bottom layer: torch only. Training, evaluation, benchmarks and inference all use these, so
they live below every one of them. How a trained network runs (compiled, bf16, int8, a graph
runtime) is :mod:`rtseg.backends`."""

from __future__ import annotations

import os
from contextlib import nullcontext
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn


def class_map(logits: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) logits -> (N, H, W) class indices. The argmax runs on a channels-last copy:
    reducing over the innermost (contiguous) dimension is about 10x faster on the CPU than over
    the channel planes of an NCHW tensor (2 ms against 15 ms for ENet at 480x360)."""
    return logits.contiguous(memory_format=torch.channels_last).argmax(1)


def class_map_one_thread(logits: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) CPU logits -> (N, H, W) uint8 class indices by a running maximum over the
    channel planes, in one thread (NumPy). Beside a runtime whose own thread pool has just held
    the cores (OpenVINO), torch's parallel argmax waits for those threads: ENet at 360x480 on an
    AMX Xeon, 2 threads, 8.7 ms for :func:`class_map` after an OpenVINO pass against about 2 ms
    this way (alone they are alike). Ties go to the first class, as ``argmax`` does."""
    a = logits.detach().float().numpy()
    out = np.empty((a.shape[0], *a.shape[2:]), np.uint8)
    for n in range(a.shape[0]):
        best, idx = a[n, 0].copy(), out[n]
        idx.fill(0)
        for c in range(1, a.shape[1]):
            better = a[n, c] > best
            np.maximum(best, a[n, c], out=best)
            idx[better] = c
    return torch.from_numpy(out)


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    Eager PyTorch frees and reallocates every activation on each forward pass. Above glibc's
    mmap threshold each of those allocations is fresh memory that the kernel page-faults in,
    4 KB at a time: ENet at 480x360 took ~5,600 page faults and ~9 of its ~44 ms per frame on
    this project's CPU. This is what running under jemalloc or tcmalloc (as PyTorch's CPU
    performance guide suggests) achieves, without a preload. Process-wide; the CLI calls it.
    Linux with glibc only; returns whether it applied."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    # Serve allocations up to 32 MB (glibc's maximum) from the heap, and never trim freed heap
    # memory below 1 GB.
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(mallopt(m_trim_threshold, 2**30))


#: The x86 instruction sets that decide which CPU kernels run fast: ``avx2`` (oneDNN's int8
#: minimum), ``avx512f``, ``avx512_vnni`` / ``avx_vnni`` (u8 x s8 dot products in one
#: instruction), ``avx512_bf16`` and ``amx_*`` (native bfloat16, tile matrix multiply).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


CPUINFO = Path("/proc/cpuinfo")

#: oneDNN's instruction-set cap (``ONEDNN_MAX_CPU_ISA``, or the older ``DNNL_MAX_CPU_ISA``), which
#: the oneDNN inside PyTorch and inside OpenVINO both obey, -> the :data:`CPU_FLAGS` it leaves in use.
#: Under a cap the kernels run as on a CPU without the rest, so ``auto`` must choose as there too:
#: capped to AVX2 on an AMX Xeon, OpenVINO's int8 runs jit_avx2_I8 convolutions, not AMX tiles.
_AVX512 = ("avx2", "avx512f")
ISA_CAPS = {"SSE41": (), "AVX": (), "AVX2": ("avx2",), "AVX2_VNNI": ("avx2", "avx_vnni"),
            "AVX2_VNNI_2": ("avx2", "avx_vnni"), "AVX512_CORE": _AVX512,
            "AVX512_CORE_VNNI": (*_AVX512, "avx512_vnni"), "AVX512_CORE_BF16": (*_AVX512, "avx512_vnni", "avx512_bf16"),
            "AVX10_1_512": (*_AVX512, "avx512_vnni", "avx512_bf16"), "AVX512_CORE_FP16": (*_AVX512, "avx512_vnni", "avx512_bf16")}
#: The environment variables that cap the instruction sets the CPU kernels use (oneDNN, OpenVINO's
#: own kernels, ATen's vectorised ones): a benchmark's machine record names those set.
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OV_CPU_MAX_ISA", "ATEN_CPU_CAPABILITY")


def isa_cap() -> str | None:
    """The oneDNN instruction-set cap in force (``ONEDNN_MAX_CPU_ISA``, else ``DNNL_MAX_CPU_ISA``),
    upper-cased, or None. Values without a lower level (``ALL``, ``DEFAULT``, the AMX ones) count
    as none."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return value.strip().upper() if value and value.strip().upper() in ISA_CAPS else None


@cache
def cpu_flags() -> dict[str, bool]:
    """:data:`CPU_FLAGS` from the kernel's CPU flags (Linux; all False elsewhere), less those an
    instruction-set cap leaves unused (:func:`isa_cap`). Every benchmark's machine record carries
    them: timings from CPUs with and without them differ 2-4x (docs/deployment_runtimes.md)."""
    try:
        flags = set(CPUINFO.read_text().split())
    except OSError:
        flags = set()
    cap = isa_cap()
    if cap is not None:
        flags &= set(ISA_CAPS[cap])
    return {name: name in flags for name in CPU_FLAGS}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where oneDNN's bf16
    convolutions run about twice as fast as float32. Elsewhere bf16 is emulated and slower."""
    # torch's own mkldnn bf16 check is also true on AVX-512 CPUs that only emulate bf16, where
    # autocast makes training slower.
    f = cpu_flags()
    return f["avx512_bf16"] or f["amx_bf16"]


def bf16_channels_last_unsafe_convs(model: nn.Module) -> list[str]:
    """Names of the convolutions in ``model`` whose bfloat16 weight gradient oneDNN gets wrong
    in channels-last: dilated, not grouped, with a channel count that is not a multiple of 16.

    Measured with torch 2.14.1 on an AVX512-BF16 CPU (a (3, 1) convolution, 8x30x40 input,
    autocast bf16, channels-last): 24, 30 and 40 channels at dilation 3-8 give NaN weight
    gradients or crash the process; 16, 32, 48 and 64 channels, dilation 1 and 2 at 40, grouped
    convolutions and NCHW are right. Pruned EDANet (30 channels, dilations 4 and 8) hits it at
    its first step. The rule is kept a little wider than what was seen to fail (any dilation)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.groups == 1 and max(m.dilation) > 1
            and (m.in_channels % 16 or m.out_channels % 16)]


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision type for training on ``device``: float16 on CUDA, bfloat16 on CPUs
    with native bf16 (:func:`cpu_has_native_bf16`), else None (float32 throughout)."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def mixed_precision(device: torch.device, enabled: bool = True):
    """The autocast context for a training step on ``device`` (:func:`autocast_dtype`), or a
    no-op where mixed precision is off or would be emulated. ENet's CPU step in bf16: 1.3x eager,
    2.3x compiled, over float32 channels-last (`rtseg bench --train-throughput`)."""
    dtype = autocast_dtype(device) if enabled else None
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def set_threads(threads: int) -> None:
    """torch intra-op threads; 0 keeps torch's default (one per core)."""
    if threads < 0:
        from rtseg.errors import RtsegError

        raise RtsegError(f"--threads {threads}: expected 0 (library default) or a positive count")
    if threads > 0:
        torch.set_num_threads(threads)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when available, else the CPU; ``cpu``, ``cuda``, ``cuda:1`` as given."""
    from rtseg.errors import RtsegError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RtsegError(f"device {name!r}: CUDA is not available here; use cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise RtsegError(f"device {name!r}: expected auto, cpu or cuda[:N]") from None
