"""rtseg.models.transfer and --init-from on other classes: every class-independent tensor carried
over, the classifier afresh or from the old classes' rows, pruned networks too, and the encoder
frozen for the first epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import write_enet_ckpt
from rtseg.checkpoint import load_checkpoint
from rtseg.config import load_config
from rtseg.engine.train import fit
from rtseg.errors import ConfigError
from rtseg.models.transfer import class_dependent, transfer_to_classes

REPO = Path(__file__).resolve().parents[1]


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


def _five_class_folder(root: Path) -> Path:
    """A folder dataset with five classes of its own (ids 0-4, 255 void)."""
    import numpy as np

    from conftest import random_image, save_png

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(3):
            save_png(root / "images" / split / f"f{i}.png", random_image(rng, 24, 32))
            save_png(root / "masks" / split / f"f{i}.png", rng.integers(0, 5, (24, 32), dtype=np.uint8), mode="L")
    (root / "dataset.yaml").write_text("classes: [road, sidewalk, vehicle, person, other]\n"
                                       "palette: [[128, 64, 128], [60, 40, 222], [64, 0, 128], [64, 64, 0], [0, 0, 0]]\n")
    return root


def test_fine_tune_a_camvid_network_on_five_new_classes_with_a_frozen_encoder(tmp_path, capsys):
    src = write_enet_ckpt(tmp_path / "enet.pt", bn_statistics=True)
    root = _five_class_folder(tmp_path / "mine")
    common = ["data.dataset=folder", f"data.data_root={root}", f"run.out_dir={tmp_path / 'run'}", "data.crop=[16,24]",
              "data.batch_size=2", "data.val_batch_size=2", "run.progress=false", "run.image_summaries=0",
              "loss.class_weights=none", "run.freeze_epochs=1", "run.compile=false", "run.ema=false",
              "model.init_class_map={road: [Road], sidewalk: [Pavement], vehicle: [Car, Bicyclist], "
              "person: [Pedestrian]}"]
    fit(load_config(REPO / "configs" / "enet_camvid.yaml", [*common, "schedule.epochs=1"]), init_from=str(src))
    captured = capsys.readouterr()
    said = [ln for ln in (captured.err + captured.out).splitlines() if ln.startswith("--init-from")]
    assert said == [f"--init-from {src}: 11 classes -> 5, 4 of them from old classes (model.init_class_map); "
                    "initialised afresh but for the mapped classes: classifier.weight, classifier.bias; every other "
                    "tensor carried over"]
    start = load_checkpoint(src)["state_dict"]
    fresh = class_dependent("enet", 11, {})

    def changed(path):
        state = load_checkpoint(path)["state_dict"]
        return {k for k, v in state.items() if v.dtype.is_floating_point and "running" not in k
                and (k in fresh or not torch.equal(v, start[k]))}

    out = load_checkpoint(tmp_path / "run" / "last.pt")
    assert out["model"]["num_classes"] == 5 and out["classes"]["names"][2] == "vehicle"
    assert changed(tmp_path / "run" / "last.pt") == set(fresh)  # epoch 1: the new classifier alone learns
    fit(load_config(REPO / "configs" / "enet_camvid.yaml", [*common, "schedule.epochs=2"]), resume=True)
    assert changed(tmp_path / "run" / "last.pt") > set(fresh)  # epoch 2: the encoder too
    bad = load_config(REPO / "configs" / "enet_camvid.yaml", [*common, f"run.out_dir={tmp_path / 'bad'}",
                                                                "model.init_class_map={lane: [Road]}"])
    with pytest.raises(ConfigError, match="model.init_class_map: 'lane' is not a class of folder"):
        fit(bad, init_from=str(src))
    with pytest.raises(ConfigError, match="run.freeze_epochs and model.init_class_map act on .* give --init-from"):
        fit(load_config(REPO / "configs" / "enet_camvid.yaml", [*common, f"run.out_dir={tmp_path / 'x'}"]))
