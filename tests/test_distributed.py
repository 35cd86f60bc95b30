"""Distributed runs on PyTorch's engine: torchrun launches 2 CPU processes (gloo) on real CamVid
frames. Training resumes exactly and across process counts, evaluation equals one process's to
the last digit, predictions are written once each, and a failing rank ends the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rtseg
from conftest import copy_camvid_frames, save_png
from rtseg.checkpoint import load_checkpoint
from rtseg.config import load_config
from rtseg.distributed import DistInfo, first_slurm_host, from_env, shard_batches
from rtseg.engine.train import fit

REPO = Path(__file__).resolve().parents[1]


# torchrun starts two Python processes per call (tens of seconds each on a shared CPU).
slow = pytest.mark.slow


def torchrun(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RTSEG_DIST_TIMEOUT_S": "60"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "rtseg", *argv], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def dist_camvid(camvid_root, tmp_path_factory) -> Path:
    """8 train + 5 val real CamVid frames at 96x128: an odd val count, so batches of 2 split 2/1."""
    return copy_camvid_frames(camvid_root, tmp_path_factory.mktemp("dist") / "camvid", {"train": 8, "val": 5}, 15)


def _overrides(root: Path, out: Path, epochs: int) -> list[str]:
    # batch_size is per process: 2 processes x 2 frames = the global batch of 4 of one process.
    return [f"data.data_root={root}", f"run.out_dir={out}", "data.crop=[64,96]", "data.val_batch_size=2",
            f"schedule.epochs={epochs}", "schedule.name=step", "schedule.step_epochs=1", "schedule.gamma=0.5",
            "run.val_every=1", "run.threads=1", "run.image_summaries=1"]


def _train(root: Path, out: Path, epochs: int, processes: int, batch: int, resume: bool = False) -> dict:
    overrides = _overrides(root, out, epochs) + [f"data.batch_size={batch}"]
    if processes == 1:
        return fit(load_config(REPO / "configs" / "enet_camvid.yaml", overrides + ["run.progress=false"]),
                   resume=resume)
    done = torchrun("train", "--config", str(REPO / "configs" / "enet_camvid.yaml"), *overrides,
                    *(["--resume"] if resume else []))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.index("{"):])


@slow
def test_two_process_training_resumes_exactly_and_in_one_process(dist_camvid, tmp_path):
    straight = _train(dist_camvid, tmp_path / "straight", 2, processes=2, batch=2)
    assert straight["world_size"] == 2 and straight["epochs"] == 2
    _train(dist_camvid, tmp_path / "resumed", 1, processes=2, batch=2)
    _train(dist_camvid, tmp_path / "resumed", 2, processes=2, batch=2, resume=True)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["train_state"]["world_size"] == 2 and len(a["train_state"]["rng_per_rank"]) == 2
    assert not [k for k in a["state_dict"] if k.startswith("module.")]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k  # stopped and resumed == straight through
    # Rank 0 alone wrote the logs: one line per epoch, one TensorBoard file.
    assert len((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()) == 2
    assert len(list((tmp_path / "straight" / "tensorboard").glob("events.*"))) == 1
    # The 2-process checkpoint loads as plain weights and resumes in one process, here with twice
    # the iterations per epoch (4 batches of 2 instead of 2 per process).
    rtseg.load_model(tmp_path / "straight" / "best.pt", device="cpu").predict(np.zeros((96, 128, 3), np.uint8))
    one = _train(dist_camvid, tmp_path / "straight", 3, processes=1, batch=2, resume=True)
    assert one["epochs"] == 3 and one["world_size"] == 1
    lr = load_checkpoint(tmp_path / "straight" / "last.pt")["train_state"]["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e-3 * 0.5 ** 3)  # the per-epoch step schedule is where 3 epochs put it


@slow
def test_one_process_checkpoint_resumes_in_two(dist_camvid, tmp_path):
    _train(dist_camvid, tmp_path / "run", 1, processes=1, batch=4)
    summary = _train(dist_camvid, tmp_path / "run", 2, processes=2, batch=2, resume=True)
    assert summary["epochs"] == 2 and summary["world_size"] == 2
    assert [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1, 2]


@slow
def test_distributed_eval_equals_one_process_to_the_last_digit(dist_camvid, tmp_path):
    weights = tmp_path / "run" / "best.pt"
    _train(dist_camvid, tmp_path / "run", 1, processes=1, batch=4)
    out = tmp_path / "dist.json"
    done = torchrun("eval", "--weights", str(weights), "--dataset", "camvid", "--data-root", str(dist_camvid),
                    "--batch-size", "2", "--threads", "1", "--json", str(out), "--save-predictions",
                    str(tmp_path / "panels"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("mIoU") == 1  # rank 0 reports, once
    single = rtseg.evaluate(weights, "camvid", "val", data_root=dist_camvid, batch_size=2, threads=1,
                            progress=False)
    assert out.read_text() == json.dumps(json.loads(json.dumps(single)), indent=2) + "\n"
    assert single["num_images"] == 5 and len(list((tmp_path / "panels").glob("*.png"))) == 5


@slow
def test_distributed_predict_writes_each_frame_once_and_a_rerun_skips(dist_camvid, tmp_path):
    frames = sorted((dist_camvid / "val").glob("*.png"))
    out = tmp_path / "preds"
    done = torchrun("predict", str(dist_camvid / "val"), "--out", str(out), "--threads", "1", "--skip-existing")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*_labels.png")) == [f"{f.stem}_labels.png" for f in frames]
    assert not list(out.glob(".*"))  # no temporary files left behind
    assert done.stdout.startswith("5 image(s)")
    (out / f"{frames[2].stem}_overlay.png").unlink()
    done = torchrun("predict", str(dist_camvid / "val"), "--out", str(out), "--threads", "1", "--skip-existing")
    assert done.returncode == 0 and "4 already there" in done.stdout
    assert (out / f"{frames[2].stem}_overlay.png").is_file()


@slow
def test_a_failing_rank_ends_the_run_with_its_error(dist_camvid, tmp_path):
    # Bad data that only rank 1 reads (batch 1: rank 1 scores frames 1 and 3).
    data = tmp_path / "camvid"
    for sub in ("val", "valannot"):
        (data / sub).mkdir(parents=True)
        for f in sorted((dist_camvid / sub).glob("*.png")):
            (data / sub / f.name).write_bytes(f.read_bytes())
    bad = sorted((data / "valannot").glob("*.png"))[1]
    save_png(bad, np.full((96, 128), 99, np.uint8), "L")
    done = torchrun("eval", "--dataset", "camvid", "--data-root", str(data), "--batch-size", "1", "--threads", "1",
                    timeout=240)
    assert done.returncode != 0
    assert f"rtseg eval (rank 1): error: label {bad} holds ids [99]" in done.stderr


@slow
def test_ranks_failing_at_once_write_whole_lines():
    # No data root: both ranks fail in the same instant, each with its own one-line error.
    # Unbuffered streams are where print() split a line in two writes and the ranks' lines merged.
    env = {k: v for k, v in os.environ.items() if k != "RTSEG_DATA"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "rtseg", "eval", "--dataset", "camvid", "--threads", "1"], capture_output=True,
                          text=True, timeout=240, env={**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "rtseg eval (rank" in line]
    assert sorted(line[:len("rtseg eval (rank 0)")] for line in lines) == ["rtseg eval (rank 0)", "rtseg eval (rank 1)"]
    for line in lines:
        assert line.endswith("folder holding camvid/") and line.count("rtseg eval") == 1, line


def test_shards_cover_every_frame_once():
    for n, batch, world in ((5, 2, 2), (7, 3, 4), (1, 4, 2), (0, 2, 2)):
        shards = [shard_batches(n, batch, DistInfo(r, world)) for r in range(world)]
        flat = sorted(i for shard in shards for b in shard for i in b)
        assert flat == list(range(n))


def test_slurm_environment():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
           "SLURM_JOB_NODELIST": "gpu[07-09,12],cpu3"}
    assert from_env(env) == DistInfo(3, 8, 1)
    assert env["MASTER_ADDR"] == "gpu07" and env["MASTER_PORT"] == "29500" and env["RANK"] == "3"
    assert from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == DistInfo(1, 2, 1)
    assert from_env({}) == DistInfo() and not DistInfo().enabled
    assert first_slurm_host("node5") == "node5" and first_slurm_host("a[1-2],b") == "a1"
