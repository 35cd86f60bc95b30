"""int8 on a sequence that neither training nor calibration saw.

For a model trained without sequence 0006R0 (``data.train_split=train/-0006R0``), quantise its
ONNX export with calibration frames from the other sequences and score float and each int8
variant on all of 0006R0: mIoU, pixel agreement with float, file size. The variants go from the
earlier default (min-max over all frames, every operator quantised, nothing kept in float) to
the current one (convolutions only, moving-average ranges, the model's ``int8_keep_float``).

    python tools/int8_unseen.py --weights runs/enet_s2_heldout/best.pt --json bench/int8_unseen.json
    python tools/int8_unseen.py --weights bench/campaign/enet_camvid_long/last.pt --runtime openvino \
        --variants default --json bench/int8_unseen_openvino_enet.json

``--runtime openvino``: the graphs are written for OpenVINO (``rtseg export --target openvino``)
and scored in it, as ``rtseg export --int8 --target openvino`` ships them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: (name, conv_only, moving_average, keep the model's float modules)
VARIANTS = (
    ("min-max, all ops (before)", False, False, False),
    ("+ convolutions only", True, False, False),
    ("+ moving-average ranges", True, True, False),
    ("+ model's float modules (default)", True, True, True),
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint trained without --heldout")
    p.add_argument("--calibrate", default="camvid:train/-0006R0:64", metavar="DATASET:SPLIT:N")
    p.add_argument("--heldout", default="train/0006R0", help="CamVid split to score on (default train/0006R0)")
    p.add_argument("--size", default="360x480")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "openvino"],
                   help="the runtime the graphs are written for and run in (default onnxruntime)")
    p.add_argument("--variants", default="all", choices=["all", "default"],
                   help="every int8 variant, or only the default one (the model's float modules)")
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    import rtseg
    from rtseg.deploy.export import compare, export_onnx
    from rtseg.deploy.quantize import calibration_frames, parse_calibration, quantize_int8
    from rtseg.onnx_model import metadata_from_checkpoint
    from rtseg.onnx_runtimes import load_runner
    from rtseg.weights import load_weights

    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    loaded = load_weights(args.weights)
    model = loaded.torch_model()
    dataset, split, n = parse_calibration(args.calibrate)
    calib = calibration_frames(dataset, split, n, size, loaded.mean, loaded.std)
    held = calibration_frames("camvid", args.heldout, 10**6, size, loaded.mean, loaded.std)  # every frame
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        export_onnx(model, float_path, size, metadata=metadata_from_checkpoint(loaded.checkpoint, size),
                    target=args.runtime)
        res = rtseg.evaluate(float_path, "camvid", args.heldout, threads=args.threads, progress=False,
                             runtime=args.runtime)
        rows.append({"variant": "float (ONNX)", "miou": round(100 * res["miou"], 2), "pixel_agreement": 1.0,
                     "file_mb": round(float_path.stat().st_size / 2**20, 3)})
        for name, conv_only, moving_average, keep in VARIANTS if args.variants == "all" else VARIANTS[-1:]:
            out = Path(tmp) / "int8.onnx"
            keep_float = list(getattr(model, "int8_keep_float", ())) if keep else []
            quantize_int8(float_path, out, calib, keep_float=keep_float, conv_only=conv_only,
                          moving_average=moving_average)
            parity = compare(model, load_runner(out, args.runtime, args.threads), [torch.from_numpy(f) for f in held],
                             argmax=False)
            res = rtseg.evaluate(out, "camvid", args.heldout, threads=args.threads, progress=False,
                                 runtime=args.runtime)
            rows.append({"variant": name, "keep_float": keep_float, "miou": round(100 * res["miou"], 2),
                         "pixel_agreement": round(parity.pixel_agreement, 5),
                         "file_mb": round(out.stat().st_size / 2**20, 3)})
            print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        row["miou_vs_float"] = round(row["miou"] - rows[0]["miou"], 2)
    report = {"weights": str(args.weights), "runtime": args.runtime, "calibrate": args.calibrate, "heldout": f"camvid:{args.heldout}",
              "frames_scored": len(held), "size": list(size), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    for row in rows:
        print(f"{row['variant']:<36} mIoU {row['miou']:6.2f} ({row['miou_vs_float']:+.2f})  "
              f"agreement {100 * row['pixel_agreement']:.2f}%  {row['file_mb']} MB")


if __name__ == "__main__":
    main()
