"""Training as plain functions (in the style of torchvision's references).

``fit`` wires a :class:`TrainConfig` into data (:func:`build_loaders`), model
(:func:`build_model`), loss (:func:`build_loss`), optimiser and schedule
(:func:`build_optimizer`, :func:`build_schedules`), and runs :func:`train_one_epoch` and
:func:`validate` epoch after epoch. What a checkpoint saves and ``--resume`` restores is one
object, :class:`rtseg.engine.state.TrainingState`; checkpoints (best by val mIoU, and last) are
written atomically; TensorBoard and a metrics JSONL log every epoch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from rtseg import distributed
from rtseg.checkpoint import load_checkpoint, save_checkpoint
from rtseg.class_weights import compute_class_weights
from rtseg.config import TrainConfig, load_config
from rtseg.constants import IMAGENET_MEAN, IMAGENET_STD
from rtseg.datasets import build_dataset
from rtseg.datasets.classes import ClassTable
from rtseg.datasets.transforms import build_eval_transform, build_train_transform
from rtseg.engine.ema import ModelEMA
from rtseg.engine.loops import evaluate_loader, train_one_epoch
from rtseg.engine.losses import SegmentationLoss
from rtseg.engine.state import ModelSpec, TrainingState, seed_everything
from rtseg.errors import CheckpointError, ConfigError, RtsegError
from rtseg.io import atomic_write_text
from rtseg.models import create_model
from rtseg.progress import print_line
from rtseg.runtime import autocast_dtype, bf16_channels_last_unsafe_convs, select_device
from rtseg.visualize import label_panel
from rtseg.weights import model_from_checkpoint

__all__ = ["build_loaders", "build_loss", "build_model", "build_optimizer", "build_schedules", "fit",
           "train", "train_one_epoch", "validate"]


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader
    #: The DistributedSampler of a multi-process run (reshuffled per epoch), else None.
    sampler: DistributedSampler | None
    classes: ClassTable
    #: (H, W) the validation frames are scored at.
    input_size: list[int]


def _check_data_config(cfg: TrainConfig) -> None:
    d = cfg.data
    if len(d.scale) != 2 or not 0 < d.scale[0] <= d.scale[1]:
        raise ConfigError(f"data.scale: expected [lo, hi] with 0 < lo <= hi, got {d.scale}")
    if d.scales is not None and (not d.scales or min(d.scales) <= 0):
        raise ConfigError(f"data.scales: expected a non-empty list of positive scales, got {d.scales}")


def build_loaders(cfg: TrainConfig, dist_info: distributed.DistInfo, device: torch.device) -> Loaders:
    """The training loader (random scale-crop, flip, ... per ``cfg.data``) and the val loader."""
    _check_data_config(cfg)
    d = cfg.data
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    train_tf = build_train_transform(d.crop, tuple(d.scale), d.resize, d.hflip, d.brightness_contrast, mean, std,
                                     scales=d.scales)
    val_tf = build_eval_transform(d.resize, mean, std)
    train_set = build_dataset(d.dataset, d.train_split, d.data_root, train_tf, cache=d.cache)
    if cfg.loss.distill_teachers:
        train_set = _with_teacher(cfg, train_set, train_tf, dist_info)
    val_set = build_dataset(d.dataset, d.val_split, d.data_root, val_tf, cache=d.cache)
    # One process: a shuffled loader. Several: each takes its share of a per-epoch permutation
    # (the sampler's own generator, seeded by run.seed + epoch, so resuming is exact).
    sampler = DistributedSampler(train_set, dist_info.world_size, dist_info.rank, shuffle=True,
                                 seed=cfg.run.seed, drop_last=True) if dist_info.enabled else None
    train_loader = DataLoader(train_set, batch_size=d.batch_size, shuffle=sampler is None, sampler=sampler,
                              drop_last=True, num_workers=d.num_workers, pin_memory=device.type == "cuda",
                              persistent_workers=d.num_workers > 0)
    if len(train_loader) == 0:
        raise ConfigError(f"data.batch_size={d.batch_size} is larger than the "
                          f"{len(train_set) // dist_info.world_size} training images of each process "
                          "(batches are dropped when incomplete)")
    # A generator of its own: creating a loader iterator draws a seed, and validation must not
    # shift the training RNG stream (or resuming after a validated epoch would not be exact).
    # Whole batches are sharded across processes: each val frame is scored exactly once.
    val_loader = DataLoader(val_set, batch_sampler=distributed.shard_batches(len(val_set), d.val_batch_size, dist_info),
                            num_workers=d.num_workers, generator=torch.Generator().manual_seed(cfg.run.seed))
    input_size = d.resize or list(val_set.load(0)[0].shape[:2])
    return Loaders(train_loader, val_loader, sampler, train_set.classes, input_size)


def _with_teacher(cfg: TrainConfig, train_set, train_tf, dist_info: distributed.DistInfo):
    """The training set with the teacher's map of every frame (``loss.distill_*``; computed once,
    cached in ``run.out_dir``; rank 0 computes, the others wait and read the cache)."""
    from rtseg.engine.distill import DistillationDataset, Teacher, teacher_targets

    loss = cfg.loss
    if loss.distill_weight < 0 or loss.distill_temperature <= 0:
        raise ConfigError(f"loss.distill_weight must be >= 0 and loss.distill_temperature > 0, got "
                          f"{loss.distill_weight} and {loss.distill_temperature}")
    # Loading the teacher builds networks, which draws from torch's random stream: forked, so a
    # run draws the same student and augmentations whether it distils or not.
    with torch.random.fork_rng():
        try:
            teacher = Teacher(loss.distill_teachers, loss.distill_tta, loss.distill_size)
        except (RtsegError, OSError) as e:
            raise ConfigError(f"loss.distill_teachers: {e}") from None
        if dist_info.is_main:
            maps = teacher_targets(teacher, train_set, cfg.run.out_dir, progress=cfg.run.progress)
        distributed.barrier()
        if not dist_info.is_main:
            maps = teacher_targets(teacher, train_set, cfg.run.out_dir, progress=False)
    return DistillationDataset(train_set, maps, train_tf)


def _transfer(cfg: TrainConfig, init: dict, init_from, old: ClassTable, classes: ClassTable,
              grown: dict) -> tuple[nn.Module, list[str]]:
    """``init``'s network for the dataset's classes and the builder arguments ``grown``
    (:func:`rtseg.models.transfer.transfer_to_classes`), with one line saying what starts afresh."""
    from rtseg.models.transfer import transfer_to_classes

    class_map = {}
    for new, sources in (cfg.model.init_class_map or {}).items():
        if new not in classes.names:
            raise ConfigError(f"model.init_class_map: {new!r} is not a class of {cfg.data.dataset} "
                              f"({', '.join(classes.names)})")
        sources = [sources] if isinstance(sources, str) else list(sources)
        unknown = [s for s in sources if s not in old.names]
        if unknown:
            raise ConfigError(f"model.init_class_map: {unknown} are not classes of {init_from} "
                              f"({', '.join(old.names)})")
        class_map[classes.names.index(new)] = [old.names.index(s) for s in sources]
    same_classes = old.names == classes.names
    try:
        model, fresh = transfer_to_classes(init, classes.num_classes,
                                           {i: [i] for i in range(old.num_classes)} if same_classes else class_map,
                                           grown)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"model.args: {e}") from None
    if same_classes:
        args = ", ".join(f"{k}={v}" for k, v in grown.items())
        dropped = sorted(set(init["state_dict"]) - set(model.state_dict()))
        print_line(f"--init-from {init_from}: model.args {args} change the network; initialised afresh: "
                   f"{', '.join(fresh) or 'nothing'}; {'left out: ' + ', '.join(dropped) + '; ' if dropped else ''}"
                   "every other tensor carried over")
        return model, fresh
    mapped = f", {len(class_map)} of them from old classes (model.init_class_map)" if class_map else ""
    print_line(f"--init-from {init_from}: {old.num_classes} classes -> {classes.num_classes}{mapped}; "
               f"initialised afresh{' but for the mapped classes' if class_map else ''}: "
               f"{', '.join(fresh) or 'nothing'}; every other tensor carried over")
    return model, fresh


def build_model(cfg: TrainConfig, classes, init_from: str | Path | None) -> tuple[nn.Module, ModelSpec, list[str]]:
    """The network (on the CPU, in training layout), how a checkpoint rebuilds it, and the
    names of its tensors that ``init_from`` did not carry over (empty without it)."""
    from rtseg.models.transfer import grown_args

    if init_from is not None:
        init = load_checkpoint(init_from)
        old = ClassTable.from_dict(init["classes"])
        grown = grown_args(init, cfg.model.args) if cfg.model.name == init["model"]["name"] else {}
        fresh = []
        if old.names != classes.names or grown:
            model, fresh = _transfer(cfg, init, init_from, old, classes, grown)
        else:
            model = model_from_checkpoint(init)
        spec = ModelSpec(init["model"]["name"], {**init["model"].get("args", {}), **grown}, classes, IMAGENET_MEAN,
                         IMAGENET_STD, pruned=bool(init["model"].get("pruned")))
    else:
        try:
            model = create_model(cfg.model.name, num_classes=classes.num_classes, **cfg.model.args)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"model: {e}") from None
        spec = ModelSpec(cfg.model.name, cfg.model.args, classes, IMAGENET_MEAN, IMAGENET_STD)
        fresh = []
    if cfg.run.grad_checkpoint:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ConfigError(f"run.grad_checkpoint: model {spec.name!r} does not support it")
        model.set_grad_checkpointing(True)
    return model, spec, fresh


def training_channels_last(cfg: TrainConfig, model: nn.Module, device: torch.device) -> bool:
    """``run.channels_last``, unless the step's bf16 autocast on this CPU would meet oneDNN's
    wrong channels-last weight gradients (:func:`rtseg.runtime.bf16_channels_last_unsafe_convs`;
    pruned EDANet: NaN at its first step). NCHW bf16 is right there, and about as fast for
    EDANet (0.37-0.44 s a step compiled, batch 8 at 240x320, AVX512-BF16)."""
    if not cfg.run.channels_last:
        return False
    if not (cfg.run.amp and device.type == "cpu" and autocast_dtype(device) == torch.bfloat16):
        return True
    unsafe = bf16_channels_last_unsafe_convs(model)
    if unsafe:
        print_line(f"run.channels_last: off for this run: oneDNN's bf16 channels-last weight gradient is "
                   f"wrong for dilated convolutions without a multiple of 16 channels ({len(unsafe)} here, "
                   f"e.g. {unsafe[0]}); training runs NCHW")
    return not unsafe


def _wrap_for_training(cfg: TrainConfig, model: nn.Module, device: torch.device,
                       dist_info: distributed.DistInfo, channels_last: bool) -> tuple[nn.Module, nn.Module]:
    """(model on the device, what training calls: DDP and/or torch.compile around it)."""
    if cfg.run.sync_bn and dist_info.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = model
    if dist_info.enabled:
        # run.freeze_epochs leaves the carried-over parameters without gradients for a while.
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                      find_unused_parameters=cfg.run.freeze_epochs > 0)
        # Then different augmentations in every process (the network is already identical).
        seed_everything(cfg.run.seed + dist_info.rank)
    if cfg.run.compile:
        # One static graph (constant batch and crop); evaluation and checkpoints use `model`.
        # Inductor would otherwise turn convolutions channels-last on its own (and meet the
        # bf16 bug above: NaN within 8 steps for pruned EDANet even from an NCHW model).
        options = None if channels_last else {"layout_optimization": False}
        net = torch.compile(net, dynamic=False, options=options)
        if dist_info.is_main:
            print_line("run.compile: the first training steps compile the network (minutes on a CPU)")
    return model, net


def _check_loss_config(cfg: TrainConfig) -> None:
    """The loss options' one-line errors, before any data is read or a teacher's maps computed."""
    loss = cfg.loss
    if loss.class_weights != "none" and not loss.class_weight_c > 1:
        raise ConfigError(f"loss.class_weight_c: expected a number above 1 (weights 1/ln(c + p)), "
                          f"got {loss.class_weight_c}")
    if not 0 <= loss.lovasz_weight < math.inf:  # NaN fails too
        raise ConfigError(f"loss.lovasz_weight: expected a weight >= 0 (0: no Lovasz term), got {loss.lovasz_weight}")
    if loss.ohem_min_kept < 0 or not 0 < loss.ohem_thresh <= 1:
        raise ConfigError("loss.ohem_min_kept must be >= 0 and loss.ohem_thresh in (0, 1], got "
                          f"{loss.ohem_min_kept} and {loss.ohem_thresh}")


def build_loss(cfg: TrainConfig, device: torch.device) -> SegmentationLoss:
    """Cross-entropy with the configured class weights, auxiliary weights, boundary terms, OHEM."""
    loss, d = cfg.loss, cfg.data
    weight = None
    _check_loss_config(cfg)
    if loss.class_weights != "none":
        cw = compute_class_weights(d.dataset, d.train_split, loss.class_weights, d.data_root,
                                   progress=cfg.run.progress, c=loss.class_weight_c)
        weight = torch.tensor(cw["weights"], dtype=torch.float32, device=device)
    return SegmentationLoss(weight, loss.aux_weights, boundary_weight=loss.boundary_weight,
                            boundary_ce_weight=loss.boundary_ce_weight, ohem_min_kept=loss.ohem_min_kept,
                            ohem_thresh=loss.ohem_thresh,
                            distill_weight=loss.distill_weight if loss.distill_teachers else 0.0,
                            distill_temperature=loss.distill_temperature,
                            distill_kind=loss.distill_kind, lovasz_weight=loss.lovasz_weight).to(device)


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


def build_schedules(cfg: TrainConfig, optimizer: torch.optim.Optimizer, iters_per_epoch: int):
    """(per-iteration LambdaLR or None, per-epoch ReduceLROnPlateau or None). The two would
    overwrite each other's lr, so a run uses one or the other."""
    if cfg.schedule.name == "plateau":
        if cfg.schedule.warmup_epochs:
            raise ConfigError("schedule.warmup_epochs is not supported with schedule.name=plateau")
        return None, torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.schedule.plateau_factor, patience=cfg.schedule.plateau_patience)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, build_lr_lambda(cfg, iters_per_epoch)), None


