"""rtseg.inference: the working size (--size), the backend a Segmenter reports."""

from __future__ import annotations

import numpy as np
import pytest

import rtseg
from rtseg.errors import RtsegError


def test_size_sets_the_working_size_and_the_mask_stays_at_the_input_size(enet_ckpt):
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    plain = rtseg.load_model(str(enet_ckpt), device="cpu")  # recorded at 24x32
    larger = rtseg.load_model(str(enet_ckpt), device="cpu", size=(48, 64))
    assert plain.working_size(120, 160) == (24, 32) and larger.working_size(120, 160) == (48, 64)
    assert larger.working_size(240, 480) == (48, 96)  # the shorter side is matched, the aspect kept
    assert larger.predict(image).shape == (120, 160) and larger.backend == "torch"


def test_size_of_a_static_graph_is_refused(enet_ckpt, tmp_path):
    from rtseg.deploy.export import export

    path = tmp_path / "m.onnx"
    export(str(enet_ckpt), path, size=(24, 32))
    with pytest.raises(RtsegError, match="--size: .*m.onnx is a static graph for 24x32"):
        rtseg.load_model(str(path), size=(48, 64))


def test_predict_writes_a_legend_and_draws_it_on_the_gif(enet_ckpt, tmp_path):
    from PIL import Image

    from conftest import save_png
    from rtseg.visualize import legend

    save_png(tmp_path / "in" / "a.png", np.zeros((24, 32, 3), np.uint8))
    r = rtseg.predict(tmp_path / "in", tmp_path / "out", str(enet_ckpt), device="cpu", gif=True, progress=False)
    key = np.asarray(Image.open(tmp_path / "out" / "legend.png").convert("RGB"))
    seg = rtseg.load_model(str(enet_ckpt), device="cpu")
    assert key.shape[0] >= 11 * 16 and key.shape == legend(seg.classes).shape
    # Each class's swatch is its palette colour, row after row.
    for i, colour in enumerate(seg.classes.palette):
        assert tuple(key[4 + i * 16 + 8, 12]) == tuple(colour)
    with Image.open(r["gif"]) as gif:
        assert gif.size[0] > 2 * 32  # input | prediction | legend


def test_auto_knows_which_graph_a_video_of_another_shape_needs():
    from rtseg.inference import _ready
    from rtseg.weights import load_weights

    w = load_weights("enet-camvid")
    ready = _ready(w, None, None, frame_size=(360, 480))
    assert ready("openvino-int8")  # the shipped graph: the model's own 360x480
    assert not _ready(w, None, None, frame_size=(720, 1280))("openvino-int8")  # works at 360x640: to build
    assert not ready("torch-compile")  # compiled in each process: never ready
