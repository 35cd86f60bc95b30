"""rtseg.engine.train (fit, rtseg.train): training, resuming and early stopping on a few real CamVid
frames, fine-tuning a pruned network or one on new classes, bf16, the recipe's options checked,
and a diverging loss stopped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rtseg
from conftest import few_camvid_config as _cfg
from conftest import long_recipe_config, write_enet_ckpt
from rtseg.checkpoint import load_checkpoint
from rtseg.config import load_config
from rtseg.engine.train import fit
from rtseg.errors import ConfigError
from rtseg.models.transfer import class_dependent

REPO = Path(__file__).resolve().parents[2]


def test_loss_falls_on_real_frames(few_camvid, tmp_path):
    cfg = _cfg(few_camvid, tmp_path / "run", "schedule.epochs=12", "optim.lr=5e-3", "data.scale=[1.0,1.0]",
               "data.batch_size=2", "loss.class_weights=none", "schedule.name=constant")
    summary = fit(cfg)
    lines = [json.loads(row) for row in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and summary["epochs"] == 12
    first, last = np.mean([row["train_loss"] for row in lines[:2]]), np.mean([row["train_loss"] for row in lines[-2:]])
    assert last < 0.8 * first, (first, last)
    for name in ("best.pt", "last.pt", "config.yaml"):
        assert (tmp_path / "run" / name).is_file()
    assert list((tmp_path / "run" / "tensorboard").glob("events.*"))
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["model"] == {"name": "enet", "num_classes": 11, "args": {}}
    assert best["classes"]["names"][0] == "Sky" and best["config"]["optim"]["lr"] == 5e-3
    assert best["train_state"] is None and best["metrics"]["miou"] == pytest.approx(summary["best_miou"])


def test_resume_is_bit_exact(few_camvid, tmp_path):
    # A step schedule's lr depends only on the iteration, so 2 epochs straight and 1 + 1 resumed
    # must give identical weights (model, optimiser, scheduler, epoch and RNG all restored).
    common = ("schedule.name=step", "schedule.step_epochs=1", "schedule.gamma=0.5")
    fit(_cfg(few_camvid, tmp_path / "straight", "schedule.epochs=2", *common))
    fit(_cfg(few_camvid, tmp_path / "resumed", "schedule.epochs=1", *common))
    fit(_cfg(few_camvid, tmp_path / "resumed", "schedule.epochs=2", *common), resume=True)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["train_state"]["epoch"] == b["train_state"]["epoch"] == 2
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_plateau_schedule_and_early_stopping(few_camvid, tmp_path):
    cfg = _cfg(few_camvid, tmp_path / "run", "schedule.epochs=30", "schedule.name=plateau",
               "schedule.plateau_patience=0", "schedule.early_stop_patience=2", "optim.lr=1e-7")
    summary = fit(cfg)  # an lr this small cannot improve mIoU for long: early stop well before 30
    assert summary["stopped_early"] and summary["epochs"] < 30
    lines = [json.loads(row) for row in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["lr"] < 1e-7  # halved on the plateau


def test_pruned_model_fine_tunes_with_init_from(trained, few_camvid, tmp_path):
    pruned = tmp_path / "pruned.pt"
    report = rtseg.prune(trained, 0.25, pruned, size=(96, 128))
    assert report["after"]["params"] < report["before"]["params"]
    summary = fit(_cfg(few_camvid, tmp_path / "ft", "schedule.epochs=1"), init_from=pruned)
    best = load_checkpoint(tmp_path / "ft" / "best.pt")
    assert best["model"]["pruned"] and summary["epochs"] == 1
    small = load_checkpoint(pruned)
    assert {k: v.shape for k, v in best["state_dict"].items()} == {k: v.shape for k, v in small["state_dict"].items()}
    assert rtseg.evaluate(tmp_path / "ft" / "best.pt", "camvid", data_root=few_camvid)["num_images"] == 2
    # --resume alone continues it: the smaller layers come from last.pt, not from the recipe's builder.
    resumed = fit(_cfg(few_camvid, tmp_path / "ft", "schedule.epochs=2"), resume=True)
    assert resumed["epochs"] == 2
    last = load_checkpoint(tmp_path / "ft" / "last.pt")
    assert last["model"]["pruned"] and last["train_state"]["epoch"] == 2


def test_train_api_takes_a_recipe_and_overrides(few_camvid, tmp_path):
    summary = rtseg.train(REPO / "configs" / "enet_camvid.yaml",
                          [f"data.data_root={few_camvid}", f"run.out_dir={tmp_path / 'run'}", "data.crop=[64,96]",
                           "data.batch_size=3", "data.val_batch_size=2", "run.progress=false", "schedule.epochs=1",
                           "data.train_split=train/-0006R0"])
    assert summary["epochs"] == 1 and (tmp_path / "run" / "best.pt").is_file()
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["config"]
    assert saved["data"]["train_split"] == "train/-0006R0" and saved["data"]["crop"] == [64, 96]
    with pytest.raises(rtseg.errors.ConfigError, match="overrides apply to a YAML recipe"):
        rtseg.train(load_config(None), ["optim.lr=1"])


def test_bf16_training_follows_float32(few_camvid):
    # run.amp trains in bfloat16 on CPUs that compute it natively. Ten Adam steps of a fresh ENet on
    # four real frames, under autocast and without: the two loss curves agree step by step (within
    # 0.2% here). A single step's gradient is no test: on a converged network (the shipped one) its
    # cosine to float32's ranged 0.955-0.993 over two batches, all of it bf16 rounding.
    from rtseg.datasets import build_dataset
    from rtseg.datasets.transforms import build_eval_transform
    from rtseg.engine.losses import SegmentationLoss
    from rtseg.models import create_model

    ds = build_dataset("camvid", "train", few_camvid, build_eval_transform())
    images, targets = map(torch.stack, zip(*[ds[i] for i in range(4)]))
    images = images.contiguous(memory_format=torch.channels_last)
    loss_fn = SegmentationLoss(torch.linspace(0.5, 2.0, 11))

    def train(bf16: bool) -> list[float]:
        torch.manual_seed(0)
        model = create_model("enet", 11).train().to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses = []
        for _ in range(10):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    float32, bf16 = train(False), train(True)
    assert bf16[0] != float32[0]  # bf16 really ran
    assert float32[-1] < float32[0] - 0.15  # the steps learn something to compare
    assert bf16 == pytest.approx(float32, rel=0.01)


def test_bf16_training_runs_nchw_for_models_oneDNN_gets_wrong(monkeypatch, capsys, tmp_path):
    import rtseg.engine.train as train_mod
    from rtseg.models import create_model

    cfg = load_config(REPO / "configs" / "edanet_camvid_pruned.yaml", [f"run.out_dir={tmp_path}"])
    edanet, enet, cpu = create_model("edanet", num_classes=11), create_model("enet", num_classes=11), torch.device("cpu")
    monkeypatch.setattr(train_mod, "autocast_dtype", lambda device: torch.bfloat16)  # as on AVX512-BF16
    assert train_mod.training_channels_last(cfg, edanet, cpu) is False
    assert "run.channels_last: off for this run" in capsys.readouterr().out
    assert train_mod.training_channels_last(cfg, enet, cpu) is True
    monkeypatch.setattr(train_mod, "autocast_dtype", lambda device: None)  # float32 (AVX2): unaffected
    assert train_mod.training_channels_last(cfg, edanet, cpu) is True


def test_a_nan_loss_stops_training_with_a_one_line_error(few_camvid, tmp_path):
    from rtseg.errors import TrainingDivergedError

    cfg = _cfg(few_camvid, tmp_path / "run", "schedule.epochs=3", "optim.lr=1e30", "loss.class_weights=none")
    with pytest.raises(TrainingDivergedError, match=r"loss is (nan|inf) at epoch [1-3]/3, batch \d+: lower optim.lr"):
        fit(cfg)


@pytest.mark.parametrize("override, message", [
    ("loss.class_weight_c=1.0", "loss.class_weight_c"),
    ("data.scales=[]", "data.scales"),
    ("data.scale=[2.0,1.0]", "data.scale"),
    ("loss.ohem_thresh=0", "loss.ohem"),
    ("loss.lovasz_weight=-1", "loss.lovasz_weight: expected a weight >= 0"),
    ("loss.lovasz_weight=nan", "loss.lovasz_weight: expected a weight >= 0"),
    ("run.ema_decay=1.0", "run.ema_decay"),
])
def test_recipe_options_are_checked(few_camvid, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        fit(long_recipe_config(few_camvid, tmp_path / "run", "schedule.epochs=1", override))


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


def test_init_from_with_model_args_grows_a_pruned_network_and_resumes(few_camvid, tmp_path, capsys):
    from rtseg.checkpoint import make_checkpoint, save_checkpoint
    from rtseg.datasets.camvid import CLASSES as CAMVID_CLASSES
    from rtseg.models import create_model

    torch.manual_seed(0)
    src = tmp_path / "edanet.pt"
    save_checkpoint(make_checkpoint(create_model("edanet", num_classes=11).eval(), "edanet", {}, CAMVID_CLASSES,
                                    (0.5,) * 3, (0.2,) * 3), src)
    rtseg.prune(src, 0.25, tmp_path / "pruned.pt", size=(64, 96), log=lambda m: None)
    common = ["model.name=edanet", "model.args={refine: 8}", "run.freeze_epochs=2", "run.compile=false",
              "run.ema=false", "run.image_summaries=0"]
    fit(_cfg(few_camvid, tmp_path / "run", *common, "schedule.epochs=1"), init_from=tmp_path / "pruned.pt")
    said = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("--init-from")]
    assert len(said) == 1 and "model.args refine=8 change the network; initialised afresh: refine.reduce.0.weight" in said[0]
    start = load_checkpoint(tmp_path / "pruned.pt")["state_dict"]
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["model"]["args"] == {"refine": 8} and last["model"]["pruned"]
    moved = {k for k, v in last["state_dict"].items() if v.dtype.is_floating_point and "running" not in k
             and (k not in start or not torch.equal(v, start[k]))}
    assert moved and all(k.startswith(("refine.", "classifier.")) for k in moved)  # epoch 1: the new layers learn
    assert "refine.classify.weight" in moved
    # Resumed inside run.freeze_epochs, the grown layers still learn and the carried ones wait.
    fit(_cfg(few_camvid, tmp_path / "run", *common, "schedule.epochs=2"), resume=True)
    again = load_checkpoint(tmp_path / "run" / "last.pt")
    assert again["train_state"]["epoch"] == 2 and again["model"]["args"] == {"refine": 8}
    assert not torch.equal(again["state_dict"]["refine.reduce.0.weight"], last["state_dict"]["refine.reduce.0.weight"])
    assert all(torch.equal(again["state_dict"][k], v) for k, v in start.items()
               if v.dtype.is_floating_point and "running" not in k and not k.startswith("classifier."))
    assert rtseg.evaluate(tmp_path / "run" / "last.pt", "camvid", data_root=few_camvid)["num_images"] == 2
