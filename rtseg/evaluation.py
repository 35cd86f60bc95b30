"""``rtseg.evaluate``: score weights on a dataset split (``rtseg eval``).

The policy lives here: at which resolution frames are fed and scored, the KITTI Road extras, the
pictures. The loop itself is :func:`rtseg.engine.loops.evaluate_loader`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from rtseg import distributed
from rtseg.datasets import build_dataset
from rtseg.datasets.transforms import build_eval_transform
from rtseg.engine.loops import evaluate_loader
from rtseg.errors import RtsegError
from rtseg.io import atomic_write_text
from rtseg.metrics import BinaryPRCurve
from rtseg.models.tta import ProbabilityAverage, check_tta, with_tta
from rtseg.runtime import select_device
from rtseg.visualize import label_panel, plot_confusion_matrix, plot_per_class_iou, save_png
from rtseg.weights import load_weights


def evaluate(weights: str | Path | None = None, dataset: str = "camvid", split: str = "val", *,
             data_root: str | Path | None = None, size: list[int] | tuple[int, int] | None = None,
             full_res: bool = False, batch_size: int = 4, workers: int = 0, threads: int = 0,
             device: str = "auto", plots: str | Path | None = None,
             save_predictions: str | Path | None = None, json_path: str | Path | None = None,
             progress: bool = True, tta: str = "none", runtime: str | None = None,
             backend: str | None = None, calibrate: str | None = None) -> dict:
    """Per-class IoU, mIoU (void ignored), pixel and mean class accuracy of ``weights`` (shipped
    name, checkpoint or ``.onnx``) on ``dataset``/``split``. Several weights (a list, or names
    joined by commas) are scored as one ensemble: their softmax outputs averaged
    (:class:`~rtseg.models.tta.ProbabilityAverage`; the first one sets sizes and normalisation).

    Resolution: frames and labels are resized to ``size`` (default: the training config's
    ``data.resize``; none: native). ``full_res``: labels stay at full resolution, the network
    runs at the training size and its logits are upsampled. Static ONNX graphs always run at
    their export size. KITTI Road adds ``road`` (MaxF, AP in perspective space).

    ``plots``: a folder for per_class_iou.png and confusion_matrix.png; ``save_predictions``: a
    folder for input | truth | prediction panels; ``json_path``: write the returned dict.
    ``tta="flip"``: average the network over the frame and its mirror image (twice the work;
    the result records ``"tta": "flip"``, so the figure is never mistaken for the plain one).

    ``backend``: score the network as that backend runs it (:mod:`rtseg.backends`; the runner
    ``rtseg predict / video / serve --backend`` build, BN folded, compiled, bf16 or int8), the
    result records it; None runs the plain PyTorch module. ``calibrate``: ``DATASET:SPLIT:N``
    frames for an int8 backend (default: the street frames the package carries); scoring a
    sequence the calibration never saw tells the int8 loss honestly.

    Under torchrun each process scores every world_size-th batch and the confusion matrices
    are summed: the figures equal one process's to the last digit; rank 0 writes the files."""
    check_tta(tta)  # an unknown mode is an error before any work
    members = _members(weights)
    all_loaded = _load_members(members, threads, runtime, backend)
    loaded = all_loaded[0]
    classes = loaded.classes
    resize = list(size) if size else loaded.train_resize
    net_size = loaded.fixed_size or (resize if full_res else None)
    frame_size = None if (full_res or loaded.fixed_size) else resize
    data = build_dataset(dataset, split, data_root, build_eval_transform(frame_size, loaded.mean, loaded.std))
    if data.classes.num_classes != classes.num_classes:
        raise RtsegError(f"{loaded.source} predicts {classes.num_classes} classes but {dataset} "
                         f"has {data.classes.num_classes}")
    if not data.has_labels:
        raise RtsegError(f"{dataset} {split} has no labels to evaluate against")
    run_on = torch.device("cpu") if loaded.is_onnx else select_device(device)
    info, run_on = distributed.setup(run_on)
    if backend is not None:
        run_on, nets = _backend_runners(all_loaded, backend, calibrate, data_root, threads, run_on)
    else:
        nets = [lw.model.to(run_on) for lw in all_loaded]
    model = with_tta(nets[0] if len(nets) == 1 else ProbabilityAverage(nets), tta)
    batches = distributed.shard_batches(len(data), batch_size, info)
    loader = DataLoader(data, batch_sampler=batches, num_workers=workers)
    indices = [i for batch in batches for i in batch]  # this process's frames, in order
    keep = len(indices) if save_predictions else 0
    pr = BinaryPRCurve(positive=1, device=run_on) if dataset == "kitti_road" else None
    metrics, cm, samples = evaluate_loader(model, loader, classes.num_classes, run_on, keep_samples=keep,
                                           input_size=net_size, pr_curve=pr, progress=progress)
    result = {
        "miou": metrics["miou"],
        "per_class_iou": dict(zip(classes.names, metrics["iou"])),
        "pixel_accuracy": metrics["pixel_accuracy"],
        "mean_class_accuracy": metrics["mean_class_accuracy"],
        "num_images": len(data),
        "weights": str(weights) if len(members) == 1 else ",".join(str(m) for m in members), "dataset": dataset, "split": split,
        "input_size": list(net_size or resize or []) or None,
        "resolution": "training" if frame_size else "full",
        "tta": tta,
        "backend": backend or ("torch (plain module)" if not loaded.is_onnx else loaded.name),
    }
    if pr is not None:
        # Perspective (image) space; the official KITTI benchmark scores in bird's-eye view.
        result["road"] = {**pr.compute(), "space": "perspective"}
    _write_outputs(result, classes, cm, data, indices, samples, json_path if info.is_main else None,
                   plots if info.is_main else None, save_predictions)
    return result


