"""Inference API: ``rtseg.load_model("enet-camvid").predict(image)``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rtseg.checkpoint import load_checkpoint, model_from_checkpoint
from rtseg.datasets.base import read_image
from rtseg.datasets.classes import ClassTable
from rtseg.datasets.transforms import normalize
from rtseg.deploy.fold import fold_batchnorm
from rtseg.errors import RtsegError
from rtseg.visualize import overlay


def class_map(logits: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) logits -> (N, H, W) class indices. The argmax runs on a channels-last copy:
    reducing over the innermost (contiguous) dimension is about 10x faster on the CPU than over
    the channel planes of an NCHW tensor (2 ms against 15 ms for ENet at 480x360)."""
    return logits.contiguous(memory_format=torch.channels_last).argmax(1)


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    Eager PyTorch frees and reallocates every activation on each forward pass. Above glibc's
    mmap threshold each of those allocations is fresh memory that the kernel page-faults in,
    4 KB at a time: ENet at 480x360 took ~5,600 page faults and ~9 of its ~44 ms per frame on
    this project's CPU. This is what running under jemalloc or tcmalloc (as PyTorch's CPU
    performance guide suggests) achieves, without a preload. Process-wide; the CLI calls it.
    Linux with glibc only; returns whether it applied."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    # Serve allocations up to 32 MB (glibc's maximum) from the heap, and never trim freed heap
    # memory below 1 GB.
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(mallopt(m_trim_threshold, 2**30))


def compile_for_inference(model: nn.Module):
    """``torch.compile`` (inductor) for inference: weights frozen into the graph as constants and
    pre-packed for the CPU convolution kernels, one static graph per input size. The first call
    at each size compiles (ENet: 15-40 s on a 2-core CPU); later calls are faster than eager
    (ENet: see the README's bench table). Call it under ``torch.no_grad()``/``inference_mode``."""
    return torch.compile(model, dynamic=False, options={"freezing": True})


