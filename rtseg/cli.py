"""The ``rtseg`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rtseg.errors import RtsegError

EPILOG = """examples:
  rtseg predict photo.png --out preds/                 # shipped CamVid ENet, offline
  rtseg train --config configs/enet_camvid.yaml optim.lr=1e-3 run.out_dir=runs/x
  rtseg eval --weights runs/x/best.pt --dataset camvid --split val --json val.json
  rtseg class-weights --dataset camvid --split train --method mfb --json w.json
  rtseg datasets info --dataset camvid --split train

data: --data-root DIR names the dataset's folder; without it rtseg uses $RTSEG_DATA/<dataset>."""


def _add_data_args(p: argparse.ArgumentParser, split_default: str = "train") -> None:
    from rtseg.datasets import list_datasets

    p.add_argument("--dataset", required=True, choices=list_datasets(), help="dataset name")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="the dataset's folder (default: $RTSEG_DATA/<dataset>)")
    p.add_argument("--split", default=split_default, help=f"split to read (default: {split_default})")


def _write_json(path: str | None, data: dict) -> None:
    if path:
        from rtseg.io import atomic_write_text

        atomic_write_text(path, json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from rtseg.config import load_config
    from rtseg.engine.train import fit

    cfg = load_config(args.config, args.overrides)
    summary = fit(cfg, resume=args.resume if args.resume else False, init_from=args.init_from)
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtseg", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Real-time semantic segmentation: train, evaluate, predict, export.")
    from rtseg import __version__

    parser.add_argument("--version", action="version", version=f"rtseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a model from a YAML recipe",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a model. The config is a YAML recipe (see configs/); any key can be "
                                   "overridden as section.key=value. Writes <run.out_dir>/{best,last}.pt, "
                                   "config.yaml, metrics.jsonl and TensorBoard logs.",
                       epilog="sections: model, data, optim, schedule, loss, run "
                              "(see rtseg/config.py for every key)\n"
                              "example: rtseg train --config configs/enet_camvid.yaml schedule.epochs=10")
    p.add_argument("--config", default=None, metavar="YAML", help="recipe file (default: built-in defaults)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=1e-3")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="continue exactly from <out_dir>/last.pt (or CKPT)")
    p.add_argument("--init-from", default=None, metavar="WEIGHTS",
                   help="start from another rtseg checkpoint's architecture and weights")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RtsegError as e:
        print(f"rtseg {args.command}: error: {e.short_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rtseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
