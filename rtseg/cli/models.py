"""rtseg models: every architecture with parameters, GFLOPs and shipped weights (``rtseg.model_table``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("models", help="list the architectures: parameters, GFLOPs, shipped weights",
                       description="Every architecture rtseg builds, with its inference parameters (auxiliary "
                                   "heads left out) and GFLOPs (a multiply-add counts 2) at 360x480 and 1024x2048, "
                                   "and the trained weights that ship (usable as --weights NAME). "
                                   "docs/model_zoo.md adds accuracy and measured latency.")
    p.add_argument("--num-classes", type=int, default=11, help="output classes to count with (default 11)")
    options.add_json(p, "the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.zoo import model_table

    rows = model_table(args.num_classes)
    options.write_json(args.json, {"num_classes": args.num_classes, "models": rows})
    print(f"{'model':<18} {'params (M)':>10} {'GFLOPs 360x480':>15} {'GFLOPs 1024x2048':>17}  shipped weights")
    for r in rows:
        print(f"{r['model']:<18} {r['params'] / 1e6:>10.2f} {r['gflops_360x480']:>15.2f} "
              f"{r['gflops_1024x2048']:>17.1f}  {', '.join(r['shipped']) or '-'}")
    return 0
