"""tools/peer_enet.py, the PyTorch-ENet peer of tools/enet_vs_peer.py: its size and structure
are the original's (davidtvs/PyTorch-ENet, models/enet.py at e17d404)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

_spec = importlib.util.spec_from_file_location("peer_enet", Path(__file__).resolve().parents[2] / "tools" / "peer_enet.py")
peer_enet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer_enet)


def test_parameter_count_is_the_originals():
    # 350,508 at 11 classes: the original ENet(11)'s sum(p.numel() for p in parameters()).
    assert peer_enet.peer_param_count(11) == 350_508
    for classes in (11, 12, 19):
        model = peer_enet.PeerENet(classes)
        assert sum(p.numel() for p in model.parameters()) == peer_enet.peer_param_count(classes)


def test_structure_is_the_originals():
    model = peer_enet.PeerENet(11)
    names = [n for n, _ in model.named_children()]
    assert names[:6] == ["initial_block", "downsample1_0", "regular1_1", "regular1_2", "regular1_3", "regular1_4"]
    assert names[-6:] == ["upsample4_0", "regular4_1", "regular4_2", "upsample5_0", "regular5_1", "transposed_conv"]
    assert len(names) == 29 and "asymmetric3_6" in names and "dilated2_8" in names
    # 93 single-slope PReLUs (each activation its own module) in the encoder; ReLU in the decoder.
    prelus = [m for m in model.modules() if isinstance(m, nn.PReLU)]
    assert len(prelus) == 93 and all(p.num_parameters == 1 for p in prelus)
    assert isinstance(model.initial_block.ext_branch, nn.MaxPool2d) and model.initial_block.ext_branch.kernel_size == 3
    assert model.upsample4_0.ext_tconv1.kernel_size == (2, 2)
    assert len(model.state_dict()) == 622  # as the original


def test_eval_output_is_at_the_input_size():
    with torch.no_grad():
        out = peer_enet.PeerENet(5).eval()(torch.randn(1, 3, 48, 64))
    assert out.shape == (1, 5, 48, 64)
