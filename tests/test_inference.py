"""rtseg.inference (Segmenter, load_model, predict): the working size (--size), the backend a
Segmenter reports, masks, overlays, legends and GIFs, the classes shown, TTA on every kind of
backend, bf16, and the Cityscapes output format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rtseg
from conftest import save_png, write_cityscapes
from rtseg.checkpoint import make_checkpoint, save_checkpoint
from rtseg.datasets.kitti_road import CLASSES as KITTI_CLASSES
from rtseg.errors import RtsegError
from rtseg.models import create_model


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


def test_classes_draws_only_the_named_classes_and_keeps_every_label(enet_ckpt, tmp_path):
    seg = rtseg.load_model(str(enet_ckpt), device="cpu")
    mask = np.arange(24 * 32, dtype=np.uint8).reshape(24, 32) % 11  # every class
    image = np.full((24, 32, 3), 77, np.uint8)
    full_colour, full_overlay = seg.colorize(mask), seg.overlay(image, mask)
    seg.show("road,CAR")  # any case
    road, car = seg.class_names.index("Road"), seg.class_names.index("Car")
    assert seg.shown == tuple(sorted((road, car)))
    shown = np.isin(mask, seg.shown)
    colour, blended = seg.colorize(mask), seg.overlay(image, mask)
    assert np.array_equal(colour[shown], full_colour[shown]) and not colour[~shown].any()
    assert np.array_equal(blended[shown], full_overlay[shown]) and (blended[~shown] == 77).all()
    assert seg.legend().shape[0] < seg.show(None).legend().shape[0]  # two rows against eleven
    with pytest.raises(RtsegError, match=r"^--classes Lorry: not a class of this model; expected names from Sky, "):
        seg.show("Road,Lorry")


def test_predict_writes_masks_overlays_and_gif(trained, few_camvid, tmp_path):
    frames = sorted((few_camvid / "val").glob("*.png"))
    out = tmp_path / "out"
    r = rtseg.predict(few_camvid / "val", out, trained, gif=True)
    assert r["images"] == len(frames) and r["median_ms"] > 0 and r["gif"] == str(out / "predictions.gif")
    for f in frames:
        labels = np.asarray(Image.open(out / f"{f.stem}_labels.png"))
        assert labels.shape == (96, 128) and labels.max() < 11
        assert np.asarray(Image.open(out / f"{f.stem}_overlay.png")).shape == (96, 128, 3)
        assert (out / f"{f.stem}_mask.png").is_file()
    gif = Image.open(out / "predictions.gif")
    assert gif.n_frames == len(frames)


def test_python_api_predict(trained, few_camvid):
    seg = rtseg.load_model(trained)
    image = np.asarray(Image.open(sorted((few_camvid / "val").glob("*.png"))[0]).convert("RGB"))
    mask = seg.predict(image)
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
    assert seg.class_names[3] == "Road" and seg.palette.shape == (11, 3)
    np.testing.assert_array_equal(seg.predict(sorted((few_camvid / "val").glob("*.png"))[0]), mask)


def test_tta_runs_on_every_kind_of_backend(enet_ckpt_bn):
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for backend in ("torch", "onnxruntime"):
        plain = rtseg.load_model(str(enet_ckpt_bn), device="cpu", backend=backend)
        flip = rtseg.load_model(str(enet_ckpt_bn), device="cpu", backend=backend, tta="flip")
        a, b = plain.predict_logits([image]), flip.predict_logits([image])
        mirrored = plain.predict_logits([image[:, ::-1].copy()]).flip(-1)
        expected = ((a.softmax(1) + mirrored.softmax(1)) / 2).log()
        torch.testing.assert_close(b, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # the shipped ENet at 360x480 in eager bf16
def test_bf16_segmenter_agrees_with_float32_or_is_refused(enet_ckpt, tmp_path):
    from rtseg.inference import load_model
    from rtseg.runtime import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        with pytest.raises(RtsegError, match="--bf16: this CPU has no native bfloat16"):
            load_model("enet-camvid", device="cpu", bf16=True)
        return
    # The shipped model on a real frame (a random network's near-equal logits say little).
    frame = sorted((Path(__file__).resolve().parents[1] / "samples" / "camvid").glob("*.jpg"))[0]
    eager, bf16 = load_model("enet-camvid", device="cpu"), load_model("enet-camvid", device="cpu", bf16=True)
    mask, expected = bf16.predict(frame), eager.predict(frame)
    assert mask.shape == expected.shape and (mask == expected).mean() > 0.99  # 99.6% on 0006R0
    onnx_path = tmp_path / "m.onnx"
    rtseg.export(enet_ckpt, onnx_path, size=(24, 32))
    with pytest.raises(RtsegError, match="bf16 needs PyTorch weights"):
        load_model(onnx_path, bf16=True)


def test_predict_cityscapes_format_for_the_official_evaluator(tmp_path, cityscapes_ckpt):
    write_cityscapes(tmp_path / "cs", h=48, w=96)
    images = sorted((tmp_path / "cs" / "leftImg8bit" / "val").glob("*/*.png"))
    out = tmp_path / "results"
    rtseg.predict(images, out, cityscapes_ckpt, output_format="cityscapes")
    written = sorted(out.glob("*.png"))
    assert [p.name for p in written] == [p.name for p in images]  # <city>_<seq>_<frame>_leftImg8bit.png
    ids = np.asarray(Image.open(written[0]))
    assert ids.shape == (48, 96)  # full resolution
    assert set(np.unique(ids)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}


def test_predict_cityscapes_format_needs_19_classes(tmp_path):
    ckpt = tmp_path / "k.pt"
    save_checkpoint(make_checkpoint(create_model("enet", num_classes=2), "enet", {}, KITTI_CLASSES,
                                    (0.5,) * 3, (0.5,) * 3), ckpt)
    save_png(tmp_path / "x.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(RtsegError, match="needs a 19-class Cityscapes model"):
        rtseg.predict(tmp_path / "x.png", tmp_path / "o", ckpt, output_format="cityscapes")
