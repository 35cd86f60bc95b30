"""Training, resuming, evaluating and predicting on a few real CamVid frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rtseg
from rtseg.checkpoint import load_checkpoint
from rtseg.config import load_config
from rtseg.engine.train import fit

REPO = Path(__file__).resolve().parents[1]


def _cfg(root: Path, out: Path, *extra: str):
    return load_config(REPO / "configs" / "enet_camvid.yaml", [
        f"data.data_root={root}", f"run.out_dir={out}", "data.crop=[64,96]", "data.batch_size=3",
        "data.val_batch_size=2", "run.progress=false", "run.image_summaries=1", *extra])


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


@pytest.fixture(scope="module")
def trained(few_camvid, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    fit(_cfg(few_camvid, out, "schedule.epochs=1"))
    return out / "best.pt"


def test_evaluate_json_and_pictures(trained, few_camvid, tmp_path):
    out = tmp_path / "val.json"
    r = rtseg.evaluate(trained, "camvid", "val", data_root=few_camvid, json_path=out, plots=tmp_path / "plots",
                       save_predictions=tmp_path / "preds", device="auto")
    assert json.loads(out.read_text()) == json.loads(json.dumps(r))
    assert set(r) >= {"miou", "per_class_iou", "pixel_accuracy", "mean_class_accuracy", "num_images"}
    assert r["num_images"] == 2 and r["miou"] == pytest.approx(np.nanmean(list(r["per_class_iou"].values())))
    assert 0 < r["pixel_accuracy"] < 1  # two real frames: neither every pixel wrong nor all right
    assert list(r["per_class_iou"])[:2] == ["Sky", "Building"]
    assert (tmp_path / "plots" / "per_class_iou.png").is_file()
    assert (tmp_path / "plots" / "confusion_matrix.png").is_file()
    assert len(list((tmp_path / "preds").glob("*.png"))) == 2


def test_predict_writes_masks_overlays_and_gif(trained, few_camvid, tmp_path):
    frames = sorted((few_camvid / "val").glob("*.png"))
    out = tmp_path / "out"
    r = rtseg.predict(few_camvid / "val", out, trained, gif=True)
    assert r["images"] == len(frames) and r["median_ms"] > 0 and r["gif"] == str(out / "predictions.gif")
    for f in frames:
        labels = np.asarray(Image.open(out / f"{f.stem}_labels.png"))
        assert labels.shape == (96, 128) and labels.max() < 11
        assert np.asarray(Image.open(out / f"{f.stem}_overlay.png")).shape == (96, 128, 3)
        assert (out / f"{f.stem}_mask.png").is_file()
    gif = Image.open(out / "predictions.gif")
    assert gif.n_frames == len(frames)


def test_python_api_predict(trained, few_camvid):
    seg = rtseg.load_model(trained)
    image = np.asarray(Image.open(sorted((few_camvid / "val").glob("*.png"))[0]).convert("RGB"))
    mask = seg.predict(image)
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
    assert seg.class_names[3] == "Road" and seg.palette.shape == (11, 3)
    np.testing.assert_array_equal(seg.predict(sorted((few_camvid / "val").glob("*.png"))[0]), mask)


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


def test_iterative_pruning_fine_tunes_between_steps(trained, few_camvid, tmp_path):
    out = tmp_path / "iter.pt"
    cfg = REPO / "configs" / "enet_camvid.yaml"
    lines: list[str] = []
    rtseg.prune(trained, 0.4, out, steps=2, size=(96, 128), finetune_config=cfg, finetune_epochs=1,
                overrides=[f"data.data_root={few_camvid}", "data.crop=[64,96]", "data.batch_size=3",
                           "data.val_batch_size=2", "run.progress=false"], log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("step 1/2: fine-tuned")  # none after the last step
    small = load_checkpoint(out)
    assert small["model"]["pruned"]
    n_small = sum(v.numel() for k, v in small["state_dict"].items() if k.endswith("weight"))
    n_full = sum(v.numel() for k, v in load_checkpoint(trained)["state_dict"].items() if k.endswith("weight"))
    assert n_small < 0.8 * n_full


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


def test_mixed_precision_only_where_the_cpu_computes_it(monkeypatch):
    from rtseg import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.autocast_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.autocast_dtype(torch.device("cpu")) is torch.bfloat16
    assert runtime.autocast_dtype(torch.device("cuda")) is torch.float16


def test_training_bench_paths():
    from rtseg.errors import RtsegError

    row = rtseg.benchmark("enet", train_throughput=True, size=(32, 48), batch=2, steps=1, threads=1,
                          train_path="eager")
    assert (row["path"], row["amp"], row["compiled"], row["channels_last"]) == ("eager", "float32", False, False)
    with pytest.raises(RtsegError, match="--train-path"):
        rtseg.benchmark("enet", train_throughput=True, size=(32, 48), train_path="fast")
    with pytest.raises(RtsegError, match="one-process"):
        rtseg.benchmark("enet", train_throughput=True, size=(32, 48), train_path="both", processes=2)


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
