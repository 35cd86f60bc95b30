"""rtseg.backends.ncnn: the refusal in one line; ENet's arithmetic pooling form (what NCNN runs)
equal to PyTorch's, ties included; converted graphs agreeing with eager PyTorch (a small network
at two shapes, the shipped ENet on real frames, ``rtseg export --format ncnn``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rtseg.backends import BuildOptions, build_runner, get_backend

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "camvid"


def test_ncnn_missing_is_one_line_with_the_install(monkeypatch):
    import rtseg.backends.base as base

    real = base.find_spec
    monkeypatch.setattr(base, "find_spec", lambda name: None if name == "pnnx" else real(name))
    assert get_backend("ncnn").unavailable() == "--backend ncnn: pnnx is not installed (pip install 'rtseg[ncnn]')"


def test_enet_portable_pooling_equals_pytorch_ties_included():
    from rtseg.models import create_model
    from rtseg.models.enet import _max_pool2x_with_mask, _max_unpool2x, portable_pooling

    torch.manual_seed(0)
    x = torch.randint(0, 3, (2, 5, 8, 12)).float()  # three levels: most 2x2 windows hold ties
    values, indices = F.max_pool2d(x, 2, stride=2, return_indices=True)
    top, mask = _max_pool2x_with_mask(x)
    assert torch.equal(top, values)
    y = torch.randn_like(values)
    assert torch.equal(_max_unpool2x(y, mask), F.max_unpool2d(y, indices, 2, 2, output_size=x.shape[-2:]))

    model = create_model("enet", num_classes=4).eval()
    images = torch.randint(-2, 3, (2, 3, 32, 48)).float()  # repeated values: ties in the initial max-pool
    with torch.no_grad():
        expected = model(images)
        with portable_pooling():
            got = model(images)
    assert torch.equal(got, expected)


@pytest.mark.slow
def test_shipped_enet_on_real_frames_agrees_with_pytorch():
    pytest.importorskip("ncnn")
    from PIL import Image

    from rtseg.datasets.transforms import normalize
    from rtseg.weights import load_weights

    loaded = load_weights("enet-camvid")
    model = loaded.torch_model().eval()
    frames = [np.array(Image.open(p).convert("RGB")) for p in sorted(SAMPLES.glob("*.jpg"))[:2]]
    x = normalize(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2), loaded.mean, loaded.std)  # (2, 3, 360, 480)
    run = build_runner(model, "ncnn", options=BuildOptions(threads=2, mean=loaded.mean, std=loaded.std))
    with torch.no_grad():
        expected = model(x)
    got = run(x)
    assert got.shape == expected.shape == (2, 11, 360, 480)
    # Not bit-equal: where a 2x2 window's top two values differ by an ulp, NCNN's rounding may pick
    # the other one, and max-unpooling puts that value one pixel off.
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.999


@pytest.mark.slow
def test_export_format_ncnn_writes_param_and_bin(tmp_path):
    pytest.importorskip("ncnn")
    import rtseg

    report = rtseg.export("edanet-camvid", tmp_path / "m.param", format="ncnn")
    assert (tmp_path / "m.param").read_text().startswith("7767517")  # NCNN's .param magic number
    assert (tmp_path / "m.bin").stat().st_size > 1_000_000  # 0.7 M float32 weights
    assert report["backend"] == "ncnn" and report["parity"]["pixel_agreement"] >= 0.999
