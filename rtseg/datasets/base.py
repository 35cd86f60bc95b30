"""Shared machinery of the dataset loaders: pairing, validation, decoding, caching."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from rtseg.constants import IGNORE_INDEX
from rtseg.datasets.classes import ClassTable
from rtseg.errors import DatasetError
from rtseg.progress import progress_bar

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Sample:
    image: Path
    label: Path | None  # None for splits without ground truth (e.g. KITTI testing)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path} is not a folder")
    return path


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, or a DatasetError naming the file."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # writable copy
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None


def read_label_png(path: Path) -> np.ndarray:
    """(H, W) uint8 single-channel label, or a DatasetError naming the file."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(f"label {path} has mode {im.mode}: expected a single-channel "
                                   "(mode L or P) PNG of class ids")
            arr = np.asarray(im)
    except DatasetError:
        raise
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read label {path}: {e}") from None
    if arr.dtype != np.uint8:
        if arr.max(initial=0) > 255:
            raise DatasetError(f"label {path} holds ids above 255: expected 8-bit class ids")
        arr = arr.astype(np.uint8)
    return arr


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from None


def id_lut(mapping: dict[int, int]) -> np.ndarray:
    """(256,) int16 lookup from raw label ids to train ids; ids not in ``mapping`` give -1."""
    lut = np.full(256, -1, dtype=np.int16)
    for raw, train in mapping.items():
        lut[raw] = train
    return lut


def map_ids(raw: np.ndarray, lut: np.ndarray, path: Path) -> np.ndarray:
    """Raw label ids -> uint8 train ids through ``lut`` (see :func:`id_lut`); ids the table does
    not allow are an error naming the file, the ids found and the ids expected."""
    mapped = lut[raw]
    if (mapped < 0).any():
        bad = sorted(int(v) for v in np.unique(raw[mapped < 0]))[:10]
        valid = [int(v) for v in np.flatnonzero(lut >= 0)]
        raise DatasetError(f"label {path} holds ids {bad} outside the class table: expected "
                           f"ids in {_ranges(valid)}")
    return mapped.astype(np.uint8)


class SegmentationDataset(Dataset):
    """A list of (image, label) files, decoded to ``(image, label)`` tensors.

    ``image`` is (3, H, W) uint8 before the transform; ``label`` is (H, W) int64 train ids with
    :data:`IGNORE_INDEX` for void. Subclasses set :attr:`classes` and either :attr:`label_lut`
    (single-channel labels: raw id -> train id, -1 = not allowed) or override
    :meth:`decode_label`.

    Args:
        samples: the files.
        transform: joint transform applied after decoding (see :mod:`rtseg.datasets.transforms`).
        cache: decode every frame once, up front, and keep it in memory (small datasets).
    """

    classes: ClassTable
    label_lut: np.ndarray | None = None

    def __init__(self, samples: list[Sample], transform: Transform | None = None,
                 cache: bool = False, description: str = "dataset") -> None:
        if not samples:
            raise DatasetError(f"{description}: no images found")
        self.samples = list(samples)
        self.transform = transform
        self.description = description
        self._check_sizes()
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        if cache:
            self._cache = [self.load(i) for i in progress_bar(range(len(self)), desc=f"caching {description}",
                                                             unit="img")]

    @property
    def has_labels(self) -> bool:
        return all(s.label is not None for s in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def _check_sizes(self) -> None:
        # Header reads only: cheap, and catches the mistakes that would otherwise surface as a
        # shape error deep inside a DataLoader worker.
        for s in self.samples:
            if s.label is None:
                continue
            hi, wi = image_size(s.image)
            hl, wl = image_size(s.label)
            if (hi, wi) != (hl, wl):
                raise DatasetError(f"label {s.label} is {wl}x{hl} but its image {s.image} is "
                                   f"{wi}x{hi} (WxH): expected the same size")

    def decode_label(self, path: Path) -> np.ndarray:
        """Read a label file and map it to (H, W) uint8 train ids (IGNORE_INDEX = void)."""
        assert self.label_lut is not None, "subclasses set label_lut or override decode_label"
        return map_ids(read_label_png(path), self.label_lut, path)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded (H, W, 3) uint8 image and (H, W) uint8 train-id label, before transforms."""
        if self._cache is not None:
            return self._cache[index]
        s = self.samples[index]
        image = read_image(s.image)
        if s.label is None:
            label = np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        else:
            label = self.decode_label(s.label)
            if label.shape != image.shape[:2]:
                raise DatasetError(f"label {s.label} is {label.shape[1]}x{label.shape[0]} but its "
                                   f"image {s.image} is {image.shape[1]}x{image.shape[0]}")
        return image, label

    def load_label(self, index: int) -> np.ndarray:
        """Only the label (for statistics): no image decoding."""
        if self._cache is not None:
            return self._cache[index][1]
        s = self.samples[index]
        if s.label is None:
            raise DatasetError(f"{self.description} has no labels (image {s.image})")
        return self.decode_label(s.label)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.load(index)
        img_t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (3, H, W) uint8
        lbl_t = torch.from_numpy(label.astype(np.int64))  # (H, W)
        if self.transform is not None:
            img_t, lbl_t = self.transform(img_t, lbl_t)
        return img_t, lbl_t


def _ranges(values: list[int]) -> str:
    """[0,1,2,3,7] -> '0-3, 7'."""
    out, start, prev = [], None, None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            out.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = v
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(out)


def pair_by_stem(image_dir: Path, label_dir: Path, label_name: Callable[[Path], str],
                 pattern: str = "*.png") -> list[Sample]:
    """Pair every image in ``image_dir`` with ``label_dir / label_name(image)``; a missing label
    is an error naming both files."""
    require_dir(image_dir, "image folder")
    require_dir(label_dir, "label folder")
    samples = []
    for img in sorted(image_dir.glob(pattern)):
        lbl = label_dir / label_name(img)
        if not lbl.is_file():
            raise DatasetError(f"image {img} has no label: expected {lbl}")
        samples.append(Sample(img, lbl))
    return samples