def build_state(cfg: TrainConfig, model: nn.Module, spec: ModelSpec, device: torch.device,
                iters_per_epoch: int) -> TrainingState:
    """Optimiser, schedules, gradient scaler and weight average around ``model``."""
    if cfg.run.ema and not 0 < cfg.run.ema_decay < 1:
        raise ConfigError(f"run.ema_decay: expected a number between 0 and 1, got {cfg.run.ema_decay}")
    # The weight average starts from the initial network (after --init-from); validation scores
    # it and checkpoints hold it as their weights.
    ema = ModelEMA(model, cfg.run.ema_decay) if cfg.run.ema else None
    optimizer = build_optimizer(cfg, model)
    iter_sched, plateau = build_schedules(cfg, optimizer, iters_per_epoch)
    train_amp = cfg.run.amp and autocast_dtype(device) is not None
    scaler = torch.amp.GradScaler("cuda") if train_amp and device.type == "cuda" else None
    return TrainingState(model, spec, optimizer, iter_sched, plateau, scaler, ema, iters_per_epoch)


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


def validate(cfg: TrainConfig, state: TrainingState, loaders: Loaders, device: torch.device,
             epoch: int) -> tuple[dict, bool, list]:
    """Score the network (its weight average when there is one) on the val loader after
    ``epoch``: (metrics, improved on the best so far, picture samples)."""
    eval_amp = cfg.run.amp and device.type == "cuda"  # CPU validation figures stay float32
    metrics, _, samples = evaluate_loader(state.eval_model, loaders.val, loaders.classes.num_classes, device,
                                          amp=eval_amp, channels_last=cfg.run.channels_last,
                                          progress=cfg.run.progress, keep_samples=cfg.run.image_summaries,
                                          desc="val")
    # The same on every rank: the confusion matrices are summed.
    return metrics, state.record_validation(metrics["miou"], epoch), samples


