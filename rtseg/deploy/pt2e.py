"""PyTorch-native static int8 for x86 CPUs: PT2E quantisation with torchao's X86InductorQuantizer,
compiled by inductor into oneDNN int8 convolutions (``rtseg bench --backend torch-int8``).

The path: ``torch.export`` -> ``prepare_pt2e`` (observers) -> calibration on real frames ->
``convert_pt2e`` (quantise / dequantise pairs around each convolution) -> ``torch.compile`` with
weight freezing, whose x86 passes fuse each dequantise -> conv -> quantise into one
``onednn.qconv_pointwise`` on uint8 activations and int8 weights (the U8S8 path that VNNI and
AMX accelerate). The ONNX Runtime path is :mod:`rtseg.deploy.quantize`."""

from __future__ import annotations

import copy
import platform
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg.errors import RtsegError
from rtseg.runtime import cpu_flags

#: Where torchao comes from (the error for a missing one says so).
INSTALL = "pip install 'rtseg[int8]'"

#: Activation range estimators: ``mean`` = the mean of the per-frame minima and maxima (ONNX
#: Runtime's CalibMovingAverage, rtseg's ORT default), ``minmax`` = the extremes over all frames,
#: ``histogram`` = torchao's default (the range that minimises the quantisation error of a
#: histogram of all frames; slow to calibrate).
OBSERVERS = ("mean", "minmax", "histogram")


def has_vnni() -> bool:
    f = cpu_flags()  # oneDNN int8: avx2 the minimum, VNNI / AMX one-instruction dot products
    return f["avx512_vnni"] or f["avx_vnni"] or f["amx_int8"]


