"""rtseg.models.icnet: the cascade's outputs and label guidance, size against the reference,
backbone files and widths, and starting from a PSPNet."""

from __future__ import annotations

import pytest
import torch
import torchvision

from rtseg.checkpoint import make_checkpoint, save_checkpoint
from rtseg.datasets.camvid import CLASSES as CAMVID
from rtseg.engine.losses import SegmentationLoss
from rtseg.models import create_model
from rtseg.models.stats import count_params


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


def test_icnet_starts_from_a_pspnet_state_dict_and_refuses_other_widths():
    from rtseg.errors import CheckpointError

    torch.manual_seed(0)
    psp = create_model("pspnet50", num_classes=3).state_dict()
    ic = create_model("icnet", num_classes=3, pspnet_weights=psp)
    assert torch.equal(ic.trunk.layer4[2].conv3.weight, psp["trunk.layer4.2.conv3.weight"])
    with pytest.raises(CheckpointError, match="not a PSPNet50 trunk at filter_scale 0.5"):
        create_model("icnet", num_classes=3, filter_scale=0.5, pspnet_weights=psp)