def _setup(cfg: TrainConfig) -> tuple[distributed.DistInfo, torch.device, Path]:
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    try:
        device = select_device(cfg.run.device)
    except RtsegError as e:
        raise ConfigError(f"run.device: {e}") from None
    dist_info, device = distributed.setup(device)
    if cfg.run.sync_bn and dist_info.enabled and device.type != "cuda":
        raise ConfigError("run.sync_bn needs CUDA: PyTorch's SyncBatchNorm runs on GPUs only")
    run_dir = Path(cfg.run.out_dir)
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    return dist_info, device, run_dir


def _resume_path(resume: str | Path | bool, run_dir: Path) -> Path:
    path = run_dir / "last.pt" if resume is True else Path(resume)
    if not path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {path}" +
                              (" (nothing to resume: start without --resume)" if resume is True else ""))
    return path


def _epoch_record(epoch: int, stats: dict, state: TrainingState) -> dict:
    return {"epoch": epoch, "train_loss": stats["loss"], "lr": state.optimizer.param_groups[0]["lr"],
            "train_seconds": round(stats["seconds"], 2),
            "train_images_per_s": round(stats["images"] / stats["seconds"], 2)}


def _end_of_epoch(state: TrainingState, run_dir: Path, writer, record: dict, metrics: dict | None,
                  improved: bool, samples: list) -> None:
    """Checkpoints (every rank takes part), logs and the epoch's line (rank 0)."""
    ckpt = state.checkpoint(metrics)
    if ckpt is None:
        return
    c = state.counters
    record["best_miou"] = c["best_miou"]
    if metrics is not None:
        record.update({"val_miou": metrics["miou"], "val_pixel_accuracy": metrics["pixel_accuracy"],
                       "val_per_class_iou": dict(zip(state.spec.classes.names, metrics["iou"]))})
    if improved:
        save_checkpoint(dict(ckpt, train_state=None), run_dir / "best.pt")  # no optimiser needed
    save_checkpoint(ckpt, run_dir / "last.pt")
    _log_epoch(writer, run_dir, record, metrics, samples, state.spec.classes)
    # One line per epoch, also when progress bars are off (logs).
    msg = f"epoch {record['epoch']}: loss {record['train_loss']:.4f}, {record['train_images_per_s']} img/s"
    if metrics is not None:
        msg += f", val mIoU {metrics['miou']:.4f} (best {c['best_miou']:.4f} @ {c['best_epoch']})"
    print_line(msg)


