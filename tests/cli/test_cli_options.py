"""rtseg.cli.options: the older --runtime and --compile flags still work and say they are
deprecated; an unknown runtime is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest

import rtseg


def test_the_older_flags_still_work_and_say_they_are_deprecated(capsys, tmp_path):
    from rtseg.cli import main

    assert main(["predict", "samples/camvid/0016E5_07959.jpg", "--out", str(tmp_path / "a"), "--runtime",
                 "onnxruntime"]) == 0
    captured = capsys.readouterr()
    assert "--runtime onnxruntime is deprecated" in captured.err and "onnxruntime" in captured.out
    assert main(["predict", "samples/camvid/0016E5_07959.jpg", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("backend torch (auto: 1 frame(s): eager PyTorch starts at once")
    assert main(["predict", "samples/camvid/0016E5_07959.jpg", "--out", str(tmp_path / "c"), "--compile",
                 "--backend", "torch"]) == 2
    assert "--compile is the older spelling of --backend: give --backend torch alone" in capsys.readouterr().err


def test_runtime_is_the_older_spelling_of_backend_and_an_unknown_one_a_one_line_error(enet_ckpt, tmp_path, capsys):
    from rtseg.cli import main
    from rtseg.errors import CheckpointError

    assert rtseg.load_model(enet_ckpt, runtime="openvino").backend == "openvino"  # PyTorch weights: exported for it
    with pytest.raises(CheckpointError, match=r"^--runtime 'tensorrt': expected one of onnxruntime, opencv, openvino$"):
        rtseg.load_model(tmp_path / "m.onnx", runtime="tensorrt")
    image = tmp_path / "in.png"
    from conftest import save_png

    save_png(image, np.zeros((24, 32, 3), np.uint8))
    assert main(["predict", str(image), "--weights", str(enet_ckpt), "--runtime", "opencv",
                 "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err == ["rtseg: --runtime opencv is deprecated and goes in the next release: use --backend opencv"]
    assert "(enet, opencv, cpu)" in captured.out