def check_support(option: str = "--backend torch-int8") -> None:
    """Raise a one-line :class:`RtsegError` where this machine cannot run the PT2E int8 path."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        raise RtsegError(f"{option}: needs an x86-64 CPU (oneDNN int8 kernels), this is {machine}; "
                         "use --backend onnxruntime-int8")
    if not torch.backends.mkldnn.is_available():
        raise RtsegError(f"{option}: this torch {torch.__version__} is built without oneDNN (mkldnn); "
                         "use --backend onnxruntime-int8")
    if Path("/proc/cpuinfo").is_file() and not cpu_flags()["avx2"]:
        raise RtsegError(f"{option}: needs a CPU with AVX2 at least (oneDNN int8), this one has none; "
                         "use --backend onnxruntime-int8")
    try:
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer  # noqa: F401
    except ImportError as e:
        raise RtsegError(f"{option}: needs torchao's PT2E quantisation ({INSTALL}): {e}") from None


@cache
def _mean_min_max_observer():
    """torchao observer class whose range is the mean of the per-frame minima and maxima.
    With the ONNX Runtime int8 model this raised pixel agreement with float on an unseen
    sequence from 95.7% to 96.9% over the extremes (ENet, CamVid 0006R0; docs/deployment.md): one outlier
    frame no longer coarsens every step."""
    from torchao.quantization.pt2e.observer import MinMaxObserver

    class MeanMinMaxObserver(MinMaxObserver):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.register_buffer("frames", torch.tensor(0.0))
            self.register_buffer("min_sum", torch.tensor(0.0))
            self.register_buffer("max_sum", torch.tensor(0.0))

        def forward(self, x_orig):
            if x_orig.numel() == 0:
                return x_orig
            lo, hi = torch.aminmax(x_orig.detach().to(self.min_val.dtype))
            self.frames += 1
            self.min_sum += lo
            self.max_sum += hi
            self.min_val.copy_(self.min_sum / self.frames)
            self.max_val.copy_(self.max_sum / self.frames)
            return x_orig

    return MeanMinMaxObserver


@cache
def _quantizer_class(fuse_add: bool):
    """X86InductorQuantizer, or (``fuse_add`` False) one that does not annotate convolution + add
    (+ ReLU) as one int8 pattern. Fused, the residual sum is computed and rounded in int8 inside
    the convolution; the lowering then asserts where the other summand is a view (ENet's
    channels-last unpooling output: "QConv Binary Inplace Fusion requires accum is not an alias
    or mutation", torch 2.14, below 360x480), and the ONNX Runtime int8 ENet kept residual sums
    in float for accuracy on unseen streets (pixel agreement with float on CamVid 0006R0: 95.3% -> 95.7%;
    docs/deployment.md)."""
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

    if fuse_add:
        return X86InductorQuantizer

    class ConvOnlyQuantizer(X86InductorQuantizer):
        def _annotate_conv2d_binary_unary(self, *args, **kwargs) -> None:
            pass

        def _annotate_conv2d_binary(self, *args, **kwargs) -> None:
            pass

    return ConvOnlyQuantizer


def _quantizer(keep_float: Sequence[str], observer: str, reduce_range: bool, fuse_add: bool):
    """X86InductorQuantizer: per-channel symmetric int8 weights, per-tensor uint8 activations
    ranged by ``observer``; the modules named in ``keep_float`` stay in float."""
    import dataclasses

    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

    config = xiq.get_default_x86_inductor_quantization_config(reduce_range=reduce_range)
    cls = {"mean": _mean_min_max_observer(), "minmax": MinMaxObserver, "histogram": HistogramObserver}[observer]
    act = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=cls.with_args(eps=2**-12))
    config = dataclasses.replace(config, input_activation=act, output_activation=act)
    quantizer = _quantizer_class(fuse_add)().set_global(config)
    for name in keep_float:
        quantizer.set_module_name_qconfig(name.rstrip("."), None)
    return quantizer


def quantize_pt2e(model: nn.Module, frames: Sequence[np.ndarray], *, keep_float: Sequence[str] | None = None,
                  observer: str = "mean", reduce_range: bool | None = None, fuse_add: bool = False) -> nn.Module:
    """``model`` (BN folded first) exported, calibrated on ``frames`` ((1, 3, H, W) float32,
    normalised, as :func:`rtseg.deploy.quantize.calibration_frames` gives) and converted: an
    eager GraphModule with quantise / dequantise pairs, for :func:`compile_int8` or to inspect.
    ``keep_float``: top-level module names that stay in float (default: the model's own
    ``int8_keep_float``; ``()`` quantises everything). ``reduce_range``: 7-bit activations,
    default on CPUs without VNNI, whose AVX2 u8 x s8 multiply-add saturates at 16 bits.
    ``fuse_add``: residual sums in int8 inside the convolutions (see :func:`_quantizer_class`)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from rtseg.models.fold import fold_batchnorm

    check_support("int8 (PT2E)")
    if observer not in OBSERVERS:  # before the export, which takes a minute
        raise RtsegError(f"int8 observer {observer!r}: expected one of {', '.join(OBSERVERS)}")
    if not frames:
        raise RtsegError("int8 (PT2E) calibration: expected at least one frame, got none")
    if keep_float is None:
        keep_float = tuple(getattr(model, "int8_keep_float", ()))
    if reduce_range is None:
        reduce_range = not has_vnni()
    net = fold_batchnorm(copy.deepcopy(model)).eval()
    example = torch.from_numpy(frames[0]).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        graph = torch.export.export(net, (example,)).module()
        prepared = prepare_pt2e(graph, _quantizer(keep_float, observer, reduce_range, fuse_add))
        for frame in frames:
            prepared(torch.from_numpy(frame).contiguous(memory_format=torch.channels_last))
        return convert_pt2e(prepared)


class CompiledInt8:
    """A converted PT2E model compiled by inductor with frozen weights; call it on a (1, 3, H, W)
    float32 tensor of the calibration frames' shape (any memory layout) for (1, C, H, W) logits.
    The exported graph is static: batch and size are those of the calibration frames."""

    def __init__(self, converted: nn.Module, shape: tuple[int, ...]) -> None:
        self.converted = converted
        self.shape = tuple(shape)
        self.compiled = torch.compile(converted, dynamic=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise RtsegError(f"int8 (PT2E) model input {tuple(x.shape)}: expected {self.shape}, the calibration "
                             "frames' shape (quantise again for another size)")
        # Freezing must be on in inductor's global config while the graph compiles (the first
        # call): with torch.compile(options={"freezing": True}) the x86 int8 passes see the
        # weights as graph inputs and fail (UnsupportedOperatorException: onednn.qconv_prepack).
        with torch.no_grad(), torch._inductor.config.patch(freezing=True):
            return self.compiled(x.contiguous(memory_format=torch.channels_last))


def compile_int8(model: nn.Module, frames: Sequence[np.ndarray], *, keep_float: Sequence[str] | None = None,
                 observer: str = "mean", reduce_range: bool | None = None, fuse_add: bool = False) -> CompiledInt8:
    """The PyTorch-native int8 model: :func:`quantize_pt2e` then inductor. Compiles on the
    first call (ENet at 360x480: about a minute on 2 cores)."""
    return CompiledInt8(quantize_pt2e(model, frames, keep_float=keep_float, observer=observer,
                                      reduce_range=reduce_range, fuse_add=fuse_add), frames[0].shape)
