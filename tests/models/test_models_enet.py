"""rtseg.models.enet: ENet against the paper, its max-unpooling and the window-code pooling that
torch.compile uses, its options and gradient checkpointing."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
from torch import nn

from rtseg import create_model
from rtseg.models.enet import ENet, _DownsamplingBottleneck, _UpsamplingBottleneck

# The module (rtseg.models.enet, the attribute, is the builder function).
enet_module = importlib.import_module("rtseg.models.enet")


def test_enet_parameter_count_matches_the_paper():
    n = sum(p.numel() for p in create_model("enet", num_classes=12).parameters())
    assert 350_000 <= n <= 370_000, n


def test_enet_structure_follows_the_paper():
    m = create_model("enet", num_classes=12)
    assert m.initial[0].conv.out_channels == 13  # + 3 max-pooled input channels = 16
    assert isinstance(m.down1, _DownsamplingBottleneck) and len(m.stage1) == 4
    assert len(m.stage23) == 16
    dil = [b.branch[1][0].dilation[0] for b in m.stage23[:8] if isinstance(b.branch[1][0], nn.Conv2d)
           and b.branch[1][0].kernel_size == (3, 3)]
    assert dil == [1, 2, 4, 1, 8, 16]
    asym = [b for b in m.stage23[:8] if b.branch[1][0].kernel_size == (5, 1)]
    assert len(asym) == 2
    # PReLU in the encoder, ReLU in the decoder; dropout 0.01 / 0.1 / none.
    assert isinstance(m.stage1[0].out_act, nn.PReLU) and isinstance(m.stage4[0].out_act, nn.ReLU)
    assert m.stage1[0].branch[-1].p == 0.01 and m.stage23[0].branch[-1].p == 0.1
    assert not any(isinstance(x, nn.Dropout2d) for x in [*m.up4.modules(), *m.stage4.modules(), *m.stage5.modules()])
    assert isinstance(m.up4, _UpsamplingBottleneck) and isinstance(m.down2, _DownsamplingBottleneck)


def test_enet_unpooling_places_values_at_pooled_positions():
    # With zeroed side branches the decoder's main path is pure max-unpooling: an input impulse
    # must come back exactly where the encoder's max-pool found it.
    down = _DownsamplingBottleneck(4, 8, dropout=0.0).eval()
    up = _UpsamplingBottleneck(8, 4).eval()
    x = torch.zeros(1, 4, 8, 8)
    x[0, :, 3, 5] = 1.0
    _, idx = down(x)
    pooled = torch.zeros(1, 8, 4, 4)
    pooled[0, :, 1, 2] = 1.0
    with torch.no_grad():
        up.main_conv[0].weight.copy_(torch.eye(4, 8).view(4, 8, 1, 1))
        for p in up.branch.parameters():
            p.zero_()
    out = enet_module._max_unpool2x(up.main_conv[0](pooled), idx)
    assert out[0, 0].nonzero().tolist() == [[3, 5]]
    assert torch.equal(out, nn.functional.max_unpool2d(up.main_conv[0](pooled), idx, 2, 2))


@pytest.mark.parametrize("channels_last", [False, True])
def test_enet_window_code_pooling_matches_max_pool_indices(channels_last):
    # The elementwise pool/unpool that torch.compile uses must equal max_pool2d(return_indices)
    # + max_unpool2d exactly, ties included (first maximum in scan order wins), in values, in
    # the unpooled positions and in where the gradient goes.
    g = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for x in (torch.randn(2, 5, 6, 10, generator=g),
              torch.randint(0, 2, (2, 5, 6, 10), generator=g).float()):  # many ties
        x = x.contiguous(memory_format=fmt).requires_grad_(True)
        x_ref = x.detach().clone().requires_grad_(True)
        pooled, codes = enet_module._max_pool2x_with_codes(x)
        pooled_ref, idx = nn.functional.max_pool2d(x_ref, 2, 2, return_indices=True)
        assert torch.equal(pooled, pooled_ref)
        values = torch.randn(pooled.shape, generator=g).contiguous(memory_format=fmt)
        out = enet_module._max_unpool2x_codes(values, codes)
        assert torch.equal(out, nn.functional.max_unpool2d(values, idx, 2, 2))
        assert out.is_contiguous(memory_format=fmt)
        # Codes in another float dtype than the values (autocast) still select the same positions.
        assert torch.equal(enet_module._max_unpool2x(values.double(), codes),
                           nn.functional.max_unpool2d(values.double(), idx, 2, 2))
        weights = torch.randn(pooled.shape, generator=g)
        (pooled * weights).sum().backward()
        (pooled_ref * weights).sum().backward()
        assert torch.equal(x.grad, x_ref.grad)


def test_enet_with_window_codes_gives_the_same_outputs_and_gradients(monkeypatch):
    torch.manual_seed(0)
    initial = ENet(5, skip_connections=True)
    x = torch.randn(2, 3, 37, 50)
    target = torch.randint(0, 5, (2, 37, 50))
    results = []
    for codes in (False, True):
        monkeypatch.setattr(enet_module, "_use_window_codes", lambda codes=codes: codes)
        model = copy.deepcopy(initial).train()  # a fresh copy: training updates BN statistics
        torch.manual_seed(1)  # same dropout masks
        nn.functional.cross_entropy(model(x)["out"], target).backward()
        with torch.no_grad():
            logits = model.eval()(x)
        results.append((logits, [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)


def test_enet_options():
    base = sum(p.numel() for p in ENet(5).parameters())
    assert sum(p.numel() for p in ENet(5, stage_two_repeat=3).parameters()) > base
    assert sum(p.numel() for p in ENet(5, num_initial_blocks=2).parameters()) > base
    skip = ENet(5, skip_connections=True).eval()
    assert skip(torch.randn(1, 3, 40, 56)).shape == (1, 5, 40, 56)


def test_enet_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = ENet(3)
    b = ENet(3)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    for m in (a, b):
        m.train()
        for mod in m.modules():  # dropout off so the two runs are comparable
            if isinstance(mod, nn.Dropout2d):
                mod.p = 0.0
    x = torch.randn(2, 3, 32, 48)
    a(x)["out"].sum().backward()
    b(x)["out"].sum().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5, rtol=1e-4), n
