"""rtseg datasets info | resize (``rtseg.dataset_info``, ``rtseg.resize_dataset``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("datasets", help="inspect or pre-resize a dataset",
                       description="Dataset tools: 'info' counts images and class pixels; 'resize' writes "
                                   "a resized copy in the same layout (faster training at low resolution).")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    q = dsub.add_parser("info", help="number of images and per-class pixel counts",
                        description="Print and optionally save the number of images and per-class pixel counts.")
    options.add_data(q, "train")
    options.add_json(q, "{num_images, class_names, class_pixel_counts}")
    q.set_defaults(func=run_info)
    q = dsub.add_parser("resize", help="write a resized copy of a dataset",
                        description="Resize every image (bilinear) and label (nearest) of the given splits to "
                                    "HxW and write them under --out in the dataset's own layout, so that "
                                    "--data-root OUT works like the original.")
    options.add_dataset(q)
    q.add_argument("--splits", nargs="+", default=["train", "val"], metavar="SPLIT",
                   help="splits to resize (default: train val)")
    q.add_argument("--size", required=True, metavar="HxW", help="target size, e.g. 180x240")
    q.add_argument("--out", required=True, metavar="DIR", help="folder for the resized copy")
    q.set_defaults(func=run_resize)


def run_info(args: argparse.Namespace) -> int:
    from rtseg.class_weights import dataset_info

    info = dataset_info(args.dataset, args.split, args.data_root)
    options.write_json(args.json, {k: v for k, v in info.items() if k not in ("dataset", "split")})
    print(f"{args.dataset} {args.split}: {info['num_images']} images, {len(info['class_names'])} classes")
    if "class_pixel_counts" in info:
        total = sum(info["class_pixel_counts"]) + info["ignored_pixels"]
        width = max(len(n) for n in [*info["class_names"], "(ignored)"])
        rows = [*zip(info["class_names"], info["class_pixel_counts"]), ("(ignored)", info["ignored_pixels"])]
        for name, count in rows:
            print(f"  {name:<{width}}  {count:>12,d}  {100 * count / total:5.1f}%")
    return 0


def run_resize(args: argparse.Namespace) -> int:
    from rtseg.datasets.resize import resize_dataset

    size = options.parse_size(args.size)
    n = resize_dataset(args.dataset, size, args.out, args.splits, args.data_root)
    print(f"resized {n} frames to {size[1]}x{size[0]} (WxH) -> {args.out}")
    return 0
