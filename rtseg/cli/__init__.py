"""The ``rtseg`` command line: parse, call the Python API, print.

One module per command, each with its parser (``register``) next to what it runs (``run``);
the shared options are in :mod:`rtseg.cli.options`. ``python -m rtseg`` runs :func:`main` too
(and so ``torchrun -m rtseg``)."""

from __future__ import annotations

import argparse
import os
import sys

from rtseg.errors import RtsegError

EPILOG = """examples:
  rtseg predict photo.png --out preds/                 # shipped CamVid ENet, offline
  rtseg video drive.mp4 --out drive_seg.mp4            # overlay + FPS, every frame kept
  rtseg train --config configs/enet_camvid.yaml optim.lr=1e-3 run.out_dir=runs/x
  rtseg eval --weights runs/x/best.pt --dataset camvid --split val --json val.json
  rtseg export --weights enet-camvid --format onnx --size 360x480 --out enet.onnx
  rtseg bench --weights enet-camvid --backend onnxruntime --json bench.json
  rtseg prune --weights enet-camvid --ratio 0.5 --out enet_pruned.pt
  rtseg class-weights --dataset camvid --split train --method mfb --json w.json
  rtseg serve --port 8000                              # web page + HTTP API on 127.0.0.1
  rtseg datasets info --dataset camvid --split train

data: --data-root DIR names the dataset's folder; without it rtseg uses $RTSEG_DATA/<dataset>.
weights: a checkpoint path, an exported .onnx file, or a shipped model name (enet-camvid).
run 'rtseg COMMAND --help' for every option of a command."""


def build_parser() -> argparse.ArgumentParser:
    from rtseg._version import __version__
    from rtseg.cli import bench, class_weights, datasets, evaluate, export, models, predict, prune, serve, train, video

    parser = argparse.ArgumentParser(
        prog="rtseg", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Real-time semantic segmentation: train, evaluate, predict, export.")
    parser.add_argument("--version", action="version", version=f"rtseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (train, predict, evaluate, class_weights, datasets, export, bench, video, prune, serve, models):
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rtseg import distributed
    from rtseg.progress import close_all, write_line
    from rtseg.runtime import reuse_freed_memory

    reuse_freed_memory()  # eager PyTorch: no page faults on every forward pass (~20% faster)
    dist = distributed.from_env()
    where = f" (rank {dist.rank})" if dist.enabled else ""
    stdout = sys.stdout
    if dist.rank > 0:
        sys.stdout = open(os.devnull, "w")  # one report per run: rank 0's
    try:
        code = args.func(args)
        distributed.shutdown()
        return code
    except RtsegError as e:
        close_all()  # a bar left mid-line would swallow the start of the message
        # One write per line: ranks failing together must not write into each other's lines.
        write_line(f"rtseg {args.command}{where}: error: {e.short_message()}")
        return 2
    except KeyboardInterrupt:
        close_all()
        write_line(f"rtseg {args.command}{where}: interrupted")
        return 130
    except RuntimeError as e:
        if not (where and distributed.is_peer_failure(e)):
            raise
        # Another process died (its own error is printed above); say so in one line instead of
        # a backend traceback. torchrun then stops the run.
        close_all()
        write_line(f"rtseg {args.command}{where}: error: another process of the run failed or stopped "
                   f"({str(e).strip().splitlines()[0][:120]})")
        return 1
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout
