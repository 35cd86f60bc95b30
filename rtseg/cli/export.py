"""rtseg export: ONNX / TorchScript / int8 with a parity check (``rtseg.export``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    from rtseg.backends import program_formats

    p = sub.add_parser("export", help="export to ONNX, TorchScript or a phone/board runtime (parity-checked), int8",
                       description="Export a model for deployment. BatchNorm is folded into the convolutions; "
                                   "the export is run in its runtime against PyTorch on the same inputs and the "
                                   "command fails if they diverge. Writes PATH and PATH.json (the report). The "
                                   "exported network takes normalised float (N, 3, H, W) images; the ONNX metadata "
                                   "holds the class table and normalisation, the other formats' report (PATH.json) "
                                   "too. docs/devices.md has a guide per device.")
    options.add_weights(p)
    formats = ["onnx", "torchscript", *program_formats()]
    p.add_argument("--format", choices=formats, default="onnx",
                   help="default onnx; executorch: a .pte program on the XNNPACK delegate (pip install "
                        "'rtseg[executorch]'); tflite: a LiteRT program on XNNPACK (pip install 'rtseg[litert]', "
                        "converted by litert-torch: make litert-env); ncnn: PATH.param and PATH.bin (pip install "
                        "'rtseg[ncnn]', float only). With --int8 (executorch, tflite): the runtime's own int8, "
                        "calibrated on --calibrate frames or the package's street frames")
    options.add_size(p)
    p.add_argument("--target", choices=["onnxruntime", "opencv", "openvino"], default="onnxruntime",
                   help="ONNX: the runtime to write the graph for and run the parity check in (default "
                        "onnxruntime); opencv and openvino get standard ops only (max-unpooling without "
                        "ScatterND); see docs/deployment_runtimes.md")
    p.add_argument("--dynamic", action="store_true", help="ONNX: symbolic batch, height and width")
    p.add_argument("--argmax", action="store_true", help="end the graph with argmax: (N, H, W) class ids")
    p.add_argument("--int8", action="store_true", help="ONNX: ONNX Runtime static int8 quantisation (QDQ, per-channel), "
                        "checked in the --target runtime: onnxruntime or openvino (OpenCV DNN cannot run QDQ "
                        "graphs); the other formats: their runtime's own int8")
    p.add_argument("--calibrate", default=None, metavar="DATASET:SPLIT:N",
                   help="int8 calibration frames, e.g. camvid:train:64 (ONNX: required; the other formats: "
                        "default the street frames the package carries)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="calibration dataset folder")
    p.add_argument("--keep-float", default=None, metavar="NAMES",
                   help="int8: comma-separated module paths (substrings of weight names, e.g. classifier,up5) "
                        "or node names whose nodes stay in float; none = quantise every layer (default: the "
                        "model's own list, measured with --sensitivity; ENet: initial,down1,stage1)")
    p.add_argument("--sensitivity", default=None, metavar="DATASET:SPLIT:N",
                   help="int8: also quantise once per top-level module with that module alone in float and "
                        "report how much each raises pixel agreement with PyTorch on these frames (best from "
                        "sequences the calibration did not see, e.g. camvid:train/0006R0:16); slow")
    options.add_threads(p)
    p.add_argument("--out", required=True, metavar="PATH", help="the exported file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.deploy.export import export
    from rtseg.onnx_runtimes import NAMES

    report = export(args.weights, args.out, format=args.format, size=options.parse_size(args.size),
                    dynamic=args.dynamic, argmax=args.argmax, int8=args.int8, calibrate=args.calibrate,
                    data_root=args.data_root, keep_float=_keep_float(args.keep_float),
                    sensitivity=args.sensitivity, threads=args.threads, target=args.target)
    par = report.get("int8", {}).get("parity_on_calibration_frames") or report.get("parity", {})
    size = report["size"]
    if "backend" in report:  # a runtime's own program
        print(f"exported {report['format']}{' int8' if args.int8 else ''} -> {args.out} ({report['file_mb']} MB), "
              f"size {size[0]}x{size[1]}, checked in --backend {report['backend']}: "
              f"{100 * par['pixel_agreement']:.3f}% pixels agree with PyTorch"
              + (" (calibration frames)" if args.int8 else f", max |logit diff| {par['max_abs_diff']:.2g}"))
        return 0
    print(f"exported {report['format']}{' int8' if args.int8 else ''} -> {args.out} ({report['file_mb']} MB), "
          f"size {size[0]}x{size[1]}, parity: max |diff| {par.get('max_abs_diff', float('nan')):.2g}, "
          f"{100 * par.get('pixel_agreement', float('nan')):.3f}% pixels agree"
          + (f" in {NAMES[report['runtime']['name']]} {report['runtime']['version']}" if "runtime" in report else ""))
    int8 = report.get("int8", {})
    if "parity_on_sensitivity_frames" in int8:
        print(f"on the --sensitivity frames ({int8['sensitivity_frames']}): "
              f"{100 * int8['parity_on_sensitivity_frames']['pixel_agreement']:.3f}% pixels agree; "
              "pixel agreement with one module in float:")
        for row in int8["sensitivity"]:
            print(f"  {row['float_module'] or '(all int8)':<14} {100 * row['pixel_agreement']:7.3f}%  "
                  f"{100 * row['gain']:+.3f}")
    return 0


def _keep_float(value: str | None) -> list[str] | None:
    if value is None:
        return None  # the model's default
    if value.strip().lower() == "none":
        return []
    return [k for k in value.split(",") if k]
