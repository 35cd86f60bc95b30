"""``rtseg datasets convert``: someone's labels into the folder layout rtseg trains on
(:mod:`rtseg.datasets.folder`: ``dataset.yaml``, ``images/SPLIT``, ``masks/SPLIT`` of class ids).

Two sources:

- **colour-coded masks** (``--from colour``): an RGB mask per image, one colour per class, the
  colours given by the source's ``dataset.yaml`` palette or by a CVAT ``labelmap.txt`` (CVAT's
  "Segmentation mask 1.1" export is exactly this: ``SegmentationClass/*.png`` beside
  ``JPEGImages/``); a colour in no class is an error naming the file and the colour, black
  ``(0, 0, 0)`` is void unless a class has it.
- **Labelme** (``--from labelme``): one JSON per image, polygons (and rectangles, circles,
  lines) with label names, drawn in file order so later shapes cover earlier ones. Labelme was
  chosen because its per-image JSON is self-contained (the shapes, the label names, the image's
  name and size), so it converts without the tool; a CVAT project exports colour masks, above.

Splits: the source's ``train``/``val``/... subfolders when it has them, kept as they are. A
source without them (a flat folder of Labelme JSONs, CVAT's ``JPEGImages/``, ``images/`` +
``masks/`` without subfolders) is split: ``val_fraction`` of its frames (``round(N * F)``, at least
one when there are two or more, none when ``F`` is 0) go to ``val``, the rest to ``train``, so the
shipped recipes (``val_split: val``) train on it at once. Which frames: the first ones in an order
fixed by a hash of each file name, so the same files on every run and every machine. Frames are
split one by one: neighbouring frames of a video land on both sides and flatter the val score, so
sequences want split folders made by hand (whole recordings in ``val``).

The output is written into a temporary folder beside ``--out`` and renamed into place at the end,
so an interrupted conversion leaves no partial dataset behind.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from rtseg.constants import IGNORE_INDEX, IMAGE_EXTENSIONS
from rtseg.errors import DatasetError
from rtseg.progress import progress_bar

SOURCES = ("colour", "labelme")
#: The share of a flat source's frames that becomes ``val`` unless told otherwise.
VAL_FRACTION = 0.1
_FLAT = ""  # the split key of a source without split folders, until it is split


def _palette_from(source: Path) -> tuple[list[str], list[list[int]]]:
    """Class names and colours: the source's dataset.yaml, else a CVAT labelmap.txt."""
    spec_path, labelmap = source / "dataset.yaml", source / "labelmap.txt"
    if spec_path.is_file():
        try:
            spec = yaml.safe_load(spec_path.read_text()) or {}
            names, palette = spec.get("classes"), spec.get("palette")
            if not isinstance(names, list) or not isinstance(palette, list) or len(names) != len(palette):
                raise ValueError
            return [str(n) for n in names], [[int(v) for v in c][:3] for c in palette]
        except (yaml.YAMLError, ValueError, TypeError, AttributeError):
            raise DatasetError(f"{spec_path}: expected 'classes' and 'palette' lists of the same length, "
                               "a colour being [R, G, B]") from None
    if labelmap.is_file():  # CVAT / Pascal VOC: "name:r,g,b:parts:actions" per line
        names, palette = [], []
        for number, line in enumerate(labelmap.read_text().splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                name, colour = line.split(":")[:2]
                rgb = [int(v) for v in colour.split(",")]
                if len(rgb) != 3:
                    raise ValueError
            except ValueError:
                raise DatasetError(f"{labelmap}, line {number}: expected name:R,G,B:..., got {line!r}") from None
            if name.strip().lower() == "background":
                continue  # void
            names.append(name.strip())
            palette.append(rgb)
        return names, palette
    raise DatasetError(f"{source}: no dataset.yaml (classes + palette) or CVAT labelmap.txt to read the "
                       "class colours from")


def _splits(source: Path, pattern: str) -> dict[str, Path]:
    """{split: folder}: the subfolders holding ``pattern``, else {_FLAT: source}."""
    subs = {d.name: d for d in sorted(source.iterdir()) if d.is_dir() and list(d.glob(pattern))}
    return subs or {_FLAT: source}


def check_val_fraction(val_fraction: float | str) -> float:
    """``val_fraction`` (a number, or its text as typed) as a float in [0, 1), else a
    DatasetError naming the option."""
    try:
        f = float(val_fraction)
    except (TypeError, ValueError):
        f = math.nan
    if not 0 <= f < 1:  # NaN too
        raise DatasetError(f"--val-fraction {val_fraction}: expected a fraction from 0 (everything in train) "
                           "up to, not including, 1")
    return f


def val_count(n: int, val_fraction: float) -> int:
    """How many of ``n`` frames a flat source gives to val: round(n * F), at least 1 when n >= 2
    and F > 0, and never all of them."""
    if n < 2 or val_fraction <= 0:
        return 0
    return min(n - 1, max(1, math.floor(n * val_fraction + 0.5)))


def split_flat(items: list, val_fraction: float, name=lambda item: item.name) -> dict[str, list]:
    """{"train": [...], "val": [...]} from a flat source's ``items`` (in their order): the
    :func:`val_count` first by a hash of ``name(item)``; no "val" key when it gets none."""
    k = val_count(len(items), val_fraction)
    order = sorted(range(len(items)), key=lambda i: (hashlib.sha256(f"rtseg-val:{name(items[i])}".encode())
                                                      .hexdigest(), name(items[i])))
    val = set(order[:k])
    out = {"train": [it for i, it in enumerate(items) if i not in val]}
    if k:
        out["val"] = [it for i, it in enumerate(items) if i in val]
    return out


def _assign(groups: dict[str, list], val_fraction: float, name) -> tuple[dict[str, list], bool]:
    """A flat source's one group split into train/val; split folders kept. Returns (groups, flat)."""
    if _FLAT not in groups:
        return groups, False
    return split_flat(groups[_FLAT], val_fraction, name), True


def _colour_pairs(source: Path) -> dict[str, list[tuple[Path, Path]]]:
    """{split: [(image, colour mask)]} for the layouts: images/SPLIT + masks/SPLIT, or images/ +
    masks/, or CVAT's JPEGImages + SegmentationClass (the last two: one group, split _FLAT)."""
    if (source / "JPEGImages").is_dir() and (source / "SegmentationClass").is_dir():
        layouts = {_FLAT: (source / "JPEGImages", source / "SegmentationClass")}
    elif (source / "images").is_dir() and (source / "masks").is_dir():
        img_splits = _splits(source / "images", "*")
        layouts = {s: (d, source / "masks" / s if s != _FLAT else source / "masks")
                   for s, d in img_splits.items()}
    else:
        raise DatasetError(f"{source}: expected images/ and masks/ (split subfolders optional), or CVAT's "
                           "JPEGImages/ and SegmentationClass/")
    pairs = {}
    for split, (img_dir, mask_dir) in layouts.items():
        pairs[split] = []
        for img in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            mask = mask_dir / f"{img.stem}.png"
            if not mask.is_file():
                raise DatasetError(f"image {img} has no colour mask: expected {mask}")
            pairs[split].append((img, mask))
    return pairs


def colour_to_ids(mask: np.ndarray, palette: list[list[int]], path: Path) -> np.ndarray:
    """(H, W, 3) colours -> (H, W) uint8 class ids; black is void unless a class has it."""
    key = (mask[..., 0].astype(np.int64) << 16) | (mask[..., 1].astype(np.int64) << 8) | mask[..., 2]
    ids = np.full(key.shape, IGNORE_INDEX, np.uint8)
    known = np.zeros(key.shape, bool)
    for i, (r, g, b) in enumerate(palette):
        hit = key == ((r << 16) | (g << 8) | b)
        ids[hit], known[hit] = i, True
    unknown = ~known & (key != 0)
    if unknown.any():
        colours = [((int(k) >> 16) & 255, (int(k) >> 8) & 255, int(k) & 255) for k in np.unique(key[unknown])[:5]]
        raise DatasetError(f"mask {path} has colours in no class: {colours} (the palette has "
                           f"{[tuple(c) for c in palette]})")
    return ids


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes", []), list):
            raise ValueError("not a Labelme document")
        int(doc["imageHeight"]), int(doc["imageWidth"])
        return doc
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: not a Labelme JSON file with imageHeight, imageWidth and shapes ({e})") from None


def _labelme_mask(doc: dict, names: list[str], path: Path) -> np.ndarray:
    h, w = int(doc["imageHeight"]), int(doc["imageWidth"])
    im = Image.new("L", (w, h), IGNORE_INDEX)
    draw = ImageDraw.Draw(im)
    for shape in doc.get("shapes", []):
        label = str(shape.get("label"))
        if label not in names:
            raise DatasetError(f"{path}: label {label!r} is not a class ({', '.join(names)}); add it to "
                               "--classes or drop the shape")
        try:
            points = [(float(p[0]), float(p[1])) for p in shape.get("points", [])]
        except (TypeError, ValueError, IndexError):
            raise DatasetError(f"{path}: a {label!r} shape has points that are not [x, y] pairs") from None
        kind, value = shape.get("shape_type") or "polygon", names.index(label)
        if kind == "polygon" and len(points) >= 3:
            draw.polygon(points, fill=value)
        elif kind == "rectangle" and len(points) == 2:
            draw.rectangle([min(p[0] for p in points), min(p[1] for p in points),
                            max(p[0] for p in points), max(p[1] for p in points)], fill=value)
        elif kind == "circle" and len(points) == 2:
            (cx, cy), (px, py) = points
            r = ((cx - px) ** 2 + (cy - py) ** 2) ** 0.5
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value)
        elif kind in ("line", "linestrip") and len(points) >= 2:
            draw.line(points, fill=value, width=3)
        else:
            raise DatasetError(f"{path}: a {kind} shape with {len(points)} points cannot be drawn")
    return np.asarray(im)


