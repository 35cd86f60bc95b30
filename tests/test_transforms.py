from __future__ import annotations

import torch

from rtseg.constants import IGNORE_INDEX
from rtseg.datasets.transforms import (
    Normalize,
    RandomBrightnessContrast,
    RandomHorizontalFlip,
    RandomScaleCrop,
    Resize,
    denormalize,
)


def _pair(h=20, w=30):
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
    label = torch.randint(0, 5, (h, w))
    return image, label


def test_resize_uses_nearest_for_labels():
    image, label = _pair()
    image2, label2 = Resize((40, 60))(image, label)
    assert image2.shape == (3, 40, 60) and label2.shape == (40, 60)
    assert torch.equal(label2[::2, ::2], label)  # exact 2x nearest: no new ids, no blending


def test_scale_crop_pads_labels_with_ignore():
    torch.manual_seed(0)
    image, label = _pair(10, 10)
    image2, label2 = RandomScaleCrop((32, 32), scale=(1.0, 1.0))(image, label)
    assert image2.shape == (3, 32, 32) and label2.shape == (32, 32)
    assert (label2 == IGNORE_INDEX).sum() == 32 * 32 - 100
    assert (image2[:, label2 == IGNORE_INDEX] == 0).all()


def test_flip_is_joint():
    image, label = _pair()
    image2, label2 = RandomHorizontalFlip(p=1.0)(image, label)
    assert torch.equal(image2, image.flip(-1)) and torch.equal(label2, label.flip(-1))


def test_brightness_contrast_formula():
    image = torch.tensor([0, 100, 128, 200, 255], dtype=torch.uint8).view(1, 1, 5).expand(3, 1, 5)
    t = RandomBrightnessContrast(contrast=(1.5, 1.5), brightness=(10.0, 10.0), p=1.0)
    out, _ = t(image, torch.zeros(1, 5, dtype=torch.long))
    expected = torch.tensor([1.5 * (v - 128) + 138 for v in [0, 100, 128, 200, 255]]).clamp(0, 255).round()
    assert torch.equal(out[0, 0].float(), expected)


def test_normalize_round_trip():
    image, label = _pair()
    x, _ = Normalize()(image, label)
    assert x.dtype == torch.float32
    assert torch.equal(denormalize(x), image)
