"""Your own data: a folder of images, a folder of class-index PNG masks, and a YAML file.

Layout (``ROOT/dataset.yaml`` says where the rest is; ``{split}`` is replaced by the split)::

    ROOT/dataset.yaml
    ROOT/images/{split}/NAME.jpg|png
    ROOT/masks/{split}/NAME.png          single-channel, one class index per pixel

``dataset.yaml``::

    classes: [background, road, car]          # names, index = class id
    palette: [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
    ignore_index: 255                         # mask value to ignore (optional, default 255)
    images: images/{split}                    # optional, these are the defaults
    masks: masks/{split}
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rtseg.constants import IGNORE_INDEX, IMAGE_EXTENSIONS
from rtseg.datasets.base import Sample, SegmentationDataset, Transform, id_lut, require_dir
from rtseg.datasets.classes import ClassTable
from rtseg.errors import DatasetError

SPEC_FILE = "dataset.yaml"


def read_spec(root: Path) -> dict:
    spec_path = root / SPEC_FILE
    if not spec_path.is_file():
        raise DatasetError(f"folder dataset {root} has no {SPEC_FILE}: expected class names, "
                           "palette and ignore_index there (see rtseg.datasets.folder)")
    try:
        spec = yaml.safe_load(spec_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise DatasetError(f"{spec_path} is not valid YAML: {e}") from None
    unknown = set(spec) - {"classes", "palette", "ignore_index", "images", "masks"}
    if unknown:
        raise DatasetError(f"{spec_path}: unknown keys {sorted(unknown)}; expected classes, "
                           "palette, ignore_index, images, masks")
    names, palette = spec.get("classes"), spec.get("palette")
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{spec_path}: 'classes' must be a non-empty list of class names")
    if not isinstance(palette, list) or len(palette) != len(names) or not all(
            isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in palette):
        raise DatasetError(f"{spec_path}: 'palette' must list one [R, G, B] (0-255) per class "
                           f"({len(names)} classes)")
    ignore = spec.get("ignore_index", IGNORE_INDEX)
    if not isinstance(ignore, int) or not 0 <= ignore <= 255:
        raise DatasetError(f"{spec_path}: 'ignore_index' must be an integer 0-255")
    if ignore < len(names):
        raise DatasetError(f"{spec_path}: ignore_index {ignore} is also a class id "
                           f"(0-{len(names) - 1}); expected a value outside the class ids")
    return spec


class FolderDataset(SegmentationDataset):
    """Images + class-index masks + ``dataset.yaml`` (see the module docstring)."""

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 cache: bool = False) -> None:
        root = require_dir(Path(root), "folder dataset root")
        spec = read_spec(root)
        ignore = spec.get("ignore_index", IGNORE_INDEX)
        self.classes = ClassTable(tuple(str(n) for n in spec["classes"]),
                                  tuple(tuple(c) for c in spec["palette"]))
        self.label_lut = id_lut({**{i: i for i in range(len(spec["classes"]))}, ignore: IGNORE_INDEX})
        img_dir = require_dir(root / spec.get("images", "images/{split}").format(split=split),
                              f"image folder for split {split!r}")
        mask_dir = require_dir(root / spec.get("masks", "masks/{split}").format(split=split),
                               f"mask folder for split {split!r}")
        samples = []
        for img in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            mask = mask_dir / f"{img.stem}.png"
            if not mask.is_file():
                raise DatasetError(f"image {img} has no mask: expected {mask}")
            samples.append(Sample(img, mask))
        super().__init__(samples, transform, cache, description=f"folder dataset {split} ({root})")
