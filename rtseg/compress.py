"""Filter pruning (Li et al., Pruning Filters for Efficient ConvNets, https://arxiv.org/abs/1608.08710).

Whole filters ranked by their L1 (or L2) norm are removed, with torch-pruning's dependency graph
keeping residual additions, concatenations, BatchNorm, PReLU and depthwise convolutions
consistent. The result is a genuinely smaller network (fewer parameters and FLOPs). Its
checkpoint records ``model.pruned = true``; loading rebuilds the architecture and shrinks each
layer to the saved shapes (:func:`shrink_to_state_dict`) before loading the weights.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from rtseg.errors import RtsegError


def _require_torch_pruning():
    try:
        import torch_pruning as tp
    except ImportError:  # pragma: no cover - depends on the install
        raise RtsegError("pruning needs torch-pruning: pip install 'rtseg[compress]'") from None
    return tp


def ignored_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose output channels must stay: each model lists them (class outputs, and for
    ENet the channels tied to max-unpooling indices and zero-padding)."""
    if not hasattr(model, "pruning_ignored_layers"):
        raise RtsegError(f"{type(model).__name__} does not say which layers pruning must keep "
                         "(define pruning_ignored_layers())")
    return list(model.pruning_ignored_layers())


def prune(model: nn.Module, ratio: float, example_size: tuple[int, int], criterion: str = "l1",
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


def shrink_to_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Give every layer of a freshly built ``model`` the (smaller) shapes found in ``state`` so
    that ``load_state_dict(state, strict=True)`` works: conv / transposed conv channels (groups
    follow for depthwise convs), BatchNorm features and PReLU parameters."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        w = state.get(prefix + "weight")
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and w is not None and w.shape != module.weight.shape:
            depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
            if isinstance(module, nn.Conv2d):
                out_c = w.shape[0]
                module.groups = out_c if depthwise else module.groups
                in_c = w.shape[1] * module.groups
            else:  # ConvTranspose2d weight: (in, out / groups, k, k)
                in_c = w.shape[0]
                module.groups = in_c if depthwise else module.groups
                out_c = w.shape[1] * module.groups
            module.in_channels, module.out_channels = in_c, out_c
            module.weight = nn.Parameter(torch.empty_like(w))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(out_c))
        elif isinstance(module, nn.BatchNorm2d) and w is not None and w.shape[0] != module.num_features:
            n = w.shape[0]
            module.num_features = n
            module.weight = nn.Parameter(torch.empty(n))
            module.bias = nn.Parameter(torch.empty(n))
            module.running_mean = torch.zeros(n)
            module.running_var = torch.ones(n)
        elif isinstance(module, nn.PReLU) and w is not None and w.shape != module.weight.shape:
            module.num_parameters = w.shape[0]
            module.weight = nn.Parameter(torch.empty_like(w))
    return model
