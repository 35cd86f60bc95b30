"""Dataset loaders, one module each, behind one builder.

``--data-root DIR`` names the dataset's own folder. Without it, rtseg looks in
``$RTSEG_DATA/<folder>`` where ``<folder>`` is the dataset's entry in :data:`DEFAULT_FOLDERS`.
"""

from __future__ import annotations

import os
from pathlib import Path

from rtseg.constants import DATA_ENV
from rtseg.datasets.base import SegmentationDataset, Transform
from rtseg.datasets.camvid import CamVid
from rtseg.datasets.cityscapes import Cityscapes
from rtseg.datasets.classes import ClassTable
from rtseg.datasets.folder import FolderDataset
from rtseg.datasets.kitti_road import KittiRoad
from rtseg.errors import DatasetError

DATASETS: dict[str, type[SegmentationDataset]] = {
    "camvid": CamVid,
    "cityscapes": Cityscapes,
    "kitti_road": KittiRoad,
    "folder": FolderDataset,
}
#: Sub-folder of $RTSEG_DATA holding each dataset.
DEFAULT_FOLDERS = {"camvid": "camvid", "cityscapes": "cityscapes", "kitti_road": "kitti_road",
                   "folder": "folder"}


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def resolve_data_root(name: str, data_root: str | Path | None = None) -> Path:
    """The folder of dataset ``name``: ``data_root`` if given, else ``$RTSEG_DATA/<folder>``."""
    _check_name(name)
    if data_root is not None:
        return Path(data_root).expanduser()
    base = os.environ.get(DATA_ENV)
    if not base:
        raise DatasetError(f"no data root for {name}: pass --data-root DIR or set {DATA_ENV} to a "
                           f"folder holding {DEFAULT_FOLDERS[name]}/")
    return Path(base).expanduser() / DEFAULT_FOLDERS[name]


def build_dataset(name: str, split: str, data_root: str | Path | None = None,
                  transform: Transform | None = None, cache: bool = False) -> SegmentationDataset:
    """``build_dataset("camvid", "train", "/data/camvid")`` -> a :class:`SegmentationDataset`."""
    root = resolve_data_root(name, data_root)
    return DATASETS[name](root, split, transform=transform, cache=cache)


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}: expected one of {', '.join(list_datasets())}")


__all__ = ["DATASETS", "CamVid", "Cityscapes", "ClassTable", "FolderDataset", "KittiRoad",
           "SegmentationDataset", "build_dataset", "list_datasets", "resolve_data_root"]
