"""Joint image/label transforms.

Every transform takes and returns ``(image, label)``: ``image`` a (3, H, W) tensor (uint8 until
:class:`Normalize`, float after), ``label`` a (H, W) int64 tensor of train ids in which
:data:`~rtseg.constants.IGNORE_INDEX` marks pixels to ignore. Randomness comes from torch's
global generator, so DataLoader worker seeding and checkpointed RNG state cover it.

Distillation adds a third tensor, ``soft``: a teacher's (C, H, W) log-probabilities of the frame
(:mod:`rtseg.engine.distill`). Given ``(image, label, soft)`` a transform returns the triple, and
the geometric ones move ``soft`` with the label: resized bilinearly, padded with NaN (no teacher
there: the distillation term skips it), cropped and flipped alike. The random draws are the same
with or without it, so a run's augmentations do not depend on whether it distils.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from rtseg.constants import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

Pair = tuple[torch.Tensor, torch.Tensor]


def _out(image: torch.Tensor, label: torch.Tensor, soft: torch.Tensor | None):
    return (image, label) if soft is None else (image, label, soft)


def resize_soft(soft: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) teacher log-probabilities -> (C, h, w), bilinearly (in float32, back to the
    input dtype: half-precision maps are resized without losing the range)."""
    if tuple(soft.shape[-2:]) == tuple(size):
        return soft
    return F.interpolate(soft[None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0].to(soft.dtype)


def resize_pair(image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]) -> Pair:
    """Resize to ``size`` = (H, W): the image bilinearly (antialiased), the label nearest."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image, label
    image = TF.resize(image, list(size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    label = TF.resize(label[None], list(size), interpolation=TF.InterpolationMode.NEAREST_EXACT)[0]
    return image, label


class Compose:
    def __init__(self, transforms: list) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, label: torch.Tensor, soft: torch.Tensor | None = None):
        out = (image, label) if soft is None else (image, label, soft)
        for t in self.transforms:
            out = t(*out)
        return out

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


@dataclass
class Resize:
    """Resize to a fixed (H, W)."""

    size: tuple[int, int]

    def __call__(self, image: torch.Tensor, label: torch.Tensor, soft: torch.Tensor | None = None):
        return _out(*resize_pair(image, label, self.size), None if soft is None else resize_soft(soft, self.size))


@dataclass
class RandomScaleCrop:
    """Rescale by a random factor, then take a random ``crop`` = (H, W).

    The factor is drawn uniformly from the range ``scale`` = (lo, hi), or from the set
    ``scales`` when given (the DABNet / ERFNet CamVid recipe draws from {0.75, 1, ..., 2}).
    Where the rescaled image is smaller than the crop, the image is padded with 0 and the
    label with the ignore index, so padding never counts in the loss.
    """

    crop: tuple[int, int]
    scale: tuple[float, float] = (0.5, 2.0)
    ignore_index: int = IGNORE_INDEX
    scales: tuple[float, ...] | None = None

    def draw_scale(self) -> float:
        if self.scales:
            return float(self.scales[int(torch.randint(0, len(self.scales), (1,)))])
        return float(torch.empty(1).uniform_(self.scale[0], self.scale[1]))

    def __call__(self, image: torch.Tensor, label: torch.Tensor, soft: torch.Tensor | None = None):
        h, w = image.shape[-2:]
        s = self.draw_scale()
        size = (max(1, round(h * s)), max(1, round(w * s)))
        image, label = resize_pair(image, label, size)
        if soft is not None:
            soft = resize_soft(soft, size)
        ch, cw = self.crop
        pad_h, pad_w = max(0, ch - image.shape[-2]), max(0, cw - image.shape[-1])
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0)
            label = F.pad(label, (0, pad_w, 0, pad_h), value=self.ignore_index)
            if soft is not None:
                soft = F.pad(soft, (0, pad_w, 0, pad_h), value=float("nan"))
        h, w = image.shape[-2:]
        top = int(torch.randint(0, h - ch + 1, (1,)))
        left = int(torch.randint(0, w - cw + 1, (1,)))
        return _out(image[..., top:top + ch, left:left + cw], label[top:top + ch, left:left + cw],
                    None if soft is None else soft[..., top:top + ch, left:left + cw])


@dataclass
class RandomHorizontalFlip:
    p: float = 0.5

    def __call__(self, image: torch.Tensor, label: torch.Tensor, soft: torch.Tensor | None = None):
        if float(torch.rand(1)) < self.p:
            return _out(image.flip(-1), label.flip(-1), None if soft is None else soft.flip(-1))
        return _out(image, label, soft)


@dataclass
class RandomBrightnessContrast:
    """``f(x) = a (x - 128) + 128 + b`` with contrast ``a`` and brightness ``b`` drawn uniformly,
    as in the FCN8s KITTI project; applied with probability ``p``; clipped to [0, 255]."""

    contrast: tuple[float, float] = (0.8, 1.2)
    brightness: tuple[float, float] = (-25.0, 25.0)
    p: float = 0.5

    def __call__(self, image: torch.Tensor, label: torch.Tensor, soft: torch.Tensor | None = None):
        if float(torch.rand(1)) >= self.p:
            return _out(image, label, soft)
        a = float(torch.empty(1).uniform_(*self.contrast))
        b = float(torch.empty(1).uniform_(*self.brightness))
        out = (image.float() - 128.0) * a + 128.0 + b
        return _out(out.clamp_(0, 255).round_().to(torch.uint8), label, soft)


@dataclass
class Normalize:
    """uint8 [0, 255] -> float ``(x / 255 - mean) / std``."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, image: torch.Tensor, label: torch.Tensor, soft: torch.Tensor | None = None):
        return _out(normalize(image, self.mean, self.std), label, soft)


