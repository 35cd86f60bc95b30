"""Every registered model honours the contract: shapes, training dict, backward, any input size."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
from torch import nn

from rtseg import create_model, list_models
from rtseg.engine.losses import SegmentationLoss
from rtseg.models.enet import ENet, _DownsamplingBottleneck, _UpsamplingBottleneck

# The module (rtseg.models.enet, the attribute, is the builder function).
enet_module = importlib.import_module("rtseg.models.enet")


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("size", [(64, 96), (45, 61)])  # a multiple of 8 and an odd size
def test_eval_returns_logits_at_input_size(name, size):
    model = create_model(name, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, *size)


@pytest.mark.parametrize("name", list_models())
def test_training_returns_dict_and_backpropagates(name):
    model = create_model(name, num_classes=4).train()
    out = model(torch.randn(2, 3, 48, 64))
    assert isinstance(out, dict) and out["out"].shape[:2] == (2, 4)
    # "out" is at the input size, except for cascades (ICNet: 1/4) whose loss resizes the labels.
    assert out["out"].shape[-2:] == (48, 64) or name == "icnet"
    aux = sorted(k for k in out if k.startswith("aux"))
    loss = SegmentationLoss(aux_weights=[0.4] * len(aux))(out, torch.randint(0, 4, (2, 48, 64)))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_unknown_model_and_argument_are_clear():
    with pytest.raises(ValueError, match="unknown model 'enett'.*enet"):
        create_model("enett", num_classes=3)
    with pytest.raises(ValueError, match=r"no argument\(s\) \['depth'\]"):
        create_model("enet", num_classes=3, depth=3)


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


def test_erfnet_follows_the_paper():
    from rtseg.models._layers import Downsampler as _Downsampler
    from rtseg.models.erfnet import _NonBottleneck1D

    m = create_model("erfnet", num_classes=20)
    # The layers of the reference implementation (Eromera/erfnet_pytorch, train/erfnet.py: biased
    # convolutions, BN eps 1e-3), 20 classes: 2,064,256 parameters ("2.1M" in the paper).
    assert sum(p.numel() for p in m.parameters()) == 2_064_256
    blocks = [b for b in m.encoder if isinstance(b, _NonBottleneck1D)]
    assert [isinstance(b, _Downsampler) for b in m.encoder].count(True) == 3 and len(blocks) == 13
    assert [b.branch[5].dilation[0] for b in blocks[5:]] == [2, 4, 8, 16, 2, 4, 8, 16]
    assert [b.branch[0].kernel_size for b in blocks[:1]] == [(3, 1)] and blocks[0].branch[2].kernel_size == (1, 3)
    assert blocks[0].branch[-1].p == pytest.approx(0.03) and blocks[-1].branch[-1].p == pytest.approx(0.3)
    assert not any(isinstance(x, nn.Dropout2d) for x in m.decoder.modules())


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


@pytest.mark.parametrize("name, params, published", [
    # Parameters counted for inference (auxiliary / booster / boundary heads left out), with the
    # 19 Cityscapes classes, against each paper's table.
    ("ddrnet23_slim", 5_695_987, 5.7e6),
    ("pidnet_s", 7_625_715, 7.6e6),
    ("bisenetv2", 3_358_627, None),  # the paper gives no count; 3.36 M with the 1024-wide head
    ("edanet", 689_485, 0.68e6),  # the authors' code asserts 689,485; the paper rounds to 0.68 M
])
def test_new_networks_match_their_papers(name, params, published):
    from rtseg.benchmarks.inference import count_flops

    heads = {"ddrnet23_slim": {"aux_head": False}, "pidnet_s": {"aux_heads": False}, "bisenetv2": {"boosters": False},
             "edanet": {}}
    model = create_model(name, num_classes=19, **heads[name])
    n = sum(p.numel() for p in model.parameters())
    assert n == params
    if published:
        assert abs(n - published) / published < 0.015
    if name != "bisenetv2":
        # GFLOPs as the papers count them (multiply-adds): DDRNet-23-slim 36.3 and PIDNet-S 47.6
        # at 1024x2048, EDANet 8.97 at 512x1024. Counted on the meta device: shapes only.
        size, published_gmacs = {"ddrnet23_slim": ((1024, 2048), 36.3), "pidnet_s": ((1024, 2048), 47.6),
                                 "edanet": ((512, 1024), 8.97)}[name]
        with torch.device("meta"):
            meta_model = create_model(name, num_classes=19, **heads[name])
        gmacs = count_flops(meta_model, size, device="meta") / 2e9
        assert abs(gmacs - published_gmacs) / published_gmacs < 0.02, gmacs


def test_pidnet_boundary_losses():
    from rtseg.engine.losses import balanced_bce, boundary_targets

    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[:, :, 6:] = 3  # one vertical edge between columns 5 and 6
    edges = boundary_targets(labels)[0, 0]
    assert edges[:, 4:8].all() and not edges[:, :4].any() and not edges[:, 8:].any()  # a 4-pixel band
    # Balanced BCE: both classes weigh the same in total, so predicting all-background is punished.
    all_background = balanced_bce(torch.full((1, 1, 12, 12), -5.0), edges[None, None])
    right = balanced_bce(torch.where(edges > 0, 5.0, -5.0)[None, None], edges[None, None])
    assert all_background > 10 * right
    model = create_model("pidnet_s", num_classes=4).train()
    out = model(torch.randn(2, 3, 48, 64))
    assert set(out) == {"out", "aux1", "boundary"} and out["boundary"].shape == (2, 1, 48, 64)
    target = torch.randint(0, 4, (2, 48, 64))
    with_boundary = SegmentationLoss(aux_weights=[0.4])(out, target)
    without = SegmentationLoss(aux_weights=[0.4])({k: v for k, v in out.items() if k != "boundary"}, target)
    assert with_boundary > without


def test_icnet_starts_from_a_pspnet_state_dict_and_refuses_other_widths():
    from rtseg.errors import CheckpointError

    torch.manual_seed(0)
    psp = create_model("pspnet50", num_classes=3).state_dict()
    ic = create_model("icnet", num_classes=3, pspnet_weights=psp)
    assert torch.equal(ic.trunk.layer4[2].conv3.weight, psp["trunk.layer4.2.conv3.weight"])
    with pytest.raises(CheckpointError, match="not a PSPNet50 trunk at filter_scale 0.5"):
        create_model("icnet", num_classes=3, filter_scale=0.5, pspnet_weights=psp)
