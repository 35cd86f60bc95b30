"""rtseg.onnx_model: an exported graph predicts and scores as its PyTorch model does, in its runtime
(OpenCV DNN, OpenVINO), static or dynamic, from several threads at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rtseg
from rtseg.onnx_runtimes import available

needs_openvino = pytest.mark.skipif(not available("openvino"), reason="OpenVINO is not installed: "
                                    "pip install 'rtseg[openvino]'")


@pytest.mark.parametrize("runtime", ["opencv", pytest.param("openvino", marks=needs_openvino)])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_predict_and_eval_run_an_export_in_its_runtime_as_pytorch_does(enet_ckpt_bn, tiny_camvid, tmp_path,
                                                                        runtime, dynamic):
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "enet.onnx"
    rtseg.export(enet_ckpt_bn, out, size=(24, 32), target=runtime, dynamic=dynamic)
    reference, seg = rtseg.load_model(enet_ckpt_bn, device="cpu"), rtseg.load_model(out, runtime=runtime)
    assert seg.name == f"enet (onnx, {runtime})" and seg.fixed_size == (None if dynamic else [24, 32])
    rng = np.random.default_rng(0)
    # Server worker threads at once (OpenVINO: a request per thread; OpenCV: one pass at a time).
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(24, 32)] * 6 + [(48, 64)] * 2]
    with ThreadPoolExecutor(4) as pool:
        masks = list(pool.map(seg.predict, images))
    for image, mask in zip(images, masks):
        assert mask.shape == image.shape[:2] and (mask == reference.predict(image)).mean() >= 0.99
    if dynamic:  # the network at another size (the Segmenter resizes frames to the training size)
        assert seg.model(torch.zeros(2, 3, 48, 64)).shape == (2, 11, 48, 64)
        assert len(seg.model._runners) == (2 if runtime == "openvino" else 1)  # OpenVINO: one per shape met
    scores = [rtseg.evaluate(w, "camvid", "val", data_root=tiny_camvid, progress=False, runtime=r)["miou"]
              for w, r in [(enet_ckpt_bn, None), (out, runtime)]]
    assert scores[1] == pytest.approx(scores[0], abs=0.01)
