"""PyTorch itself: ``torch`` (eager), ``torch-compile`` (inductor, weights frozen) and
``torch-bf16`` (the same in bfloat16, where the CPU computes it natively).

All three fold BatchNorm into the convolutions and run channels-last, the fastest layout for
oneDNN's CPU convolutions. Compiled runners compile on the first frame of each size (ENet: 15-40 s
on 2 cores), so they pay off over many frames (a video, a server), not for one photo."""

from __future__ import annotations

import torch
from torch import nn

from rtseg.backends.base import Backend, BuildOptions, Requirements, Runner
from rtseg.models.fold import fold_batchnorm


class FrozenCompiled(nn.Module):
    """A network compiled by inductor with its weights frozen in: see :func:`compile_for_inference`.
    ``_orig_mod`` is the plain network (as for ``torch.compile``'s own wrapper)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._orig_mod = model
        # Kept out of the module tree: its parameters are ``_orig_mod``'s, listed once.
        self.__dict__["compiled"] = torch.compile(model, dynamic=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Freezing is read from inductor's global config while a graph compiles (the first call
        # at each size). Passed as torch.compile(options={"freezing": True}) it is not applied
        # (torch 2.14, measured with torch.profiler): ENet then ran 75 of its 89 convolutions
        # through aten's slow reference kernel (thnn_conv2d) instead of oneDNN's. Frozen, all 89
        # run prepacked oneDNN kernels, 25 with the residual add fused in.
        with torch._inductor.config.patch(freezing=True):
            return self.compiled(x)


def compile_for_inference(model: nn.Module) -> FrozenCompiled:
    """``torch.compile`` (inductor) for inference: weights frozen into the graph as constants and
    pre-packed for the CPU convolution kernels, one static graph per input size. The first call
    at each size compiles (ENet: 15-40 s on a 2-core CPU); later calls are faster than eager
    (ENet: see the README's bench table). Call it under ``torch.no_grad()``/``inference_mode``,
    and do not change the weights afterwards: the compiled graph holds copies."""
    return FrozenCompiled(model)


class Bfloat16Inference(nn.Module):
    """``model`` with bfloat16 weights and activations: float32 (N, 3, H, W) in, float32 logits
    out. Where the CPU computes bf16 natively (:func:`rtseg.runtime.cpu_has_native_bf16`) oneDNN's bf16
    convolutions have twice float32's peak; compiled (:func:`compile_for_inference`), ENet at
    360x480 ran 1.2-1.4x faster than float32 (10.1 against 12.6 ms and 16.7 against 22.2, 2 threads,
    on AVX512-BF16 EPYCs; docs/deployment_runtimes.md). Elsewhere bf16 is emulated and slower: the
    ``torch-bf16`` backend refuses to run there."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.net = model.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(torch.bfloat16)).float()


def prepare(model: nn.Module, device: torch.device, bf16: bool = False, compile: bool = False) -> nn.Module:
    """The one inference chain: fold BN -> channels-last -> [bf16] -> [compile]."""
    net = fold_batchnorm(model).to(device, memory_format=torch.channels_last).eval()
    if bf16:
        net = Bfloat16Inference(net)
    if compile:
        net = compile_for_inference(net)
    return net


def channels_last_runner(net: nn.Module) -> Runner:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return net(x.contiguous(memory_format=torch.channels_last)).float()

    run.module = net  # what runs, for callers that need the module (tests, profiling)
    return run


class Torch(Backend):
    name = "torch"
    summary = "eager PyTorch, BN folded, channels-last; any size at once, no warm-up"

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        return channels_last_runner(prepare(model, options.device))


class TorchCompile(Backend):
    name = "torch-compile"
    summary = "PyTorch compiled by inductor with frozen weights; compiles on the first frame of each size"

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        return channels_last_runner(prepare(model, options.device, compile=True))


class TorchBf16(Backend):
    name = "torch-bf16"
    summary = "torch-compile in bfloat16: CPUs with AVX512-BF16 or AMX (emulated and slower elsewhere)"
    precision = "bfloat16"
    requires = Requirements(cpu_any=("avx512_bf16", "amx_bf16"),
                            cpu_why="native bfloat16; emulated it is slower than float32")

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        return channels_last_runner(prepare(model, options.device, bf16=True, compile=True))
