"""rtseg.models.fcn8s: torchvision weight compatibility, the fc6/fc7 conversion, backbone weights
from a file or (offline) not at all, sizes and initialisation."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from rtseg.errors import WeightsUnavailableError
from rtseg.models import create_model
from rtseg.models.fcn8s import _VGG16Encoder, bilinear_kernel, fcn8s, fcn8s_mobilenetv3


@pytest.fixture(scope="module")
def tv_vgg16_state():
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).state_dict()


def test_torchvision_vgg16_loads_strictly(tv_vgg16_state):
    enc = _VGG16Encoder()
    feats = {k[len("features."):]: v for k, v in tv_vgg16_state.items() if k.startswith("features.")}
    enc.features.load_state_dict(feats, strict=True)  # same layers, same names


def test_fc6_fc7_conversion_is_exact(tv_vgg16_state):
    tv = torchvision.models.vgg16(weights=None).eval()
    tv.load_state_dict(tv_vgg16_state)
    enc = _VGG16Encoder(dropout=0.0).eval()
    enc.load_torchvision(tv_vgg16_state)
    pool5 = torch.randn(2, 512, 7, 7)
    with torch.no_grad():
        ref = tv.classifier[:5](torch.flatten(pool5, 1))  # fc6 -> relu -> dropout -> fc7 -> relu
        conv = torch.relu(enc.fc7(torch.relu(enc.fc6(pool5))))  # (2, 4096, 7, 7)
    assert torch.allclose(conv[:, :, 3, 3], ref, atol=1e-4, rtol=1e-4)  # centre sees the whole 7x7


def test_backbone_weights_from_a_local_file(tmp_path, tv_vgg16_state):
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(tv_vgg16_state, path)
    model = fcn8s(num_classes=2, backbone_weights=str(path))
    assert torch.equal(model.encoder.features[0].weight, tv_vgg16_state["features.0.weight"])
    mb = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    torch.save(mb, tmp_path / "mb.pth")
    m2 = fcn8s_mobilenetv3(num_classes=2, backbone_weights=str(tmp_path / "mb.pth"))
    assert torch.equal(m2.encoder.features[16][0].weight, mb["features.16.0.weight"])


def test_offline_imagenet_weights_fail_clearly(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.models.VGG16_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
                        lambda self, *a, **k: offline())
    with pytest.raises(WeightsUnavailableError, match=r"vgg16-397923af.pth.*backbone_weights="):
        fcn8s(num_classes=2, backbone_weights="imagenet")
    with pytest.raises(WeightsUnavailableError, match="not found"):
        fcn8s(num_classes=2, backbone_weights="/nowhere/vgg16.pth")


def test_parameter_count_close_to_published():
    n = sum(p.numel() for p in create_model("fcn8s", num_classes=21).parameters())
    assert abs(n - 134.3e6) / 134.3e6 < 0.01, n


def test_transposed_convs_start_bilinear():
    m = create_model("fcn8s_mobilenetv3", num_classes=3)
    x = torch.rand(1, 3, 5, 7)
    up = torch.nn.functional.conv_transpose2d(x, bilinear_kernel(3, 4), stride=2, padding=1)
    assert torch.allclose(m.up16(x), up)
    inner = up[..., 1:-1, 1:-1]  # away from the border it is plain bilinear interpolation
    ref = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)[..., 1:-1, 1:-1]
    assert torch.allclose(inner, ref, atol=1e-6)


def test_decoder_init_normal_option():
    m = create_model("fcn8s_mobilenetv3", num_classes=3, decoder_init="normal")
    assert 0 < m.score8.weight.std() < 0.002 and 0 < m.up8.weight.std() < 0.002


def test_mobilenet_bn_momentum_suits_short_training():
    m = create_model("fcn8s_mobilenetv3", num_classes=3)
    assert {b.momentum for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)} == {0.1}
