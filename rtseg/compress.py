"""Filter pruning (Li et al., Pruning Filters for Efficient ConvNets, https://arxiv.org/abs/1608.08710).

Whole filters ranked by their L1 (or L2) norm are removed, with torch-pruning's dependency graph
keeping residual additions, concatenations, BatchNorm, PReLU and depthwise convolutions
consistent. The result is a genuinely smaller network (fewer parameters and FLOPs). Its
checkpoint records ``model.pruned = true``; loading rebuilds the architecture and shrinks each
layer to the saved shapes (:func:`rtseg.models.pruned.shrink_to_state_dict`) before loading the weights.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rtseg.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from rtseg.errors import RtsegError
from rtseg.io import atomic_write_text


def _require_torch_pruning():
    try:
        import torch_pruning as tp
    except ImportError:  # pragma: no cover - depends on the install
        raise RtsegError("pruning needs torch-pruning: pip install 'rtseg[compress]'") from None
    return tp


def ignored_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose output channels must stay: each model lists them (class outputs, and for
    ENet the channels tied to max-unpooling indices and zero-padding)."""
    refusal = getattr(model, "pruning_refusal", None)
    if refusal:
        raise RtsegError(f"{type(model).__name__} cannot be filter-pruned: {refusal}")
    if not hasattr(model, "pruning_ignored_layers"):
        raise RtsegError(f"{type(model).__name__} does not say which layers pruning must keep "
                         "(define pruning_ignored_layers())")
    return list(model.pruning_ignored_layers())


def prune_model(model: nn.Module, ratio: float, example_size: tuple[int, int], criterion: str = "l1",
          global_pruning: bool = False, steps: int = 1,
          between_steps: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Remove ``ratio`` of the prunable filters in ``steps`` equal steps, calling
    ``between_steps(step, model)`` after each (e.g. a short fine-tune). In place; returns model."""
    tp = _require_torch_pruning()
    if not 0 < ratio < 1:
        raise RtsegError(f"--ratio {ratio}: expected a fraction between 0 and 1")
    if criterion not in ("l1", "l2"):
        raise RtsegError(f"--criterion {criterion!r}: expected l1 or l2")
    # The dependency graph is traced from the outputs back, so trace in training mode, where
    # auxiliary heads (ICNet's cascade, PSPNet's aux) are part of the output too (torch-pruning
    # switches to eval before calling forward_fn, hence the train() inside it). Batch 2 keeps
    # BatchNorm happy on 1x1 pooled maps; the BN statistics that tracing updates are restored.
    example = torch.randn(2, 3, *example_size)
    importance = tp.importance.MagnitudeImportance(p=1 if criterion == "l1" else 2)
    bn_state = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k or "num_batches" in k}

    def forward_all_outputs(m: nn.Module, x: torch.Tensor):
        m.train()
        out = m(x)
        return list(out.values()) if isinstance(out, dict) else out

    pruner = tp.pruner.MetaPruner(model, example, importance=importance, pruning_ratio=ratio,
                                  iterative_steps=steps, ignored_layers=ignored_layers(model),
                                  global_pruning=global_pruning, forward_fn=forward_all_outputs)
    model.load_state_dict(bn_state, strict=False)
    model.eval()
    for step in range(steps):
        pruner.step()
        if between_steps is not None:
            between_steps(step, model)
            model.eval()
    return model


def prune(weights: str | Path | None, ratio: float, out: str | Path, *, size: tuple[int, int] | None = None,
          criterion: str = "l1", global_pruning: bool = False, steps: int = 1,
          finetune_config: str | Path | None = None, finetune_epochs: int = 2, finetune_last: bool = False,
          overrides: list[str] | tuple[str, ...] = (), json_path: str | Path | None = None,
          log: Callable[[str], None] = print) -> dict:
    """``rtseg prune``: remove ``ratio`` of the prunable filters of ``weights`` (shipped name or
    checkpoint) and write a genuinely smaller checkpoint to ``out``.

    ``steps`` > 1 prunes iteratively; with ``finetune_config`` (a training recipe, plus
    ``overrides``) each step but the last (``finetune_last``: the last too) is followed by
    ``finetune_epochs`` epochs of fine-tuning. ``size``: for tracing and FLOPs (default: the
    checkpoint's). Returns the before/after report (also written to ``json_path``)."""
    from rtseg.models.stats import count_flops, count_params
    from rtseg.weights import load_weights

    if steps < 1:
        raise RtsegError(f"--steps {steps}: expected 1 or more")
    loaded = load_weights(weights)
    model = loaded.torch_model()
    spec = loaded.model_spec
    size = loaded.size(size)
    ckpt = loaded.checkpoint
    before = {"params": count_params(model), "gflops": count_flops(model, size) / 1e9}

    def as_checkpoint(m: nn.Module) -> dict:
        return make_checkpoint(m, spec["name"], spec.get("args", {}), loaded.classes, loaded.mean, loaded.std,
                               ckpt.get("input_size"), pruned=True)

    between, work = None, None
    if finetune_config:
        from rtseg.config import load_config
        from rtseg.engine.train import fit

        load_config(finetune_config, list(overrides))  # a bad recipe fails before any pruning
        work = Path(tempfile.mkdtemp(prefix="rtseg-prune-"))

        def fine_tune(step: int, m: nn.Module) -> None:
            if step == steps - 1 and not finetune_last:
                return
            init = work / f"step{step + 1}.pt"
            save_checkpoint(as_checkpoint(m), init)
            cfg = load_config(finetune_config, [f"schedule.epochs={finetune_epochs}",
                                                f"run.out_dir={work / f'step{step + 1}'}", *overrides])
            summary = fit(cfg, init_from=init)
            m.load_state_dict(load_checkpoint(Path(summary["run_dir"]) / "best.pt")["state_dict"])
            log(f"step {step + 1}/{steps}: fine-tuned, val mIoU {summary['best_miou']:.4f}")

        between = fine_tune
    elif overrides:
        raise RtsegError("KEY=VALUE overrides apply to the fine-tune recipe: give --finetune-config too")

    try:
        prune_model(model, ratio, size, criterion, global_pruning, steps, between)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    after = {"params": count_params(model), "gflops": count_flops(model, size) / 1e9}
    save_checkpoint(as_checkpoint(model), out)
    report = {"weights": loaded.source, "out": str(out), "model": spec["name"], "ratio": ratio,
              "criterion": criterion, "steps": steps, "size": list(size), "before": before, "after": after,
              "param_reduction": 1 - after["params"] / before["params"],
              "flop_reduction": 1 - after["gflops"] / before["gflops"]}
    if json_path:
        atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    return report
