"""rtseg.models.tta: test-time flip averaging, and the probability average of an ensemble."""

from __future__ import annotations

import pytest
import torch

from rtseg.errors import RtsegError
from rtseg.models import create_model
from rtseg.models.tta import FlipAverage, ProbabilityAverage, with_tta


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


def test_probability_average_is_the_mean_of_softmaxes():
    torch.manual_seed(3)
    a, b = torch.nn.Conv2d(3, 4, 1).eval(), torch.nn.Conv2d(3, 4, 1).eval()
    x = torch.randn(1, 3, 5, 5)
    avg = ProbabilityAverage([a, b]).eval()
    expected = ((a(x).softmax(1) + b(x).softmax(1)) / 2).log()
    torch.testing.assert_close(avg(x), expected)
    assert torch.equal(avg(x).argmax(1), expected.argmax(1))