def normalize(image: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(..., 3, H, W) uint8 -> float32 normalised, ``(x / 255 - mean) / std``, contiguous. One
    float copy and then in place: bit for bit the same as the three-tensor expression, in a third
    of the time (two 480x360 frames, 2 threads: 0.6 against 1.9 ms; it runs per frame in video)."""
    m = torch.tensor(mean, dtype=torch.float32, device=image.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=image.device).view(3, 1, 1)
    x = torch.empty(image.shape, dtype=torch.float32, device=image.device)
    x.copy_(image)  # a permuted (N, H, W, 3) view in: NCHW memory out
    return x.div_(255.0).sub_(m).div_(s)


def denormalize(image: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Inverse of :func:`normalize`: float -> uint8 (..., 3, H, W)."""
    m = torch.tensor(mean, dtype=torch.float32, device=image.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=image.device).view(3, 1, 1)
    return ((image.float() * s + m) * 255.0).clamp(0, 255).round().to(torch.uint8)


def build_train_transform(crop: tuple[int, int] | None, scale: tuple[float, float] = (0.5, 2.0),
                          resize: tuple[int, int] | None = None, hflip: bool = True,
                          brightness_contrast: bool = False,
                          mean=IMAGENET_MEAN, std=IMAGENET_STD,
                          scales: tuple[float, ...] | None = None) -> Compose:
    """The usual training pipeline: [resize] -> [random scale + crop] -> [flip] -> [b/c] -> normalise.
    ``scales``: draw the scale from this set instead of the range ``scale``."""
    steps: list = []
    if resize is not None:
        steps.append(Resize(tuple(resize)))
    if crop is not None:
        steps.append(RandomScaleCrop(tuple(crop), tuple(scale), scales=tuple(scales) if scales else None))
    if hflip:
        steps.append(RandomHorizontalFlip())
    if brightness_contrast:
        steps.append(RandomBrightnessContrast())
    steps.append(Normalize(mean, std))
    return Compose(steps)


def build_eval_transform(resize: tuple[int, int] | None = None,
                         mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Compose:
    steps: list = [Resize(tuple(resize))] if resize is not None else []
    steps.append(Normalize(mean, std))
    return Compose(steps)
