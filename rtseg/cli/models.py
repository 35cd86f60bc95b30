"""rtseg models: every architecture with parameters, GFLOPs and shipped weights (``rtseg.model_table``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("models", help="list the architectures: parameters, GFLOPs, shipped weights",
                       description="Every architecture rtseg builds, with its inference parameters (auxiliary "
                                   "heads left out) and GFLOPs (a multiply-add counts 2) at 360x480 and 1024x2048 (or --size), "
                                   "and the trained weights that ship (usable as --weights NAME). "
                                   "docs/model_zoo.md adds accuracy and measured latency.")
    p.add_argument("models", nargs="*", metavar="NAME[:arg=value,...]",
                   help="architectures to list (default: all), each with arguments for its builder if wanted, "
                        "e.g. icnet:filter_scale=0.5")
    p.add_argument("--num-classes", type=int, default=11, help="output classes to count with (default 11)")
    p.add_argument("--size", action="append", default=None, metavar="HxW",
                   help="input size to count GFLOPs at; repeat for several (default: 360x480 and 1024x2048)")
    options.add_json(p, "the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.zoo import TABLE_SIZES, model_table

    sizes = tuple(options.parse_size(s) for s in args.size) if args.size else TABLE_SIZES
    rows = model_table(args.num_classes, sizes, args.models or None)
    options.write_json(args.json, {"num_classes": args.num_classes, "models": rows})
    width = max(18, *(len(r["model"]) + 1 for r in rows))
    columns = [f"GFLOPs {h}x{w}" for h, w in sizes]
    print(f"{'model':<{width}} {'params (M)':>10} " + " ".join(f"{c:>17}" for c in columns) + "  shipped weights")
    for r in rows:
        flops = " ".join(f"{r[f'gflops_{h}x{w}']:>17.2f}" for h, w in sizes)
        print(f"{r['model']:<{width}} {r['params'] / 1e6:>10.2f} {flops}  {', '.join(r['shipped']) or '-'}")
    return 0