def fit(cfg: TrainConfig, resume: str | Path | bool = False, init_from: str | Path | None = None) -> dict:
    """Train per ``cfg``; returns a summary dict (best mIoU, epochs, run folder).

    ``resume``: True continues from ``<out_dir>/last.pt``, a path from that checkpoint; model,
    weight average, optimiser, scheduler, epoch and RNG state are restored, so the run continues
    exactly (a pruned network's smaller layers are rebuilt from that checkpoint). ``init_from``:
    start from the weights (and architecture) of another rtseg checkpoint.

    Under torchrun (see :mod:`rtseg.distributed`) every process trains a DDP replica on
    its share of each epoch (``DistributedSampler``, reshuffled per epoch; ``data.batch_size`` is
    per process), validation is split across the processes and their confusion matrices summed,
    and rank 0 alone writes logs and checkpoints. Checkpoints are the same as one process's: they
    resume in any number of processes (exactly, with the same number).
    """
    dist_info, device, run_dir = _setup(cfg)
    resume_path = _resume_path(resume, run_dir) if resume else None
    if init_from is None and resume_path is None and (cfg.run.freeze_epochs or cfg.model.init_class_map):
        raise ConfigError("run.freeze_epochs and model.init_class_map act on the weights --init-from W carries "
                          "over: give --init-from")
    if resume_path is not None and init_from is None and load_checkpoint(resume_path)["model"].get("pruned"):
        init_from = resume_path  # a pruned network's layers are smaller than the recipe builds: its own checkpoint rebuilds them
    seed_everything(cfg.run.seed)  # the same everywhere: every process builds the same network
    _check_loss_config(cfg)
    loaders = build_loaders(cfg, dist_info, device)
    model, spec, fresh = build_model(cfg, loaders.classes, init_from)
    channels_last = training_channels_last(cfg, model, device)
    model, net = _wrap_for_training(cfg, model, device, dist_info, channels_last)
    loss_fn = build_loss(cfg, device)
    state = build_state(cfg, model, spec, device, len(loaders.train))
    state.afresh = fresh
    if resume_path is not None:
        state.restore(resume_path, cfg.run.seed)
    carried = _carried_parameters(cfg, model, spec, state.afresh)
    spec.config, spec.input_size = cfg.to_dict(), loaders.input_size
    if dist_info.is_main:
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(spec.config, sort_keys=False))
    train_amp = cfg.run.amp and autocast_dtype(device) is not None

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard")) if dist_info.is_main else None
    stopped_early, epochs, patience = False, cfg.schedule.epochs, cfg.schedule.early_stop_patience
    try:
        for epoch in range(state.counters["epoch"], epochs):
            if loaders.sampler is not None:
                loaders.sampler.set_epoch(epoch)
            for p in carried:  # run.freeze_epochs: the new classifier learns first
                p.requires_grad_(epoch >= cfg.run.freeze_epochs)
            stats = train_one_epoch(net, loaders.train, loss_fn, state.optimizer, device, scheduler=state.iter_sched,
                                    scaler=state.scaler, amp=train_amp, channels_last=channels_last,
                                    progress=cfg.run.progress, desc=f"epoch {epoch + 1}/{epochs}", ema=state.ema)
            if dist_info.enabled:
                stats = _reduce_epoch_stats(stats)
                _broadcast_buffers(state.model)
                if state.ema is not None:
                    _broadcast_buffers(state.ema.module)
            record = _epoch_record(epoch + 1, stats, state)
            metrics, improved, samples = None, False, []
            if (epoch + 1) % cfg.run.val_every == 0 or epoch + 1 == epochs:
                metrics, improved, samples = validate(cfg, state, loaders, device, epoch + 1)
            state.counters["epoch"] = epoch + 1
            _end_of_epoch(state, run_dir, writer, record, metrics, improved, samples)
            if patience and state.counters["epochs_since_best"] >= patience:
                if dist_info.is_main:
                    print_line(f"early stop: no better val mIoU for {patience} epochs")
                stopped_early = True
                break
        distributed.barrier()  # rank 0 has written the last checkpoint before anyone returns
    finally:
        if writer is not None:
            writer.close()
    c = state.counters
    return {"run_dir": str(run_dir), "epochs": c["epoch"], "best_miou": c["best_miou"],
            "best_epoch": c["best_epoch"], "stopped_early": stopped_early, "world_size": dist_info.world_size}


def _carried_parameters(cfg: TrainConfig, model: nn.Module, spec: ModelSpec, fresh: list[str]) -> list:
    """The parameters ``run.freeze_epochs`` holds still: those carried over by ``--init-from``
    (all but the class-dependent ones, which start afresh on new classes, and the layers
    ``fresh`` that model.args grew)."""
    if cfg.run.freeze_epochs < 0:
        raise ConfigError(f"run.freeze_epochs: expected 0 or more, got {cfg.run.freeze_epochs}")
    if not cfg.run.freeze_epochs:
        return []
    from rtseg.models import INIT_ONLY_ARGS
    from rtseg.models.transfer import class_dependent

    args = {k: v for k, v in spec.args.items() if k not in INIT_ONLY_ARGS}
    afresh = set(class_dependent(spec.name, spec.classes.num_classes, args)) | set(fresh)
    return [p for name, p in model.named_parameters() if name not in afresh]


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
