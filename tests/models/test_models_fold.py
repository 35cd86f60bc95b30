"""rtseg.models.fold: BatchNorm folding keeps the outputs, and PReLU as max is exact."""

from __future__ import annotations

import copy

import torch

from conftest import trained_like
from rtseg.models.fold import PReLUAsMax, count_batchnorms, fold_batchnorm, prelu_as_max


def test_fold_batchnorm_keeps_outputs():
    model = trained_like("enet")
    folded = fold_batchnorm(model)
    assert count_batchnorms(folded) < count_batchnorms(model) // 10
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-4, rtol=1e-4)


def test_prelu_as_max_is_exact_and_only_for_slopes_up_to_one():
    low = torch.nn.PReLU(4)  # per-channel slopes <= 1, negative ones included
    shared = torch.nn.PReLU(1)  # one slope for every channel
    high = torch.nn.PReLU(4)  # a slope above 1: max(x, a*x) would be wrong, must stay a PReLU
    with torch.no_grad():
        low.weight.copy_(torch.tensor([-0.5, 0.0, 0.25, 1.0]))
        shared.weight.fill_(0.1)
        high.weight.copy_(torch.tensor([0.5, 1.5, 0.2, 0.3]))
    model = torch.nn.Sequential(low, shared, high)
    x = torch.randn(2, 4, 5, 6)
    x[0, :, 0, 0] = 0.0
    with torch.no_grad():
        ref = model(x)
        rewritten = prelu_as_max(copy.deepcopy(model))
        assert [type(m) for m in rewritten] == [PReLUAsMax, PReLUAsMax, torch.nn.PReLU]
        assert torch.equal(rewritten(x), ref)
