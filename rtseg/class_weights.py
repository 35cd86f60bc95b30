"""Class weights for imbalanced segmentation data.

* ``mfb``, median frequency balancing (Eigen & Fergus, https://arxiv.org/abs/1411.4734):
  ``freq(c) = pixels of c / all pixels of the images in which c appears``,
  ``w(c) = median(freq) / freq(c)``.
* ``enet`` (Paszke et al., https://arxiv.org/abs/1606.02147):
  ``w(c) = 1 / ln(k + p(c))``, ``p(c) = pixels of c / all pixels of the split``, with ENet's
  ``k = 1.02``; the ERFNet, DABNet and CGNet CamVid recipes use ``k = 1.10``, which bounds the
  weights near 1/ln(1.10) = 10.5 instead of 50.5.

"All pixels" counts void pixels too, as the reference implementations do. Weights cover the
trainable classes; void / ignored pixels get weight 0 wherever a full-length vector indexed by
raw label id is needed (:func:`full_length_weights`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from rtseg.constants import IGNORE_INDEX
from rtseg.datasets import SegmentationDataset, build_dataset, resolve_data_root
from rtseg.errors import RtsegError
from rtseg.io import atomic_write_text
from rtseg.progress import progress_bar

METHODS = ("mfb", "enet", "none")
ENET_C = 1.02


def label_statistics(dataset: SegmentationDataset, progress: bool = True) -> dict:
    """One pass over the labels: per-class pixel counts, and per class the pixel total of the
    images it appears in. Lists are indexed by train id; ``ignored_pixels`` counts the rest."""
    n = dataset.classes.num_classes
    counts = np.zeros(n, dtype=np.int64)
    present_pixels = np.zeros(n, dtype=np.int64)
    ignored = 0
    for i in progress_bar(range(len(dataset)), desc="counting pixels", unit="img", progress=progress):
        label = dataset.load_label(i)
        c = np.bincount(label.ravel(), minlength=256)
        counts += c[:n]
        present_pixels[c[:n] > 0] += label.size
        ignored += int(label.size - c[:n].sum())
    return {"num_images": len(dataset), "class_pixel_counts": counts.tolist(),
            "present_image_pixels": present_pixels.tolist(), "ignored_pixels": ignored}


def weights_from_statistics(stats: dict, method: str, c: float = ENET_C) -> list[float]:
    """Weights by train id from :func:`label_statistics`; ``c`` is the k of ``enet``."""
    counts = np.asarray(stats["class_pixel_counts"], dtype=np.float64)
    if method == "none":
        return [1.0] * len(counts)
    if method == "mfb":
        present = np.asarray(stats["present_image_pixels"], dtype=np.float64)
        freq = np.divide(counts, present, out=np.zeros_like(counts), where=present > 0)
        median = np.median(freq[freq > 0])
        # A class that never appears gets weight 0: it cannot be learned from this split.
        return np.divide(median, freq, out=np.zeros_like(freq), where=freq > 0).tolist()
    if method == "enet":
        total = counts.sum() + stats["ignored_pixels"]
        if c <= 1.0:
            raise RtsegError(f"class-weight constant c={c}: expected a number above 1 (1/ln(c + p) "
                             "must stay positive and finite)")
        return (1.0 / np.log(c + counts / total)).tolist()
    raise RtsegError(f"unknown class-weight method {method!r}: expected one of {', '.join(METHODS)}")


def full_length_weights(weights: list[float], num_raw_ids: int, void_id: int) -> list[float]:
    """Insert weight 0 for the void id, for label encodings that keep void as a class
    (e.g. CamVid ids 0-11 with 11 = void, as in the TensorFlow ENet)."""
    out = list(weights)
    out.insert(void_id, 0.0)
    if len(out) != num_raw_ids:
        raise ValueError(f"{len(weights)} weights + void != {num_raw_ids} raw ids")
    return out


def cache_dir() -> Path:
    from rtseg.io import cache_root

    return cache_root() / "class_weights"


def compute_class_weights(dataset: str, split: str, method: str, data_root: str | Path | None = None,
                          use_cache: bool = True, progress: bool = True, c: float = ENET_C) -> dict:
    """``{"method", "class_names", "weights", ...}`` for ``dataset``/``split``, cached on disk
    keyed by dataset, split, method and a fingerprint of the label files (the counts are cached;
    ``c``, the constant of ``enet``, is applied to them on every call)."""
    if method not in METHODS:
        raise RtsegError(f"unknown class-weight method {method!r}: expected one of {', '.join(METHODS)}")
    ds = build_dataset(dataset, split, data_root)
    fingerprint = hashlib.sha1()
    fingerprint.update(str(resolve_data_root(dataset, data_root).resolve()).encode())
    for s in ds.samples:
        st = s.label.stat() if s.label is not None else None
        fingerprint.update(f"{s.label}:{st.st_size if st else 0}:{st.st_mtime_ns if st else 0}".encode())
    cache_file = cache_dir() / f"{dataset}-{split}-{fingerprint.hexdigest()[:16]}.json"
    if use_cache and cache_file.is_file():
        stats = json.loads(cache_file.read_text())
    else:
        stats = label_statistics(ds, progress=progress)
        if use_cache:
            atomic_write_text(cache_file, json.dumps(stats, indent=2))
    result = {"method": method, "dataset": dataset, "split": split,
              "class_names": list(ds.classes.names),
              "weights": weights_from_statistics(stats, method, c),
              "ignore_index": IGNORE_INDEX, **stats}
    if method == "enet":
        result["c"] = c
    raw_void = getattr(ds, "raw_void_id", None)
    if raw_void is not None:
        result["weights_by_raw_id"] = full_length_weights(result["weights"], ds.num_raw_ids, raw_void)
    return result


def dataset_info(dataset: str, split: str = "train", data_root: str | Path | None = None,
                 progress: bool = True) -> dict:
    """``rtseg datasets info``: {num_images, class_names} and, for labelled splits,
    class_pixel_counts (by train id) and ignored_pixels."""
    ds = build_dataset(dataset, split, data_root)
    info = {"dataset": dataset, "split": split, "num_images": len(ds), "class_names": list(ds.classes.names)}
    if ds.has_labels:
        stats = label_statistics(ds, progress=progress)
        info.update(class_pixel_counts=stats["class_pixel_counts"], ignored_pixels=stats["ignored_pixels"])
    return info
