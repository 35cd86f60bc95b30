"""Training and evaluation as plain functions (in the style of torchvision's references).

``train_one_epoch`` and ``evaluate`` do one pass each; ``fit`` wires a :class:`TrainConfig` into
data, model, optimiser, schedule, loss, checkpoints (best-by-val-mIoU and last, written
atomically, resumable exactly), TensorBoard and a metrics JSONL.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from rtseg.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint, unwrap
from rtseg.class_weights import compute_class_weights
from rtseg.config import TrainConfig, load_config
from rtseg.constants import IMAGENET_MEAN, IMAGENET_STD
from rtseg.datasets import build_dataset
from rtseg.datasets.transforms import build_eval_transform, build_train_transform, denormalize
from rtseg.engine import distributed
from rtseg.engine.ema import ModelEMA
from rtseg.engine.losses import SegmentationLoss
from rtseg.errors import CheckpointError, ConfigError, RtsegError
from rtseg.io import atomic_write_text
from rtseg.metrics import BinaryPRCurve, ConfusionMatrix
from rtseg.models import create_model
from rtseg.progress import progress as progress_bar
from rtseg.progress import write as write_line
from rtseg.runtime import autocast_dtype, class_map, mixed_precision, select_device
from rtseg.visualize import label_panel
from rtseg.weights import model_from_checkpoint


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
                    optimizer: torch.optim.Optimizer, device: torch.device, *,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    scaler: torch.amp.GradScaler | None = None, amp: bool = False,
                    channels_last: bool = False, progress: bool = True, desc: str = "train",
                    ema: ModelEMA | None = None) -> dict:
    """One pass over ``loader``; ``scheduler`` (if any) steps every iteration, and so does the
    weight average ``ema`` (if any; it averages the plain module under ``model``'s wrappers).
    Returns ``{"loss": mean loss, "images": n, "seconds": t}``."""
    model.train()
    total_loss, n_images, start = 0.0, 0, time.perf_counter()
    bar = progress_bar(loader, desc=desc, unit="batch", enabled=progress)
    for images, targets in bar:
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        with mixed_precision(device, amp):
            loss = loss_fn(model(images), targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at {desc}: lower optim.lr or check the labels")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update(unwrap(model))
        n = images.shape[0]
        total_loss += loss.item() * n
        n_images += n
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{loss.item():.4f}", img_s=f"{n_images / max(elapsed, 1e-9):.1f}",
                        lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    return {"loss": total_loss / max(n_images, 1), "images": n_images,
            "seconds": time.perf_counter() - start}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, *,
             amp: bool = False, channels_last: bool = False, progress: bool = True,
             keep_samples: int = 0, desc: str = "eval", input_size: list[int] | None = None,
             pr_curve: BinaryPRCurve | None = None) -> tuple[dict, ConfusionMatrix, list]:
    """mIoU etc. over ``loader``. Returns (metrics, confusion matrix, up to ``keep_samples``
    (image uint8 HxWx3, target HxW, prediction HxW) triples for pictures).

    ``input_size``: run the network at this (H, W) and upsample its logits to the labels' size
    (evaluation at full resolution of a model trained smaller). ``pr_curve``: also accumulate
    the softmax probability of its positive class (KITTI Road MaxF / AP)."""
    model.eval()
    cm = ConfusionMatrix(num_classes, device=device)
    samples: list = []
    for images, targets in progress_bar(loader, desc=desc, unit="batch", enabled=progress):
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        net_in = images
        if input_size is not None and tuple(input_size) != tuple(images.shape[-2:]):
            net_in = F.interpolate(images, size=tuple(input_size), mode="bilinear", align_corners=False,
                                   antialias=True)
        with mixed_precision(device, amp):
            logits = model(net_in)  # (N, C, h, w)
        if logits.shape[-2:] != targets.shape[-2:]:
            logits = F.interpolate(logits.float(), size=targets.shape[-2:], mode="bilinear", align_corners=False)
        pred = class_map(logits)  # (N, H, W)
        cm.update(pred, targets)
        if pr_curve is not None:
            pr_curve.update(logits.float().softmax(1)[:, pr_curve.positive], targets)
        for i in range(min(images.shape[0], keep_samples - len(samples))):
            samples.append((denormalize(images[i].float().cpu()).permute(1, 2, 0).numpy(),
                            targets[i].cpu().numpy().astype(np.uint8), pred[i].cpu().numpy().astype(np.uint8)))
    cm.all_reduce()
    if pr_curve is not None:
        pr_curve.all_reduce()
    return cm.compute(), cm, samples


# --------------------------------------------------------------------------------------------
# fit: the whole training run


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    # Plain lists and tensors only, so checkpoints load with torch.load(weights_only=True).
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos,
                                                       has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    # No weight decay on BN / PReLU / biases (1-D parameters), as is usual.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr)
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)


def build_lr_lambda(cfg: TrainConfig, iters_per_epoch: int):
    """Per-iteration lr factor for poly / step / constant (with optional linear warm-up)."""
    s = cfg.schedule
    total = max(1, s.epochs * iters_per_epoch)
    warmup = s.warmup_epochs * iters_per_epoch

    def factor(it: int) -> float:
        if it < warmup:
            return (it + 1) / warmup
        if s.name == "poly":
            return (1 - min(it, total - 1) / total) ** s.power
        if s.name == "step":
            return s.gamma ** (it // (s.step_epochs * iters_per_epoch))
        return 1.0  # constant

    return factor


def _write_image_summaries(writer, samples: list, classes, epoch: int) -> None:
    for i, (image, target, pred) in enumerate(samples):
        writer.add_image(f"val/{i}", label_panel(image, target, pred, classes), epoch, dataformats="HWC")


def _reduce_epoch_stats(stats: dict) -> dict:
    """Loss averaged over processes (weighted by images), images summed, the slowest time."""
    parts = distributed.all_gather_objects(stats)
    images = sum(p["images"] for p in parts)
    return {"loss": sum(p["loss"] * p["images"] for p in parts) / max(images, 1), "images": images,
            "seconds": max(p["seconds"] for p in parts)}


def _broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's BatchNorm statistics (each process updated its own copy on
    its last batch), so that all ranks validate, and rank 0 saves, the same network."""
    if distributed.current().enabled:
        for buf in model.buffers():
            torch.distributed.broadcast(buf, 0)


def fit(cfg: TrainConfig, resume: str | Path | bool = False, init_from: str | Path | None = None) -> dict:
    """Train per ``cfg``; returns a summary dict (best mIoU, epochs, run folder).

    ``resume``: True continues from ``<out_dir>/last.pt``, a path from that checkpoint; model,
    optimiser, scheduler, epoch and RNG state are restored, so the run continues exactly.
    ``init_from``: start from the weights (and architecture) of another rtseg checkpoint.

    Under torchrun (see :mod:`rtseg.engine.distributed`) every process trains a DDP replica on
    its share of each epoch (``DistributedSampler``, reshuffled per epoch; ``data.batch_size`` is
    per process), validation is split across the processes and their confusion matrices summed,
    and rank 0 alone writes logs and checkpoints. Checkpoints are the same as one process's: they
    resume in any number of processes (exactly, with the same number).
    """
    from torch.nn.parallel import DistributedDataParallel

    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    try:
        device = select_device(cfg.run.device)
    except RtsegError as e:
        raise ConfigError(f"run.device: {e}") from None
    dist_info, device = distributed.setup(device)
    is_main = dist_info.is_main
    if cfg.run.sync_bn and dist_info.enabled and device.type != "cuda":
        raise ConfigError("run.sync_bn needs CUDA: PyTorch's SyncBatchNorm runs on GPUs only")
    run_dir = Path(cfg.run.out_dir)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    # Same seed everywhere: every process builds the same initial network.
    _seed_everything(cfg.run.seed)

    d = cfg.data
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if len(d.scale) != 2 or not 0 < d.scale[0] <= d.scale[1]:
        raise ConfigError(f"data.scale: expected [lo, hi] with 0 < lo <= hi, got {d.scale}")
    if d.scales is not None and (not d.scales or min(d.scales) <= 0):
        raise ConfigError(f"data.scales: expected a non-empty list of positive scales, got {d.scales}")
    train_tf = build_train_transform(d.crop, tuple(d.scale), d.resize, d.hflip, d.brightness_contrast, mean, std,
                                     scales=d.scales)
    val_tf = build_eval_transform(d.resize, mean, std)
    train_set = build_dataset(d.dataset, d.train_split, d.data_root, train_tf, cache=d.cache)
    val_set = build_dataset(d.dataset, d.val_split, d.data_root, val_tf, cache=d.cache)
    classes = train_set.classes
    # One process: a shuffled loader. Several: each takes its share of a per-epoch permutation
    # (the sampler's own generator, seeded by run.seed + epoch, so resuming is exact).
    train_sampler = DistributedSampler(train_set, dist_info.world_size, dist_info.rank, shuffle=True,
                                       seed=cfg.run.seed, drop_last=True) if dist_info.enabled else None
    train_loader = DataLoader(train_set, batch_size=d.batch_size, shuffle=train_sampler is None,
                              sampler=train_sampler, drop_last=True,
                              num_workers=d.num_workers, pin_memory=device.type == "cuda",
                              persistent_workers=d.num_workers > 0)
    if len(train_loader) == 0:
        raise ConfigError(f"data.batch_size={d.batch_size} is larger than the "
                          f"{len(train_set) // dist_info.world_size} training images of each process "
                          "(batches are dropped when incomplete)")
    # A generator of its own: creating a loader iterator draws a seed, and validation must not
    # shift the training RNG stream (or resuming after a validated epoch would not be exact).
    # Whole batches are sharded across processes: each val frame is scored exactly once.
    val_loader = DataLoader(val_set, batch_sampler=distributed.shard_batches(len(val_set), d.val_batch_size,
                                                                             dist_info),
                            num_workers=d.num_workers, generator=torch.Generator().manual_seed(cfg.run.seed))

    if init_from is not None:
        init = load_checkpoint(init_from)
        if init["model"]["num_classes"] != classes.num_classes:
            raise ConfigError(f"--init-from {init_from}: {init['model']['num_classes']} classes, "
                              f"but {d.dataset} has {classes.num_classes}")
        model = model_from_checkpoint(init)
        model_name, model_args = init["model"]["name"], init["model"].get("args", {})
        pruned = bool(init["model"].get("pruned"))
    else:
        try:
            model = create_model(cfg.model.name, num_classes=classes.num_classes, **cfg.model.args)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"model: {e}") from None
        model_name, model_args, pruned = cfg.model.name, cfg.model.args, False
    if cfg.run.grad_checkpoint:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ConfigError(f"run.grad_checkpoint: model {model_name!r} does not support it")
        model.set_grad_checkpointing(True)
    if cfg.run.sync_bn and dist_info.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if cfg.run.channels_last:
        model.to(memory_format=torch.channels_last)
    net = model  # what training calls: the DDP wrapper in a distributed run
    if dist_info.enabled:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        # Then different augmentations in every process (the network is already identical).
        _seed_everything(cfg.run.seed + dist_info.rank)
    if cfg.run.compile:
        # One static graph (constant batch and crop); evaluation and checkpoints use `model`.
        net = torch.compile(net, dynamic=False)
        if is_main:
            write_line("run.compile: the first training steps compile the network (minutes on a CPU)")

    weight = None
    if cfg.loss.class_weights != "none":
        if cfg.loss.class_weight_c <= 1:
            raise ConfigError(f"loss.class_weight_c: expected a number above 1 (weights 1/ln(c + p)), "
                              f"got {cfg.loss.class_weight_c}")
        cw = compute_class_weights(d.dataset, d.train_split, cfg.loss.class_weights, d.data_root,
                                   progress=cfg.run.progress, c=cfg.loss.class_weight_c)
        weight = torch.tensor(cw["weights"], dtype=torch.float32, device=device)
    if cfg.loss.ohem_min_kept < 0 or not 0 < cfg.loss.ohem_thresh <= 1:
        raise ConfigError("loss.ohem_min_kept must be >= 0 and loss.ohem_thresh in (0, 1], got "
                          f"{cfg.loss.ohem_min_kept} and {cfg.loss.ohem_thresh}")
    loss_fn = SegmentationLoss(weight, cfg.loss.aux_weights, boundary_weight=cfg.loss.boundary_weight,
                               boundary_ce_weight=cfg.loss.boundary_ce_weight,
                               ohem_min_kept=cfg.loss.ohem_min_kept, ohem_thresh=cfg.loss.ohem_thresh).to(device)
    if cfg.run.ema and not 0 < cfg.run.ema_decay < 1:
        raise ConfigError(f"run.ema_decay: expected a number between 0 and 1, got {cfg.run.ema_decay}")
    # The weight average starts from the initial network (after --init-from) and is what
    # validation scores and checkpoints hold as their weights.
    ema = ModelEMA(model, cfg.run.ema_decay) if cfg.run.ema else None
    eval_model = ema.module if ema is not None else model

    optimizer = build_optimizer(cfg, model)
    # Per-iteration LambdaLR (poly, step, constant, warm-up) and the per-epoch plateau rule would
    # overwrite each other's lr, so a run uses one or the other.
    if cfg.schedule.name == "plateau":
        if cfg.schedule.warmup_epochs:
            raise ConfigError("schedule.warmup_epochs is not supported with schedule.name=plateau")
        iter_sched, plateau = None, torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.schedule.plateau_factor, patience=cfg.schedule.plateau_patience)
    else:
        iter_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, build_lr_lambda(cfg, len(train_loader)))
        plateau = None
    train_amp = cfg.run.amp and autocast_dtype(device) is not None
    eval_amp = cfg.run.amp and device.type == "cuda"  # CPU validation figures stay float32
    scaler = torch.amp.GradScaler("cuda") if train_amp and device.type == "cuda" else None

    state = {"epoch": 0, "best_miou": -1.0, "best_epoch": -1, "epochs_since_best": 0}
    if resume:
        path = run_dir / "last.pt" if resume is True else Path(resume)
        ckpt = load_checkpoint(path)
        ts = ckpt.get("train_state")
        if not ts:
            raise CheckpointError(f"{path} holds no training state (optimiser, epoch): it cannot be resumed")
        if ema is not None:
            if "ema" not in ts:
                raise CheckpointError(f"{path} was trained without run.ema: resume it with run.ema=false")
            model.load_state_dict(ts["model"])  # the raw weights; the checkpoint's own are the average
            ema.load(ckpt["state_dict"], ts["ema"])
        elif "ema" in ts:
            raise CheckpointError(f"{path} was trained with run.ema: resume it with run.ema=true")
        else:
            model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ts["optimizer"])
        if iter_sched is not None:
            iter_sched.load_state_dict(ts["scheduler"])
        if plateau is not None:
            plateau.load_state_dict(ts["plateau"])
        if scaler is not None and ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        state = {k: ts[k] for k in state}
        saved_world = ts.get("world_size", 1)
        if saved_world == dist_info.world_size:
            _set_rng_state(ts["rng_per_rank"][dist_info.rank] if dist_info.enabled else ts["rng"])
        else:
            # Another number of processes: same weights, optimiser and schedule, fresh augmentation
            # draws (not bit-exact: which frames go to which process changes anyway).
            _seed_everything(cfg.run.seed + dist_info.rank + 1000 * state["epoch"])
            if is_main:
                write_line(f"resuming a {saved_world}-process run in {dist_info.world_size}: weights, optimiser "
                           "and schedule continue; data order and augmentation are drawn afresh")
        if iter_sched is not None and ts.get("iters_per_epoch", len(train_loader)) != len(train_loader):
            # The per-iteration schedule counts this run's iterations from here on.
            iter_sched.last_epoch = state["epoch"] * len(train_loader)
            for group, base, fn in zip(optimizer.param_groups, iter_sched.base_lrs, iter_sched.lr_lambdas):
                group["lr"] = base * fn(iter_sched.last_epoch)

    config_dict = cfg.to_dict()
    if is_main:
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config_dict, sort_keys=False))
    input_size = d.resize or list(val_set.load(0)[0].shape[:2])

    def checkpoint(metrics: dict | None) -> dict | None:
        """The checkpoint dict on rank 0 (None elsewhere); every rank must call it (RNG gather)."""
        rngs = distributed.all_gather_objects(_rng_state())
        if not is_main:
            return None
        train_state = {**state, "optimizer": optimizer.state_dict(), "scheduler": iter_sched.state_dict() if iter_sched else None,
                       "plateau": plateau.state_dict() if plateau else None,
                       "scaler": scaler.state_dict() if scaler else None, "rng": rngs[0],
                       "world_size": dist_info.world_size, "iters_per_epoch": len(train_loader)}
        if dist_info.enabled:
            train_state["rng_per_rank"] = rngs
        if ema is not None:
            train_state.update(model={k: v.detach().cpu() for k, v in model.state_dict().items()}, ema=ema.state())
        return make_checkpoint(eval_model, model_name, model_args, classes, mean, std, input_size,
                               config_dict, train_state, metrics, pruned=pruned)

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard")) if is_main else None
    stopped_early = False
    try:
        for epoch in range(state["epoch"], cfg.schedule.epochs):
            if train_sampler is not None:
                train_sampler.set_epoch(epoch)
            stats = train_one_epoch(net, train_loader, loss_fn, optimizer, device, scheduler=iter_sched,
                                    scaler=scaler, amp=train_amp, channels_last=cfg.run.channels_last,
                                    progress=cfg.run.progress,
                                    desc=f"epoch {epoch + 1}/{cfg.schedule.epochs}", ema=ema)
            if dist_info.enabled:
                stats = _reduce_epoch_stats(stats)
                _broadcast_buffers(model)
                if ema is not None:
                    _broadcast_buffers(ema.module)
            lr = optimizer.param_groups[0]["lr"]
            record = {"epoch": epoch + 1, "train_loss": stats["loss"], "lr": lr,
                      "train_seconds": round(stats["seconds"], 2),
                      "train_images_per_s": round(stats["images"] / stats["seconds"], 2)}
            metrics, improved, samples = None, False, []
            is_last = epoch + 1 == cfg.schedule.epochs
            if (epoch + 1) % cfg.run.val_every == 0 or is_last:
                metrics, _, samples = evaluate(eval_model, val_loader, classes.num_classes, device, amp=eval_amp,
                                               channels_last=cfg.run.channels_last, progress=cfg.run.progress,
                                               keep_samples=cfg.run.image_summaries, desc="val")
                miou = metrics["miou"]  # the same on every rank: the confusion matrices are summed
                record.update({"val_miou": miou, "val_pixel_accuracy": metrics["pixel_accuracy"],
                               "val_per_class_iou": dict(zip(classes.names, metrics["iou"]))})
                improved = miou > state["best_miou"]
                if improved:
                    state.update(best_miou=miou, best_epoch=epoch + 1, epochs_since_best=0)
                else:
                    state["epochs_since_best"] += 1
                if plateau is not None:
                    plateau.step(miou)
            state["epoch"] = epoch + 1
            ckpt = checkpoint(metrics)
            record["best_miou"] = state["best_miou"]
            if is_main:
                if improved:
                    save_checkpoint(dict(ckpt, train_state=None), run_dir / "best.pt")  # no optimiser needed
                save_checkpoint(ckpt, run_dir / "last.pt")
                _log_epoch(writer, run_dir, record, metrics, samples, classes)
                # One line per epoch, also when progress bars are off (logs).
                msg = f"epoch {epoch + 1}: loss {stats['loss']:.4f}, {record['train_images_per_s']} img/s"
                if metrics is not None:
                    msg += f", val mIoU {metrics['miou']:.4f} (best {state['best_miou']:.4f} @ {state['best_epoch']})"
                write_line(msg)
            patience = cfg.schedule.early_stop_patience
            if patience and state["epochs_since_best"] >= patience:
                if is_main:
                    write_line(f"early stop: no better val mIoU for {patience} epochs")
                stopped_early = True
                break
        distributed.barrier()  # rank 0 has written the last checkpoint before anyone returns
    finally:
        if writer is not None:
            writer.close()
    return {"run_dir": str(run_dir), "epochs": state["epoch"], "best_miou": state["best_miou"],
            "best_epoch": state["best_epoch"], "stopped_early": stopped_early,
            "world_size": dist_info.world_size}


