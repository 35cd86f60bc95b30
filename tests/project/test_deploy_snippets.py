"""The deploy guide's standalone snippets (docs/snippets/, shown in docs/devices.md) run as a user
runs them, in a child process, on a real export and a street frame, and draw the mask rtseg
draws: each must agree with `rtseg predict` on >= 99.9% of the pixels."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rtseg

REPO = Path(__file__).resolve().parents[2]
SNIPPETS = REPO / "docs" / "snippets"
FRAME = REPO / "samples" / "camvid" / "0016E5_08079.jpg"  # 480x360: the working size, nothing resized
pytestmark = pytest.mark.slow

#: snippet -> (rtseg export --format, file name, runtime module it needs)
CASES = {"onnxruntime_mask.py": ("onnx", "enet.onnx", "onnxruntime"),
         "litert_mask.py": ("tflite", "enet.tflite", "ai_edge_litert"),
         "ncnn_mask.py": ("ncnn", "enet.param", "ncnn")}


@pytest.fixture(scope="module")
def expected():
    seg = rtseg.load_model("enet-camvid")
    return seg.palette[seg.predict(np.asarray(Image.open(FRAME).convert("RGB")))]  # (H, W, 3) colours


@pytest.mark.parametrize("snippet", list(CASES))
def test_a_snippet_draws_the_mask_rtseg_draws(snippet, expected, tmp_path):
    fmt, name, module = CASES[snippet]
    if find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    model = tmp_path / name
    try:
        rtseg.export("enet-camvid", model, format=fmt)
    except rtseg.RtsegError as e:  # the format's converter is not here (LiteRT's lives in make litert-env)
        pytest.skip(str(e))
    out = tmp_path / "mask.png"
    done = subprocess.run([sys.executable, str(SNIPPETS / snippet), str(model), str(FRAME), str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    mask = np.asarray(Image.open(out).convert("RGB"))
    assert mask.shape == expected.shape
    assert (mask == expected).all(-1).mean() >= 0.999
