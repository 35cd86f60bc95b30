"""rtseg.backends.litert: the transposed-convolution rewrite is exact, refusals are one line (the
runtime, the converter), and programs agree with PyTorch in LiteRT's interpreter (slow: they need
litert-torch, here or in $RTSEG_LITERT_PYTHON, which make litert-env builds)."""

from __future__ import annotations

import os
import shutil
from importlib.util import find_spec

import pytest
import torch
from torch import nn

from rtseg.backends import base as backend_base
from rtseg.backends import get_backend, litert
from rtseg.backends.base import BackendUnavailable


def _converter() -> bool:
    python = os.environ.get(litert.CONVERTER_ENV, "")
    return find_spec("litert_torch") is not None or bool(python and shutil.which(python))


needs_converter = pytest.mark.skipif(not _converter(), reason=f"no litert-torch: {litert.CONVERTER_INSTALL}")


@pytest.mark.parametrize("stride,padding,output_padding,kernel", [(2, 1, 1, 3), (2, 1, 0, 3), (2, 0, 1, 2),
                                                                   (4, 2, 0, 8), (1, 1, 0, 3)])
def test_a_cropped_transposed_convolution_is_the_padded_one(stride, padding, output_padding, kernel):
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(5, 4, kernel, stride=stride, padding=padding, output_padding=output_padding)
    rewritten = litert.CroppedTransposedConv(conv)
    x = torch.randn(2, 5, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(rewritten(x), conv(x), atol=1e-5, rtol=1e-5)
        if stride > 1:  # output_size picks the size as the original does
            size = [x.shape[-2] * stride, x.shape[-1] * stride]
            torch.testing.assert_close(rewritten(x, output_size=size), conv(x, output_size=size), atol=1e-5, rtol=1e-5)


def test_convertible_rewrites_only_padded_transposed_convolutions():
    from rtseg.models import create_model

    model = litert.convertible(create_model("enet", num_classes=11))
    kinds = {type(m) for m in model.modules()}
    assert litert.CroppedTransposedConv in kinds
    assert not any(isinstance(m, nn.ConvTranspose2d) and any(m.padding) for m in model.modules())


def test_a_missing_runtime_is_one_line_with_the_install(monkeypatch):
    real = backend_base.find_spec
    monkeypatch.setattr(backend_base, "find_spec", lambda name: None if name == "ai_edge_litert" else real(name))
    assert get_backend("litert-int8").unavailable() == (
        "--backend litert-int8: ai_edge_litert is not installed (pip install 'rtseg[litert]')")


def test_a_missing_converter_is_one_line_naming_the_variable(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "litert_torch" else real(name))
    monkeypatch.delenv(litert.CONVERTER_ENV, raising=False)
    with pytest.raises(BackendUnavailable, match=r"^--backend litert: building a LiteRT program needs litert-torch: "
                                                 r"pip install 'rtseg\[litert-export\]'.*RTSEG_LITERT_PYTHON"):
        litert.convert(nn.Conv2d(3, 2, 1), (8, 8), 1, None)
    monkeypatch.setenv(litert.CONVERTER_ENV, "/nowhere/bin/python")
    with pytest.raises(BackendUnavailable, match=r"RTSEG_LITERT_PYTHON is /nowhere/bin/python, which is not a Python"):
        litert.convert(nn.Conv2d(3, 2, 1), (8, 8), 1, None)


@pytest.mark.slow
@needs_converter
def test_an_unconvertible_network_is_refused_in_one_line():
    class Unconvertible(nn.Module):  # a boolean mask's data-dependent size: no static LiteRT shape
        def forward(self, x):
            return x[x > 0].reshape(1, -1).sum().expand(1, 2, 8, 8)

    with pytest.raises(BackendUnavailable, match=r"^--backend litert: (litert-torch|torch.export) .*"
                                                 r"(convert|capture) Unconvertible.*: [\w.]+(Error|Exception): "):
        litert.convert(Unconvertible(), (8, 8), 1, None)
