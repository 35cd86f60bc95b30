"""Model registry: one dict of builder functions, one contract for every model.

Contract: input (N, 3, H, W) normalised images; in eval mode the output is logits
(N, num_classes, H, W) at the input resolution; in training mode a dict with ``"out"`` (those
logits) and any auxiliary outputs, whose weighting the loss owns.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from rtseg.models.bisenetv2 import bisenetv2
from rtseg.models.dabnet import dabnet
from rtseg.models.ddrnet import ddrnet23_slim
from rtseg.models.edanet import edanet
from rtseg.models.enet import enet
from rtseg.models.erfnet import erfnet
from rtseg.models.fcn8s import fcn8s, fcn8s_mobilenetv3
from rtseg.models.icnet import icnet
from rtseg.models.pidnet import pidnet_s
from rtseg.models.pspnet import pspnet50

MODELS: dict[str, Callable[..., nn.Module]] = {
    "bisenetv2": bisenetv2,
    "dabnet": dabnet,
    "ddrnet23_slim": ddrnet23_slim,
    "edanet": edanet,
    "enet": enet,
    "erfnet": erfnet,
    "fcn8s": fcn8s,
    "fcn8s_mobilenetv3": fcn8s_mobilenetv3,
    "icnet": icnet,
    "pidnet_s": pidnet_s,
    "pspnet50": pspnet50,
}

#: Builder arguments that only say how to initialise a model (pretrained encoders). A trained
#: checkpoint already holds those weights, so rebuilding from it leaves them out.
INIT_ONLY_ARGS = ("backbone_weights", "pspnet_weights")


def list_models() -> list[str]:
    return sorted(MODELS)


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """``create_model("enet", num_classes=11)``; keyword arguments go to the builder, and an
    unknown one is an error that lists the builder's arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(list_models())}")
    builder = MODELS[name]
    accepted = set(inspect.signature(builder).parameters) - {"num_classes"}
    unknown = set(kwargs) - accepted
    if unknown:
        raise ValueError(f"model {name!r} has no argument(s) {sorted(unknown)}: "
                         f"expected some of {sorted(accepted)}")
    return builder(num_classes=num_classes, **kwargs)
