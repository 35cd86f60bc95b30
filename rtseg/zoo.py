"""The model zoo: every architecture with its size and cost, and the trained weights that ship
(``rtseg models``, ``rtseg.model_table()``; ``docs/model_zoo.md`` is built from it by
``make zoo``)."""

from __future__ import annotations

import torch

from rtseg.checkpoint import SHIPPED_WEIGHTS, load_checkpoint
from rtseg.errors import RtsegError
from rtseg.models import create_model, list_models
from rtseg.models.stats import count_flops, inference_parameters

__all__ = ["TABLE_SIZES", "inference_parameters", "model_table", "shipped_architectures"]

#: Sizes the table reports GFLOPs at: CamVid's 360x480 and Cityscapes' 1024x2048.
TABLE_SIZES = ((360, 480), (1024, 2048))


def shipped_architectures() -> dict[str, str]:
    """Shipped weights (``--weights NAME``) -> the architecture they are for (each file read once)."""
    return {name: load_checkpoint(name)["model"]["name"] for name in sorted(SHIPPED_WEIGHTS)}


def _parse_model_spec(spec: str) -> tuple[str, dict]:
    """``"icnet:filter_scale=0.5,backbone_weights=null"`` -> ``("icnet", {"filter_scale": 0.5,
    "backbone_weights": None})``: an architecture and its builder's arguments, each value read as
    YAML (as config overrides are)."""
    import yaml

    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise RtsegError(f"model {spec!r}: expected NAME or NAME:arg=value,..., e.g. icnet:filter_scale=0.5")
        kwargs[key] = yaml.safe_load(value)
    if name not in list_models():
        raise RtsegError(f"unknown model {name!r}: expected one of {', '.join(list_models())}")
    return name, kwargs


def model_table(num_classes: int = 11, sizes: tuple[tuple[int, int], ...] = TABLE_SIZES,
                models: list[str] | None = None) -> list[dict]:
    """One row per architecture: inference parameters and GFLOPs (a multiply-add counts 2) at
    each size for ``num_classes`` outputs, counted from shapes on the meta device, and the
    shipped weights. ``models``: the architectures to list (default all), each ``NAME`` or
    ``NAME:arg=value,...`` with arguments for its builder (e.g. ``icnet:filter_scale=0.5``; such
    a row lists no shipped weights)."""
    specs = [_parse_model_spec(spec) + (spec,) for spec in (models or list_models())]
    shipped = shipped_architectures()
    rows = []
    for name, kwargs, spec in specs:
        with torch.device("meta"):
            try:
                model = create_model(name, num_classes=num_classes, **kwargs).eval()
            except (TypeError, ValueError) as e:
                raise RtsegError(f"model {spec!r}: {e}") from None
        row = {"model": spec, "params": inference_parameters(model)}
        for h, w in sizes:
            row[f"gflops_{h}x{w}"] = round(count_flops(model, (h, w), device="meta") / 1e9, 2)
        row["shipped"] = [] if kwargs else [weights for weights, arch in shipped.items() if arch == name]
        rows.append(row)
    return rows
