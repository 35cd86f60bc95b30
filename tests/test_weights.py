"""One loader for every kind of weights: shipped name, rtseg checkpoint, exported .onnx."""

from __future__ import annotations

import pytest
import torch

import rtseg
from rtseg.errors import CheckpointError
from rtseg.weights import load_weights, model_from_checkpoint


def test_shipped_name_and_default():
    default, named = load_weights(), load_weights("enet-camvid")
    assert default.name == named.name == "enet" and not named.is_onnx
    assert named.size() == (360, 480) and named.size((48, 64)) == (48, 64)
    assert named.classes.names[0] == "Sky" and named.checkpoint["model"]["num_classes"] == 11


def test_checkpoint_and_its_onnx_export_load_alike(enet_ckpt, tmp_path):
    ckpt = load_weights(enet_ckpt)
    assert ckpt.mean == (0.4,) * 3 and ckpt.input_size == [24, 32] and ckpt.torch_model() is ckpt.model
    x = torch.randn(1, 3, 24, 32)
    onnx_path = tmp_path / "enet.onnx"
    rtseg.export(enet_ckpt, onnx_path)
    exported = load_weights(onnx_path)
    assert exported.is_onnx and exported.fixed_size == [24, 32] and exported.name == "enet (onnx)"
    assert exported.classes == ckpt.classes and exported.mean == ckpt.mean and exported.std == ckpt.std
    torch.testing.assert_close(exported.model(x), ckpt.model(x), rtol=1e-3, atol=1e-3)
    with pytest.raises(CheckpointError, match="needs PyTorch weights"):
        exported.torch_model()
    with pytest.raises(CheckpointError, match="needs PyTorch weights"):
        rtseg.prune(onnx_path, 0.5, tmp_path / "p.pt")


@pytest.mark.parametrize("content, message", [
    (b"plain text, not a checkpoint\n", "cannot read checkpoint"),
    (None, "is not an rtseg checkpoint"),
])
def test_files_that_are_not_rtseg_weights_get_one_line(tmp_path, content, message):
    path = tmp_path / "w.pt"
    if content is None:
        torch.save({"conv.weight": torch.zeros(1)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_weights(path)
    assert "\n" not in info.value.short_message() and str(path) in str(info.value)


def test_missing_and_mismatched(tmp_path, enet_ckpt):
    with pytest.raises(CheckpointError, match="neither a file nor a shipped model"):
        load_weights(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="ONNX model not found"):
        load_weights(tmp_path / "missing.onnx")
    ckpt = torch.load(enet_ckpt, weights_only=True)
    ckpt["state_dict"].pop(next(iter(ckpt["state_dict"])))
    with pytest.raises(CheckpointError, match="cannot rebuild model 'enet'"):
        model_from_checkpoint(ckpt)
