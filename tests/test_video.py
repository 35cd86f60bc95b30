"""rtseg.video: every frame kept and in order, label PNGs, the compiled path, bad inputs, and the
class key drawn on the frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import rtseg
from rtseg.errors import RtsegError


def _write_video(path, n=12, h=48, w=64, fps=7.0):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(n):
        vw.write(np.full((h, w, 3), 15 + 18 * i, np.uint8))  # brightness encodes the frame index
    vw.release()


def test_video_round_trip_keeps_every_frame_in_order(enet_ckpt, tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    _write_video(src)
    stats = rtseg.process_video(src, out, enet_ckpt, alpha=0, gif=tmp_path / "o.gif", progress=False)
    assert stats["frames_out"] == 12 and stats["inference_s"] > 0
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(7.0)
    means = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        means.append(frame[40:, :].mean())  # below the FPS text
    assert len(means) == 12
    assert all(b > a for a, b in zip(means, means[1:]))
    assert not list(tmp_path.glob(".out.partial*"))


def test_video_labels_only_writes_one_class_png_per_frame(enet_ckpt, tmp_path):
    from PIL import Image

    src = tmp_path / "in.mp4"
    _write_video(src, n=5)
    stats = rtseg.process_video(src, tmp_path / "labels", enet_ckpt, labels_only=True, progress=False)
    files = sorted((tmp_path / "labels").glob("frame_*.png"))
    assert stats["frames_out"] == 5 and [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(5)]
    seg = rtseg.load_model(enet_ckpt, device="cpu")
    frame = next(iter(rtseg.video.open_source(str(src)).frames))
    label = Image.open(files[0])
    assert label.mode == "P" and label.size == (64, 48)
    np.testing.assert_array_equal(np.asarray(label), seg.predict(frame))
    assert stats["cores_busy"] > 0 and stats["process_cpu_s"] > 0
    with pytest.raises(RtsegError, match="cannot go with --labels-only"):
        rtseg.process_video(src, tmp_path / "labels", enet_ckpt, labels_only=True, gif=tmp_path / "x.gif")


@pytest.mark.slow
def test_compiled_segmenter_matches_eager_and_runs_video(enet_ckpt, tmp_path):
    from rtseg.inference import load_model
    from rtseg.video import open_source, segment_video

    eager = load_model(enet_ckpt)
    compiled = load_model(enet_ckpt, compile=True)
    assert compiled.compiled and not eager.compiled
    src = tmp_path / "in.mp4"
    _write_video(src)
    frame = next(iter(open_source(str(src)).frames))
    torch.testing.assert_close(compiled.predict_logits([frame]), eager.predict_logits([frame]), rtol=1e-4, atol=1e-4)
    stats = segment_video(compiled, open_source(str(src)), tmp_path / "out.mp4", progress=False)
    assert stats["frames_out"] == 12
    onnx_path = tmp_path / "m.onnx"
    rtseg.export(enet_ckpt, onnx_path, size=(24, 32))
    with pytest.raises(RtsegError, match="compile needs PyTorch weights"):
        load_model(onnx_path, compile=True)


def test_video_bad_inputs_fail_before_work(tmp_path):
    # A missing model would fail too: the inputs are checked first.
    weights = tmp_path / "no-model.pt"
    with pytest.raises(RtsegError, match="video input not found"):
        rtseg.process_video(tmp_path / "missing.mp4", tmp_path / "o.mp4", weights)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(RtsegError, match="cannot decode video"):
        rtseg.process_video(bad, tmp_path / "o.mp4", weights)
    _write_video(tmp_path / "ok.mp4", n=2)
    with pytest.raises(RtsegError, match="expected a .mp4"):
        rtseg.process_video(tmp_path / "ok.mp4", tmp_path / "o.txt", weights)


def test_video_draws_the_class_key_unless_told_not_to(enet_ckpt, tmp_path):
    src = tmp_path / "in.mp4"
    _write_video(src, n=4, h=360, w=480)

    def first_frame(out, **kw):
        rtseg.process_video(src, out, enet_ckpt, alpha=0, progress=False, backend="torch", **kw)
        ok, frame = cv2.VideoCapture(str(out)).read()
        assert ok
        return frame.astype(np.int16)

    with_key, without = first_frame(tmp_path / "a.mp4"), first_frame(tmp_path / "b.mp4", legend=False)
    only_car = first_frame(tmp_path / "c.mp4", classes=["Car"])
    assert np.abs(with_key[60:170, -60:] - without[60:170, -60:]).mean() > 20  # the key's rows
    assert np.abs(with_key[200:, :300] - without[200:, :300]).mean() < 2  # the picture elsewhere
    assert np.abs(only_car[60:170, -60:] - without[60:170, -60:]).mean() < 2  # one row: below it, nothing
