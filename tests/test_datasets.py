"""Dataset loaders on fixtures in each exact on-disk format, and on the real CamVid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rtseg
from conftest import random_image, save_png
from rtseg.constants import IGNORE_INDEX
from rtseg.datasets import build_dataset, resolve_data_root
from rtseg.datasets.camvid import CLASSES as CAMVID_CLASSES
from rtseg.datasets.kitti_road import KittiRoad
from rtseg.errors import DatasetError

# --------------------------------------------------------------------------------- CamVid


def test_camvid_maps_void_to_ignore(tiny_camvid):
    ds = build_dataset("camvid", "train", tiny_camvid)
    assert len(ds) == 3 and ds.classes.num_classes == 11
    raw = np.asarray(Image.open(ds.samples[0].label))
    image, label = ds[0]
    assert image.shape == (3, 24, 32) and image.dtype == torch.uint8
    assert label.dtype == torch.int64
    assert torch.equal(label == IGNORE_INDEX, torch.from_numpy(raw == 11))
    assert torch.equal(label[raw != 11], torch.from_numpy(raw[raw != 11]).long())


def test_camvid_trainval_and_bad_split(tiny_camvid):
    assert len(build_dataset("camvid", "trainval", tiny_camvid)) == 6
    with pytest.raises(DatasetError, match="no split 'tst'"):
        build_dataset("camvid", "tst", tiny_camvid)


def test_camvid_cache_returns_same_frames(tiny_camvid):
    a = build_dataset("camvid", "val", tiny_camvid, cache=True)
    b = build_dataset("camvid", "val", tiny_camvid, cache=False)
    for i in range(len(a)):
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i]))


def test_data_root_from_environment(tiny_camvid, monkeypatch):
    monkeypatch.setenv("RTSEG_DATA", str(tiny_camvid.parent))
    assert resolve_data_root("camvid") == tiny_camvid
    monkeypatch.delenv("RTSEG_DATA")
    with pytest.raises(DatasetError, match="RTSEG_DATA"):
        resolve_data_root("camvid")
    with pytest.raises(DatasetError, match="unknown dataset 'camvd'.*camvid"):
        resolve_data_root("camvd")


# ------------------------------------------------------------------------------ bad input


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nowhere'}"):
        build_dataset("camvid", "train", tmp_path / "nowhere")


def test_image_without_label(tiny_camvid):
    (tiny_camvid / "trainannot" / "0001TP_000001.png").unlink()
    with pytest.raises(DatasetError, match=r"0001TP_000001.png has no label: expected .*trainannot"):
        build_dataset("camvid", "train", tiny_camvid)


def test_label_of_another_size(tiny_camvid):
    save_png(tiny_camvid / "trainannot" / "0001TP_000002.png", np.zeros((10, 10), np.uint8), "L")
    with pytest.raises(DatasetError, match=r"0001TP_000002.png is 10x10 .* 32x24"):
        build_dataset("camvid", "train", tiny_camvid)


def test_label_id_outside_class_table(tiny_camvid):
    lbl = np.zeros((24, 32), np.uint8)
    lbl[0, 0] = 40
    save_png(tiny_camvid / "trainannot" / "0001TP_000000.png", lbl, "L")
    ds = build_dataset("camvid", "train", tiny_camvid)
    with pytest.raises(DatasetError, match=r"0001TP_000000.png holds ids \[40\].*expected ids in 0-11"):
        ds[0]


def test_unreadable_image(tiny_camvid):
    (tiny_camvid / "train" / "0001TP_000000.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read .*0001TP_000000.png"):
        build_dataset("camvid", "train", tiny_camvid)


def test_rgb_label_is_rejected(tiny_camvid):
    save_png(tiny_camvid / "trainannot" / "0001TP_000000.png", np.zeros((24, 32, 3), np.uint8))
    ds = build_dataset("camvid", "train", tiny_camvid)
    with pytest.raises(DatasetError, match="mode RGB: expected a single-channel"):
        ds[0]


# ----------------------------------------------------------------------------- Cityscapes


def write_cityscapes(root: Path, split="val", cities=("aachen", "bochum"), h=16, w=32, seed=0,
                     train_ids_for: tuple[str, ...] = ()) -> list[tuple[Path, np.ndarray]]:
    """leftImg8bit/{split}/{city}/{city}_000000_{frame}_leftImg8bit.png + gtFine labelIds."""
    from cityscapesscripts.helpers.labels import labels

    rng = np.random.default_rng(seed)
    ids = np.array([label.id for label in labels if label.id >= 0], dtype=np.uint8)
    out = []
    for city in cities:
        stem = f"{city}_000000_000019"
        save_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", random_image(rng, h, w))
        label_ids = rng.choice(ids, size=(h, w)).astype(np.uint8)
        gt = root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
        save_png(gt, label_ids, "L")
        if city in train_ids_for:
            train = np.full((h, w), 255, np.uint8)
            for label in labels:
                if label.id >= 0 and 0 <= label.trainId < 255:
                    train[label_ids == label.id] = label.trainId
            save_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png", train, "L")
        out.append((gt, label_ids))
    return out


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    from cityscapesscripts.helpers.labels import id2label

    files = write_cityscapes(tmp_path, train_ids_for=("bochum",))
    ds = build_dataset("cityscapes", "val", tmp_path)
    assert ds.classes.num_classes == 19
    assert ds.classes.names[0] == "road" and ds.classes.names[18] == "bicycle"
    assert ds.classes.palette[13] == (0, 0, 142)  # car
    assert ds.samples[1].label.name.endswith("_labelTrainIds.png")  # read directly when present
    for i, (_, label_ids) in enumerate(files):
        _, label = ds[i]
        expected = np.vectorize(lambda v: id2label[int(v)].trainId if 0 <= id2label[int(v)].trainId < 255
                                else 255)(label_ids)
        np.testing.assert_array_equal(label.numpy(), expected)


def test_cityscapes_train_ids_back_to_label_ids():
    from rtseg.datasets.cityscapes import train_ids_to_label_ids

    pred = np.arange(19, dtype=np.uint8).reshape(1, 19)
    np.testing.assert_array_equal(
        train_ids_to_label_ids(pred)[0],
        [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33])


def test_cityscapes_missing_label(tmp_path):
    files = write_cityscapes(tmp_path)
    files[0][0].unlink()
    with pytest.raises(DatasetError, match=r"aachen_000000_000019_leftImg8bit.png has no label"):
        build_dataset("cityscapes", "val", tmp_path)


# ----------------------------------------------------------------------------- KITTI Road


def write_kitti(root: Path, per_category: int = 5, h: int = 12, w: int = 20, seed: int = 0) -> Path:
    """data_road/training/{image_2,gt_image_2} with road and lane ground truth, and testing/."""
    rng = np.random.default_rng(seed)
    base = root / "data_road"
    for cat in ("um", "umm", "uu"):
        for i in range(per_category):
            save_png(base / "training" / "image_2" / f"{cat}_{i:06d}.png", random_image(rng, h, w))
            gt = np.zeros((h, w, 3), np.uint8)
            gt[h // 3:, :] = (255, 0, 0)  # valid, not road
            gt[2 * h // 3:, 4:] = (255, 0, 255)  # road
            save_png(base / "training" / "gt_image_2" / f"{cat}_road_{i:06d}.png", gt)
            if cat == "um":  # lane ground truth: all magenta, must never be read as road
                lane = np.full((h, w, 3), (255, 0, 255), np.uint8)
                save_png(base / "training" / "gt_image_2" / f"um_lane_{i:06d}.png", lane)
    for i in range(2):
        save_png(base / "testing" / "image_2" / f"um_{i:06d}.png", random_image(rng, h, w))
    return root


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


# --------------------------------------------------------------------------------- Folder


def write_folder(root: Path, ignore: int = 255) -> Path:
    rng = np.random.default_rng(1)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(
        f"classes: [background, lane]\npalette: [[0, 0, 0], [255, 255, 0]]\nignore_index: {ignore}\n")
    for split in ("train", "val"):
        for i in range(2):
            save_png(root / "images" / split / f"f{i}.png", random_image(rng, 8, 8))
            mask = rng.integers(0, 2, (8, 8), dtype=np.uint8)
            mask[0, 0] = ignore
            save_png(root / "masks" / split / f"f{i}.png", mask, "L")
    return root


def test_folder_dataset(tmp_path):
    root = write_folder(tmp_path / "mine", ignore=7)
    ds = build_dataset("folder", "train", root)
    assert ds.classes.names == ("background", "lane") and ds.classes.palette[1] == (255, 255, 0)
    _, label = ds[0]
    assert label[0, 0] == IGNORE_INDEX and set(label.unique().tolist()) <= {0, 1, IGNORE_INDEX}


def test_folder_dataset_bad_spec(tmp_path):
    root = write_folder(tmp_path / "mine")
    (root / "dataset.yaml").write_text("classes: [a, b]\npalette: [[0, 0, 0]]\n")
    with pytest.raises(DatasetError, match="dataset.yaml: 'palette' must list one"):
        build_dataset("folder", "train", root)


# ------------------------------------------------------------------------- CLI and resize


def test_dataset_info(tiny_camvid):
    info = rtseg.dataset_info("camvid", "train", tiny_camvid)
    labels = np.stack([np.asarray(Image.open(p)) for p in sorted((tiny_camvid / "trainannot").glob("*.png"))])
    assert info["num_images"] == 3 and info["class_names"] == list(CAMVID_CLASSES.names)
    assert info["class_pixel_counts"] == np.bincount(labels.ravel(), minlength=12)[:11].tolist()
    assert info["ignored_pixels"] == int((labels == 11).sum())


def test_datasets_resize_keeps_layout(tiny_camvid, tmp_path):
    out = tmp_path / "small"
    assert rtseg.resize_dataset("camvid", (12, 16), out, data_root=tiny_camvid) == 6  # train + val
    small = build_dataset("camvid", "val", out)
    image, label = small[0]
    assert image.shape == (3, 12, 16) and label.shape == (12, 16)
    orig = np.asarray(Image.open(tiny_camvid / "valannot" / "0001TP_000000.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(small.samples[0].label)), orig[1::2, 1::2])


def test_real_camvid_layout(camvid_root):
    train = build_dataset("camvid", "train", camvid_root)
    val = build_dataset("camvid", "val", camvid_root)
    assert (len(train), len(val)) == (367, 101)
    image, label = val[0]
    assert image.shape == (3, 360, 480) and label.shape == (360, 480)
