"""rtseg.models: every registered model honours the contract (shapes, training dict, backward, any
input size), clear errors for unknown names, and the newer networks match their papers."""

from __future__ import annotations

import pytest
import torch

from rtseg import create_model, list_models
from rtseg.engine.losses import SegmentationLoss

#: Every registered model, and the builder options that change its layers.
VARIANTS = [(name, {}) for name in list_models()] + [("edanet", {"refine": 8})]
IDS = [name + "".join(f"-{k}{v}" for k, v in args.items()) for name, args in VARIANTS]


@pytest.mark.parametrize("name, args", VARIANTS, ids=IDS)
@pytest.mark.parametrize("size", [(64, 96), (45, 61)])  # a multiple of 8 and an odd size
def test_eval_returns_logits_at_input_size(name, args, size):
    model = create_model(name, num_classes=5, **args).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, *size)


@pytest.mark.parametrize("name, args", VARIANTS, ids=IDS)
def test_training_returns_dict_and_backpropagates(name, args):
    model = create_model(name, num_classes=4, **args).train()
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
