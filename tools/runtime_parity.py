"""Pixel agreement of exported models in ONNX Runtime, OpenCV DNN and OpenVINO with rtseg's
PyTorch path (what ``rtseg predict`` runs: BN folded, channels-last) on real frames, and, with
``--layers``, where a runtime starts to differ: every intermediate tensor of the graph compared
with ONNX Runtime's (the figures in docs/deployment_runtimes.md).

    python tools/runtime_parity.py --weights enet-camvid --frames 12 --json bench/runtime_parity.json
    python tools/runtime_parity.py --weights enet-camvid --frames 2 --runtimes openvino --layers
    python tools/runtime_parity.py --runtimes openvino --openvino-precision bf16   # OpenVINO's own default on bf16 CPUs

Each runtime gets the graph ``rtseg export --target RUNTIME`` writes for it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FRAMES = REPO.parent / "shared" / "datasets" / "camvid" / "val"


def layer_outputs(path: Path, out: Path) -> list[str]:
    """A copy of the graph whose outputs are every float intermediate tensor (node order)."""
    import onnx

    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    floats = {v.name for v in proto.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    names = [o for n in proto.graph.node for o in n.output if o in floats]
    existing = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in names if n not in existing)
    onnx.save(proto, str(out))
    return names


def compare_layers(path: Path, runtime: str, x: np.ndarray, tmp: Path) -> dict:
    """Largest |difference| / max|reference| of each intermediate tensor, ``runtime`` against ONNX
    Runtime; the first tensor above 1e-4 of its range and the op that made it."""
    import onnx
    import onnxruntime as ort

    wide = tmp / "layers.onnx"
    names = layer_outputs(path, wide)
    ops = {o: n.op_type for n in onnx.load(str(wide)).graph.node for o in n.output}
    ref = dict(zip([o.name for o in ort.InferenceSession(str(wide)).get_outputs()],
                   ort.InferenceSession(str(wide)).run(None, {"image": x})))
    if runtime == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(wide), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        res = compiled(x)
        got = {name: res[compiled.output(name)] for name in names}
    else:
        raise SystemExit("--layers compares OpenVINO with ONNX Runtime (OpenCV DNN 5 does not expose "
                         "intermediate tensors by their ONNX names)")
    rows = []
    for name in names:
        r = ref[name]
        rows.append({"tensor": name, "op": ops[name],
                     "rel_diff": float(np.abs(got[name] - r).max() / max(float(np.abs(r).max()), 1e-12))})
    first = next((r for r in rows if r["rel_diff"] > 1e-4), None)
    per_op: dict[str, float] = {}
    for r in rows:
        per_op[r["op"]] = max(per_op.get(r["op"], 0.0), r["rel_diff"])
    return {"tensors": len(rows), "first_above_1e-4": first, "max_rel_diff_per_op": per_op}


def _openvino_with_hint(path: Path, hint: str):
    """``path`` compiled by OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT=hint``."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    return lambda a: compiled(a)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="enet-camvid")
    p.add_argument("--frames", type=int, default=12, help="first N frames of CamVid val (default 12)")
    p.add_argument("--runtimes", default="onnxruntime,opencv,openvino")
    p.add_argument("--layers", action="store_true", help="also compare every intermediate tensor (OpenVINO)")
    p.add_argument("--openvino-precision", default=None, choices=["f32", "bf16", "f16"],
                   help="compile OpenVINO with this INFERENCE_PRECISION_HINT instead of rtseg's runner (f32 "
                        "pinned): what a user's own OpenVINO code gets, bf16 being its default on bf16 CPUs; "
                        "--layers still compares in f32")
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    import cv2
    import torch

    from rtseg.inference import load_model
    from rtseg.onnx_runtimes import load_runner, version
    from rtseg.weights import load_weights

    seg = load_model(args.weights, device="cpu")
    files = sorted(FRAMES.glob("*.png"))[:args.frames]
    images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    size = tuple(load_weights(args.weights).size())
    result = {"weights": args.weights, "frames": [f.name for f in files], "size": list(size), "runtimes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in args.runtimes.split(","):
            path = Path(tmp) / f"{runtime}.onnx"
            import rtseg

            rtseg.export(args.weights, path, size=size, target=runtime)
            if runtime == "openvino" and args.openvino_precision:
                run = _openvino_with_hint(path, args.openvino_precision)
            else:
                run = load_runner(path, runtime)
            agree = []
            for image in images:
                x = seg.preprocess([image])  # (1, 3, H, W) normalised, as rtseg predict feeds the network
                with torch.inference_mode():
                    ref = seg.predict_logits([image]).argmax(1).numpy()
                out = run(np.ascontiguousarray(x.numpy()))
                agree.append(float((out.argmax(1) == ref).mean()))
            hint = (args.openvino_precision or "f32") if runtime == "openvino" else None  # rtseg's runner: f32
            row = {"version": version(runtime), "precision_hint": hint, "pixel_agreement_mean": float(np.mean(agree)),
                   "pixel_agreement_worst": min(agree), "per_frame": agree}
            if args.layers and runtime == "openvino":
                row["layers"] = compare_layers(path, runtime, np.ascontiguousarray(seg.preprocess(images[:1]).numpy()),
                                               Path(tmp))
            result["runtimes"][runtime] = row
            print(f"{runtime} {row['version']}: {100 * row['pixel_agreement_mean']:.3f}% of pixels agree "
                  f"(worst frame {100 * row['pixel_agreement_worst']:.3f}%)", flush=True)
            if "layers" in row:
                print(json.dumps(row["layers"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
