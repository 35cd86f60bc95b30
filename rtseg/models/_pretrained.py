"""Initial weights for the networks: ImageNet encoders through torchvision's weights API or a
local file, and another rtseg model's checkpoint (ICNet from PSPNet50)."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.models import WeightsEnum

from rtseg.checkpoint import load_checkpoint
from rtseg.errors import CheckpointError, WeightsUnavailableError


def checkpoint_state_dict(weights: str | Path, model_name: str, what: str) -> dict[str, torch.Tensor]:
    """The state dict of an rtseg checkpoint (path or shipped name) that must hold a
    ``model_name`` network; ``what`` names the argument in the error otherwise. The checkpoint
    is read and validated by :func:`rtseg.checkpoint.load_checkpoint`, the one reader."""
    ckpt = load_checkpoint(weights)
    if ckpt["model"]["name"] != model_name:
        raise CheckpointError(f"{what}: {weights} holds a {ckpt['model']['name']!r} model, not {model_name}")
    return ckpt["state_dict"]


def load_encoder_state_dict(weights: WeightsEnum, source: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision classification model.

    ``source`` is ``"imagenet"`` (torchvision's official weights ``weights``: taken from the
    torch hub cache, downloaded there when online) or the path of a local ``.pth`` file holding
    that model's state dict (e.g. the file torchvision downloads, copied from another machine).
    """
    if str(source) != "imagenet":
        path = Path(source).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"backbone weights file not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise WeightsUnavailableError(f"cannot read backbone weights {path}: {e}") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        return state
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # URLError, socket and SSL errors: all mean "could not download"
        hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise WeightsUnavailableError(
            f"cannot download ImageNet weights {weights} ({type(e).__name__}: {e}). Offline? Fetch "
            f"{weights.url} on a connected machine and either copy it to {hub} or pass its path "
            f"as backbone_weights=/path/to/{Path(weights.url).name}") from None
