"""rtseg checkpoints: everything needed to rebuild and use a model without its config file.

A checkpoint is a ``torch.save``'d dict with ``format == "rtseg-checkpoint"``::

    model:        {"name": "enet", "num_classes": 11, "args": {...}[, "pruned": true]}
    state_dict:   the model's weights
    classes:      {"names": [...], "palette": [[r, g, b], ...], "ignore_index": 255}
    normalization:{"mean": [...], "std": [...]}
    input_size:   [H, W] the model was trained / evaluated at (None: any)
    config:       the resolved training config (dict), when trained by rtseg
    train_state:  optimiser, scheduler, epoch, RNG, best mIoU ... (training checkpoints only)
    metrics:      the last validation metrics

This module reads and writes the format only (it sits below ``rtseg.models``, which reads
checkpoints to initialise from them); rebuilding a network from a checkpoint, and the one loader
for every kind of weights, is ``rtseg.weights``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rtseg.datasets.classes import ClassTable
from rtseg.errors import CheckpointError
from rtseg.io import atomic_path

FORMAT = "rtseg-checkpoint"
VERSION = 1

#: Models shipped inside the package: name -> file under rtseg/shipped/ (its model card beside it, NAME.md).
SHIPPED_WEIGHTS = {"edanet-camvid": "edanet_camvid.pt", "edanet-camvid-distilled": "edanet_camvid_distilled.pt",
                   "enet-camvid": "enet_camvid.pt", "enet-camvid-distilled": "enet_camvid_distilled.pt"}
DEFAULT_WEIGHTS = "enet-camvid"


def shipped_models() -> list[str]:
    """Names of the trained models inside the package (``--weights NAME``, ``load_model(NAME)``)."""
    return sorted(SHIPPED_WEIGHTS)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model under DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def make_checkpoint(model: nn.Module, model_name: str, model_args: dict, classes: ClassTable,
                    mean, std, input_size=None, config: dict | None = None,
                    train_state: dict | None = None, metrics: dict | None = None, pruned: bool = False) -> dict:
    spec = {"name": model_name, "num_classes": classes.num_classes, "args": dict(model_args)}
    if pruned:
        spec["pruned"] = True  # layer shapes differ from the builder's: see rtseg.compress
    return {
        "format": FORMAT, "version": VERSION,
        "model": spec,
        "state_dict": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "classes": classes.to_dict(),
        "normalization": {"mean": list(mean), "std": list(std)},
        "input_size": list(input_size) if input_size is not None else None,
        "config": config, "train_state": train_state, "metrics": metrics,
    }


def save_checkpoint(ckpt: dict, path: str | Path) -> None:
    """Write atomically: an interrupted save leaves the previous file intact."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def resolve_weights(weights: str | Path | None) -> Path:
    """A checkpoint path, or the name of a shipped model (None = the default shipped model)."""
    weights = DEFAULT_WEIGHTS if weights is None else weights
    if str(weights) in SHIPPED_WEIGHTS:
        path = Path(str(resources.files("rtseg") / "shipped" / SHIPPED_WEIGHTS[str(weights)]))
        if not path.is_file():
            raise CheckpointError(f"shipped model {weights!r} is missing from this install ({path})")
        return path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights not found: {weights!r} is neither a file nor a shipped model "
                              f"({', '.join(sorted(SHIPPED_WEIGHTS))})")
    return path


def load_checkpoint(weights: str | Path | None, map_location: Any = "cpu") -> dict:
    """Load and validate an rtseg checkpoint (path or shipped name)."""
    path = resolve_weights(weights)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle, zip and torch errors all mean "not a readable checkpoint"
        # torch's own message runs over many lines (weights_only advice); its first says why.
        lines = str(e).strip().splitlines()
        why = f"{type(e).__name__}: {lines[0][:160]}" if lines else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: not a file written by torch.save "
                              f"with plain tensors ({why})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rtseg checkpoint (no 'format: {FORMAT}' entry); "
                              "train with 'rtseg train' or convert the weights first")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer rtseg (checkpoint version "
                              f"{ckpt['version']} > {VERSION}); upgrade rtseg")
    for key in ("model", "state_dict", "classes", "normalization"):
        if key not in ckpt:
            raise CheckpointError(f"{path} is an rtseg checkpoint without {key!r}: the file is damaged")
    ckpt["path"] = str(path)
    return ckpt
