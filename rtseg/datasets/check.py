"""``rtseg datasets check ROOT``: read every image and mask of a folder dataset once and report
every problem in one go, instead of one error at a time at training time.

Errors (training would fail or learn from wrong labels): no or a broken ``dataset.yaml``, an
image without its mask or a mask without its image, a file that cannot be read or is empty, a
mask that is not single-channel, a mask of another size than its image, ids outside the class
table. Warnings: a train split without a val split (the shipped recipes validate on ``val``),
classes that never occur in a split, and the same image in two splits (by file content), which
makes a validation score flatter itself. Then the class histogram per split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rtseg.constants import IMAGE_EXTENSIONS
from rtseg.errors import DatasetError


@dataclass
class Problem:
    severity: str  # "error" or "warning"
    path: str  # the file or folder it is about
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


@dataclass
class CheckReport:
    root: str
    splits: dict[str, int] = field(default_factory=dict)  # split -> image count
    class_names: list[str] = field(default_factory=list)
    #: split -> pixels of each class, then the ignored pixels
    histogram: dict[str, list[int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"root": self.root, "splits": self.splits, "class_names": self.class_names,
                "histogram": self.histogram, "ok": self.ok,
                "problems": [p.__dict__ for p in self.problems]}


def _splits(root: Path, template: str) -> list[str]:
    """The splits present: the folders that ``template`` ("images/{split}") matches."""
    head, _, tail = template.partition("{split}")
    base = root / head
    if not base.is_dir():
        return []
    return sorted(d.name for d in base.iterdir() if d.is_dir() and (not tail or (d / tail.lstrip("/")).is_dir()))


def _read(path: Path, report: CheckReport) -> Image.Image | None:
    if path.stat().st_size == 0:
        report.problems.append(Problem("error", str(path), "the file is empty"))
        return None
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except Exception as e:  # any decoder error: name the file, go on with the others
        report.problems.append(Problem("error", str(path), f"cannot be read ({type(e).__name__}: {e})"))
        return None


def check_folder(root: str | Path, splits: list[str] | None = None) -> CheckReport:
    """Check the folder dataset at ``root`` (layout: :mod:`rtseg.datasets.folder`); every split
    found, or ``splits``. Never raises for a problem of the data: it is in the report."""
    from rtseg.datasets.folder import read_spec

    root = Path(root)
    report = CheckReport(str(root))
    if not root.is_dir():
        report.problems.append(Problem("error", str(root), "is not a folder"))
        return report
    try:
        spec = read_spec(root)
    except DatasetError as e:
        report.problems.append(Problem("error", str(root / "dataset.yaml"), str(e)))
        return report
    names = [str(n) for n in spec["classes"]]
    ignore = spec.get("ignore_index", 255)
    report.class_names = names
    img_t, mask_t = spec.get("images", "images/{split}"), spec.get("masks", "masks/{split}")
    found = _splits(root, img_t)
    splits = splits or found
    if not splits:
        report.problems.append(Problem("error", str(root / img_t.partition("{split}")[0]),
                                       f"no split folders found (expected {img_t}, e.g. images/train)"))
    if "train" in found and "val" not in found:
        report.problems.append(Problem("warning", str(root / img_t.partition("{split}")[0]),
                                       "no val split: training with the shipped recipes validates on val; make one "
                                       "(rtseg datasets convert --val-fraction) or set data.val_split"))
    seen: dict[str, str] = {}  # image content digest -> first file
    for split in splits:
        _check_split(root, split, img_t, mask_t, names, ignore, seen, report)
    return report


def _check_split(root: Path, split: str, img_t: str, mask_t: str, names: list[str], ignore: int,
                 seen: dict[str, str], report: CheckReport) -> None:
    img_dir, mask_dir = root / img_t.format(split=split), root / mask_t.format(split=split)
    counts = np.zeros(len(names) + 1, dtype=np.int64)  # classes, then ignored
    report.histogram[split] = counts.tolist()
    for d, what in ((img_dir, "image"), (mask_dir, "mask")):
        if not d.is_dir():
            report.problems.append(Problem("error", str(d), f"the {what} folder of split {split!r} is missing"))
    if not img_dir.is_dir() or not mask_dir.is_dir():
        return
    images = {p.stem: p for p in sorted(img_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() == ".png"}
    report.splits[split] = len(images)
    for stem in sorted(set(masks) - set(images)):
        report.problems.append(Problem("error", str(masks[stem]), f"a mask without an image (expected "
                                                                  f"{img_dir / stem}.jpg or .png)"))
    for stem, img_path in images.items():
        digest = hashlib.sha256(img_path.read_bytes()).hexdigest()
        other = seen.setdefault(digest, str(img_path))
        if other != str(img_path) and img_path.stat().st_size:
            report.problems.append(Problem("warning", str(img_path), f"the same image as {other} (by content): "
                                                                     "a frame in two splits flatters the score"))
        if stem not in masks:
            report.problems.append(Problem("error", str(img_path), f"an image without its mask (expected "
                                                                   f"{mask_dir / stem}.png)"))
            continue
        image, mask = _read(img_path, report), _read(masks[stem], report)
        if image is None or mask is None:
            continue
        if mask.mode not in ("L", "P", "I", "I;16"):
            report.problems.append(Problem("error", str(masks[stem]), f"mode {mask.mode}: expected a single-channel "
                                                                      "PNG of class ids (convert colour masks "
                                                                      "with rtseg datasets convert)"))
            continue
        if mask.size != image.size:
            report.problems.append(Problem("error", str(masks[stem]), f"{mask.size[0]}x{mask.size[1]} but its image "
                                                                      f"is {image.size[0]}x{image.size[1]} (WxH)"))
            continue
        ids = np.asarray(mask).astype(np.int64).ravel()
        bins = np.bincount(ids, minlength=max(256, int(ids.max()) + 1))
        bad = [int(v) for v in np.flatnonzero(bins) if v >= len(names) and v != ignore]
        if bad:
            report.problems.append(Problem("error", str(masks[stem]), f"ids {bad[:10]} outside the class table "
                                                                      f"(0-{len(names) - 1}, {ignore} ignored)"))
        counts[: len(names)] += bins[: len(names)]
        counts[-1] += bins[ignore]
    report.histogram[split] = counts.tolist()
    for i, name in enumerate(names):
        if images and counts[i] == 0:
            report.problems.append(Problem("warning", str(mask_dir), f"class {i} ({name}) never occurs in "
                                                                     f"split {split!r}"))
