"""ExecuTorch, PyTorch's runtime for phones and boards: ``executorch`` and ``executorch-int8``, the
network exported (``torch.export``), lowered to the XNNPACK delegate (the same CPU kernels it runs
on ARM) and kept as a ``.pte`` program; int8 is PT2E static quantisation with the XNNPACK
quantiser, calibrated on frames. Ops XNNPACK does not take run on ExecuTorch's portable kernels
(ENet's max-unpooling takes its elementwise form under ``torch.export``: no unpooling op reaches
the program)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg.backends.base import Backend, BuildOptions, PerShape, Requirements, Runner, calibration_tensors

INSTALL = "pip install 'rtseg[executorch]'"
#: The torch minor each ExecuTorch minor is built against (its Python bindings link to torch's
#: libraries: another torch fails at import or, worse, later).
TORCH_FOR = {"1.5": "2.14"}
#: Part of every program's cache key: bump it when the export or the quantisation changes.
PTE_FORMAT = 1


def _quantized(model: nn.Module, example: torch.Tensor, frames: list[np.ndarray], keep_float: tuple[str, ...]):
    """``model`` through PT2E with the XNNPACK quantiser (symmetric, per-channel weights),
    calibrated on ``frames``; modules named in ``keep_float`` stay float."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    config = get_symmetric_quantization_config(is_per_channel=True)
    quantizer = XNNPACKQuantizer()
    if keep_float:
        prefixes = tuple(name.rstrip(".") for name in keep_float)

        def quantize_node(node) -> bool:  # a node inside a kept module stays float
            stack = (node.meta.get("nn_module_stack") or {}).values()  # (qualified name, type) per level
            return not any(str(fqn).removeprefix("L['self'].").startswith(prefixes) for fqn, _ in stack)

        quantizer.set_global(config).set_filter_function(quantize_node)
    else:
        quantizer.set_global(config)
    graph = torch.export.export(model, (example,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    for frame in frames:
        prepared(torch.from_numpy(frame).expand(example.shape[0], -1, -1, -1).contiguous())
    return convert_pt2e(prepared)


def export_program(model: nn.Module, size: tuple[int, int], batch: int, int8: bool,
                   options: BuildOptions) -> bytes:
    """The ``.pte`` program of ``model`` (BN folded, eval, float32) for (``batch``, 3, *size*),
    lowered to XNNPACK; ``int8``: quantised first, on the calibration frames."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from rtseg.models.fold import fold_batchnorm

    net = fold_batchnorm(model).float().eval()
    example = torch.zeros(batch, 3, *size)  # contiguous NCHW: a channels-last example changes the program's layout
    with torch.no_grad():
        if int8:
            keep = tuple(options.keep_float) or tuple(getattr(model, "int8_keep_float", ()))
            net = _quantized(net, example, calibration_tensors(options, size), keep)
        program = torch.export.export(net, (example,))
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def cached_program(model: nn.Module, size: tuple[int, int], batch: int, int8: bool, options: BuildOptions) -> Path:
    """The ``.pte`` for these weights and this setting, built once and kept in rtseg's cache
    (``$RTSEG_CACHE/backends``)."""
    from rtseg.backends.graph import graph_key
    from rtseg.io import atomic_path, cache_root

    # The graph backends' key (weights, size, calibration, release), with the program's own form.
    key = graph_key(model, size, f"executorch-{PTE_FORMAT}-n{batch}", int8, options)
    path = cache_root() / "backends" / f"{key}-executorch{'-int8' if int8 else ''}.pte"
    if not path.is_file():
        data = export_program(model, size, batch, int8, options)
        with atomic_path(path) as out:
            Path(out).write_bytes(data)
    return path


def load_program_runner(path: str | Path, threads: int = 0) -> Runner:
    """A runner for the ``.pte`` file ``path``: (N, 3, H, W) float32 in (its static shape), its
    first output out. ``threads``: the XNNPACK thread pool's size (process-wide; 0: as it is)."""
    from executorch.runtime import Runtime

    if threads > 0:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(Path(path)).load_method("forward")

    def run(x: torch.Tensor) -> torch.Tensor:
        return method.execute([x.detach().cpu().float().contiguous()])[0]

    return run


class ExecuTorch(Backend):
    """The network as an ExecuTorch program on the XNNPACK delegate, per input shape."""

    onnx_runtime = None
    int8 = False
    file_format, file_suffix = "executorch", ".pte"

    def __init__(self, int8: bool = False) -> None:
        self.int8 = int8
        self.name = "executorch-int8" if int8 else "executorch"
        self.precision = "int8" if int8 else "float32"
        self.summary = ("ExecuTorch on the XNNPACK delegate, int8 (PT2E, XNNPACK quantiser), calibrated"
                        if int8 else "ExecuTorch on the XNNPACK delegate (the phone and board CPU kernels), float32")
        self.requires = Requirements(packages=(("executorch", INSTALL),), calibration=int8, static_size=True)

    @property
    def cpu_only(self) -> bool:
        return True

    def unavailable(self) -> str | None:
        why = super().unavailable()
        if why is None:
            from importlib.metadata import version

            et, pt = version("executorch"), torch.__version__
            wanted = TORCH_FOR.get(".".join(et.split(".")[:2]))
            if wanted is not None and not pt.startswith(wanted + "."):
                return (f"--backend {self.name}: executorch {et} is built for torch {wanted}, this is torch "
                        f"{pt.split('+')[0]}: pip install 'executorch' for this torch")
        return why

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        def build(hw, n):
            return load_program_runner(cached_program(model, hw, n, self.int8, options), options.threads)

        return PerShape(build)

    def write_file(self, model, size, path, options: BuildOptions) -> None:
        from rtseg.io import atomic_path

        data = export_program(model, tuple(size), 1, self.int8, options)
        with atomic_path(path) as out:
            Path(out).write_bytes(data)

    def file_runner(self, path: str | Path, options: BuildOptions) -> Runner:
        """A ``.pte`` file run as it is (its own static shape)."""
        return load_program_runner(path, options.threads)


BACKENDS = [ExecuTorch(), ExecuTorch(int8=True)]
