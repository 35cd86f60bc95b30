"""rtseg eval: per-class IoU, mIoU and accuracy of weights on a dataset split (``rtseg.evaluate``)."""

from __future__ import annotations

import argparse
import math

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model on a dataset split (mIoU, accuracy)",
                       description="Evaluate a model: per-class IoU, mIoU (void ignored), pixel accuracy "
                                   "and mean class accuracy. Prints a table; --json writes the figures. Several --weights joined by "
                                   "commas (a.pt,b.pt) are scored as one ensemble, their softmax outputs averaged.")
    options.add_weights(p)
    options.add_data(p, "val")
    options.add_json(p, "the metrics")
    options.add_size(p, "the training config's data.resize, else native")
    p.add_argument("--full-res", action="store_true",
                   help="score at the labels' full resolution (the network still runs at --size / the "
                        "training resolution; its logits are upsampled)")
    p.add_argument("--save-predictions", default=None, metavar="DIR",
                   help="write input | ground truth | prediction panels")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write per_class_iou.png and confusion_matrix.png")
    options.add_tta(p)
    p.add_argument("--batch-size", type=int, default=4, help="frames per batch (default 4)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    options.add_threads(p)
    options.add_backend(p, None)
    p.add_argument("--calibrate", default=None, metavar="DATASET:SPLIT:N",
                   help="frames an int8 backend calibrates on (default: the street frames the package carries)")
    options.add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.evaluation import evaluate

    r = evaluate(args.weights, args.dataset, args.split, data_root=args.data_root,
                 size=options.parse_size(args.size), full_res=args.full_res, batch_size=args.batch_size,
                 workers=args.workers, threads=args.threads, backend=_eval_backend(args), calibrate=args.calibrate,
                 device=args.device, plots=args.plots,
                 save_predictions=args.save_predictions, json_path=args.json, tta=args.tta)
    print(f"{args.dataset} {args.split}: {r['num_images']} images")
    width = max(len(n) for n in r["per_class_iou"])
    for name, v in r["per_class_iou"].items():
        print(f"  {name:<{width}}  {'n/a' if math.isnan(v) else f'{100 * v:5.1f}'}")
    print(f"  {'mIoU':<{width}}  {100 * r['miou']:5.1f}")
    print(f"  pixel accuracy {100 * r['pixel_accuracy']:.1f}, mean class accuracy "
          f"{100 * r['mean_class_accuracy']:.1f}  ({r['resolution']} resolution"
          f"{', flip-averaged' if r['tta'] == 'flip' else ''}, {r['backend']})")
    if "road" in r:
        road = r["road"]
        print(f"  road MaxF {100 * road['max_f']:.2f}, AP {100 * road['average_precision']:.2f} "
              "(perspective space; the KITTI benchmark scores in bird's-eye view)")
    return 0


def _eval_backend(args: argparse.Namespace) -> str | None:
    backend = options.resolve_backend(args)
    if backend == "auto":
        from rtseg.backends import choose

        backend = choose("stream", onnx_file=args.weights if str(args.weights).endswith(".onnx") else None).backend
        print(f"backend {backend} (auto, as video and serve would pick it)", flush=True)
    return backend
