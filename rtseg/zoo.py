"""The model zoo: every architecture with its size and cost, and the trained weights that ship
(``rtseg models``, ``rtseg.model_table()``; ``docs/model_zoo.md`` is built from it by
``make zoo``)."""

from __future__ import annotations

import torch

from rtseg.checkpoint import SHIPPED_WEIGHTS, load_checkpoint
from rtseg.models import create_model, list_models
from rtseg.models.stats import count_flops, inference_parameters

__all__ = ["TABLE_SIZES", "inference_parameters", "model_table", "shipped_architectures"]

#: Sizes the table reports GFLOPs at: CamVid's 360x480 and Cityscapes' 1024x2048.
TABLE_SIZES = ((360, 480), (1024, 2048))


def shipped_architectures() -> dict[str, str]:
    """Shipped weights (``--weights NAME``) -> the architecture they are for (each file read once)."""
    return {name: load_checkpoint(name)["model"]["name"] for name in sorted(SHIPPED_WEIGHTS)}


def model_table(num_classes: int = 11, sizes: tuple[tuple[int, int], ...] = TABLE_SIZES) -> list[dict]:
    """One row per architecture: inference parameters and GFLOPs (a multiply-add counts 2) at
    each size for ``num_classes`` outputs, counted from shapes on the meta device, and the
    shipped weights."""
    shipped = shipped_architectures()
    rows = []
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes).eval()
        row = {"model": name, "params": inference_parameters(model)}
        for h, w in sizes:
            row[f"gflops_{h}x{w}"] = round(count_flops(model, (h, w), device="meta") / 1e9, 2)
        row["shipped"] = [weights for weights, arch in shipped.items() if arch == name]
        rows.append(row)
    return rows
