"""rtseg.backends.pytorch: compiled inference with the weights frozen into oneDNN convolutions,
and bfloat16 inference with float32 logits."""

from __future__ import annotations

import torch
from torch import nn
from torch.profiler import profile

from rtseg.backends.pytorch import compile_for_inference


def _convolution_kernels(fn, x) -> set[str]:
    with profile() as prof:
        fn(x)
    return {e.name for e in prof.events() if "conv" in e.name.lower()}


def test_compile_for_inference_freezes_weights_into_onednn_convolutions():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=2, dilation=2)).eval()
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 24, 32).contiguous(memory_format=torch.channels_last)
    compiled = compile_for_inference(net)
    assert compiled._orig_mod is net and len(list(compiled.parameters())) == 4
    with torch.inference_mode():
        expected = net(x)
        assert torch.allclose(compiled(x), expected, atol=1e-5)  # the first call compiles
        kernels = _convolution_kernels(compiled, x)
    # Unfrozen (torch.compile(options={"freezing": True}) on torch 2.14) these ran aten's
    # reference kernels, thnn_conv2d / slow_conv_dilated2d.
    assert any(k.startswith("mkldnn::_convolution_pointwise") for k in kernels), kernels
    assert not any("slow_conv" in k or "thnn" in k for k in kernels), kernels


def test_bfloat16_inference_gives_float32_logits_close_to_float():
    from rtseg.backends.pytorch import Bfloat16Inference

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(2, 3, 16, 20)
    with torch.inference_mode():
        expected = net(x)
        got = Bfloat16Inference(net)(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert next(net.parameters()).dtype == torch.bfloat16
    # bf16 keeps 8 mantissa bits: about 0.4% relative error a value.
    assert (got - expected).abs().max() <= 0.02 * expected.abs().max()
