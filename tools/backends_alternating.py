"""Latency of one model on several ``rtseg bench`` backends, in fresh processes, alternating.

    python tools/backends_alternating.py --weights enet-camvid --runs 3 --threads 2 \\
        --backends torch,torch-compile,torch-bf16,torch-int8,onnxruntime,onnxruntime-int8,opencv,openvino \\
        --calibrate camvid:train:16 --json bench/backends_enet_camvid.json

Each run starts one ``rtseg bench`` process per backend, the order rotating from run to run, so
the drift of a shared machine hits every backend alike; the JSON has every run's row, each
backend's median of medians and its speed-up over the first backend listed. Backends that a
machine cannot run (OpenVINO not installed, bf16 without native support) are recorded with
their one-line reason and left out of the ratios. Time it with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="enet-camvid",
                   help="checkpoint, shipped model or .onnx file (default enet-camvid); several, comma-separated, "
                        "alternate as the models do (for example two graph forms of one export)")
    p.add_argument("--models", default=None, metavar="NAME,...",
                   help="architectures with random weights (11 classes) instead of --weights: each model x backend "
                        "is one entry of the rotation")
    p.add_argument("--backends", default="torch,torch-compile,torch-bf16,torch-int8,onnxruntime,onnxruntime-int8")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--size", default="360x480")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--calibrate", default=None, metavar="DATASET:SPLIT:N", help="int8 calibration frames")
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    from rtseg.benchmarks.measure import bench_argv, machine_info, run_bench_process
    from rtseg.errors import RtsegError

    weights = args.weights.split(",")
    if args.models:  # (model, weights): random weights of each architecture
        sources = [(m, None) for m in args.models.split(",")]
    else:
        sources = [(None, w) for w in weights]
    entries = [(m, w, b) for m, w in sources for b in args.backends.split(",")]
    several = len(sources) > 1 or bool(args.models)
    keys = [f"{m or Path(w).name}:{b}" if several else b for m, w, b in entries]
    rows: dict[str, list[dict]] = {k: [] for k in keys}
    refused: dict[str, str] = {}
    for run in range(args.runs):
        shift = run % len(entries)
        for (model, source, backend), key in zip(entries[shift:] + entries[:shift], keys[shift:] + keys[:shift]):
            if key in refused:
                continue
            argv = bench_argv({"model": model, "weights": source, "backend": backend,
                               "size": args.size.split("x"), "threads": args.threads, "iters": args.iters,
                               "calibrate": args.calibrate if "int8" in backend else None})
            try:
                rows[key].append(run_bench_process(argv, what=f"{key} run {run + 1}"))
            except RtsegError as e:
                refused[key] = str(e).splitlines()[-1]
                print(f"{key}: {refused[key]}", file=sys.stderr)
                continue
            print(f"run {run + 1}/{args.runs} {key}: {rows[key][-1]['median_ms']} ms", file=sys.stderr)
    timed = [k for k in keys if rows[k]]
    summary = {b: {"median_ms": round(statistics.median(r["median_ms"] for r in rows[b]), 2),
                   "run_median_ms": [r["median_ms"] for r in rows[b]],
                   "e2e_median_ms": round(statistics.median(r["e2e_median_ms"] for r in rows[b]), 2)}
               for b in timed}
    for b in timed:
        summary[b]["speedup_over_" + timed[0]] = round(summary[timed[0]]["median_ms"] / summary[b]["median_ms"], 3)
    report = {"weights": None if args.models else args.weights, "models": args.models, "size": args.size, "threads": args.threads, "runs": args.runs,
              "backends": summary, "refused": refused, "rows": rows, "machine": machine_info()}
    print(json.dumps({b: s["median_ms"] for b, s in summary.items()}))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
