"""rtseg.models._resnet: the dilated ResNet50 trunk of ICNet and PSPNet loads torchvision's weights,
and its gradient checkpointing gives the same gradients."""

from __future__ import annotations

import pytest
import torch
import torchvision

from rtseg.models import create_model
from rtseg.models._resnet import DilatedResNet50


def test_torchvision_resnet50_loads_strictly():
    state = torchvision.models.resnet50(weights=None).state_dict()
    trunk = DilatedResNet50()
    trunk.load_torchvision(state)  # strict=True inside; only the 1000-class fc is dropped
    assert torch.equal(trunk.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])
    assert trunk.layer3[1].conv2.dilation == (2, 2) and trunk.layer4[1].conv2.dilation == (4, 4)
    assert trunk.layer3[0].conv2.stride == (1, 1)  # dilation instead of stride: output stride 8


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
