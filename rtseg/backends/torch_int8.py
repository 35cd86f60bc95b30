"""``torch-int8``: PyTorch's own static int8 (PT2E with the x86 inductor quantiser, oneDNN int8
convolutions; :mod:`rtseg.deploy.pt2e`), calibrated on frames, compiled for one input shape."""

from __future__ import annotations

from rtseg.backends.base import Backend, BuildOptions, PerShape, Requirements, Runner, calibration_tensors


class TorchInt8(Backend):
    name = "torch-int8"
    summary = "PyTorch PT2E static int8 (oneDNN), calibrated, compiled per input shape"
    precision = "int8"
    requires = Requirements(packages=(("torchao", "pip install 'rtseg[int8]'"),),
                            cpu_any=("avx2",), cpu_why="oneDNN's int8 kernels", calibration=True, static_size=True)

    def unavailable(self) -> str | None:
        why = super().unavailable()
        if why is None:
            from rtseg.deploy.pt2e import check_support
            from rtseg.errors import RtsegError

            try:
                check_support(f"--backend {self.name}")
            except RtsegError as e:
                return str(e)
        return why

    def build_runner(self, model, size, batch, options: BuildOptions) -> Runner:
        from rtseg.deploy.pt2e import compile_int8

        def build(hw, n):
            frames = calibration_tensors(options, hw)
            if n != 1:
                import numpy as np

                frames = [np.concatenate([f] * n) for f in frames]
            net = compile_int8(model, frames)
            return lambda x: net(x).float()

        return PerShape(build)
