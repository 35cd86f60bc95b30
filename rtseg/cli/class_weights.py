"""rtseg class-weights: median-frequency or ENet class weights (``rtseg.compute_class_weights``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("class-weights", help="compute class weights (median frequency or ENet)",
                       description="Class weights for the non-ignored classes: mfb = median frequency "
                                   "balancing, enet = 1/ln(c + p) (c = 1.02 as in ENet, or --c). The pixel "
                                   "counts are cached per dataset and split.")
    options.add_data(p, "train")
    p.add_argument("--method", required=True, choices=["mfb", "enet"], help="weighting rule")
    p.add_argument("--c", type=float, default=1.02, metavar="C",
                   help="the constant of enet's 1/ln(C + p): ENet 1.02 (default), ERFNet/DABNet 1.10")
    options.add_json(p, "{method, class_names, weights}")
    p.add_argument("--no-cache", action="store_true", help="recompute even when cached")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.class_weights import compute_class_weights

    result = compute_class_weights(args.dataset, args.split, args.method, args.data_root,
                                   use_cache=not args.no_cache, c=args.c)
    keys = ("method", "class_names", "weights", *(["weights_by_raw_id"] if "weights_by_raw_id" in result else []))
    options.write_json(args.json, {k: result[k] for k in keys})
    width = max(len(n) for n in result["class_names"])
    print(f"{args.method} class weights, {args.dataset} {args.split}:")
    for name, w in zip(result["class_names"], result["weights"]):
        print(f"  {name:<{width}}  {w:8.4f}")
    return 0
