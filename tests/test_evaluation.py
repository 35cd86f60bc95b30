"""rtseg.evaluation (rtseg.evaluate): the JSON and pictures, scoring exactly what predict runs on
each backend, KITTI Road's max-F and AP, Cityscapes at the training and the full resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rtseg
from conftest import write_cityscapes, write_kitti
from rtseg.checkpoint import make_checkpoint, save_checkpoint
from rtseg.datasets.kitti_road import CLASSES as KITTI_CLASSES
from rtseg.models import create_model


def test_eval_scores_exactly_what_predict_runs(enet_ckpt_bn, tiny_camvid):
    from rtseg.datasets import build_dataset
    from rtseg.metrics import ConfusionMatrix

    for backend in ("torch", "onnxruntime"):
        r = rtseg.evaluate(str(enet_ckpt_bn), "camvid", "val", data_root=tiny_camvid, backend=backend,
                           progress=False, size=[24, 32])
        assert r["backend"] == backend
        seg = rtseg.load_model(str(enet_ckpt_bn), device="cpu", backend=backend)
        data = build_dataset("camvid", "val", tiny_camvid)
        cm = ConfusionMatrix(11)
        for i in range(len(data)):
            image, label = data.load(i)
            cm.update(torch.from_numpy(seg.predict(image)[None]).long(), torch.from_numpy(label[None]).long())
        assert r["miou"] == pytest.approx(cm.compute()["miou"], abs=1e-9), backend


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


def test_kitti_eval_reports_maxf_and_ap(tmp_path):
    root = write_kitti(tmp_path / "kitti")
    ckpt = tmp_path / "road.pt"
    save_checkpoint(make_checkpoint(create_model("fcn8s_mobilenetv3", num_classes=2), "fcn8s_mobilenetv3",
                                    {}, KITTI_CLASSES, (0.5,) * 3, (0.5,) * 3), ckpt)
    r = rtseg.evaluate(ckpt, "kitti_road", "val", data_root=root, size=(32, 64), device="cpu")
    road = r["road"]
    precision, recall = road["precision_at_max_f"], road["recall_at_max_f"]
    assert road["max_f"] == pytest.approx(2 * precision * recall / (precision + recall))  # its own threshold's F
    # Untrained: the best threshold calls every valid pixel road (recall 1); 11-point AP takes the
    # best precision at recall >= each level, so it is at least that point's precision.
    assert recall == 1.0 and road["best_threshold"] == 0.0 and road["average_precision"] >= precision > 0.3
    assert r["road"]["space"] == "perspective"


def test_cityscapes_eval_training_and_full_resolution(tmp_path, cityscapes_ckpt):
    write_cityscapes(tmp_path / "cs", h=48, w=96)
    res = {}
    for full_res in (False, True):
        res[full_res] = rtseg.evaluate(cityscapes_ckpt, "cityscapes", "val", data_root=tmp_path / "cs",
                                       full_res=full_res, device="cpu")
    assert res[0]["resolution"] == "training" and res[1]["resolution"] == "full"
    assert res[0]["input_size"] == res[1]["input_size"] == [32, 64]
