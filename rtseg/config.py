"""Training configuration: a typed tree of dataclasses, loaded from YAML and overridden from the
command line with ``section.key=value`` (values parsed as YAML: ``optim.lr=1e-3``,
``data.crop=[256,512]``; a mapping merges into the recipe's: ``model.args.decoder_init=normal``
keeps the other builder arguments). Unknown keys and wrongly typed values are errors naming the
key."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rtseg.errors import ConfigError


@dataclass
class ModelConfig:
    name: str = "enet"
    #: Keyword arguments of the model's builder (see ``rtseg.models``), e.g. {skip_connections: true}.
    args: dict = field(default_factory=dict)
    #: With --init-from weights of other classes: which old classes each new class starts from,
    #: {new name: [old names]}, e.g. {vehicle: [Car, Bicyclist], road: [Road]}; its classifier rows
    #: start as the mean of theirs. Classes not named start afresh.
    init_class_map: dict | None = None


@dataclass
class DataConfig:
    dataset: str = "camvid"
    #: The dataset's folder; None means $RTSEG_DATA/<dataset>.
    data_root: str | None = None
    #: "trainval" trains on train + val (then val scores are no longer held out).
    train_split: str = "train"
    val_split: str = "val"
    #: Resize every frame to (H, W) first (train and val), e.g. [256, 512] for Cityscapes/4.
    resize: list[int] | None = None
    #: Random scale-and-crop to (H, W) for training; None trains on whole frames.
    crop: list[int] | None = None
    #: Random scale range [lo, hi] of the scale-and-crop, drawn uniformly.
    scale: list[float] = field(default_factory=lambda: [0.5, 2.0])
    #: A set of scales to draw from instead of the range, e.g. [0.75, 1, 1.25, 1.5, 1.75, 2]
    #: (the DABNet / ERFNet CamVid recipe); None uses ``scale``.
    scales: list[float] | None = None
    hflip: bool = True
    #: Random f(x) = a(x - 128) + 128 + b (the FCN8s KITTI augmentation).
    brightness_contrast: bool = False
    #: Decode every frame once and keep it in memory.
    cache: bool = True
    batch_size: int = 8
    val_batch_size: int = 4
    num_workers: int = 0


@dataclass
class OptimConfig:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 5e-4
    weight_decay: float = 2e-4
    momentum: float = 0.9


@dataclass
class ScheduleConfig:
    #: poly: lr * (1 - it/total)^power per iteration; step: lr * gamma every step_epochs;
    #: plateau: lr * factor when val mIoU has not improved for patience epochs; constant.
    name: Literal["poly", "step", "plateau", "constant"] = "poly"
    epochs: int = 300
    warmup_epochs: int = 0
    power: float = 0.9
    step_epochs: int = 100
    gamma: float = 0.1
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    #: Stop after this many epochs without a better val mIoU (0 = never).
    early_stop_patience: int = 0


@dataclass
class LossConfig:
    #: mfb (median frequency), enet (1/ln(c+p), c = class_weight_c) or none; void / ignore
    #: always counts 0.
    class_weights: Literal["mfb", "enet", "none"] = "none"
    #: The c of the enet weighting 1/ln(c + p): ENet's paper 1.02 (weights up to ~50), the
    #: ERFNet / DABNet / CGNet CamVid recipes 1.10 (gentler: up to ~10).
    class_weight_c: float = 1.02
    #: Online hard example mining: average the loss over only the hardest pixels, those whose
    #: probability of the true class is below ohem_thresh, but at least ohem_min_kept of them
    #: per batch (0 = plain cross-entropy over all pixels).
    ohem_min_kept: int = 0
    ohem_thresh: float = 0.7
    #: Weight of the Lovasz-softmax term beside the cross-entropy (Berman et al., CVPR 2018; a
    #: surrogate of the IoU per class over the batch; rtseg.engine.losses): 0 = none. Used to
    #: fine-tune a trained network; alone from scratch it trains worse than cross-entropy.
    lovasz_weight: float = 0.0
    #: Weights of the model's auxiliary outputs (aux1, aux2, ...), e.g. ICNet's cascade.
    aux_weights: list[float] = field(default_factory=list)
    #: Models with a boundary output (PIDNet): weight of the balanced boundary BCE and of the
    #: cross-entropy on the pixels the boundary head marks (the paper's 20 and 1).
    boundary_weight: float = 20.0
    boundary_ce_weight: float = 1.0
    #: Knowledge distillation (rtseg.engine.distill): teachers, shipped names or checkpoints,
    #: averaged in probability; empty = none. Their maps are computed once per training frame
    #: (flip-averaged per distill_tta, at distill_size [H, W] when given, e.g. [540, 720]) and
    #: cached in run.out_dir; the loss adds distill_weight * T^2 * KL(teacher_T || student_T)
    #: per pixel, T = distill_temperature.
    distill_teachers: list[str] = field(default_factory=list)
    distill_weight: float = 1.0
    distill_temperature: float = 1.0
    #: pixel: the KL of each pixel's class probabilities (Hinton's, per pixel); channel: the KL of
    #: each class's map over the pixels (Shu et al., ICCV 2021; rtseg.engine.distill).
    distill_kind: Literal["pixel", "channel"] = "pixel"
    distill_tta: Literal["none", "flip"] = "flip"
    distill_size: list[int] | None = None


@dataclass
class RunConfig:
    out_dir: str = "runs/run"
    seed: int = 0
    #: auto = CUDA when available, else CPU.
    device: str = "auto"
    #: Mixed precision in training where the device computes it natively: float16 on CUDA,
    #: bfloat16 on CPUs with AVX512-BF16 / AMX (validation stays float32 on the CPU).
    amp: bool = True
    channels_last: bool = True
    #: torch.compile the training network (inductor): the first steps compile (ENet: about 2 min
    #: on 2 cores), then each step runs fused kernels. See docs/training.md, "Training speed on a CPU".
    compile: bool = False
    grad_checkpoint: bool = False
    #: Keep an exponential moving average of the weights (and BatchNorm statistics), updated
    #: every step: ``ema = d * ema + (1 - d) * w``. Validation, best.pt/last.pt weights and
    #: exports use the average; the raw weights live in the training state for resuming.
    ema: bool = False
    ema_decay: float = 0.999
    #: Distributed runs (torchrun) on GPUs: BatchNorm statistics over the global batch instead
    #: of each process's (PyTorch's SyncBatchNorm, CUDA only). Checkpoints keep plain BatchNorm.
    sync_bn: bool = False
    val_every: int = 1
    #: How many val frames go to TensorBoard as input | ground truth | prediction.
    image_summaries: int = 4
    #: torch intra-op threads (0 = torch's default).
    threads: int = 0
    #: With --init-from: keep the parameters carried over from those weights frozen for this many
    #: epochs, so the new classifier learns before the encoder moves (0 = train all at once);
    #: BatchNorm statistics still adapt to the new data.
    freeze_epochs: int = 0
    progress: bool = True


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _check(value, opt, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_check(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads '1e-3' (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: dict | None, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, checking keys and types."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in hints]
    if unknown:
        where = f"section {prefix!r}" if prefix else "the top level"
        raise ConfigError(f"unknown config key {'.'.join(filter(None, [prefix, unknown[0]]))!r}: "
                          f"{where} has {', '.join(names)}")
    kwargs = {k: _check(v, hints[k], ".".join(filter(None, [prefix, k]))) for k, v in data.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """``["optim.lr=1e-3", "data.crop=[256,256]"]`` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


def _merge(base: dict, update: dict) -> dict:
    """Overrides merge into the recipe at every depth: ``model.args.decoder_init=normal`` sets one
    builder argument and keeps the recipe's others (``backbone_weights: imagenet``). A value that
    is not a mapping replaces what was there."""
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """YAML file (or defaults) + overrides -> a checked :class:`TrainConfig`."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
    data = _merge(data, parse_overrides(overrides or []))
    return from_dict(TrainConfig, data)
