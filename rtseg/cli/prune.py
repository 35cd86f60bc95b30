"""rtseg prune: L1 filter pruning into a smaller checkpoint, optionally iterative with fine-tuning
(``rtseg.prune``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("prune", help="filter pruning (L1 norm) into a smaller model",
                       description="Remove whole filters ranked by L1 norm (Li et al., Pruning Filters for "
                                   "Efficient ConvNets), keeping residuals, concatenations, BN and depthwise "
                                   "convs consistent (torch-pruning). Writes a genuinely smaller checkpoint that "
                                   "loads with --weights everywhere and fine-tunes with rtseg train --init-from.")
    options.add_weights(p)
    p.add_argument("--ratio", type=float, required=True, help="share of prunable filters to remove, e.g. 0.5")
    p.add_argument("--criterion", choices=["l1", "l2"], default="l1", help="filter ranking norm (default l1)")
    p.add_argument("--global", dest="global_pruning", action="store_true",
                   help="rank filters across layers instead of the same ratio in every layer")
    p.add_argument("--steps", type=int, default=1, help="prune in this many equal steps (iterative pruning)")
    p.add_argument("--finetune-config", default=None, metavar="YAML",
                   help="fine-tune with this recipe between steps (iterative pruning)")
    p.add_argument("--finetune-epochs", type=int, default=2, help="epochs of each fine-tune (default 2)")
    p.add_argument("--finetune-last", action="store_true", help="also fine-tune after the last step")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides for the fine-tune recipe")
    options.add_size(p, "the checkpoint's; used for tracing and FLOPs")
    options.add_json(p, "the before/after report")
    p.add_argument("--out", required=True, metavar="PRUNED", help="the pruned checkpoint")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.compress import prune

    r = prune(args.weights, args.ratio, args.out, size=options.parse_size(args.size), criterion=args.criterion,
              global_pruning=args.global_pruning, steps=args.steps, finetune_config=args.finetune_config,
              finetune_epochs=args.finetune_epochs, finetune_last=args.finetune_last, overrides=args.overrides,
              json_path=args.json)
    before, after, size = r["before"], r["after"], r["size"]
    print(f"pruned {r['model']} -> {args.out}")
    print(f"  parameters {before['params'] / 1e6:.3f} M -> {after['params'] / 1e6:.3f} M "
          f"(-{100 * r['param_reduction']:.1f}%)")
    print(f"  GFLOPs at {size[0]}x{size[1]}: {before['gflops']:.3f} -> {after['gflops']:.3f} "
          f"(-{100 * r['flop_reduction']:.1f}%)")
    return 0
