"""Pre-resize a dataset once, keeping its on-disk layout (``rtseg datasets resize``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from rtseg.datasets import build_dataset, resolve_data_root
from rtseg.datasets.base import SegmentationDataset
from rtseg.errors import DatasetError
from rtseg.io import atomic_path
from rtseg.progress import progress_bar


def _resize_file(src: Path, dst: Path, size: tuple[int, int], resample) -> None:
    try:
        with Image.open(src) as im:
            out = im.resize((size[1], size[0]), resample)
    except OSError as e:
        raise DatasetError(f"cannot read {src}: {e}") from None
    with atomic_path(dst) as tmp:
        out.save(tmp, format="PNG" if dst.suffix.lower() == ".png" else None)


def resize_split(dataset: SegmentationDataset, root: Path, out: Path, size: list[int]) -> int:
    """One split: write every image (bilinear) and label (nearest: ids stay exact) of ``dataset`` at
    ``size`` = (H, W) under ``out``, at the same path relative to ``root``. Also copies small
    metadata files at the top of ``root`` (index lists, dataset.yaml). Returns frames written."""
    root, out = root.resolve(), out.resolve()
    if out == root:
        raise DatasetError("--out must differ from the data root (the originals are kept)")
    for meta in list(root.glob("*.txt")) + list(root.glob("*.yaml")):
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(meta, out / meta.name)
    for s in progress_bar(dataset.samples, desc=f"resizing {dataset.description}", unit="img"):
        _resize_file(s.image, out / s.image.resolve().relative_to(root), size, Image.BILINEAR)
        if s.label is not None:
            _resize_file(s.label, out / s.label.resolve().relative_to(root), size, Image.NEAREST)
    return len(dataset.samples)


def resize_dataset(dataset: str, size: list[int] | tuple[int, int], out: str | Path,
                  splits: list[str] | tuple[str, ...] = ("train", "val"), data_root: str | Path | None = None) -> int:
    """``rtseg datasets resize``: a resized copy of ``splits`` of ``dataset`` under ``out``, in the
    dataset's own layout (so ``--data-root OUT`` works like the original). Returns frames written."""
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise DatasetError(f"--size {h}x{w}: height and width must be positive")
    root = resolve_data_root(dataset, data_root)
    return sum(resize_split(build_dataset(dataset, split, root), root, Path(out), [h, w]) for split in splits)
