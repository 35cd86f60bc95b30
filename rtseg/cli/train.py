"""rtseg train: a YAML recipe with key=value overrides -> ``rtseg.train``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a YAML recipe",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a model. The config is a YAML recipe (see configs/); any key can be "
                                   "overridden as section.key=value (a mapping merges into the recipe's: "
                                   "model.args.decoder_init=normal keeps the other builder arguments). Writes "
                                   "<run.out_dir>/{best,last}.pt, config.yaml, metrics.jsonl and TensorBoard logs.",
                       epilog="sections: model, data, optim, schedule, loss, run "
                              "(see rtseg/config.py for every key)\n"
                              "example: rtseg train --config configs/enet_camvid.yaml schedule.epochs=10")
    p.add_argument("--config", default=None, metavar="YAML", help="recipe file (default: built-in defaults)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=1e-3")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CKPT",
                   help="continue exactly from <out_dir>/last.pt (or CKPT)")
    p.add_argument("--init-from", default=None, metavar="W",
                   help="start from a shipped model name (e.g. enet-camvid) or an rtseg checkpoint: its "
                        "architecture and weights")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.engine.train import train

    resume, overrides = args.resume, list(args.overrides)
    if isinstance(resume, str) and "=" in resume and not Path(resume).exists():
        # `--resume KEY=VALUE ...`: argparse hands --resume's optional CKPT the first override.
        resume, overrides = True, [resume, *overrides]
    summary = train(args.config, overrides, resume=resume or False, init_from=args.init_from)
    print(json.dumps(summary, indent=2))
    return 0
