"""CamVid as distributed with the SegNet tutorial (Brostow et al. 2008; Badrinarayanan et al.).

On disk::

    ROOT/{train,val,test}/*.png            480x360 RGB frames
    ROOT/{train,val,test}annot/*.png       single-channel labels, ids 0-10, 11 = void

Void (id 11) becomes the ignore index, so models predict the 11 standard classes.
"""

from __future__ import annotations

from pathlib import Path

from rtseg.constants import IGNORE_INDEX
from rtseg.datasets.base import SegmentationDataset, Transform, id_lut, pair_by_stem, require_dir
from rtseg.datasets.classes import ClassTable
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


def _sequence(path: Path) -> str:
    """The recording a frame comes from: '0006R0_f02310.png' -> '0006R0' ('Seq05VD', ...)."""
    return path.name.split("_")[0]


class CamVid(SegmentationDataset):
    """CamVid (SegNet layout). ``split`` is train, val, test, or trainval (train + val),
    optionally narrowed to recordings: ``train/-0006R0`` drops sequence 0006R0 from train,
    ``train/0006R0`` keeps only it (frame names start with their sequence). Val covers only
    0016E5, which train covers too; a whole sequence held out of training (say 0006R0) is a
    better guide to unseen streets."""

    classes = CLASSES
    label_lut = id_lut({**{i: i for i in range(11)}, VOID_ID: IGNORE_INDEX})
    #: Raw label ids (for class-weight vectors indexed by raw id, void included).
    num_raw_ids = 12
    raw_void_id = VOID_ID

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 cache: bool = False) -> None:
        root = require_dir(Path(root), "CamVid root")
        base, _, sequences = split.partition("/")
        if base not in SPLITS:
            raise DatasetError(f"CamVid has no split {split!r}: expected one of {', '.join(SPLITS)}, optionally "
                               "with /SEQ or /-SEQ (e.g. train/-0006R0)")
        parts = ("train", "val") if base == "trainval" else (base,)
        samples = []
        for part in parts:
            samples += pair_by_stem(root / part, root / f"{part}annot", lambda p: p.name)
        if sequences:
            drop = sequences.startswith("-")
            wanted = set(sequences.lstrip("-").split(","))
            found = {_sequence(s.image) for s in samples}
            if not wanted <= found:
                raise DatasetError(f"CamVid {base} has no sequence {sorted(wanted - found)[0]!r}: it holds "
                                   f"{', '.join(sorted(found))}")
            samples = [s for s in samples if (_sequence(s.image) in wanted) != drop]
        super().__init__(samples, transform, cache, description=f"CamVid {split} ({root})")