def _log_epoch(writer, run_dir: Path, record: dict, metrics: dict | None, samples: list, classes) -> None:
    """TensorBoard scalars and pictures, and a line of metrics.jsonl (rank 0)."""
    step = record["epoch"]
    writer.add_scalar("train/loss", record["train_loss"], step)
    writer.add_scalar("train/lr", record["lr"], step)
    if metrics is not None:
        writer.add_scalar("val/miou", metrics["miou"], step)
        writer.add_scalar("val/pixel_accuracy", metrics["pixel_accuracy"], step)
        for name, v in zip(classes.names, metrics["iou"]):
            if not math.isnan(v):
                writer.add_scalar(f"val_iou/{name}", v, step)
        _write_image_summaries(writer, samples, classes, step)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def train(config: str | Path | TrainConfig | None = None, overrides: list[str] | tuple[str, ...] = (), *,
          resume: str | Path | bool = False, init_from: str | Path | None = None) -> dict:
    """``rtseg train``: a YAML recipe (or a :class:`TrainConfig`, or None for the defaults) with
    ``section.key=value`` overrides, trained by :func:`fit`. Returns its summary."""
    if isinstance(config, TrainConfig):
        if overrides:
            raise ConfigError("overrides apply to a YAML recipe; edit the TrainConfig object instead")
        cfg = config
    else:
        cfg = load_config(config, list(overrides))
    return fit(cfg, resume=resume, init_from=init_from)
