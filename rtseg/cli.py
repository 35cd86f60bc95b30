"""The ``rtseg`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
  rtseg datasets info --dataset camvid --split train

data: --data-root DIR names the dataset's folder; without it rtseg uses $RTSEG_DATA/<dataset>.
weights: a checkpoint path, an exported .onnx file, or a shipped model name (enet-camvid).
run 'rtseg COMMAND --help' for every option of a command."""


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


def cmd_predict(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from rtseg.datasets.base import read_image
    from rtseg.inference import load_model
    from rtseg.io import expand_image_inputs
    from rtseg.visualize import panel, save_gif, save_png

    paths = expand_image_inputs(args.inputs)
    seg = load_model(args.weights, device=args.device, compile=args.compile)
    if args.compile:
        print("--compile: the first image of each size compiles the network (15-40 s on a small CPU)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gif_frames, seconds = [], []
    if args.format == "cityscapes" and seg.num_classes != 19:
        raise RtsegError(f"--format cityscapes needs a 19-class Cityscapes model; {args.weights or 'the default model'} "
                         f"predicts {seg.num_classes} classes")
    for path in tqdm(paths, desc="predict", unit="img", disable=len(paths) < 2):
        image = read_image(path)
        start = time.perf_counter()
        mask = seg.predict(image)
        seconds.append(time.perf_counter() - start)
        if args.format == "cityscapes":
            # Official label ids, named so the evaluator finds <city>_<seq>_<frame>*.png.
            from rtseg.datasets.cityscapes import train_ids_to_label_ids

            save_png(train_ids_to_label_ids(mask), out / f"{path.stem}.png")
            continue
        colour = seg.colorize(mask)
        save_png(mask, out / f"{path.stem}_labels.png")
        save_png(colour, out / f"{path.stem}_mask.png")
        over = seg.overlay(image, mask, args.alpha)
        save_png(over, out / f"{path.stem}_overlay.png")
        if args.gif:
            gif_frames.append(panel(image, colour))
    if args.gif:
        save_gif(gif_frames, out / "predictions.gif" if args.gif is True else Path(args.gif), fps=args.fps)
    ms = sorted(s * 1000 for s in seconds)
    print(f"{len(paths)} image(s) -> {out}  ({seg.name}, {args.device}): "
          f"{ms[len(ms) // 2]:.1f} ms per frame (median, preprocessing + network)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import math

    import torch
    from torch.utils.data import DataLoader

    from rtseg.datasets import build_dataset
    from rtseg.datasets.transforms import build_eval_transform
    from rtseg.inference import load_weights
    from rtseg.engine.train import evaluate, select_device
    from rtseg.metrics import BinaryPRCurve
    from rtseg.visualize import label_panel, plot_confusion_matrix, plot_per_class_iou, save_png

    loaded = load_weights(args.weights, threads=args.threads)
    classes = loaded.classes
    resize = _parse_size(args.size) if args.size else loaded.train_resize
    # Training resolution: frames and labels resized. Full resolution: labels untouched, the
    # network still runs at the training size and its logits are upsampled. Static ONNX graphs
    # always run at their export size.
    net_size = loaded.fixed_size or (resize if args.full_res else None)
    frame_size = None if (args.full_res or loaded.fixed_size) else resize
    dataset = build_dataset(args.dataset, args.split, args.data_root,
                            build_eval_transform(frame_size, loaded.mean, loaded.std))
    if dataset.classes.num_classes != classes.num_classes:
        raise RtsegError(f"{args.weights} predicts {classes.num_classes} classes but {args.dataset} "
                         f"has {dataset.classes.num_classes}")
    if not dataset.has_labels:
        raise RtsegError(f"{args.dataset} {args.split} has no labels to evaluate against")
    device = select_device(args.device) if loaded.checkpoint is not None else torch.device("cpu")
    model = loaded.model.to(device)
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    keep = len(dataset) if args.save_predictions else 0
    pr = BinaryPRCurve(positive=1, device=device) if args.dataset == "kitti_road" else None
    metrics, cm, samples = evaluate(model, loader, classes.num_classes, device, keep_samples=keep,
                                    input_size=net_size, pr_curve=pr)
    result = {
        "miou": metrics["miou"],
        "per_class_iou": dict(zip(classes.names, metrics["iou"])),
        "pixel_accuracy": metrics["pixel_accuracy"],
        "mean_class_accuracy": metrics["mean_class_accuracy"],
        "num_images": len(dataset),
        "weights": str(args.weights), "dataset": args.dataset, "split": args.split,
        "input_size": list(net_size or resize or []) or None,
        "resolution": "training" if frame_size else "full",
    }
    if pr is not None:
        # Perspective (image) space; the official KITTI benchmark scores in bird's-eye view.
        result["road"] = {**pr.compute(), "space": "perspective"}
    _write_json(args.json, result)
    print(f"{args.dataset} {args.split}: {len(dataset)} images")
    width = max(len(n) for n in classes.names)
    for name, v in result["per_class_iou"].items():
        print(f"  {name:<{width}}  {'n/a' if math.isnan(v) else f'{100 * v:5.1f}'}")
    print(f"  {'mIoU':<{width}}  {100 * result['miou']:5.1f}")
    print(f"  pixel accuracy {100 * result['pixel_accuracy']:.1f}, mean class accuracy "
          f"{100 * result['mean_class_accuracy']:.1f}  ({result['resolution']} resolution)")
    if pr is not None:
        road = result["road"]
        print(f"  road MaxF {100 * road['max_f']:.2f}, AP {100 * road['average_precision']:.2f} "
              "(perspective space; the KITTI benchmark scores in bird's-eye view)")
    if args.plots:
        plots = Path(args.plots)
        plot_per_class_iou(list(classes.names), metrics["iou"], plots / "per_class_iou.png",
                           title=f"{args.dataset} {args.split}: mIoU {100 * result['miou']:.1f}")
        plot_confusion_matrix(list(classes.names), cm.mat.cpu().numpy(), plots / "confusion_matrix.png")
    if args.save_predictions:
        out = Path(args.save_predictions)
        for sample, (image, target, pred) in zip(dataset.samples, samples):
            save_png(label_panel(image, target, pred, classes), out / f"{sample.image.stem}.png")
    return 0


def _parse_size(text: str) -> list[int]:
    """'360x480' -> [360, 480] (H x W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RtsegError(f"--size {text!r}: expected HxW, e.g. 360x480") from None
    if h <= 0 or w <= 0:
        raise RtsegError(f"--size {text!r}: height and width must be positive")
    return [h, w]


def cmd_class_weights(args: argparse.Namespace) -> int:
    from rtseg.class_weights import compute_class_weights

    result = compute_class_weights(args.dataset, args.split, args.method, args.data_root,
                                   use_cache=not args.no_cache)
    _write_json(args.json, {k: result[k] for k in ("method", "class_names", "weights",
                                                  *(["weights_by_raw_id"] if "weights_by_raw_id" in result else []))})
    width = max(len(n) for n in result["class_names"])
    print(f"{args.method} class weights, {args.dataset} {args.split}:")
    for name, w in zip(result["class_names"], result["weights"]):
        print(f"  {name:<{width}}  {w:8.4f}")
    return 0


def cmd_datasets_info(args: argparse.Namespace) -> int:
    from rtseg.class_weights import label_statistics
    from rtseg.datasets import build_dataset

    ds = build_dataset(args.dataset, args.split, args.data_root)
    info = {"num_images": len(ds), "class_names": list(ds.classes.names)}
    if ds.has_labels:
        stats = label_statistics(ds)
        info.update(class_pixel_counts=stats["class_pixel_counts"], ignored_pixels=stats["ignored_pixels"])
    _write_json(args.json, info)
    print(f"{args.dataset} {args.split}: {len(ds)} images, {ds.classes.num_classes} classes")
    if ds.has_labels:
        total = sum(info["class_pixel_counts"]) + info["ignored_pixels"]
        width = max(len(n) for n in ds.classes.names + ("(ignored)",))
        rows = list(zip(ds.classes.names, info["class_pixel_counts"])) + [("(ignored)", info["ignored_pixels"])]
        for name, count in rows:
            print(f"  {name:<{width}}  {count:>12,d}  {100 * count / total:5.1f}%")
    return 0


def cmd_datasets_resize(args: argparse.Namespace) -> int:
    from rtseg.datasets import build_dataset, resolve_data_root
    from rtseg.datasets.resize import resize_dataset

    size = _parse_size(args.size)
    root = resolve_data_root(args.dataset, args.data_root)
    n = 0
    for split in args.splits:
        ds = build_dataset(args.dataset, split, root)
        n += resize_dataset(ds, root, Path(args.out), size)
    print(f"resized {n} frames to {size[1]}x{size[0]} (WxH) -> {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from rtseg.checkpoint import load_checkpoint, model_from_checkpoint
    from rtseg.deploy.export import (ArgmaxHead, ExportMismatchError, compare, export_onnx,
                                     export_torchscript)

    ckpt = load_checkpoint(args.weights)
    model = model_from_checkpoint(ckpt)
    if args.size:
        size = _parse_size(args.size)
    elif ckpt.get("input_size"):
        size = list(ckpt["input_size"])
    else:
        raise RtsegError("--size HxW is needed: the checkpoint records no input size")
    out = Path(args.out)
    if args.int8 and args.format != "onnx":
        raise RtsegError("--int8 needs --format onnx (quantisation runs in ONNX Runtime)")
    if args.int8 and not args.calibrate:
        raise RtsegError("--int8 needs --calibrate DATASET:SPLIT:N (real frames to calibrate on)")
    from rtseg.deploy.onnx_model import metadata_from_checkpoint

    meta = metadata_from_checkpoint(ckpt, size)
    if args.format == "torchscript":
        report = export_torchscript(model, out, tuple(size), argmax=args.argmax)
    elif not args.int8:
        report = export_onnx(model, out, tuple(size), argmax=args.argmax, dynamic=args.dynamic, metadata=meta)
    else:
        import tempfile

        from rtseg.deploy.onnx_model import make_session
        from rtseg.deploy.quantize import calibration_frames, parse_calibration, quantize_int8

        dataset, split, n = parse_calibration(args.calibrate)
        with tempfile.TemporaryDirectory() as tmp:
            float_path = Path(tmp) / "float.onnx"
            report = export_onnx(model, float_path, tuple(size), argmax=args.argmax, dynamic=args.dynamic,
                                 metadata=meta)
            frames = calibration_frames(dataset, split, n, tuple(size), ckpt["normalization"]["mean"],
                                        ckpt["normalization"]["std"], args.data_root)
            keep = [k for k in (args.keep_float or "").split(",") if k]
            report["int8"] = quantize_int8(float_path, out, frames, keep_float=keep)
            report["float_mb"] = round(float_path.stat().st_size / 2**20, 3)
        report.update(path=str(out), file_mb=round(out.stat().st_size / 2**20, 3))
        session = make_session(out)
        name = session.get_inputs()[0].name
        reference = ArgmaxHead(model) if args.argmax else model
        parity = compare(reference, lambda a: session.run(None, {name: a})[0],
                         [torch.from_numpy(f) for f in frames[:4]], args.argmax)
        report["int8"]["parity_on_calibration_frames"] = parity.to_dict()
        if parity.pixel_agreement < 0.9:
            raise ExportMismatchError(f"int8 model agrees with PyTorch on only {100 * parity.pixel_agreement:.1f}% "
                                      "of pixels; keep more layers in float (--keep-float)")
    if "file_mb" not in report:
        report["file_mb"] = round(out.stat().st_size / 2**20, 3)
    _write_json(str(out) + ".json", report)
    par = report.get("int8", {}).get("parity_on_calibration_frames") or report.get("parity", {})
    print(f"exported {report['format']}{' int8' if args.int8 else ''} -> {out} ({report['file_mb']} MB), "
          f"size {size[0]}x{size[1]}, parity: max |diff| {par.get('max_abs_diff', float('nan')):.2g}, "
          f"{100 * par.get('pixel_agreement', float('nan')):.3f}% pixels agree")
    return 0


def _bench_one(model_name: str, weights: str | None, size, backend: str, threads: int, iters: int,
               calibrate: str | None, data_root: str | None, num_classes: int) -> dict:
    import numpy as np
    import torch

    from rtseg.checkpoint import load_checkpoint, model_from_checkpoint
    from rtseg.datasets.classes import ClassTable
    from rtseg.datasets.transforms import normalize
    from rtseg.deploy.bench import benchmark, machine_info
    from rtseg.inference import class_map
    from rtseg.models import create_model

    if weights:
        ckpt = load_checkpoint(weights)
        model = model_from_checkpoint(ckpt)
        classes = ClassTable.from_dict(ckpt["classes"])
        mean, std = ckpt["normalization"]["mean"], ckpt["normalization"]["std"]
        model_name = ckpt["model"]["name"]
        from rtseg.deploy.onnx_model import metadata_from_checkpoint

        meta = metadata_from_checkpoint(ckpt, size)
    else:
        from rtseg.constants import IMAGENET_MEAN, IMAGENET_STD

        model = create_model(model_name, num_classes=num_classes)
        classes = ClassTable(tuple(f"class{i}" for i in range(num_classes)),
                             tuple((i * 37 % 256, i * 91 % 256, i * 53 % 256) for i in range(num_classes)))
        mean, std, meta = IMAGENET_MEAN, IMAGENET_STD, None
    calibration = None
    if backend == "onnxruntime-int8" and calibrate:
        from rtseg.deploy.quantize import calibration_frames, parse_calibration

        ds, split, n = parse_calibration(calibrate)
        calibration = calibration_frames(ds, split, n, tuple(size), mean, std, data_root)
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    palette = classes.palette_array()

    def end_to_end(runner):
        def run():
            x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None], mean, std)
            mask = class_map(runner(x))[0].to(torch.uint8).numpy()
            return palette[mask]
        return run

    result = benchmark(model, tuple(size), backend, threads, iters=iters, end_to_end=end_to_end,
                       calibration=calibration, metadata=meta)
    return {"model": model_name, "weights": weights, **result, "machine": machine_info()}


#: make bench: (model, weights, backends, iterations)
BENCH_SUITE = (
    ("enet", "enet-camvid", ("torch", "torch-compile", "onnxruntime", "onnxruntime-int8"), 100),
    ("fcn8s_mobilenetv3", None, ("torch", "onnxruntime", "onnxruntime-int8"), 20),
    ("fcn8s", None, ("torch",), 3),
)


def cmd_bench(args: argparse.Namespace) -> int:
    size = _parse_size(args.size)
    if args.suite:
        rows = []
        for model_name, weights, backends, iters in BENCH_SUITE:
            for backend in backends:
                print(f"bench {model_name} {backend} ...", flush=True)
                rows.append(_bench_one(model_name, weights, size, backend, args.threads, iters, args.calibrate,
                                       args.data_root, 11))
                print(f"  median {rows[-1]['median_ms']} ms, p90 {rows[-1]['p90_ms']} ms", flush=True)
        _write_json(args.json, {"size": size, "results": rows})
        if args.markdown:
            from rtseg.io import atomic_write_text

            atomic_write_text(args.markdown, bench_markdown(rows))
        print(bench_markdown(rows))
        return 0
    if not args.model and not args.weights:
        raise RtsegError("give --model NAME (random weights) or --weights W, or --suite")
    if args.train:
        from rtseg.deploy.bench import machine_info, training_step_memory
        from rtseg.models import create_model

        model = create_model(args.model, num_classes=args.num_classes)
        row = {"model": args.model, **training_step_memory(model, tuple(size), args.batch, args.grad_checkpoint),
               "machine": machine_info()}
        _write_json(args.json, row)
        print(json.dumps({k: v for k, v in row.items() if k != "machine"}, indent=2))
        return 0
    if args.runs != 1:
        row = _bench_fresh_processes(args)
    else:
        row = _bench_one(args.model, args.weights, size, args.backend, args.threads, args.iters, args.calibrate,
                         args.data_root, args.num_classes)
    _write_json(args.json, row)
    print(json.dumps({k: v for k, v in row.items() if k != "machine"}, indent=2))
    return 0


def _bench_fresh_processes(args: argparse.Namespace) -> dict:
    """Run the same single benchmark ``args.runs`` times, each in a fresh process one after the
    other (compilation, caches and allocator start cold every time), and summarise: on a shared
    machine the latency drifts over minutes, which one run's median cannot show."""
    import statistics
    import subprocess
    import tempfile

    from tqdm import tqdm

    if args.runs < 1:
        raise RtsegError(f"--runs {args.runs}: expected 1 or more")
    argv = ["bench", "--size", args.size, "--backend", args.backend, "--threads", str(args.threads),
            "--iters", str(args.iters), "--num-classes", str(args.num_classes)]
    for flag, value in (("--model", args.model), ("--weights", args.weights), ("--calibrate", args.calibrate),
                        ("--data-root", args.data_root)):
        if value:
            argv += [flag, str(value)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in tqdm(range(args.runs), desc="bench runs", unit="run"):
            out = Path(tmp) / f"run{i}.json"
            done = subprocess.run([sys.executable, "-c", "import sys; from rtseg.cli import main; sys.exit(main())",
                                   *argv, "--json", str(out)], capture_output=True, text=True)
            if done.returncode != 0:
                raise RtsegError(f"bench run {i + 1}/{args.runs} failed: {done.stderr.strip()[-500:]}")
            rows.append(json.loads(out.read_text()))
    medians = [r["median_ms"] for r in rows]
    summary = dict(rows[0])
    summary.update(runs=args.runs, run_median_ms=medians, median_ms=round(statistics.median(medians), 2),
                   p90_ms=round(statistics.median(r["p90_ms"] for r in rows), 2),
                   fps=round(1000 / statistics.median(medians), 1), min_run_median_ms=min(medians),
                   max_run_median_ms=max(medians))
    for key in ("e2e_median_ms", "peak_mem_mb"):
        if key in rows[0]:
            summary[key] = round(statistics.median(r[key] for r in rows), 2)
    return summary


def bench_markdown(rows: list[dict]) -> str:
    m = rows[0]["machine"]
    head = (f"Measured on {m['cpu']} ({m['cores']} cores), torch {m['torch']}, onnxruntime "
            f"{m.get('onnxruntime', '-')}; batch 1, {rows[0]['size'][1]}x{rows[0]['size'][0]} (WxH), "
            f"{rows[0]['threads']} threads.\n\n")
    lines = ["| model | backend | params (M) | GFLOPs | median ms | p90 ms | FPS | image->mask ms | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['params'] / 1e6:.2f} | {r['gflops']:.2f} | "
                     f"{r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['fps']:.1f} | "
                     f"{r.get('e2e_median_ms', float('nan')):.1f} | {r['peak_mem_mb']:.0f} |")
    return head + "\n".join(lines) + "\n"


def cmd_video(args: argparse.Namespace) -> int:
    from rtseg.inference import load_model
    from rtseg.video import _check_output, open_source, segment_video

    source = open_source(args.input, fps=args.fps)  # fails before any work on a bad input
    _check_output(Path(args.out))
    seg = load_model(args.weights, device=args.device, compile=args.compile)
    if args.compile:
        print("--compile: compiling the network on the first frame (15-40 s on a small CPU)", flush=True)
    stats = segment_video(seg, source, args.out, gif=args.gif, alpha=args.alpha)
    n = stats["frames_out"]
    print(f"{n} frames -> {stats['output']} at {stats['source_fps']:.1f} fps")
    for stage in ("decode", "inference", "encode"):
        total = stats[f"{stage}_s"]
        print(f"  {stage:<9} {total:7.2f} s total, {1000 * total / n:7.1f} ms/frame")
    print(f"  wall      {stats['wall_s']:7.2f} s, {stats['fps_overall']:.1f} FPS overall "
          f"(network alone {stats['fps_network']:.1f} FPS)")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    import torch

    from rtseg.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
    from rtseg.compress import prune
    from rtseg.datasets.classes import ClassTable
    from rtseg.deploy.bench import count_flops, count_params

    ckpt = load_checkpoint(args.weights)
    model = model_from_checkpoint(ckpt)
    size = _parse_size(args.size) if args.size else (ckpt.get("input_size") or [360, 480])
    classes = ClassTable.from_dict(ckpt["classes"])
    before = {"params": count_params(model), "gflops": count_flops(model, tuple(size)) / 1e9}
    spec = ckpt["model"]

    def as_checkpoint(m: torch.nn.Module) -> dict:
        return make_checkpoint(m, spec["name"], spec.get("args", {}), classes, ckpt["normalization"]["mean"],
                               ckpt["normalization"]["std"], ckpt.get("input_size"), pruned=True)

    between = None
    if args.finetune_config:
        from rtseg.config import load_config
        from rtseg.engine.train import fit

        work = Path(tempfile.mkdtemp(prefix="rtseg-prune-"))

        def fine_tune(step: int, m: torch.nn.Module) -> None:
            if step == args.steps - 1 and not args.finetune_last:
                return
            init = work / f"step{step + 1}.pt"
            save_checkpoint(as_checkpoint(m), init)
            cfg = load_config(args.finetune_config, [f"schedule.epochs={args.finetune_epochs}",
                                                     f"run.out_dir={work / f'step{step + 1}'}", *args.overrides])
            summary = fit(cfg, init_from=init)
            m.load_state_dict(load_checkpoint(Path(summary["run_dir"]) / "best.pt")["state_dict"])
            print(f"step {step + 1}/{args.steps}: fine-tuned, val mIoU {summary['best_miou']:.4f}")

        between = fine_tune

    try:
        prune(model, args.ratio, tuple(size), args.criterion, args.global_pruning, args.steps, between)
    finally:
        if args.finetune_config:
            shutil.rmtree(work, ignore_errors=True)
    after = {"params": count_params(model), "gflops": count_flops(model, tuple(size)) / 1e9}
    save_checkpoint(as_checkpoint(model), args.out)
    report = {"weights": str(args.weights), "out": args.out, "ratio": args.ratio, "criterion": args.criterion,
              "steps": args.steps, "size": list(size), "before": before, "after": after,
              "param_reduction": 1 - after["params"] / before["params"],
              "flop_reduction": 1 - after["gflops"] / before["gflops"]}
    _write_json(args.json, report)
    print(f"pruned {spec['name']} -> {args.out}")
    print(f"  parameters {before['params'] / 1e6:.3f} M -> {after['params'] / 1e6:.3f} M "
          f"(-{100 * report['param_reduction']:.1f}%)")
    print(f"  GFLOPs at {size[0]}x{size[1]}: {before['gflops']:.3f} -> {after['gflops']:.3f} "
          f"(-{100 * report['flop_reduction']:.1f}%)")
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

    p = sub.add_parser("predict", help="segment images with a trained model",
                       description="Segment images, folders of images or globs. For each input NAME writes "
                                   "NAME_mask.png (colours), NAME_overlay.png (mask over the image) and "
                                   "NAME_labels.png (class indices) to --out.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--weights", default=None, metavar="W",
                   help="checkpoint path or shipped model name (default: enet-camvid, shipped)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    p.add_argument("--format", choices=["default", "cityscapes"], default="default",
                   help="default: colour mask, overlay and class-index PNGs; cityscapes: official "
                        "label-id PNGs at full resolution named after the input, for the evaluator")
    p.add_argument("--gif", nargs="?", const=True, default=None, metavar="PATH",
                   help="also write an animated GIF of input | prediction over the frames "
                        "(default path: DIR/predictions.gif)")
    p.add_argument("--fps", type=float, default=5.0, help="GIF frame rate (default 5)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network (PyTorch weights): faster per image after a one-off "
                        "compilation of 15-40 s per input size; for many images of one size")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("eval", help="evaluate a model on a dataset split (mIoU, accuracy)",
                       description="Evaluate a model: per-class IoU, mIoU (void ignored), pixel accuracy "
                                   "and mean class accuracy. Prints a table; --json writes the figures.")
    p.add_argument("--weights", default=None, metavar="W",
                   help="checkpoint path, .onnx export or shipped model name (default: enet-camvid)")
    _add_data_args(p, "val")
    p.add_argument("--json", default=None, metavar="OUT", help="write the metrics as JSON")
    p.add_argument("--size", default=None, metavar="HxW",
                   help="resize frames to HxW first (default: the training config's data.resize, else native)")
    p.add_argument("--full-res", action="store_true",
                   help="score at the labels' full resolution (the network still runs at --size / the "
                        "training resolution; its logits are upsampled)")
    p.add_argument("--save-predictions", default=None, metavar="DIR",
                   help="write input | ground truth | prediction panels")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write per_class_iou.png and confusion_matrix.png")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: library default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (ONNX models run on the CPU)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("class-weights", help="compute class weights (median frequency or ENet)",
                       description="Class weights for the non-ignored classes: mfb = median frequency "
                                   "balancing, enet = 1/ln(1.02 + p). Cached per dataset, split and method.")
    _add_data_args(p, "train")
    p.add_argument("--method", required=True, choices=["mfb", "enet"])
    p.add_argument("--json", default=None, metavar="OUT", help="write {method, class_names, weights}")
    p.add_argument("--no-cache", action="store_true", help="recompute even when cached")
    p.set_defaults(func=cmd_class_weights)

    p = sub.add_parser("datasets", help="inspect or pre-resize a dataset",
                       description="Dataset tools: 'info' counts images and class pixels; 'resize' writes "
                                   "a resized copy in the same layout (faster training at low resolution).")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    q = dsub.add_parser("info", help="number of images and per-class pixel counts",
                        description="Print and optionally save the number of images and per-class pixel counts.")
    _add_data_args(q, "train")
    q.add_argument("--json", default=None, metavar="OUT",
                   help="write {num_images, class_names, class_pixel_counts}")
    q.set_defaults(func=cmd_datasets_info)
    q = dsub.add_parser("resize", help="write a resized copy of a dataset",
                        description="Resize every image (bilinear) and label (nearest) of the given splits to "
                                    "HxW and write them under --out in the dataset's own layout, so that "
                                    "--data-root OUT works like the original.")
    from rtseg.datasets import list_datasets

    q.add_argument("--dataset", required=True, choices=list_datasets())
    q.add_argument("--data-root", default=None, metavar="DIR")
    q.add_argument("--splits", nargs="+", default=["train", "val"], metavar="SPLIT")
    q.add_argument("--size", required=True, metavar="HxW", help="target size, e.g. 180x240")
    q.add_argument("--out", required=True, metavar="DIR")
    q.set_defaults(func=cmd_datasets_resize)

    p = sub.add_parser("export", help="export to ONNX or TorchScript (with a parity check), int8",
                       description="Export a model for deployment. BatchNorm is folded into the convolutions; "
                                   "the export is run against PyTorch on the same inputs and the command fails "
                                   "if they diverge. Writes PATH and PATH.json (the report). The exported "
                                   "network takes normalised float (N, 3, H, W) images; the ONNX metadata "
                                   "holds the class table and normalisation.")
    p.add_argument("--weights", default=None, metavar="W", help="checkpoint or shipped model (default enet-camvid)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--size", default=None, metavar="HxW", help="input size (default: the checkpoint's)")
    p.add_argument("--dynamic", action="store_true", help="ONNX: symbolic batch, height and width")
    p.add_argument("--argmax", action="store_true", help="end the graph with argmax: (N, H, W) class ids")
    p.add_argument("--int8", action="store_true", help="ONNX Runtime static int8 quantisation (QDQ, per-channel)")
    p.add_argument("--calibrate", default=None, metavar="DATASET:SPLIT:N",
                   help="int8 calibration frames, e.g. camvid:train:64")
    p.add_argument("--data-root", default=None, metavar="DIR", help="calibration dataset folder")
    p.add_argument("--keep-float", default=None, metavar="NAMES",
                   help="int8: comma-separated module paths (substrings of weight names, e.g. classifier,up5) "
                        "or node names whose nodes stay in float")
    p.add_argument("--out", required=True, metavar="PATH")
    p.set_defaults(func=cmd_export)

    from rtseg.deploy.bench import BACKENDS
    from rtseg.models import list_models

    p = sub.add_parser("bench", help="latency, FPS, parameters, GFLOPs and memory of a model",
                       description="Time the network alone (batch 1, after warm-up) and, separately, the whole "
                                   "image -> mask path; report parameters, GFLOPs and peak resident memory. "
                                   "--suite runs the table of `make bench`.")
    p.add_argument("--model", choices=list_models(), default=None, help="architecture (random weights)")
    p.add_argument("--weights", default=None, metavar="W", help="checkpoint or shipped model")
    p.add_argument("--num-classes", type=int, default=11, help="classes for --model without --weights")
    p.add_argument("--size", default="360x480", metavar="HxW", help="input size (default 360x480)")
    p.add_argument("--backend", choices=BACKENDS, default="torch")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--iters", type=int, default=30, help="timed iterations")
    p.add_argument("--runs", type=int, default=1,
                   help="repeat in N fresh processes, one after another; report the median of their medians "
                        "and each run's (shows the drift of a shared machine)")
    p.add_argument("--calibrate", default=None, metavar="DATASET:SPLIT:N",
                   help="int8 calibration frames (default: synthetic)")
    p.add_argument("--data-root", default=None, metavar="DIR")
    p.add_argument("--suite", action="store_true", help="every model x backend of `make bench`")
    p.add_argument("--train", action="store_true",
                   help="measure a training step instead: peak memory and time (with --model)")
    p.add_argument("--batch", type=int, default=2, help="--train: batch size (default 2)")
    p.add_argument("--grad-checkpoint", action="store_true", help="--train: gradient checkpointing on")
    p.add_argument("--json", default=None, metavar="OUT")
    p.add_argument("--markdown", default=None, metavar="OUT", help="with --suite: the table as markdown")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("video", help="segment a video, a folder of frames or a camera",
                       description="Segment every frame and write a video with the prediction overlaid and the "
                                   "measured FPS drawn on it, at the source frame rate. Decoding, inference and "
                                   "encoding run concurrently (bounded queues); a summary of per-stage time is "
                                   "printed at the end.")
    p.add_argument("input", metavar="INPUT", help="video file, folder or glob of frames, or camera index (0)")
    p.add_argument("--weights", default=None, metavar="W", help="checkpoint, .onnx or shipped model (default enet-camvid)")
    p.add_argument("--out", required=True, metavar="OUT.mp4", help="output video (.mp4, .avi, .mkv, .mov)")
    p.add_argument("--gif", default=None, metavar="OUT.gif", help="also write an animated GIF (half size)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    p.add_argument("--fps", type=float, default=None, help="frame rate for frame folders (default 10) or override")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network (PyTorch weights): faster per frame after a one-off "
                        "compilation of 15-40 s per input size")
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("prune", help="filter pruning (L1 norm) into a smaller model",
                       description="Remove whole filters ranked by L1 norm (Li et al., Pruning Filters for "
                                   "Efficient ConvNets), keeping residuals, concatenations, BN and depthwise "
                                   "convs consistent (torch-pruning). Writes a genuinely smaller checkpoint that "
                                   "loads with --weights everywhere and fine-tunes with rtseg train --init-from.")
    p.add_argument("--weights", default=None, metavar="W", help="checkpoint or shipped model (default enet-camvid)")
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
    p.add_argument("--size", default=None, metavar="HxW", help="size for FLOPs and tracing (default: checkpoint's)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the before/after report")
    p.add_argument("--out", required=True, metavar="PRUNED")
    p.set_defaults(func=cmd_prune)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rtseg.inference import reuse_freed_memory

    reuse_freed_memory()  # eager PyTorch: no page faults on every forward pass (~20% faster)
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
