"""rtseg.datasets.kitti_road: the road ground truth decoded, and the train / val / test splits."""

from __future__ import annotations

from conftest import write_kitti
from rtseg.constants import IGNORE_INDEX
from rtseg.datasets import build_dataset
from rtseg.datasets.kitti_road import KittiRoad


def test_kitti_road_decoding_and_split(tmp_path):
    root = write_kitti(tmp_path)
    train = KittiRoad(root, "train")
    val = KittiRoad(root, "val")
    both = KittiRoad(root / "data_road", "trainval")  # either folder works
    assert (len(train), len(val), len(both)) == (12, 3, 15)
    assert sorted(s.image.name for s in val.samples) == ["um_000004.png", "umm_000004.png", "uu_000004.png"]
    assert all("_road_" in s.label.name for s in both.samples)
    _, label = train[0]
    assert (label[: 12 // 3] == IGNORE_INDEX).all()  # black: outside the valid area
    assert (label[4:8] == 0).all()  # red: not road
    assert (label[8:, 4:] == 1).all() and (label[8:, :4] == 0).all()  # magenta: road
    test = KittiRoad(root, "test")
    assert len(test) == 2 and not test.has_labels
    assert build_dataset("kitti_road", "val", root).classes.names == ("not road", "road")
