"""Loading ImageNet encoder weights through torchvision's weights API, or from a local file."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.models import WeightsEnum

from rtseg.errors import WeightsUnavailableError


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
