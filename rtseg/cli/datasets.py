"""rtseg datasets info | resize | check (``rtseg.dataset_info``, ``rtseg.resize_dataset``,
``rtseg.datasets.check.check_folder``)."""

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
    q = dsub.add_parser("check", help="find every problem of a folder dataset at once",
                        description="Read every image and mask of a folder dataset (dataset.yaml, images/SPLIT, "
                                    "masks/SPLIT) once and report every problem: missing pairs, unreadable or empty "
                                    "files, masks that are not single-channel or not the image's size, ids outside "
                                    "the class table; warnings for a train split without a val split, for classes "
                                    "that never occur and for the same image in two splits. Then the class "
                                    "histogram. Exit status 1 when something would break training.")
    q.add_argument("root", metavar="ROOT", help="the dataset folder (holding dataset.yaml)")
    q.add_argument("--splits", nargs="+", default=None, metavar="SPLIT",
                   help="splits to check (default: every folder under images/)")
    options.add_json(q, "the report")
    q.set_defaults(func=run_check)
    q = dsub.add_parser("convert", help="colour-coded masks or Labelme JSON -> the folder layout",
                        description="Write SOURCE's labels as a folder dataset (dataset.yaml, images/SPLIT, "
                                    "masks/SPLIT of class ids) at --out. --from colour: RGB masks, one colour per "
                                    "class, the colours from SOURCE/dataset.yaml or a CVAT labelmap.txt (CVAT's "
                                    "'Segmentation mask 1.1' export: JPEGImages/ + SegmentationClass/); black is "
                                    "void. --from labelme: one Labelme JSON per image (polygons, rectangles, "
                                    "circles, lines). SOURCE's split subfolders (train/, val/, ...) are kept as they "
                                    "are; a SOURCE without them is split by --val-fraction (one line says how). "
                                    "Written into a temporary folder and renamed at the end: an interrupted run "
                                    "leaves nothing.")
    q.add_argument("source", metavar="SOURCE", help="the folder to convert")
    q.add_argument("--from", dest="kind", required=True, choices=["colour", "labelme"], help="what SOURCE holds")
    q.add_argument("--out", required=True, metavar="DIR", help="the new dataset folder (must not exist)")
    q.add_argument("--classes", default=None, metavar="dataset.yaml",
                   help="class names and palette to use (default: SOURCE's own for colour; for labelme the "
                        "sorted label names with generated colours)")
    q.add_argument("--val-fraction", default=None, metavar="F",  # convert() parses it: the error quotes it as typed
                   help="when SOURCE has no split folders: the share of its frames that goes to val, the rest to "
                        "train (default 0.1: round(N*F), at least 1 frame of 2 or more; 0: all in train); the "
                        "same frames every run (a fixed hash of the file names picks them). Unused when SOURCE "
                        "has split folders. Frames are split one by one, so neighbouring frames of a video land "
                        "on both sides and flatter the val score: for sequences, make train/ and val/ folders "
                        "yourself (whole recordings in val)")
    q.set_defaults(func=run_convert)


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


def run_check(args: argparse.Namespace) -> int:
    from rtseg.datasets.check import check_folder

    report = check_folder(args.root, args.splits)
    options.write_json(args.json, report.to_dict())
    for problem in report.problems:
        print(problem)
    names = [*report.class_names, "(ignored)"]
    width = max((len(n) for n in names), default=0)
    for split, counts in report.histogram.items():
        total = max(sum(counts), 1)
        print(f"{split}: {report.splits.get(split, 0)} images")
        for name, count in zip(names, counts):
            print(f"  {name:<{width}}  {count:>12,d}  {100 * count / total:5.1f}%")
    errors, warnings = len(report.errors), len(report.problems) - len(report.errors)
    print(f"{args.root}: {errors} error(s), {warnings} warning(s)"
          + ("" if report.ok else ": fix the errors before training"))
    return 0 if report.ok else 1


def run_convert(args: argparse.Namespace) -> int:
    from rtseg.datasets.convert import VAL_FRACTION, convert

    explicit = args.val_fraction is not None
    r = convert(args.source, args.out, args.kind, args.classes,
                val_fraction=args.val_fraction if explicit else VAL_FRACTION)
    if r["flat"]:
        train, val = r["splits"].get("train", 0), r["splits"].get("val", 0)
        print(f"no split folders in {args.source}: {train} frame{'s' * (train != 1)} to train, {val} to val "
              f"(--val-fraction {r['val_fraction']:g})")
    elif explicit:
        print(f"split folders in {args.source} kept as they are: --val-fraction unused")
    splits = ", ".join(f"{n} {s}" for s, n in r["splits"].items())
    print(f"{args.source} -> {r['out']}: {splits}; {len(r['classes'])} classes ({', '.join(r['classes'])}); "
          f"check it with: rtseg datasets check {r['out']}")
    return 0
