"""A trained network carried over to another class table (``rtseg train --init-from W`` on a
dataset with other classes): every tensor whose shape does not depend on the number of classes
is copied; the class-dependent ones (the classifier, auxiliary heads) start afresh, or from the
old classes' rows when the new classes are a subset or a merge of them (``class_map``).

The same carries a network over to builder arguments that add layers (``--init-from W
model.args.refine=32``: EDANet grows a refinement): the new layers start afresh, everything
else is copied. A model whose new layers read pruned features sizes them in
``fit_new_layers()``, called once the other layers have the checkpoint's shapes."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from rtseg.models import INIT_ONLY_ARGS, MODELS, create_model
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


def grown_args(ckpt: dict, args: dict) -> dict:
    """The builder arguments of ``args`` that change checkpoint ``ckpt``'s architecture: those
    whose value differs from the checkpoint's (a builder default counts as the checkpoint's
    when it does not name the argument)."""
    spec = ckpt["model"]
    old = spec.get("args", {})
    defaults = {k: p.default for k, p in inspect.signature(MODELS[spec["name"]]).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {k: v for k, v in args.items()
            if k not in INIT_ONLY_ARGS and old.get(k, defaults.get(k, inspect.Parameter.empty)) != v}


def transfer_to_classes(ckpt: dict, num_classes: int, class_map: dict[int, list[int]] | None = None,
                        args: dict | None = None) -> tuple[nn.Module, list[str]]:
    """The network of checkpoint ``ckpt`` (pruned layer shapes too) for ``num_classes`` classes,
    in eval mode. ``class_map``: {new class index: [old class indices]}; a mapped class starts
    from the mean of those old rows of every class-dependent tensor (one old class: its row as
    it is). ``args``: builder arguments over the checkpoint's (:func:`grown_args`); the layers
    they add start afresh. Returns (model, names of the tensors initialised afresh, in part or
    whole)."""
    spec = ckpt["model"]
    args = {k: v for k, v in {**spec.get("args", {}), **(args or {})}.items() if k not in INIT_ONLY_ARGS}
    old_n, state = spec["num_classes"], ckpt["state_dict"]
    dependent = class_dependent(spec["name"], old_n, args)
    model = create_model(spec["name"], num_classes=num_classes, **args)
    if spec.get("pruned"):
        # Every layer to the saved (smaller) shapes, the class dimension to the new count.
        target = dict(state)
        for key, dim in dependent.items():
            if key not in state:
                continue  # a grown layer: it keeps the builder's shape
            shape = list(state[key].shape)
            shape[dim] = num_classes
            target[key] = torch.empty(shape)
        shrink_to_state_dict(model, target)
        owners = {key.rsplit(".", 1)[0] for key in dependent if key in state}
        for name, module in model.named_modules():
            if name in owners and hasattr(module, "reset_parameters"):
                module.reset_parameters()  # shrinking left them uninitialised
    if hasattr(model, "fit_new_layers"):
        model.fit_new_layers()
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
