"""rtseg predict: images, folders or globs -> masks, overlays, class-index PNGs (``rtseg.predict``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("predict", help="segment images with a trained model",
                       description="Segment images, folders of images or globs. For each input NAME writes "
                                   "NAME_mask.png (colours), NAME_overlay.png (mask over the image) and "
                                   "NAME_labels.png (class indices) to --out, and legend.png (which colour is which class).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    options.add_weights(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--format", choices=["default", "cityscapes"], default="default",
                   help="default: colour mask, overlay and class-index PNGs; cityscapes: official "
                        "label-id PNGs at full resolution named after the input, for the evaluator")
    p.add_argument("--gif", nargs="?", const=True, default=None, metavar="PATH",
                   help="also write an animated GIF of input | prediction over the frames "
                        "(default path: DIR/predictions.gif)")
    p.add_argument("--fps", type=float, default=5.0, help="GIF frame rate (default 5)")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave inputs whose output files all exist (rerun after a stop; with torchrun too)")
    options.add_inference(p, "image")
    options.add_classes(p)
    options.add_tta(p)
    options.add_working_size(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.inference import predict

    backend = options.resolve_backend(args)
    chosen: list[str] = []  # what auto chose and why: said after the summary (stdout's first line)
    r = predict(args.inputs, args.out, args.weights, device=args.device, threads=args.threads, backend=backend,
                alpha=args.alpha, output_format=args.format, gif=args.gif or False, gif_fps=args.fps,
                skip_existing=args.skip_existing, tta=args.tta, announce=chosen.append,
                size=options.parse_size(args.size), classes=args.classes)
    skipped = f", {r['skipped']} already there" if r["skipped"] else ""
    tta = ", flip-averaged" if args.tta == "flip" else ""
    print(f"{r['images']} image(s) -> {r['out']}{skipped}  ({r['model']}, {r['backend']}, {r['device']}{tta}): "
          f"{r['median_ms']:.1f} ms per frame (median, preprocessing + network)")
    for line in chosen:
        print(line)
    return 0
