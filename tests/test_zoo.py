"""rtseg models / rtseg.model_table: sizes and costs of every architecture."""

from __future__ import annotations

import rtseg
from rtseg.models import create_model
from rtseg.zoo import inference_parameters


def test_model_table_covers_every_model():
    rows = {r["model"]: r for r in rtseg.model_table()}
    assert sorted(rows) == rtseg.list_models()
    assert rows["enet"]["shipped"] == ["enet-camvid", "enet-camvid-distilled"] and rows["enet"]["gflops_360x480"] == 2.62
    assert rows["edanet"]["shipped"] == ["edanet-camvid", "edanet-camvid-distilled"]
    for r in rows.values():
        assert r["params"] > 0 and r["gflops_1024x2048"] > r["gflops_360x480"] > 0


def test_inference_parameters_leave_training_heads_out():
    model = create_model("pidnet_s", num_classes=19)
    heads = sum(p.numel() for h in (model.head_p, model.head_d) for p in h.parameters())
    assert inference_parameters(model) == sum(p.numel() for p in model.parameters()) - heads == 7_625_715


def test_model_table_takes_builder_arguments_and_sizes():
    # docs/models.md's "Model sizes" table: ICNet at Cityscapes' 1025x2049, 19 classes, and its half width.
    rows = rtseg.model_table(19, ((1025, 2049),), ["icnet", "icnet:filter_scale=0.5"])
    assert [r["model"] for r in rows] == ["icnet", "icnet:filter_scale=0.5"]
    assert [round(r["params"] / 1e6, 2) for r in rows] == [24.59, 6.17]
    assert [r["gflops_1025x2049"] for r in rows] == [146.66, 37.73]
    assert all(r["shipped"] == [] for r in rows)


def test_rtseg_models_refuses_a_bad_model_in_one_line(capsys):
    from rtseg.cli import main

    for spec, message in [("icnet:filter_scale", "expected NAME or NAME:arg=value"),
                          ("icnet:foo=1", "has no argument(s) ['foo']"), ("nope", "unknown model 'nope'")]:
        assert main(["models", spec]) == 2
        assert message in capsys.readouterr().err


def test_rtseg_models_prints_the_asked_sizes(capsys):
    from rtseg.cli import main

    assert main(["models", "enet", "edanet", "--size", "360x480"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "GFLOPs 360x480" in lines[0] and "1024x2048" not in lines[0]
    assert lines[1].split()[:3] == ["enet", "0.36", "2.62"] and lines[2].split()[:3] == ["edanet", "0.69", "5.80"]
