"""KITTI Road (Fritsch et al. 2013): road / not road.

On disk (``data_road.zip`` unpacked; ROOT may be ``data_road`` or its parent)::

    ROOT/training/image_2/{um,umm,uu}_NNNNNN.png
    ROOT/training/gt_image_2/{um,umm,uu}_road_NNNNNN.png    colour ground truth
    ROOT/training/gt_image_2/um_lane_NNNNNN.png             ego-lane ground truth (not read)
    ROOT/testing/image_2/...                                 no ground truth

Ground truth colours: magenta (255, 0, 255) road, red (255, 0, 0) not road, black outside the
valid area (ignored). Decoding follows the official devkit: valid where red > 0, road where
blue > 0.

KITTI has no validation split, so rtseg defines one, deterministically: within each category
(um, umm, uu), frames sorted by number, every fifth frame (positions 4, 9, 14, ...) is ``val``;
the rest is ``train``; ``trainval`` is all 289 labelled frames; ``test`` is the unlabelled
testing set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtseg.constants import IGNORE_INDEX
from rtseg.datasets.base import Sample, SegmentationDataset, Transform, pair_by_stem, read_image, require_dir
from rtseg.datasets.classes import ClassTable
from rtseg.errors import DatasetError

CLASSES = ClassTable(names=("not road", "road"), palette=((255, 0, 0), (255, 0, 255)))
CATEGORIES = ("um", "umm", "uu")
SPLITS = ("train", "val", "trainval", "test")
#: Every VAL_EVERY-th frame of a category (positions VAL_EVERY-1, 2*VAL_EVERY-1, ...) is val.
VAL_EVERY = 5


def _road_label_name(image: Path) -> str:
    category, number = image.stem.rsplit("_", 1)  # 'umm_000012' -> ('umm', '000012')
    return f"{category}_road_{number}.png"


class KittiRoad(SegmentationDataset):
    """KITTI Road, binary: 0 = not road, 1 = road, ignore outside the valid area."""

    classes = CLASSES

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 cache: bool = False) -> None:
        root = require_dir(Path(root), "KITTI Road root")
        if (root / "data_road").is_dir():
            root = root / "data_road"
        if split not in SPLITS:
            raise DatasetError(f"KITTI Road has no split {split!r}: expected one of {', '.join(SPLITS)}")
        if split == "test":
            img_dir = require_dir(root / "testing" / "image_2", "KITTI Road testing images")
            samples = [Sample(p, None) for p in sorted(img_dir.glob("*.png"))]
        else:
            samples = []
            for category in CATEGORIES:
                # The glob '{cat}_[0-9]*' keeps 'um_000000.png' apart from 'umm_000000.png'.
                frames = pair_by_stem(root / "training" / "image_2", root / "training" / "gt_image_2",
                                      _road_label_name, pattern=f"{category}_[0-9]*.png")
                for pos, sample in enumerate(frames):
                    is_val = pos % VAL_EVERY == VAL_EVERY - 1
                    if split == "trainval" or (split == "val") == is_val:
                        samples.append(sample)
        super().__init__(samples, transform, cache, description=f"KITTI Road {split} ({root})")

    def decode_label(self, path: Path) -> np.ndarray:
        gt = read_image(path)  # (H, W, 3) RGB
        label = np.full(gt.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        valid = gt[..., 0] > 0
        label[valid] = 0
        label[valid & (gt[..., 2] > 0)] = 1
        return label
