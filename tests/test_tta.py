"""Test-time flip averaging in the model wrapper, the API, rtseg eval and rtseg predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rtseg
from rtseg.cli import main
from rtseg.errors import RtsegError
from rtseg.models import create_model
from rtseg.models.tta import FlipAverage, with_tta


def test_flip_average_is_the_mean_of_both_passes():
    torch.manual_seed(0)
    net = create_model("enet", num_classes=4).eval()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        expected = (net(x).softmax(1) + net(x.flip(-1)).softmax(1).flip(-1)) / 2
        got = with_tta(net, "flip")(x)
    assert got.shape == (2, 4, 32, 48)
    assert torch.allclose(got.softmax(1), expected, atol=1e-5)
    assert with_tta(net, "none") is net
    # A mirror-symmetric input gives a mirror-symmetric prediction.
    sym = torch.cat([x[..., :24], x[..., :24].flip(-1)], -1)
    with torch.no_grad():
        pred = with_tta(net, "flip")(sym).argmax(1)
    assert torch.equal(pred, pred.flip(-1))
    with pytest.raises(RtsegError, match="--tta 'rot'"):
        with_tta(net, "rot")
    with pytest.raises(RuntimeError):
        FlipAverage(net).train()(x)


def test_api_and_cli_report_tta(few_camvid, tmp_path, capsys):
    seg = rtseg.load_model("enet-camvid", device="cpu", tta="flip")
    image = np.asarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3)), dtype=np.uint8)
    plain = rtseg.load_model("enet-camvid", device="cpu").predict(image)
    flipped = seg.predict(image)
    assert seg.tta == "flip" and flipped.shape == plain.shape == (90, 120)
    assert not np.array_equal(flipped, plain)  # the average is another prediction on noise
    out = tmp_path / "e.json"
    assert main(["eval", "--weights", "enet-camvid", "--dataset", "camvid", "--data-root", str(few_camvid),
                 "--split", "val", "--tta", "flip", "--json", str(out)]) == 0
    assert "flip-averaged" in capsys.readouterr().out
    assert json.loads(out.read_text())["tta"] == "flip"
    frames = sorted((few_camvid / "val").glob("*.png"))[:1]
    assert main(["predict", str(frames[0]), "--out", str(tmp_path / "p"), "--tta", "flip", "--device", "cpu"]) == 0
    assert "flip-averaged" in capsys.readouterr().out
    assert (tmp_path / "p" / f"{frames[0].stem}_labels.png").is_file()
