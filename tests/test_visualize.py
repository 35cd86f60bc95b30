"""rtseg.visualize: the one overlay blend (predict, video and the server use it)."""

from __future__ import annotations

import numpy as np

from rtseg.visualize import overlay


def test_overlay_is_the_rounded_blend_and_exact_at_the_ends():
    rng = np.random.default_rng(0)
    image, mask = (rng.integers(0, 256, (36, 48, 3), dtype=np.uint8) for _ in range(2))
    for alpha in (0.3, 0.5, 0.77):
        expected = np.rint(image * (1 - alpha) + mask.astype(np.float64) * alpha)
        out = overlay(image, mask, alpha)
        assert out.dtype == np.uint8 and out.shape == image.shape
        # Float rounding of the two products may tip a .5 either way: never more than 1 off.
        assert np.abs(out.astype(np.int16) - expected).max() <= 1
        assert (out == expected).mean() > 0.95
    np.testing.assert_array_equal(overlay(image, mask, 0.0), image)
    np.testing.assert_array_equal(overlay(image, mask, 1.0), mask)


def test_the_legend_is_stamped_in_the_top_right_corner_only_where_it_fits():
    from rtseg.datasets.camvid import CLASSES
    from rtseg.visualize import legend, stamp_legend

    key = legend(CLASSES)  # (h, w, 3): 11 rows
    frame = np.zeros((360, 480, 3), np.uint8)
    stamp_legend(frame, key, opacity=1.0)
    h, w = key.shape[:2]
    assert np.array_equal(frame[:h, 480 - w:], key) and not frame[h:].any() and not frame[:, : 480 - w].any()
    small = np.zeros((h - 1, 480, 3), np.uint8)  # lower than the key: left alone
    narrow = np.zeros((360, 2 * w - 1, 3), np.uint8)
    assert not stamp_legend(small, key).any() and not stamp_legend(narrow, key).any()
