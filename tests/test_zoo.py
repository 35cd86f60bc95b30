"""rtseg models / rtseg.model_table: sizes and costs of every architecture."""

from __future__ import annotations

import rtseg
from rtseg.models import create_model
from rtseg.zoo import inference_parameters


def test_model_table_covers_every_model():
    rows = {r["model"]: r for r in rtseg.model_table()}
    assert sorted(rows) == rtseg.list_models()
    assert rows["enet"]["shipped"] == ["enet-camvid"] and rows["enet"]["gflops_360x480"] == 2.62
    assert rows["edanet"]["shipped"] == ["edanet-camvid"]
    for r in rows.values():
        assert r["params"] > 0 and r["gflops_1024x2048"] > r["gflops_360x480"] > 0


def test_inference_parameters_leave_training_heads_out():
    model = create_model("pidnet_s", num_classes=19)
    heads = sum(p.numel() for h in (model.head_p, model.head_d) for p in h.parameters())
    assert inference_parameters(model) == sum(p.numel() for p in model.parameters()) - heads == 7_625_715