def convert(source: str | Path, out: str | Path, kind: str, classes: str | Path | None = None,
            progress: bool = True, val_fraction: float | str = VAL_FRACTION) -> dict:
    """Convert ``source`` (``kind``: colour or labelme) into the folder layout at ``out``
    (which must not exist). ``classes``: a dataset.yaml with the classes and palette (colour: the
    source's own by default; labelme: the sorted label names with generated colours by default).
    ``val_fraction``: for a source without split folders, the share of its frames that goes to
    ``val`` (0 <= F < 1; see the module's docstring); split folders are kept and it is unused.
    Returns {out, splits: {split: count}, classes, flat: whether the source had no split folders
    and was split by ``val_fraction``, val_fraction}."""
    if kind not in SOURCES:
        raise DatasetError(f"--from {kind!r}: expected one of {', '.join(SOURCES)}")
    val_fraction = check_val_fraction(val_fraction)
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise DatasetError(f"{source}: not a folder")
    if out.exists():
        raise DatasetError(f"--out {out} exists: give a new folder (nothing is overwritten)")
    if classes and Path(classes).name != "dataset.yaml":
        raise DatasetError(f"--classes {classes}: expected a dataset.yaml with classes and palette")
    names, palette = None, None
    if classes or kind == "colour":
        names, palette = _palette_from(Path(classes).parent if classes else source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if kind == "colour":
            counts, flat = _convert_colour(source, tmp, palette, progress, val_fraction)
        else:
            names, palette, counts, flat = _convert_labelme(source, tmp, names, palette, progress, val_fraction)
        (tmp / "dataset.yaml").write_text(yaml.safe_dump({"classes": names, "palette": palette}, sort_keys=False))
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "splits": counts, "classes": names, "flat": flat, "val_fraction": val_fraction}


