"""What a training checkpoint saves and ``--resume`` restores, in one object.

:class:`TrainingState` owns the network (and its weight average), the optimiser, the schedules,
the gradient scaler, the epoch counters and the random number generators, so that a run stopped
after any epoch and resumed continues exactly (bit for bit with the same number of processes and
``data.num_workers=0``: worker processes draw their augmentations from random states of their
own, which a checkpoint does not hold; tests/engine/test_engine_train.py,
tests/engine/test_engine_ema.py, tests/test_distributed.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg import distributed
from rtseg.checkpoint import load_checkpoint, make_checkpoint
from rtseg.datasets.classes import ClassTable
from rtseg.engine.ema import ModelEMA
from rtseg.errors import CheckpointError
from rtseg.progress import print_line


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    # Plain lists and tensors only, so checkpoints load with torch.load(weights_only=True).
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos,
                                                       has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class ModelSpec:
    """How to rebuild the trained network from a checkpoint (see :mod:`rtseg.checkpoint`)."""

    name: str
    args: dict
    classes: ClassTable
    mean: tuple
    std: tuple
    input_size: list[int] | None = None
    config: dict | None = None
    pruned: bool = False


@dataclass
class TrainingState:
    """The moving parts of a run. ``counters`` are the epoch reached and the best val mIoU so
    far (with its epoch, and the epochs since, for early stopping)."""

    model: nn.Module
    spec: ModelSpec
    optimizer: torch.optim.Optimizer
    iter_sched: torch.optim.lr_scheduler.LRScheduler | None
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None
    scaler: torch.amp.GradScaler | None
    ema: ModelEMA | None
    iters_per_epoch: int
    counters: dict = field(default_factory=lambda: {"epoch": 0, "best_miou": -1.0, "best_epoch": -1,
                                                    "epochs_since_best": 0})
    #: Tensors --init-from did not carry over (layers model.args grew): run.freeze_epochs lets
    #: them learn, after a resume too.
    afresh: list = field(default_factory=list)

    @property
    def eval_model(self) -> nn.Module:
        """What validation scores and checkpoints hold: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def record_validation(self, miou: float, epoch: int) -> bool:
        """Update the best-so-far counters (and the plateau schedule); True when ``miou`` is the best."""
        improved = miou > self.counters["best_miou"]
        if improved:
            self.counters.update(best_miou=miou, best_epoch=epoch, epochs_since_best=0)
        else:
            self.counters["epochs_since_best"] += 1
        if self.plateau is not None:
            self.plateau.step(miou)
        return improved

    def checkpoint(self, metrics: dict | None) -> dict | None:
        """The checkpoint dict on rank 0 (None elsewhere); every rank must call it (RNG gather)."""
        rngs = distributed.all_gather_objects(rng_state())
        info = distributed.current()
        if not info.is_main:
            return None
        train_state = {**self.counters, "optimizer": self.optimizer.state_dict(),
                       "scheduler": self.iter_sched.state_dict() if self.iter_sched else None,
                       "plateau": self.plateau.state_dict() if self.plateau else None,
                       "scaler": self.scaler.state_dict() if self.scaler else None, "rng": rngs[0],
                       "world_size": info.world_size, "iters_per_epoch": self.iters_per_epoch,
                       "afresh": list(self.afresh)}
        if info.enabled:
            train_state["rng_per_rank"] = rngs
        if self.ema is not None:
            # The checkpoint's own weights are the average; the raw ones continue the training.
            train_state.update(model={k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                               ema=self.ema.state())
        s = self.spec
        return make_checkpoint(self.eval_model, s.name, s.args, s.classes, s.mean, s.std, s.input_size,
                               s.config, train_state, metrics, pruned=s.pruned)

    def restore(self, path: Path, seed: int) -> None:
        """Continue from the training checkpoint at ``path`` (see :meth:`checkpoint`)."""
        ckpt = load_checkpoint(path)
        ts = ckpt.get("train_state")
        if not ts:
            raise CheckpointError(f"{path} holds no training state (optimiser, epoch): it cannot be resumed")
        self._restore_weights(path, ckpt, ts)
        self.optimizer.load_state_dict(ts["optimizer"])
        if self.iter_sched is not None:
            self.iter_sched.load_state_dict(ts["scheduler"])
        if self.plateau is not None:
            self.plateau.load_state_dict(ts["plateau"])
        if self.scaler is not None and ts.get("scaler"):
            self.scaler.load_state_dict(ts["scaler"])
        self.counters = {k: ts[k] for k in self.counters}
        self.afresh = list(ts.get("afresh", []))
        self._restore_rng(ts, seed)
        if self.iter_sched is not None and ts.get("iters_per_epoch", self.iters_per_epoch) != self.iters_per_epoch:
            # The per-iteration schedule counts this run's iterations from here on.
            sched = self.iter_sched
            sched.last_epoch = self.counters["epoch"] * self.iters_per_epoch
            for group, base, fn in zip(self.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * fn(sched.last_epoch)

    def _restore_weights(self, path: Path, ckpt: dict, ts: dict) -> None:
        if self.ema is not None:
            if "ema" not in ts:
                raise CheckpointError(f"{path} was trained without run.ema: resume it with run.ema=false")
            self.model.load_state_dict(ts["model"])
            self.ema.load(ckpt["state_dict"], ts["ema"])
        elif "ema" in ts:
            raise CheckpointError(f"{path} was trained with run.ema: resume it with run.ema=true")
        else:
            self.model.load_state_dict(ckpt["state_dict"])

    def _restore_rng(self, ts: dict, seed: int) -> None:
        info = distributed.current()
        saved_world = ts.get("world_size", 1)
        if saved_world == info.world_size:
            set_rng_state(ts["rng_per_rank"][info.rank] if info.enabled else ts["rng"])
            return
        # Another number of processes: same weights, optimiser and schedule, fresh augmentation
        # draws (not bit-exact: which frames go to which process changes anyway).
        seed_everything(seed + info.rank + 1000 * self.counters["epoch"])
        if info.is_main:
            print_line(f"resuming a {saved_world}-process run in {info.world_size}: weights, optimiser "
                       "and schedule continue; data order and augmentation are drawn afresh")
