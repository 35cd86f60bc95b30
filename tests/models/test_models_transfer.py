"""rtseg.models.transfer: every class-independent tensor carried over to other classes, the
classifier afresh or from the old classes' rows, pruned networks too."""

from __future__ import annotations

import pytest
import torch

from conftest import write_enet_ckpt
from rtseg.checkpoint import load_checkpoint
from rtseg.models.transfer import class_dependent, transfer_to_classes


@pytest.mark.parametrize("name", ["enet", "edanet"])
def test_only_the_class_dependent_tensors_start_afresh(name):
    from rtseg.checkpoint import make_checkpoint
    from rtseg.datasets.classes import ClassTable
    from rtseg.models import create_model

    torch.manual_seed(0)
    old = create_model(name, num_classes=11)
    classes = ClassTable(tuple(f"c{i}" for i in range(11)), tuple((i, i, i) for i in range(11)))
    ckpt = make_checkpoint(old, name, {}, classes, (0.5,) * 3, (0.2,) * 3)
    model, fresh = transfer_to_classes(ckpt, 4, {0: [3], 1: [8, 10]})
    dependent = class_dependent(name, 11, {})
    assert set(fresh) == set(dependent) and dependent  # the classifier, and nothing else
    old_state, new_state = old.state_dict(), model.state_dict()
    for key, t in new_state.items():
        if key not in dependent:
            assert torch.equal(t, old_state[key]), key
        else:
            dim = dependent[key]
            assert t.shape[dim] == 4
            assert torch.equal(t.select(dim, 0), old_state[key].select(dim, 3))  # a subset: the old row
            mean = (old_state[key].select(dim, 8) + old_state[key].select(dim, 10)) / 2
            assert torch.allclose(t.select(dim, 1), mean)  # a merge: the mean of the old rows
    assert model(torch.randn(1, 3, 32, 48)).shape == (1, 4, 32, 48)


def test_a_pruned_network_keeps_its_shapes_with_the_new_classifier(tmp_path):
    from rtseg.compress import prune

    src = write_enet_ckpt(tmp_path / "enet.pt", bn_statistics=True)
    pruned = tmp_path / "pruned.pt"
    prune(str(src), 0.5, pruned, size=(24, 32), log=lambda m: None)
    ckpt = load_checkpoint(pruned)
    model, fresh = transfer_to_classes(ckpt, 3)
    state = model.state_dict()
    for key, t in ckpt["state_dict"].items():
        if key not in fresh:
            assert torch.equal(state[key], t), key
    assert fresh and model(torch.randn(1, 3, 24, 32)).shape == (1, 3, 24, 32)


@pytest.mark.parametrize("pruned", [False, True], ids=["edanet", "pruned-edanet"])
def test_grown_layers_start_afresh_and_the_network_starts_as_it_was(tmp_path, pruned):
    from rtseg.checkpoint import make_checkpoint, save_checkpoint
    from rtseg.compress import prune
    from rtseg.datasets.classes import ClassTable
    from rtseg.models import create_model
    from rtseg.models.transfer import grown_args

    torch.manual_seed(0)
    classes = ClassTable(tuple(f"c{i}" for i in range(5)), tuple((i, i, i) for i in range(5)))
    ckpt = make_checkpoint(create_model("edanet", num_classes=5).eval(), "edanet", {}, classes, (0.5,) * 3, (0.2,) * 3)
    if pruned:
        save_checkpoint(ckpt, tmp_path / "edanet.pt")
        prune(str(tmp_path / "edanet.pt"), 0.25, tmp_path / "pruned.pt", size=(32, 48), log=lambda m: None)
        ckpt = load_checkpoint(tmp_path / "pruned.pt")
    assert grown_args(ckpt, {"refine": 0, "growth": 40}) == {}  # the builder's defaults change nothing
    grown = grown_args(ckpt, {"refine": 8})
    assert grown == {"refine": 8}
    before, _ = transfer_to_classes(ckpt, 5, {i: [i] for i in range(5)})
    model, fresh = transfer_to_classes(ckpt, 5, {i: [i] for i in range(5)}, grown)
    assert fresh and all(k.startswith("refine.") for k in fresh)
    assert {k for k in model.state_dict() if not k.startswith("refine.")} == set(ckpt["state_dict"])
    x = torch.randn(2, 3, 37, 50)
    with torch.no_grad():
        zero = model.eval().refine(torch.randn(2, model.refine.reduce[0].in_channels, 5, 7))
        assert torch.equal(zero, torch.zeros_like(zero))  # the refinement adds nothing until it learns
        start = model(x).argmax(1) == before.eval()(x).argmax(1)
        assert start.float().mean() > 0.9  # the network W was, but for x2 then x4 instead of x8
        model.refine.classify.weight.normal_()
        assert not torch.allclose(model(x), before(x))  # ... and it is in the forward pass
    assert model.refine.reduce[0].in_channels == (195 if pruned else 260)  # the (pruned) 1/4 features
