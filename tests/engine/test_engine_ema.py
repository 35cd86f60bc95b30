"""rtseg.engine.ema (run.ema): the weight average of parameters and buffers, and a run that
checkpoints the average and resumes exactly."""

from __future__ import annotations

import pytest
import torch

from conftest import long_recipe_config as _cfg
from rtseg.checkpoint import load_checkpoint
from rtseg.engine.ema import ModelEMA
from rtseg.engine.train import fit


def test_ema_averages_parameters_and_buffers():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1))
    ema = ModelEMA(net, decay=0.5)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(4, 1, 3, 3))  # BatchNorm statistics and counter move
    d = ema.current_decay()  # (1 + 0) / (10 + 0): the ramp
    assert d == pytest.approx(0.1)
    ema.update(net)
    for k, v in ema.module.state_dict().items():
        new = net.state_dict()[k]
        expected = new if not v.dtype.is_floating_point else d * start[k] + (1 - d) * new
        assert torch.allclose(v, expected), k
    assert ema.updates == 1 and not any(p.requires_grad for p in ema.module.parameters())


def test_ema_run_checkpoints_the_average_and_resumes_exactly(few_camvid, tmp_path):
    common = ("schedule.name=step", "schedule.step_epochs=1", "schedule.gamma=0.5", "schedule.warmup_epochs=0",
              "run.ema_decay=0.9")
    fit(_cfg(few_camvid, tmp_path / "straight", "schedule.epochs=2", *common))
    fit(_cfg(few_camvid, tmp_path / "resumed", "schedule.epochs=1", *common))
    fit(_cfg(few_camvid, tmp_path / "resumed", "schedule.epochs=2", *common), resume=True)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
        assert torch.equal(a["train_state"]["model"][key], b["train_state"]["model"][key]), key
    # The checkpoint's weights are the average, not the last step's.
    diffs = [float((a["state_dict"][k] - a["train_state"]["model"][k]).abs().max())
             for k in a["state_dict"] if a["state_dict"][k].dtype.is_floating_point]
    assert max(diffs) > 1e-4
    assert a["train_state"]["ema"]["updates"] == b["train_state"]["ema"]["updates"] > 0
    # The val figure in the checkpoint is the average's: best.pt holds the same weights.
    best = load_checkpoint(tmp_path / "straight" / "best.pt")
    assert best["metrics"] is not None and best["train_state"] is None
    # Resuming an EMA run without EMA (or the reverse) is refused.
    with pytest.raises(Exception, match="run.ema"):
        fit(_cfg(few_camvid, tmp_path / "resumed", "schedule.epochs=3", *common, "run.ema=false"), resume=True)
