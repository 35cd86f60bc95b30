"""A class mask from an rtseg NCNN export, without rtseg (phones, ARM boards, any CPU):
    pip install ncnn pillow numpy
    python ncnn_mask.py enet.param street.jpg mask.png        # enet.bin beside enet.param
enet.param.json (written beside the export) holds the input size, class names and colours."""

import json
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before ncnn loads: busy-waiting threads slow it 10x

import ncnn  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

param, image, out = sys.argv[1:4]
report = json.load(open(param + ".json"))
meta = report["metadata"]
mean, std = meta["rtseg_normalization"]["mean"], meta["rtseg_normalization"]["std"]
palette = np.array(meta["rtseg_classes"]["palette"], np.uint8)  # (classes, 3) RGB
h, w = report["size"]

net = ncnn.Net()
net.opt.num_threads = 4
net.load_param(param)
net.load_model(param[: -len(".param")] + ".bin")

rgb = Image.open(image).convert("RGB")
x = np.asarray(rgb.resize((w, h), Image.BILINEAR), np.float32) / 255  # (H, W, 3)
x = np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1), np.float32)  # (3, H, W): ncnn has no batch
ex = net.create_extractor()
ex.input("in0", ncnn.Mat(x))
_, y = ex.extract("out0")
classes = np.array(y).argmax(0)  # (classes, H, W) -> (H, W)
Image.fromarray(palette[classes]).resize(rgb.size, Image.NEAREST).save(out)
