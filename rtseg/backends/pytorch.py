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
from rtseg.runtime import Bfloat16Inference, compile_for_inference


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

    def unavailable(self) -> str | None:
        # On a GPU bf16 is native; the CPU flags only matter on the CPU.
        return super().unavailable()

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        return channels_last_runner(prepare(model, options.device, bf16=True, compile=True))
