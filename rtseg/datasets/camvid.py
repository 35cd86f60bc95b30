"""CamVid as distributed with the SegNet tutorial (Brostow et al. 2008; Badrinarayanan et al.).

On disk::

    ROOT/{train,val,test}/*.png            480x360 RGB frames
    ROOT/{train,val,test}annot/*.png       single-channel labels, ids 0-10, 11 = void

Void (id 11) becomes the ignore index, so models predict the 11 standard classes.
"""

from __future__ import annotations

from pathlib import Path

from rtseg.datasets.base import SegmentationDataset, Transform, id_lut, pair_by_stem, require_dir
from rtseg.datasets.classes import ClassTable
from rtseg.constants import IGNORE_INDEX
from rtseg.errors import DatasetError

CLASSES = ClassTable(
    names=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist"),
    palette=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
             (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
             (0, 128, 192)),
)
#: Raw id of the void class in the label PNGs.
VOID_ID = 11
SPLITS = ("train", "val", "test", "trainval")


class CamVid(SegmentationDataset):
    """CamVid (SegNet layout). ``split`` is train, val, test, or trainval (train + val)."""

    classes = CLASSES
    label_lut = id_lut({**{i: i for i in range(11)}, VOID_ID: IGNORE_INDEX})
    #: Raw label ids (for class-weight vectors indexed by raw id, void included).
    num_raw_ids = 12
    raw_void_id = VOID_ID

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 cache: bool = False) -> None:
        root = require_dir(Path(root), "CamVid root")
        if split not in SPLITS:
            raise DatasetError(f"CamVid has no split {split!r}: expected one of {', '.join(SPLITS)}")
        parts = ("train", "val") if split == "trainval" else (split,)
        samples = []
        for part in parts:
            samples += pair_by_stem(root / part, root / f"{part}annot", lambda p: p.name)
        super().__init__(samples, transform, cache, description=f"CamVid {split} ({root})")
