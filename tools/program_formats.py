"""Which models of the registry each phone/board runtime takes: every model in ``list_models()``,
random weights with non-trivial BatchNorm statistics, built by every float backend that writes
its own program (``rtseg export --format executorch|tflite|ncnn``) and run against eager PyTorch
at a small size. A model either converts (with its class agreement and largest logit difference)
or is refused with the backend's one-line reason.

    python tools/program_formats.py --json bench/program_formats.json       # about 10 minutes on 2 cores
    python tools/program_formats.py --shipped --json bench/program_files.json   # the shipped models' files

``tests/project/test_docs.py`` checks that the file covers every model and backend and that
docs/devices.md's table says what it holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    from conftest import with_bn_statistics
    from rtseg import list_models
    from rtseg.backends import BuildOptions, build_runner, get_backend, program_formats
    from rtseg.errors import RtsegError
    from rtseg.models import create_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="64x96", help="HxW (default 64x96)")
    p.add_argument("--shipped", action="store_true",
                   help="instead: export the shipped models in every format, float and int8, and record each "
                        "file's size and its parity in its runtime (rtseg export's report)")
    p.add_argument("--models", default=None, metavar="NAME,...",
                   help="only these (default: every model); their rows replace theirs in an existing --json file")
    p.add_argument("--json", required=True, metavar="OUT")
    args = p.parse_args()
    if args.shipped:
        return shipped_files(args.json)
    size = tuple(int(v) for v in args.size.split("x"))
    names = args.models.split(",") if args.models else list_models()
    old = json.loads(Path(args.json).read_text())["rows"] if args.models and Path(args.json).is_file() else []
    rows = [r for r in old if r["model"] not in names]
    for name in names:
        torch.manual_seed(0)
        model = with_bn_statistics(create_model(name, num_classes=11)).eval()
        for w in model.parameters():  # zero-initialised score layers (FCN8s) would make every output 0
            if w.dim() > 1 and not w.any():
                torch.nn.init.normal_(w, std=0.05)
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = model(x)
        for fmt, backend in program_formats().items():
            row = {"model": name, "format": fmt, "backend": backend}
            why = get_backend(backend).unavailable()
            if why:
                row.update(converts=None, reason=why)
            else:
                try:
                    got = build_runner(model, backend, options=BuildOptions(threads=2))(x)
                    row.update(converts=True, pixel_agreement=float((got.argmax(1) == expected.argmax(1)).float().mean()),
                               max_abs_diff=float((got - expected).abs().max()),
                               logit_scale=float(expected.abs().max()))
                except RtsegError as e:
                    row.update(converts=False, reason=str(e).splitlines()[0])
            print(json.dumps(row), flush=True)
            rows.append(row)
    rows.sort(key=lambda r: (r["model"], r["format"]))
    Path(args.json).write_text(json.dumps({"size": list(size), "rows": rows}, indent=1) + "\n")


def shipped_files(out: str) -> None:
    import tempfile

    from rtseg import export
    from rtseg.backends import get_backend, list_backends, program_formats
    from rtseg.checkpoint import shipped_models

    formats = program_formats()
    cases = [("onnx", False, ".onnx")] + [(fmt, q, get_backend(b).file_suffix) for fmt, b in formats.items()
                                          for q in (False, True) if not q or f"{b}-int8" in list_backends()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in shipped_models():
            for fmt, int8, suffix in cases:
                report = export(model, Path(tmp) / f"{model}{'-int8' if int8 else ''}{suffix}", format=fmt, int8=int8)
                parity = report.get("int8", {}).get("parity_on_calibration_frames") or report["parity"]
                rows.append({"model": model, "format": fmt, "int8": int8, "file_mb": report["file_mb"],
                             "pixel_agreement": parity["pixel_agreement"]})
                print(json.dumps(rows[-1]), flush=True)
    Path(out).write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
