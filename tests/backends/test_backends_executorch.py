"""rtseg.backends.executorch: refusals in one line (the package, a torch it was not built for); a
program per input shape that agrees with eager PyTorch (the registry's parity test on real frames
runs both ExecuTorch backends in the slow suite)."""

from __future__ import annotations

import pytest
import torch

from rtseg.backends import executorch as et
from rtseg.backends import get_backend


def test_executorch_refuses_a_torch_it_was_not_built_for(monkeypatch):
    pytest.importorskip("executorch")
    monkeypatch.setattr(et, "TORCH_FOR", {"9.9": "2.99"})
    monkeypatch.setattr("importlib.metadata.version", lambda name: "9.9.0")
    assert get_backend("executorch").unavailable() == (
        f"--backend executorch: executorch 9.9.0 is built for torch 2.99, this is torch "
        f"{torch.__version__.split('+')[0]}: pip install 'executorch' for this torch")


def test_executorch_missing_is_one_line_with_the_install(monkeypatch):
    import rtseg.backends.base as base

    real = base.find_spec
    monkeypatch.setattr(base, "find_spec", lambda name: None if name == "executorch" else real(name))
    assert get_backend("executorch-int8").unavailable() == (
        "--backend executorch-int8: executorch is not installed (pip install 'rtseg[executorch]')")