def _write_pair(tmp: Path, split: str, image: Path, ids: np.ndarray) -> None:
    (tmp / "images" / split).mkdir(parents=True, exist_ok=True)
    (tmp / "masks" / split).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, tmp / "images" / split / image.name)
    Image.fromarray(ids, mode="L").save(tmp / "masks" / split / f"{image.stem}.png")


def _convert_colour(source: Path, tmp: Path, palette, progress: bool, val_fraction: float):
    counts = {}
    groups, flat = _assign(_colour_pairs(source), val_fraction, lambda pair: pair[0].name)
    for split, pairs in groups.items():
        for image, mask in progress_bar(pairs, desc=f"convert {split}", unit="img", progress=progress):
            with Image.open(mask) as m:
                ids = colour_to_ids(np.asarray(m.convert("RGB")), palette, mask)
            _write_pair(tmp, split, image, ids)
        counts[split] = len(pairs)
    return counts, flat


def _convert_labelme(source: Path, tmp: Path, names, palette, progress: bool, val_fraction: float):
    splits = _splits(source, "*.json")
    docs = {split: [(p, _read_json(p)) for p in sorted(d.glob("*.json"))] for split, d in splits.items()}
    if not any(docs.values()):
        raise DatasetError(f"{source}: no Labelme .json files")
    if names is None:
        names = sorted({str(s.get("label")) for items in docs.values() for _, doc in items
                        for s in doc.get("shapes", [])})
        rng = np.random.default_rng(0)
        palette = [[int(v) for v in rng.integers(0, 256, 3)] for _ in names]
    counts = {}
    docs, flat = _assign(docs, val_fraction, lambda item: item[0].name)
    for split, items in docs.items():
        for path, doc in progress_bar(items, desc=f"convert {split}", unit="img", progress=progress):
            image = path.parent / doc.get("imagePath", "")
            if not image.is_file():
                raise DatasetError(f"{path}: its image {image} is missing (Labelme's imagePath)")
            _write_pair(tmp, split, image, _labelme_mask(doc, names, path))
        counts[split] = len(items)
    return names, palette, counts, flat
