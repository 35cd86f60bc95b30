"""A class mask from an rtseg LiteRT export, without rtseg (Raspberry Pi, ARM Linux, any CPU):
    pip install ai-edge-litert pillow numpy
    python litert_mask.py enet.tflite street.jpg mask.png
enet.tflite.json (written beside the export) holds the class names and colours."""

import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

model, image, out = sys.argv[1:4]
meta = json.load(open(model + ".json"))["metadata"]
mean, std = meta["rtseg_normalization"]["mean"], meta["rtseg_normalization"]["std"]
palette = np.array(meta["rtseg_classes"]["palette"], np.uint8)  # (classes, 3) RGB

net = Interpreter(model_path=model, num_threads=4)  # XNNPACK: the same kernels on ARM and x86
net.allocate_tensors()
inp, outp = net.get_input_details()[0], net.get_output_details()[0]
_, _, h, w = inp["shape"]  # (1, 3, H, W): NCHW, float32 (int8 for an --int8 export)

rgb = Image.open(image).convert("RGB")
x = np.asarray(rgb.resize((w, h), Image.BILINEAR), np.float32) / 255  # (H, W, 3)
x = ((x - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)  # (1, 3, H, W)
if inp["dtype"] == np.int8:  # an int8 program takes int8: its own scale and zero point
    scale, zero = inp["quantization"]
    x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
net.set_tensor(inp["index"], x)
net.invoke()
logits = net.get_tensor(outp["index"])  # (1, classes, H, W); scaled int8 for an int8 program
classes = logits[0].argmax(0)  # (H, W) class ids: the argmax needs no dequantising
Image.fromarray(palette[classes]).resize(rgb.size, Image.NEAREST).save(out)
