"""rtseg.compress (rtseg prune): filter pruning for every model, and iterative pruning with
fine-tuning between the steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import rtseg
from rtseg import list_models
from rtseg.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from rtseg.datasets.camvid import CLASSES as CAMVID
from rtseg.errors import RtsegError
from rtseg.models import create_model
from rtseg.models.stats import count_flops, count_params
from rtseg.weights import model_from_checkpoint


@pytest.mark.parametrize("name", list_models())
def test_prune_makes_a_smaller_model_that_reloads(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    path = tmp_path / "m.pt"
    classes = CAMVID.__class__(CAMVID.names[:4], CAMVID.palette[:4])
    save_checkpoint(make_checkpoint(model, name, {}, classes, (0.5,) * 3, (0.5,) * 3, input_size=[64, 96]), path)
    out = tmp_path / "pruned.pt"
    if getattr(model, "pruning_refusal", None):  # a clear refusal with the reason, nothing written
        with pytest.raises(RtsegError, match="cannot be filter-pruned: .*torch-pruning"):
            rtseg.prune(path, 0.5, out)
        assert not out.exists()
        return
    returned = rtseg.prune(path, 0.5, out, json_path=tmp_path / "r.json")  # size: the checkpoint's
    report = json.loads((tmp_path / "r.json").read_text())
    assert report == json.loads(json.dumps(returned)) and report["size"] == [64, 96]
    assert report["param_reduction"] > 0.3 and report["flop_reduction"] > 0.3
    pruned = model_from_checkpoint(load_checkpoint(out))  # rebuilt from the checkpoint alone
    assert count_params(pruned) == report["after"]["params"]
    assert count_flops(pruned, (64, 96)) < count_flops(model, (64, 96))
    with torch.no_grad():
        assert pruned(torch.randn(1, 3, 45, 61)).shape == (1, 4, 45, 61)
    pruned.train()
    out_train = pruned(torch.randn(2, 3, 64, 96))
    assert set(out_train) >= {"out"}


REPO = Path(__file__).resolve().parents[1]


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
