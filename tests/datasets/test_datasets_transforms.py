"""rtseg.datasets.transforms: joint image / label transforms, the scale set, and a teacher's maps
carried through the augmentations."""

from __future__ import annotations

import torch

from rtseg.constants import IGNORE_INDEX
from rtseg.datasets.transforms import (
    Normalize,
    RandomBrightnessContrast,
    RandomHorizontalFlip,
    RandomScaleCrop,
    Resize,
    build_train_transform,
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


def test_scale_set_draws_only_its_scales():
    torch.manual_seed(0)
    t = RandomScaleCrop((8, 8), scales=(0.5, 2.0))
    image, label = torch.zeros(3, 40, 60, dtype=torch.uint8), torch.zeros(40, 60, dtype=torch.uint8)
    drawn = {t.draw_scale() for _ in range(200)}
    assert drawn == {0.5, 2.0}
    out, lab = t(image, label)
    assert out.shape == (3, 8, 8) and lab.shape == (8, 8)
    # A range still draws from the whole interval.
    r = RandomScaleCrop((8, 8), scale=(0.75, 1.5))
    values = [r.draw_scale() for _ in range(200)]
    assert 0.75 <= min(values) < 0.9 and 1.35 < max(values) <= 1.5


def test_teacher_maps_follow_scale_crop_and_flip_and_draw_the_same_randomness():
    image = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    label = torch.randint(0, 5, (20, 30))
    # The teacher's map encodes the column: after the transforms it must still line up.
    soft = torch.arange(30, dtype=torch.float32).expand(5, 20, 30).clone().half()
    tf = build_train_transform((24, 36), scales=(0.5, 1.5), brightness_contrast=True)
    for seed in range(6):
        torch.manual_seed(seed)
        img2, lbl2 = tf(image, label)
        torch.manual_seed(seed)
        img3, lbl3, soft3 = tf(image, label, soft)
        assert torch.equal(img2, img3) and torch.equal(lbl2, lbl3)  # same draws with or without a teacher
        assert soft3.shape == (5, 24, 36) and soft3.dtype == torch.float16
        pad = torch.isnan(soft3[0])
        assert bool((lbl3[pad] == 255).all())  # padding: no teacher, no label
    # Flip alone: the map is mirrored with the label.
    torch.manual_seed(0)
    flips = [RandomHorizontalFlip(p=1.0)(image, label, soft) for _ in range(1)]
    assert torch.equal(flips[0][2][0, 0], soft[0, 0].flip(-1))
    # Scale 2 without padding: the column ramp is resized bilinearly, still increasing.
    _, _, s = RandomScaleCrop((40, 60), scales=(2.0,))(image, label, soft)
    assert not bool(torch.isnan(s).any()) and bool((s[0, 0, 1:].float() >= s[0, 0, :-1].float()).all())