def _write_outputs(result: dict, classes, cm, data, indices: list[int], samples: list, json_path, plots,
                   save_predictions) -> None:
    """The JSON, the plots and the prediction panels asked for."""
    dataset, split = result["dataset"], result["split"]
    if json_path:
        import json

        atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
    if plots:
        plots = Path(plots)
        plot_per_class_iou(list(classes.names), list(result["per_class_iou"].values()), plots / "per_class_iou.png",
                           title=f"{dataset} {split}: mIoU {100 * result['miou']:.1f}")
        plot_confusion_matrix(list(classes.names), cm.mat.cpu().numpy(), plots / "confusion_matrix.png")
    if save_predictions:
        out = Path(save_predictions)
        for index, (image, target, pred) in zip(indices, samples):
            sample = data.samples[index]
            save_png(label_panel(image, target, pred, classes), out / f"{sample.image.stem}.png")


def _load_members(members: list, threads: int, runtime: str | None, backend: str | None) -> list:
    """The weights of every member; an ensemble's members must share classes and normalisation."""
    if backend is not None and runtime is not None:
        raise RtsegError("--runtime is the older spelling of --backend: give one of them")
    all_loaded = [load_weights(w, threads=threads, runtime=_file_runtime(w, backend) or runtime) for w in members]
    first = all_loaded[0]
    for w, other in zip(members[1:], all_loaded[1:]):
        if other.classes.names != first.classes.names or (other.mean, other.std) != (first.mean, first.std):
            raise RtsegError(f"--weights: {w} has other classes or input normalisation than {members[0]}: "
                             "the members of an ensemble must agree")
    return all_loaded


def _members(weights) -> list:
    """``weights`` as a list: one name or path, several joined by commas, or a list."""
    if isinstance(weights, (list, tuple)):
        if not weights:
            raise RtsegError("--weights: an empty list")
        return list(weights)
    if isinstance(weights, str) and "," in weights:
        parts = [w.strip() for w in weights.split(",")]
        if not all(parts):
            raise RtsegError(f"--weights {weights!r}: an empty name between commas")
        return parts
    return [weights]


def _file_runtime(weights, backend: str | None) -> str | None:
    """The runtime of an ``.onnx`` member under ``--backend`` (None for PyTorch weights)."""
    if backend is None or not str(weights).lower().endswith(".onnx"):
        return None
    from rtseg.backends import file_backend_runtime

    return file_backend_runtime(str(weights), backend)


def _backend_runners(all_loaded, backend: str, calibrate, data_root, threads: int, run_on):
    """(device, runners): each member run by ``backend`` as :class:`rtseg.Segmenter` runs it."""
    from rtseg.inference import Segmenter

    calibration = None
    if calibrate:
        from rtseg.deploy.quantize import calibration_images

        calibration = calibration_images(calibrate, data_root)
    nets = []
    for lw in all_loaded:
        seg = Segmenter(lw.model, lw.classes, lw.mean, lw.std, lw.input_size, run_on, name=lw.name,
                        backend=None if lw.is_onnx else backend, threads=threads, calibration=calibration)
        nets.append(seg.model)
    return seg.device, nets
