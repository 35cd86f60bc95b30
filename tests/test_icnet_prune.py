"""ICNet / PSPNet specifics, and filter pruning for every model."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

import rtseg
from rtseg import list_models
from rtseg.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from rtseg.datasets.camvid import CLASSES as CAMVID
from rtseg.engine.losses import SegmentationLoss
from rtseg.errors import RtsegError
from rtseg.models import create_model
from rtseg.models._resnet import DilatedResNet50
from rtseg.models.stats import count_flops, count_params
from rtseg.weights import model_from_checkpoint


def test_torchvision_resnet50_loads_strictly():
    state = torchvision.models.resnet50(weights=None).state_dict()
    trunk = DilatedResNet50()
    trunk.load_torchvision(state)  # strict=True inside; only the 1000-class fc is dropped
    assert torch.equal(trunk.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert trunk.layer3[1].conv2.dilation == (2, 2) and trunk.layer4[1].conv2.dilation == (4, 4)
    assert trunk.layer3[0].conv2.stride == (1, 1)  # dilation instead of stride: output stride 8


def test_backbone_file_and_scaled_widths(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    m = create_model("icnet", num_classes=3, backbone_weights=str(path))
    assert m.trunk.conv1.weight.shape == (64, 3, 7, 7)
    with pytest.raises(ValueError, match="width 1.0"):
        create_model("icnet", num_classes=3, filter_scale=0.5, backbone_weights=str(path))


def test_icnet_cascade_outputs_and_label_guidance():
    model = create_model("icnet", num_classes=5).train()
    out = model(torch.randn(2, 3, 64, 96))
    assert out["out"].shape[-2:] == (16, 24)  # 1/4
    assert out["aux2"].shape[-2:] == (8, 12)  # 1/8
    assert out["aux1"].shape[-2:] == (4, 6)  # 1/16
    target = torch.randint(0, 5, (2, 64, 96))
    target[:, :8] = 255
    loss = SegmentationLoss(aux_weights=[0.4, 0.4])(out, target)
    nearest = lambda t, s: torch.nn.functional.interpolate(t[:, None].float(), size=s, mode="nearest")[:, 0].long()  # noqa: E731
    ce = lambda o: torch.nn.functional.cross_entropy(o, nearest(target, o.shape[-2:]), ignore_index=255)  # noqa: E731
    assert loss.item() == pytest.approx((ce(out["out"]) + 0.4 * ce(out["aux1"]) + 0.4 * ce(out["aux2"])).item(), rel=1e-5)
    with pytest.raises(ValueError, match="aux_weights"):
        SegmentationLoss(aux_weights=[0.4])(out, target)


def test_icnet_parameters_and_flops_near_the_reference():
    # The reference ICNet: 26.82 M parameters; filter_scale 0.5: 6.71 M. Ours uses torchvision's
    # 7x7 ResNet stem instead of PSPNet's deep stem, hence slightly fewer.
    full = count_params(create_model("icnet", num_classes=19))
    half = count_params(create_model("icnet", num_classes=19, filter_scale=0.5))
    assert 0.85 < full / 26.82e6 < 1.05 and 0.85 < half / 6.71e6 < 1.05
    assert 3.5 < full / half < 4.5


def test_pspnet_can_initialise_icnet(tmp_path):
    torch.manual_seed(0)
    psp = create_model("pspnet50", num_classes=3)
    path = tmp_path / "psp.pt"
    save_checkpoint(make_checkpoint(psp, "pspnet50", {}, CAMVID.__class__(CAMVID.names[:3], CAMVID.palette[:3]),
                                    (0.5,) * 3, (0.5,) * 3), path)
    ic = create_model("icnet", num_classes=3, pspnet_weights=str(path))
    assert torch.equal(ic.trunk.layer3[0].conv1.weight, psp.trunk.layer3[0].conv1.weight)


@pytest.mark.parametrize("name", ["icnet", "pspnet50"])
def test_grad_checkpointing_same_gradients(name):
    torch.manual_seed(0)
    a = create_model(name, num_classes=3)
    b = create_model(name, num_classes=3)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    for m in (a, b):
        m.train()
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout2d):
                mod.p = 0.0
    x = torch.randn(2, 3, 48, 64)
    sum(v.sum() for v in a(x).values()).backward()
    sum(v.sum() for v in b(x).values()).backward()
    assert torch.allclose(a.trunk.conv1.weight.grad, b.trunk.conv1.weight.grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_prune_makes_a_smaller_model_that_reloads(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    path = tmp_path / "m.pt"
    classes = CAMVID.__class__(CAMVID.names[:4], CAMVID.palette[:4])
    save_checkpoint(make_checkpoint(model, name, {}, classes, (0.5,) * 3, (0.5,) * 3, input_size=[64, 96]), path)
    out = tmp_path / "pruned.pt"
    if getattr(model, "pruning_refusal", None):  # a clear refusal with the reason, nothing written
        with pytest.raises(RtsegError, match="cannot be filter-pruned: .*torch-pruning"):
            rtseg.prune(path, 0.5, out)
        assert not out.exists()
        return
    returned = rtseg.prune(path, 0.5, out, json_path=tmp_path / "r.json")  # size: the checkpoint's
    report = json.loads((tmp_path / "r.json").read_text())
    assert report == json.loads(json.dumps(returned)) and report["size"] == [64, 96]
    assert report["param_reduction"] > 0.3 and report["flop_reduction"] > 0.3
    pruned = model_from_checkpoint(load_checkpoint(out))  # rebuilt from the checkpoint alone
    assert count_params(pruned) == report["after"]["params"]
    assert count_flops(pruned, (64, 96)) < count_flops(model, (64, 96))
    with torch.no_grad():
        assert pruned(torch.randn(1, 3, 45, 61)).shape == (1, 4, 45, 61)
    pruned.train()
    out_train = pruned(torch.randn(2, 3, 64, 96))
    assert set(out_train) >= {"out"}
