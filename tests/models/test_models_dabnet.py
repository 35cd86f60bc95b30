"""DABNet against the paper and the authors' code: parameters, resolutions, dilations."""

from __future__ import annotations

import torch

from rtseg.models import create_model
from rtseg.models.dabnet import DABModule, DABNet


def test_parameters_match_the_paper():
    # Paper: 0.76 M parameters (Cityscapes, 19 classes); the authors' code builds 756,643.
    model = create_model("dabnet", num_classes=19)
    assert sum(p.numel() for p in model.parameters()) == 756_643
    # The classifier is a bias-free 1x1 conv from 259 channels: 11 classes take 8 x 259 fewer.
    assert sum(p.numel() for p in create_model("dabnet", num_classes=11).parameters()) == 756_643 - 8 * 259


def test_structure_and_resolutions():
    model = create_model("dabnet", num_classes=11).eval()
    dilations = [m.context[0].conv.dilation[0] for m in model.modules() if isinstance(m, DABModule)]
    assert dilations == [2, 2, 2, 4, 4, 8, 8, 16, 16]
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = tuple(output.shape)  # returns None: the output is left as it is
        return hook

    for name, module in (("block1", model.block1), ("block2", model.block2), ("logits", model.classifier)):
        module.register_forward_hook(record(name))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 360, 480))
    assert seen == {"block1": (1, 64, 90, 120), "block2": (1, 128, 45, 60), "logits": (1, 11, 45, 60)}
    assert out.shape == (1, 11, 360, 480)


def test_module_is_residual_and_keeps_shape():
    m = DABModule(64, dilation=4).eval()
    torch.nn.init.zeros_(m.expand.weight)  # the branch adds nothing: the module is the identity
    x = torch.randn(2, 64, 9, 11)
    assert torch.equal(m(x), x)


def test_more_modules_cycle_the_dilations():
    model = DABNet(11, block_1=1, block_2=8)
    dilations = [m.context[0].conv.dilation[0] for m in model.block2]
    assert dilations == [4, 4, 8, 8, 16, 16, 4, 4]
