"""Pictures of predictions: colour masks, overlays, side-by-side panels, GIFs and plots."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from rtseg.datasets.classes import ClassTable
from rtseg.io import atomic_path


def overlay(image: np.ndarray, mask_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an (H, W, 3) uint8 colour mask onto an (H, W, 3) uint8 image: the one blend of
    ``rtseg predict``, the video path and the server. OpenCV's uint8 kernel, rounded to the
    nearest: 0.08 against 0.4 ms for a float NumPy blend at 480x360."""
    return cv2.addWeighted(image, 1.0 - alpha, mask_rgb, alpha, 0.0)


def panel(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Side-by-side (H, W, 3) uint8 images of the same height, separated by white gaps."""
    h = images[0].shape[0]
    parts = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.full((h, gap, 3), 255, dtype=np.uint8))
        parts.append(im)
    return np.concatenate(parts, axis=1)


def legend(classes: ClassTable, height: int | None = None, present: set[int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 picture of the class colours and names, one row each (``present``: only
    these class indices), on white; ``height``: at least this tall (to sit beside a panel)."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()
    rows = [i for i in range(classes.num_classes) if present is None or i in present]
    row_h = 16
    width = 28 + max((int(font.getlength(classes.names[i])) for i in rows), default=0) + 8
    h = max(height or 0, 8 + row_h * len(rows))
    im = Image.new("RGB", (width, h), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    for r, i in enumerate(rows):
        y = 4 + r * row_h
        draw.rectangle([4, y + 1, 20, y + row_h - 3], fill=tuple(int(v) for v in classes.palette[i]),
                       outline=(80, 80, 80))
        draw.text((26, y + 1), classes.names[i], fill=(0, 0, 0), font=font)
    return np.asarray(im)


def with_legend(image: np.ndarray, key: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) with the legend ``key`` (:func:`legend`, at least H tall) beside it."""
    return panel(image, key[: image.shape[0]])


def stamp_legend(frame: np.ndarray, key: np.ndarray, opacity: float = 0.8) -> np.ndarray:
    """Draw the legend ``key`` into the top-right corner of ``frame`` (H, W, 3) uint8, in place
    and blended (the frame shows through): video frames keep their size. A frame too small to
    hold it (lower than the key, or narrower than twice its width) is left as it is: a shrunken
    key could not be read and would hide the picture."""
    h, w = key.shape[:2]
    if frame.shape[0] >= h and frame.shape[1] >= 2 * w:
        roi = frame[:h, frame.shape[1] - w:]
        cv2.addWeighted(key, opacity, roi, 1.0 - opacity, 0.0, dst=roi)
    return frame


def save_png(array: np.ndarray, path: str | Path) -> None:
    """Atomic PNG write of an (H, W) or (H, W, 3) uint8 array."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def save_gif(frames: list[np.ndarray], path: str | Path, fps: float = 5.0) -> None:
    with atomic_path(path) as tmp:
        pil = [Image.fromarray(f) for f in frames]
        pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:],
                    duration=int(1000 / fps), loop=0)


def plot_per_class_iou(names: list[str], iou: list[float], path: str | Path, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 2), 4))
    vals = [0 if v != v else v for v in iou]
    ax.bar(range(len(names)), vals, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title(title or "per-class IoU")
    for i, v in enumerate(vals):
        ax.text(i, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_confusion_matrix(names: list[str], matrix: np.ndarray, path: str | Path) -> None:
    """Row-normalised confusion matrix (rows: ground truth, columns: prediction)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = matrix.astype(np.float64)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(names)
    fig, ax = plt.subplots(figsize=(0.6 * n + 3, 0.6 * n + 2))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    for i in range(n):
        for j in range(n):
            if m[i, j] >= 0.01:
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def label_panel(image: np.ndarray, target: np.ndarray | None, pred: np.ndarray,
                classes: ClassTable) -> np.ndarray:
    """input | ground truth | prediction (ground truth omitted when None)."""
    parts = [image] + ([classes.colorize(target)] if target is not None else []) + [classes.colorize(pred)]
    return panel(*parts)


def plot_class_legend(classes: ClassTable, path: str | Path, columns: int = 2, title: str = "",
                      metadata: dict | None = None) -> None:
    """A colour key for documents: each class's swatch, name and RGB colour in ``columns``
    columns (index order, down the first column first). ``metadata``: PNG text fields
    (``{"Software": None}`` leaves out the matplotlib version, for byte-identical reruns)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = classes.num_classes
    rows = -(-n // columns)
    fig, ax = plt.subplots(figsize=(3.1 * columns, 0.34 * rows + (0.45 if title else 0.15)))
    ax.set_xlim(0, 3.1 * columns)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    for i in range(n):
        col, row = divmod(i, rows)
        x = 3.1 * col + 0.05
        colour = tuple(v / 255 for v in classes.palette[i])
        ax.add_patch(Rectangle((x, row + 0.12), 0.55, 0.76, facecolor=colour, edgecolor=(0.3, 0.3, 0.3), lw=0.8))
        ax.text(x + 0.7, row + 0.5, f"{i}  {classes.names[i]}", va="center", fontsize=10)
        ax.text(x + 3.0, row + 0.5, "({}, {}, {})".format(*classes.palette[i]), va="center", ha="right",
                fontsize=8, color=(0.35, 0.35, 0.35), family="monospace")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    fig.tight_layout(pad=0.2)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=metadata)
    plt.close(fig)


def plot_per_class_iou_compare(names: list[str], series: dict[str, list[float]], path: str | Path,
                               title: str = "", metadata: dict | None = None) -> None:
    """Per-class IoU of several models as grouped bars, values in percent (0-100) written on the
    bars. ``series``: legend label (say the model and its mIoU) -> one value per class (NaN: not
    scored, drawn as 0). ``metadata``: PNG text fields, as :func:`plot_class_legend`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(series)
    width = 0.8 / max(k, 1)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.75 * len(names) + 1.5), 4.2))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for j, (label, values) in enumerate(series.items()):
        vals = [0.0 if v != v else float(v) for v in values]
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(names))]
        ax.bar(xs, vals, width * 0.92, color=colours[j % len(colours)], label=label)
        for x, v in zip(xs, vals):
            ax.text(x, v + 1, f"{v:.1f}", ha="center", va="bottom", fontsize=7 if k > 1 else 8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("IoU (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper right", fontsize=8, ncols=k, frameon=False)
    ax.set_title(title or "per-class IoU", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=metadata)
    plt.close(fig)
