"""rtseg bench: latency, FPS, size and memory (``rtseg.benchmark``); --suite is make bench's table."""

from __future__ import annotations

import argparse
import json

from rtseg.cli import options


def register(sub) -> None:
    from rtseg.benchmarks.inference import BACKENDS
    from rtseg.models import list_models

    p = sub.add_parser("bench", help="latency, FPS, parameters, GFLOPs and memory of a model",
                       description="Time the network alone (batch 1, after warm-up) and, separately, the whole "
                                   "image -> mask path; report parameters, GFLOPs and peak resident memory. "
                                   "--suite runs the table of `make bench`.")
    p.add_argument("--model", choices=list_models(), default=None, help="architecture (random weights)")
    options.add_weights(p)
    p.add_argument("--num-classes", type=int, default=11, help="classes for --model without --weights (default 11)")
    options.add_size(p, "360x480")
    p.add_argument("--backend", choices=["auto", *BACKENDS], default="torch", metavar="NAME",
                   help=options.backend_help("torch")
                   + "; with a model, the graph runtimes time it exported for them (rtseg export --target), "
                     "int8 calibrated on --calibrate")
    options.add_threads(p)
    p.add_argument("--iters", type=int, default=30, help="timed iterations (default 30)")
    p.add_argument("--runs", type=int, default=1,
                   help="repeat in N fresh processes, one after another; report the median of their medians "
                        "and each run's (shows the drift of a shared machine)")
    p.add_argument("--calibrate", default=None, metavar="DATASET:SPLIT:N",
                   help="int8 calibration frames (default: the street frames the package carries)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="calibration dataset folder")
    p.add_argument("--suite", action="store_true", help="every model x backend of `make bench`")
    p.add_argument("--train", action="store_true",
                   help="measure a training step instead: peak memory and time (with --model)")
    p.add_argument("--train-throughput", action="store_true",
                   help="measure training images/s instead: forward, loss, backward, Adam (with --model)")
    p.add_argument("--processes", type=int, default=1,
                   help="--train-throughput: DDP processes started with torchrun, --threads each (default 1)")
    p.add_argument("--steps", type=int, default=20, help="--train-throughput: timed steps (default 20)")
    p.add_argument("--train-path", choices=("rtseg", "eager", "both"), default="rtseg",
                   help="--train-throughput: rtseg = channels-last, native mixed precision (bf16 on CPUs with "
                        "AVX512-BF16/AMX), compiled; eager = plain float32 NCHW eager PyTorch; both = each in "
                        "--runs fresh processes, alternating, and the speed-up (default rtseg)")
    p.add_argument("--batch", type=int, default=2,
                   help="--train, --train-throughput: batch size per process (default 2)")
    p.add_argument("--grad-checkpoint", action="store_true", help="--train: gradient checkpointing on")
    options.add_json(p)
    p.add_argument("--markdown", default=None, metavar="OUT", help="with --suite: the table as markdown")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.benchmarks import benchmark
    from rtseg.benchmarks.inference import bench_markdown, benchmark_suite

    size = options.parse_size(args.size) or (360, 480)
    if args.suite:
        rows = benchmark_suite(size, args.threads, args.calibrate, args.data_root,
                               log=lambda line: print(line, flush=True))
        options.write_json(args.json, {"size": list(size), "results": rows})
        if args.markdown:
            from rtseg.io import atomic_write_text

            atomic_write_text(args.markdown, bench_markdown(rows))
        print(bench_markdown(rows))
        return 0
    row = benchmark(args.model, args.weights, size=size, backend=args.backend, threads=args.threads,
                    iters=args.iters, runs=args.runs, num_classes=args.num_classes, calibrate=args.calibrate,
                    data_root=args.data_root, train=args.train, batch=args.batch,
                    grad_checkpoint=args.grad_checkpoint, train_throughput=args.train_throughput,
                    processes=args.processes, steps=args.steps, train_path=args.train_path)
    options.write_json(args.json, row)
    print(json.dumps({k: v for k, v in row.items() if k != "machine"}, indent=2))
    return 0
