"""FCN8s: torchvision weight compatibility, fc6/fc7 conversion, sizes, KITTI and Cityscapes paths."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import rtseg
from conftest import save_png
from rtseg.checkpoint import make_checkpoint, save_checkpoint
from rtseg.datasets.cityscapes import cityscapes_classes
from rtseg.datasets.kitti_road import CLASSES as KITTI_CLASSES
from rtseg.errors import RtsegError, WeightsUnavailableError
from rtseg.metrics import BinaryPRCurve
from rtseg.models import create_model
from rtseg.models.fcn8s import _VGG16Encoder, bilinear_kernel, fcn8s, fcn8s_mobilenetv3
from test_datasets import write_cityscapes, write_kitti


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


# ------------------------------------------------------------------------------- KITTI Road


def test_binary_pr_curve_by_hand():
    prob = torch.tensor([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    target = torch.tensor([1, 1, 1, 0, 0, 255])
    pr = BinaryPRCurve(positive=1, num_thresholds=11)
    pr.update(prob, target)
    r = pr.compute()
    # thresholds 0.8: P=1, R=2/3 (F=0.8); 0.7: P=2/3, R=2/3; 0.3: P=3/4, R=1 (F=6/7)
    assert r["max_f"] == pytest.approx(6 / 7)
    assert r["best_threshold"] == pytest.approx(0.3)
    # recall levels 0..0.6 -> best precision 1; 0.7..1.0 -> 3/4
    assert r["average_precision"] == pytest.approx((7 * 1 + 4 * 0.75) / 11)


def test_kitti_eval_reports_maxf_and_ap(tmp_path):
    root = write_kitti(tmp_path / "kitti")
    ckpt = tmp_path / "road.pt"
    save_checkpoint(make_checkpoint(create_model("fcn8s_mobilenetv3", num_classes=2), "fcn8s_mobilenetv3",
                                    {}, KITTI_CLASSES, (0.5,) * 3, (0.5,) * 3), ckpt)
    r = rtseg.evaluate(ckpt, "kitti_road", "val", data_root=root, size=(32, 64), device="cpu")
    road = r["road"]
    precision, recall = road["precision_at_max_f"], road["recall_at_max_f"]
    assert road["max_f"] == pytest.approx(2 * precision * recall / (precision + recall))  # its own threshold's F
    # Untrained: the best threshold calls every valid pixel road (recall 1); 11-point AP takes the
    # best precision at recall >= each level, so it is at least that point's precision.
    assert recall == 1.0 and road["best_threshold"] == 0.0 and road["average_precision"] >= precision > 0.3
    assert r["road"]["space"] == "perspective"


# ------------------------------------------------------------------------------- Cityscapes


@pytest.fixture
def cityscapes_ckpt(tmp_path):
    path = tmp_path / "cs.pt"
    torch.manual_seed(0)
    cfg = {"data": {"resize": [32, 64]}}
    save_checkpoint(make_checkpoint(create_model("enet", num_classes=19), "enet", {}, cityscapes_classes(),
                                    (0.5,) * 3, (0.5,) * 3, input_size=[32, 64], config=cfg), path)
    return path


def test_predict_cityscapes_format_for_the_official_evaluator(tmp_path, cityscapes_ckpt):
    write_cityscapes(tmp_path / "cs", h=48, w=96)
    images = sorted((tmp_path / "cs" / "leftImg8bit" / "val").glob("*/*.png"))
    out = tmp_path / "results"
    rtseg.predict(images, out, cityscapes_ckpt, output_format="cityscapes")
    written = sorted(out.glob("*.png"))
    assert [p.name for p in written] == [p.name for p in images]  # <city>_<seq>_<frame>_leftImg8bit.png
    ids = np.asarray(Image.open(written[0]))
    assert ids.shape == (48, 96)  # full resolution
    assert set(np.unique(ids)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}


def test_cityscapes_eval_training_and_full_resolution(tmp_path, cityscapes_ckpt):
    write_cityscapes(tmp_path / "cs", h=48, w=96)
    res = {}
    for full_res in (False, True):
        res[full_res] = rtseg.evaluate(cityscapes_ckpt, "cityscapes", "val", data_root=tmp_path / "cs",
                                       full_res=full_res, device="cpu")
    assert res[0]["resolution"] == "training" and res[1]["resolution"] == "full"
    assert res[0]["input_size"] == res[1]["input_size"] == [32, 64]


def test_predict_cityscapes_format_needs_19_classes(tmp_path):
    ckpt = tmp_path / "k.pt"
    save_checkpoint(make_checkpoint(create_model("enet", num_classes=2), "enet", {}, KITTI_CLASSES,
                                    (0.5,) * 3, (0.5,) * 3), ckpt)
    save_png(tmp_path / "x.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(RtsegError, match="needs a 19-class Cityscapes model"):
        rtseg.predict(tmp_path / "x.png", tmp_path / "o", ckpt, output_format="cityscapes")


def test_mobilenet_bn_momentum_suits_short_training():
    m = create_model("fcn8s_mobilenetv3", num_classes=3)
    assert {b.momentum for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)} == {0.1}
