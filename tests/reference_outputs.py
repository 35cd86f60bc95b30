"""Stored reference outputs of every registered network: what a numeric change must not slip past.

Each model is built under ``torch.manual_seed(0)`` (so its own initialisation is covered), then
every constant floating tensor of its state dict gets small seeded noise: layers that start at
zero (FCN8s' score layers, BiSeNetV2's last residual BN gains) would otherwise hide their
inputs, and BatchNorm's gains and running statistics would stay at the identity. (The random
tensors are left alone: they are varied already, and FCN8s' 100 M fc6 weights make noise slow.) The eval-mode logits of one seeded
input are summarised in a small digest (statistics and a strided sample of values) that
tests/project/test_reference_outputs.py compares with tests/data/reference_outputs.json.

Regenerate after an intended numeric change (and say why in the commit)::

    python tests/make_reference_outputs.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rtseg.models import create_model

PATH = Path(__file__).resolve().parent / "data" / "reference_outputs.json"
NUM_CLASSES = 11
#: Small and not square (a transposed height and width would show); FCN8s needs >= 32x32.
SIZE = (48, 64)
#: Values sampled from the flattened logits (evenly spaced).
SAMPLES = 48


def perturb(model: torch.nn.Module, seed: int = 1) -> None:
    """Add seeded noise (standard deviation 0.05) to every constant floating parameter and buffer
    (zeros, BatchNorm's ones), so that no layer passes nothing through."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():  # the state dict shares the model's storage
            if tensor.is_floating_point() and bool(tensor.min() == tensor.max()):
                tensor.add_(torch.randn(tensor.shape, generator=g), alpha=0.05)


def digest(name: str) -> dict:
    """The digest of ``name``'s seeded, perturbed model on the seeded input."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES)
    params = [p.detach() for p in model.parameters()]
    init = {"num_params": sum(p.numel() for p in params),
            "param_sum": sum(float(p.sum(dtype=torch.float64)) for p in params),
            "param_abs_sum": sum(float(p.abs().sum(dtype=torch.float64)) for p in params)}
    perturb(model)
    x = torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model.eval()(x).double()
    flat = logits.flatten()
    picks = torch.linspace(0, flat.numel() - 1, SAMPLES).round().long()
    return {
        **init,  # the parameters as built under the seed, before the noise
        "shape": list(logits.shape),
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "abs_mean": float(flat.abs().mean()),
        # float32 logits: 8 significant digits are all they hold.
        "samples": [float(f"{v:.8g}") for v in flat[picks].tolist()],
    }


def load() -> dict:
    return json.loads(PATH.read_text())