class Segmenter:
    """A trained model with what it needs to run on raw images.

    ``predict`` takes an (H, W, 3) uint8 RGB array or an image path and returns an (H, W) uint8
    array of class indices (see :attr:`class_names` and :attr:`palette`). Images are resized so
    that their shorter side matches the training resolution (when the checkpoint records one),
    and the prediction is resized back to the input size.

    ``compile=True`` runs the network through :func:`compile_for_inference` (PyTorch models
    only): worth it for video and for many images of one size, not for a single image.
    """

    def __init__(self, model: nn.Module, classes: ClassTable, mean, std,
                 input_size: list[int] | None = None, device: str | torch.device = "cpu",
                 name: str = "", compile: bool = False) -> None:
        self.device = torch.device(device)
        if isinstance(model, nn.Module):
            # Inference only: fold BN into the convolutions and use channels-last, the fastest
            # layout for CPU convolutions (see rtseg bench).
            model = fold_batchnorm(model).to(self.device, memory_format=torch.channels_last).eval()
            if compile:
                model = compile_for_inference(model)
        elif compile:
            raise RtsegError(f"{name or 'this model'}: compile needs PyTorch weights (a checkpoint or a "
                             "shipped model), not an exported ONNX file")
        else:
            model = model.eval().to(self.device)  # an exported model's wrapper
        self.model = model
        #: Compiled with torch.compile: the first call at each input size compiles.
        self.compiled = compile
        self.classes = classes
        self.mean, self.std = tuple(mean), tuple(std)
        self.input_size = tuple(input_size) if input_size else None
        self.name = name
        #: Static-shape exports run at exactly this (H, W).
        self.fixed_size: list[int] | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.classes.names)

    @property
    def palette(self) -> np.ndarray:
        """(num_classes, 3) uint8 RGB colours."""
        return np.asarray(self.classes.palette, dtype=np.uint8)

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) the network runs at for an input of this size."""
        if self.fixed_size is not None:
            return tuple(self.fixed_size)
        if self.input_size is None:
            return height, width
        scale = min(self.input_size) / min(height, width)
        return max(8, round(height * scale)), max(8, round(width * scale))

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        """Same-size (H, W, 3) uint8 images -> (N, 3, h, w) normalised float at the working size."""
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(self.device)  # (N, 3, H, W)
        h, w = self.working_size(*x.shape[-2:])
        if (h, w) != tuple(x.shape[-2:]):
            x = F.interpolate(x.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            x = x.round().clamp(0, 255)
        return normalize(x, self.mean, self.std)

    @torch.no_grad()
    def predict_logits(self, images: list[np.ndarray]) -> torch.Tensor:
        """(N, C, H, W) float logits at the input size."""
        size = images[0].shape[:2]
        x = self.preprocess(images).contiguous(memory_format=torch.channels_last)
        logits = self.model(x)
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def predict_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, H, W) uint8 class indices for same-size images."""
        return class_map(self.predict_logits(images)).to(torch.uint8).cpu().numpy()

    def predict(self, image: np.ndarray | str | Path) -> np.ndarray:
        """(H, W) uint8 class indices for one image (array or path)."""
        if isinstance(image, (str, Path)):
            image = read_image(Path(image))
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        return self.predict_batch([image])[0]

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        return self.classes.colorize(mask)

    def overlay(self, image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        return overlay(image, self.colorize(mask), alpha)


@dataclass
class LoadedWeights:
    """A model from a checkpoint or an exported ONNX file, with what is needed to feed it."""

    model: object  # nn.Module, or OnnxSegmentationModel (same calling convention)
    classes: ClassTable
    mean: tuple
    std: tuple
    input_size: list[int] | None  # resolution it was trained / evaluated at
    train_resize: list[int] | None  # the training config's data.resize
    fixed_size: list[int] | None  # an exported static graph accepts only this (H, W)
    name: str
    checkpoint: dict | None


def load_weights(weights: str | Path | None, threads: int = 0) -> LoadedWeights:
    """A checkpoint path, a shipped model name (None = default) or an ``.onnx`` export."""
    if weights is not None and str(weights).endswith(".onnx"):
        from rtseg.deploy.onnx_model import OnnxSegmentationModel

        onnx_model = OnnxSegmentationModel(weights, threads=threads)
        meta = onnx_model.meta
        shape = onnx_model.session.get_inputs()[0].shape  # [N, 3, H, W]; str entries are dynamic
        fixed = [int(v) for v in shape[2:]] if all(isinstance(v, int) for v in shape[2:]) else None
        return LoadedWeights(onnx_model, ClassTable.from_dict(meta["rtseg_classes"]),
                             tuple(meta["rtseg_normalization"]["mean"]), tuple(meta["rtseg_normalization"]["std"]),
                             meta["rtseg_input_size"], None, fixed, f"{meta['rtseg_model']['name']} (onnx)", None)
    ckpt = load_checkpoint(weights)
    model = model_from_checkpoint(ckpt)
    if threads > 0:
        torch.set_num_threads(threads)
    resize = ((ckpt.get("config") or {}).get("data") or {}).get("resize")
    return LoadedWeights(model, ClassTable.from_dict(ckpt["classes"]), tuple(ckpt["normalization"]["mean"]),
                         tuple(ckpt["normalization"]["std"]), ckpt.get("input_size"), resize, None,
                         ckpt["model"]["name"], ckpt)


def load_model(weights: str | Path | None = None, device: str | torch.device = "cpu",
               compile: bool = False) -> Segmenter:
    """A :class:`Segmenter` from a checkpoint path, an ``.onnx`` export, or a shipped model name
    (default: ``"enet-camvid"``, shipped inside the package, works offline). ``compile``: see
    :class:`Segmenter`."""
    w = load_weights(weights)
    seg = Segmenter(w.model, w.classes, w.mean, w.std, w.input_size, device, name=w.name, compile=compile)
    seg.fixed_size = w.fixed_size
    return seg
