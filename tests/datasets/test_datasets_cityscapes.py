"""rtseg.datasets.cityscapes: label ids to train ids and back, and a missing label."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_cityscapes
from rtseg.datasets import build_dataset
from rtseg.errors import DatasetError


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    from cityscapesscripts.helpers.labels import id2label

    files = write_cityscapes(tmp_path, train_ids_for=("bochum",))
    ds = build_dataset("cityscapes", "val", tmp_path)
    assert ds.classes.num_classes == 19
    assert ds.classes.names[0] == "road" and ds.classes.names[18] == "bicycle"
    assert ds.classes.palette[13] == (0, 0, 142)  # car
    assert ds.samples[1].label.name.endswith("_labelTrainIds.png")  # read directly when present
    for i, (_, label_ids) in enumerate(files):
        _, label = ds[i]
        expected = np.vectorize(lambda v: id2label[int(v)].trainId if 0 <= id2label[int(v)].trainId < 255
                                else 255)(label_ids)
        np.testing.assert_array_equal(label.numpy(), expected)


def test_cityscapes_train_ids_back_to_label_ids():
    from rtseg.datasets.cityscapes import train_ids_to_label_ids

    pred = np.arange(19, dtype=np.uint8).reshape(1, 19)
    np.testing.assert_array_equal(
        train_ids_to_label_ids(pred)[0],
        [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33])


def test_cityscapes_missing_label(tmp_path):
    files = write_cityscapes(tmp_path)
    files[0][0].unlink()
    with pytest.raises(DatasetError, match=r"aachen_000000_000019_leftImg8bit.png has no label"):
        build_dataset("cityscapes", "val", tmp_path)
