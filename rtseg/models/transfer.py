"""A trained network carried over to another class table (``rtseg train --init-from W`` on a
dataset with other classes): every tensor whose shape does not depend on the number of classes
is copied; the class-dependent ones (the classifier, auxiliary heads) start afresh, or from the
old classes' rows when the new classes are a subset or a merge of them (``class_map``)."""

from __future__ import annotations

import torch
from torch import nn

from rtseg.models import INIT_ONLY_ARGS, create_model
from rtseg.models.pruned import shrink_to_state_dict


def class_dependent(name: str, num_classes: int, args: dict) -> dict[str, int]:
    """{tensor name: the dimension that counts classes} for architecture ``name``: the tensors
    whose shape changes between the builder at ``num_classes`` and at one more."""
    with torch.random.fork_rng():  # building the probes must not move the caller's random stream
        a = create_model(name, num_classes=num_classes, **args).state_dict()
        b = create_model(name, num_classes=num_classes + 1, **args).state_dict()
    out = {}
    for key, t in a.items():
        if t.shape != b[key].shape:
            (dim,) = [d for d, (x, y) in enumerate(zip(t.shape, b[key].shape)) if x != y]
            out[key] = dim
    return out


def transfer_to_classes(ckpt: dict, num_classes: int,
                        class_map: dict[int, list[int]] | None = None) -> tuple[nn.Module, list[str]]:
    """The network of checkpoint ``ckpt`` (pruned layer shapes too) for ``num_classes`` classes,
    in eval mode. ``class_map``: {new class index: [old class indices]}; a mapped class starts
    from the mean of those old rows of every class-dependent tensor (one old class: its row as
    it is). Returns (model, names of the tensors initialised afresh, in part or whole)."""
    spec = ckpt["model"]
    args = {k: v for k, v in spec.get("args", {}).items() if k not in INIT_ONLY_ARGS}
    old_n, state = spec["num_classes"], ckpt["state_dict"]
    dependent = class_dependent(spec["name"], old_n, args)
    model = create_model(spec["name"], num_classes=num_classes, **args)
    if spec.get("pruned"):
        # Every layer to the saved (smaller) shapes, the class dimension to the new count.
        target = dict(state)
        for key, dim in dependent.items():
            shape = list(state[key].shape)
            shape[dim] = num_classes
            target[key] = torch.empty(shape)
        shrink_to_state_dict(model, target)
        owners = {key.rsplit(".", 1)[0] for key in dependent}
        for name, module in model.named_modules():
            if name in owners and hasattr(module, "reset_parameters"):
                module.reset_parameters()  # shrinking left them uninitialised
    new_state = model.state_dict()
    fresh = []
    for key, t in new_state.items():
        old = state.get(key)
        if key in dependent and old is not None:
            dim = dependent[key]
            mapped = {j: rows for j, rows in (class_map or {}).items() if rows}
            for j, rows in mapped.items():
                t.select(dim, j).copy_(old.index_select(dim, torch.tensor(rows)).float().mean(dim).to(t.dtype))
            if len(mapped) < num_classes:
                fresh.append(key)
        elif old is not None and old.shape == t.shape:
            new_state[key] = old
        else:
            fresh.append(key)
    model.load_state_dict(new_state, strict=True)
    return model.eval(), fresh
