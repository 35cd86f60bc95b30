"""rtseg.runtime: compile_for_inference freezes the weights, so convolutions run oneDNN's kernels."""

import torch
from torch import nn
from torch.profiler import profile

from rtseg.runtime import compile_for_inference


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
    from rtseg.runtime import Bfloat16Inference

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


def test_bf16_is_refused_where_the_cpu_would_emulate_it(monkeypatch):
    import pytest

    import rtseg.runtime
    from rtseg.errors import RtsegError

    monkeypatch.setattr(rtseg.runtime, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(RtsegError, match=r"^--backend torch-bf16: this CPU has no native bfloat16 .*emulated"):
        rtseg.runtime.check_bf16_support("--backend torch-bf16")


def test_bf16_unsafe_convolutions_are_the_dilated_ones_off_a_multiple_of_16():
    from rtseg.models import create_model
    from rtseg.runtime import bf16_channels_last_unsafe_convs

    net = nn.Sequential(
        nn.Conv2d(30, 30, (3, 1), padding=(4, 0), dilation=(4, 1)),  # unsafe: pruned EDANet's shape
        nn.Conv2d(30, 32, 3, padding=1),  # not dilated
        nn.Conv2d(32, 32, 3, padding=8, dilation=8),  # 32 channels
        nn.Conv2d(32, 40, (1, 3), padding=(0, 2), dilation=(1, 2)),  # 40 output channels: unsafe
        nn.Conv2d(40, 40, 3, padding=4, dilation=4, groups=40),  # depthwise (DABNet's kind)
    )
    assert bf16_channels_last_unsafe_convs(net) == ["0", "3"]
    # EDANet's growth of 40 channels with dilations up to 16: affected; ENet's dilated 128: not.
    assert bf16_channels_last_unsafe_convs(create_model("edanet", num_classes=11))
    assert not bf16_channels_last_unsafe_convs(create_model("enet", num_classes=11))
