"""Cityscapes fine annotations (Cordts et al. 2016), 19 train classes.

On disk (as downloaded from cityscapes-dataset.com)::

    ROOT/leftImg8bit/{train,val,test}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    ROOT/gtFine/{train,val,test}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png
    ROOT/gtFine/.../*_gtFine_labelTrainIds.png   (optional, from createTrainIdLabelImgs)

Label ids are mapped to train ids with the official label table from ``cityscapesscripts``
(``pip install rtseg[cityscapes]``); ``*_labelTrainIds.png`` is read directly when present.
:func:`train_ids_to_label_ids` maps predictions back to label ids for the official evaluator.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from rtseg.constants import IGNORE_INDEX
from rtseg.datasets.base import Sample, SegmentationDataset, Transform, id_lut, map_ids, read_label_png, require_dir
from rtseg.datasets.classes import ClassTable
from rtseg.errors import DatasetError

SPLITS = ("train", "val", "test", "trainval")
IMAGE_SUFFIX = "_leftImg8bit.png"


def _official_labels():
    try:
        from cityscapesscripts.helpers import labels
    except ImportError:  # pragma: no cover - depends on the install
        raise DatasetError("Cityscapes needs the official label table from cityscapesscripts: "
                           "pip install 'rtseg[cityscapes]'") from None
    return labels.labels


@lru_cache(maxsize=1)
def cityscapes_classes() -> ClassTable:
    """The 19 evaluated classes in train-id order, with their official names and colours."""
    train = sorted((lab for lab in _official_labels() if 0 <= lab.trainId < IGNORE_INDEX),
                   key=lambda lab: lab.trainId)
    return ClassTable(tuple(lab.name for lab in train), tuple(tuple(lab.color) for lab in train))


@lru_cache(maxsize=1)
def _label_id_lut() -> np.ndarray:
    # Every official id (0..33) is allowed; those without a train id become the ignore index.
    return id_lut({lab.id: (lab.trainId if 0 <= lab.trainId < IGNORE_INDEX else IGNORE_INDEX)
                   for lab in _official_labels() if lab.id >= 0})


@lru_cache(maxsize=1)
def _train_id_lut() -> np.ndarray:
    return id_lut({**{i: i for i in range(cityscapes_classes().num_classes)},
                   IGNORE_INDEX: IGNORE_INDEX})


def train_ids_to_label_ids(pred: np.ndarray) -> np.ndarray:
    """(H, W) train ids -> (H, W) uint8 official label ids (ignore -> 0 'unlabeled'), the format
    the official evaluator and benchmark server expect."""
    lut = np.zeros(256, dtype=np.uint8)
    for lab in _official_labels():
        if 0 <= lab.trainId < IGNORE_INDEX and lab.id >= 0:
            lut[lab.trainId] = lab.id
    return lut[pred.astype(np.intp) & 0xFF]


def frame_stem(image: Path) -> str:
    """'aachen_000000_000019_leftImg8bit.png' -> 'aachen_000000_000019'."""
    return image.name[: -len(IMAGE_SUFFIX)]


class Cityscapes(SegmentationDataset):
    """Cityscapes gtFine. ``split``: train, val, test (labels are dummies there), or trainval."""

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 cache: bool = False) -> None:
        root = require_dir(Path(root), "Cityscapes root")
        if split not in SPLITS:
            raise DatasetError(f"Cityscapes has no split {split!r}: expected one of {', '.join(SPLITS)}")
        self.classes = cityscapes_classes()
        samples = []
        for part in (("train", "val") if split == "trainval" else (split,)):
            img_dir = require_dir(root / "leftImg8bit" / part, "Cityscapes image folder")
            gt_dir = require_dir(root / "gtFine" / part, "Cityscapes gtFine folder")
            for img in sorted(img_dir.glob(f"*/*{IMAGE_SUFFIX}")):
                stem, city = frame_stem(img), img.parent.name
                train_ids = gt_dir / city / f"{stem}_gtFine_labelTrainIds.png"
                label_ids = gt_dir / city / f"{stem}_gtFine_labelIds.png"
                if train_ids.is_file():
                    samples.append(Sample(img, train_ids))
                elif label_ids.is_file():
                    samples.append(Sample(img, label_ids))
                else:
                    raise DatasetError(f"image {img} has no label: expected {label_ids}")
        super().__init__(samples, transform, cache, description=f"Cityscapes {split} ({root})")

    def decode_label(self, path: Path) -> np.ndarray:
        lut = _train_id_lut() if path.name.endswith("_labelTrainIds.png") else _label_id_lut()
        return map_ids(read_label_png(path), lut, path)
