"""A class mask from an rtseg ONNX export, without rtseg (x86 servers, Jetson with
onnxruntime-gpu, anything ONNX Runtime runs on):
    pip install onnxruntime pillow numpy
    python onnxruntime_mask.py enet.onnx street.jpg mask.png
The ONNX file's metadata holds the class names, colours and normalisation."""

import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

model, image, out = sys.argv[1:4]
session = ort.InferenceSession(model, providers=ort.get_available_providers())  # CUDA/TensorRT first where present
meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()
        if k in ("rtseg_normalization", "rtseg_classes", "rtseg_input_size")}
mean, std = meta["rtseg_normalization"]["mean"], meta["rtseg_normalization"]["std"]
palette = np.array(meta["rtseg_classes"]["palette"], np.uint8)  # (classes, 3) RGB
h, w = meta["rtseg_input_size"]

rgb = Image.open(image).convert("RGB")
x = np.asarray(rgb.resize((w, h), Image.BILINEAR), np.float32) / 255  # (H, W, 3)
x = ((x - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)  # (1, 3, H, W)
logits = session.run(None, {session.get_inputs()[0].name: x})[0]  # (1, classes, H, W)
Image.fromarray(palette[logits[0].argmax(0)]).resize(rgb.size, Image.NEAREST).save(out)
