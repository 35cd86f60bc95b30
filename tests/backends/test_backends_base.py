"""rtseg.backends.base: one-line refusals naming the backend, and a runner built per input shape
(PerShape) that serves built shapes while another builds."""

from __future__ import annotations

import pytest
import torch

from rtseg.backends import (
    BackendUnavailable,
    BuildOptions,
    build_runner,
    get_backend,
)


def test_refusals_are_one_line_naming_the_backend(monkeypatch):
    import importlib.util

    import rtseg.backends.base as base
    import rtseg.runtime

    real = importlib.util.find_spec
    monkeypatch.setattr(base, "find_spec", lambda m: None if m == "openvino" else real(m))
    why = get_backend("openvino-int8").unavailable()
    assert why.startswith("--backend openvino-int8: openvino is not installed (pip install") and "\n" not in why
    model = torch.nn.Conv2d(3, 2, 1)
    with pytest.raises(BackendUnavailable, match="^--backend openvino: openvino is not installed"):
        build_runner(model, "openvino")
    monkeypatch.setattr(rtseg.runtime, "cpu_flags", lambda: dict.fromkeys(rtseg.runtime.CPU_FLAGS, False))
    why = get_backend("torch-bf16").unavailable()
    assert why.startswith("--backend torch-bf16: this CPU has none of avx512_bf16, amx_bf16")
    with pytest.raises(BackendUnavailable, match="int8 needs calibration frames"):
        monkeypatch.setattr(rtseg.runtime, "cpu_flags", lambda: dict.fromkeys(rtseg.runtime.CPU_FLAGS, True))
        build_runner(model, "onnxruntime-int8", options=BuildOptions(calibration=None))


def test_a_shape_being_built_does_not_hold_up_shapes_already_built():
    import threading
    import time

    from rtseg.backends import PerShape

    gate = threading.Event()
    built = []

    def build(hw, n):
        built.append((n, *hw))
        if hw == (8, 8):
            gate.wait(60)  # a slow build (an export, a compile), until the test lets it finish
        return lambda x: x * 2

    runner = PerShape(build)
    fast = torch.ones(1, 3, 4, 4)
    assert torch.equal(runner(fast), fast * 2)
    slow = threading.Thread(target=runner, args=(torch.ones(1, 3, 8, 8),))
    slow.start()
    while (1, 8, 8) not in built:
        time.sleep(0.01)
    served = threading.Thread(target=runner, args=(fast,))
    served.start()
    served.join(timeout=30)
    assert not served.is_alive() and not gate.is_set()  # served while (8, 8) was still building
    gate.set()
    slow.join()
    runner(torch.ones(1, 3, 8, 8))
    assert built == [(1, 4, 4), (1, 8, 8)]  # each shape built once
