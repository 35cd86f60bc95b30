"""float32, bfloat16 and int8 (PT2E) PyTorch inference on a sequence neither training nor
calibration saw: the accuracy side of ``rtseg bench --backend torch-compile|torch-bf16|torch-int8``.

For a model trained without sequence 0006R0 (``data.train_split=.../-0006R0``), run every frame
of 0006R0 at 360x480 through the compiled float32 network (BN folded, channels-last, frozen
weights), the same in bfloat16 (CPUs with native bf16 only) and PyTorch's int8 (calibrated on
frames of the other sequences), and report each one's mIoU and pixel agreement with float32.

    python tools/precision_unseen.py --weights runs/enet_camvid_long_fullres_heldout/last.pt \\
        --json bench/precision_unseen.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def score(runner, ds, num_classes: int) -> tuple[dict, list]:
    import torch

    from rtseg.metrics import ConfusionMatrix
    from rtseg.runtime import class_map

    cm, masks = ConfusionMatrix(num_classes), []
    with torch.inference_mode():
        for i in range(len(ds)):
            image, target = ds[i]
            mask = class_map(runner(image[None].contiguous(memory_format=torch.channels_last)))[0]
            cm.update(mask, target)
            masks.append(mask)
    return cm.compute(), masks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint trained without --heldout")
    p.add_argument("--calibrate", default="camvid:train/-0006R0:16", metavar="DATASET:SPLIT:N")
    p.add_argument("--heldout", default="train/0006R0", help="CamVid split to score on (default train/0006R0)")
    p.add_argument("--size", default="360x480")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    from rtseg.datasets import build_dataset
    from rtseg.datasets.transforms import build_eval_transform
    from rtseg.deploy.pt2e import compile_int8
    from rtseg.deploy.quantize import calibration_frames, parse_calibration
    from rtseg.models.fold import fold_batchnorm
    from rtseg.runtime import Bfloat16Inference, compile_for_inference, cpu_has_native_bf16
    from rtseg.weights import load_weights

    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    loaded = load_weights(args.weights)
    ds = build_dataset("camvid", args.heldout, None, build_eval_transform(size, loaded.mean, loaded.std))
    dataset, split, n = parse_calibration(args.calibrate)
    calib = calibration_frames(dataset, split, n, size, loaded.mean, loaded.std)

    def folded():
        return fold_batchnorm(loaded.torch_model()).to(memory_format=torch.channels_last).eval()

    variants = {"float32 (torch-compile)": lambda: compile_for_inference(folded())}
    if cpu_has_native_bf16():
        variants["bfloat16 (torch-bf16)"] = lambda: compile_for_inference(Bfloat16Inference(folded()))
    variants["int8 PT2E (torch-int8)"] = lambda: compile_int8(loaded.torch_model(), calib)
    rows, reference = [], None
    for name, make in variants.items():
        metrics, masks = score(make(), ds, loaded.classes.num_classes)
        reference = reference or masks
        agree = sum(int((a == b).sum()) for a, b in zip(masks, reference)) / sum(m.numel() for m in masks)
        rows.append({"variant": name, "miou": round(100 * metrics["miou"], 2), "pixel_agreement": round(agree, 5)})
        rows[-1]["miou_vs_float"] = round(rows[-1]["miou"] - rows[0]["miou"], 2)
        print(json.dumps(rows[-1]), flush=True)
    from rtseg.measure import machine_info

    report = {"weights": str(args.weights), "calibrate": args.calibrate, "heldout": f"camvid:{args.heldout}",
              "frames_scored": len(ds), "size": list(size), "rows": rows, "machine": machine_info()}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
