"""rtseg.benchmarks.inference (rtseg.benchmark, rtseg bench): the JSON, bf16, fresh processes, and
timing exported graphs (ONNX Runtime, OpenCV DNN)."""

from __future__ import annotations

import numpy as np
import pytest

import rtseg
from conftest import EXPORT_SIZE as SIZE
from rtseg.benchmarks.inference import time_network
from rtseg.errors import RtsegError
from rtseg.models import create_model


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_bench_json(backend, tmp_path):
    r = rtseg.benchmark("enet", size=(48, 64), backend=backend, threads=1, iters=3)
    for key in ("median_ms", "p90_ms", "fps", "params", "gflops", "peak_mem_mb", "e2e_median_ms"):
        assert r[key] > 0, key
    assert r["fps"] == pytest.approx(1000 / r["median_ms"], rel=0.01) and r["params"] == sum(p.numel() for p in create_model("enet", num_classes=11).parameters())
    assert r["machine"]["cores"] >= 1


@pytest.mark.slow  # compiles ENet: 30-190 s on 2 cores
def test_bench_torch_bf16_runs_where_the_cpu_has_bf16_and_is_refused_elsewhere():
    from rtseg.runtime import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        with pytest.raises(RtsegError, match="--backend torch-bf16: this CPU has no native bfloat16"):
            rtseg.benchmark("enet", size=(32, 48), backend="torch-bf16", threads=1, iters=2)
        return
    r = rtseg.benchmark("enet", size=(32, 48), backend="torch-bf16", threads=1, iters=2)  # compiles: ~20 s
    assert r["backend"] == "torch-bf16" and r["median_ms"] > 0 and r["e2e_median_ms"] > 0


def test_bench_runs_in_fresh_processes(tmp_path):
    r = rtseg.benchmark("enet", size=(32, 48), threads=1, iters=2, runs=2, progress=False)
    assert r["runs"] == 2 and len(r["run_median_ms"]) == 2
    # The median of the runs' medians, and the extremes, from the runs themselves.
    assert r["median_ms"] == pytest.approx(float(np.median(r["run_median_ms"])), abs=0.01)
    assert (r["min_run_median_ms"], r["max_run_median_ms"]) == (min(r["run_median_ms"]), max(r["run_median_ms"]))
    with pytest.raises(RtsegError, match="--runs 0"):
        rtseg.benchmark("enet", runs=0)


def test_bench_of_an_onnx_export_times_the_file(enet_ckpt_bn, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    rtseg.export(enet_ckpt_bn, onnx_path, size=(24, 32))
    r = rtseg.benchmark(weights=onnx_path, size=(24, 32), backend="onnxruntime", threads=1, iters=2)
    assert r["median_ms"] > 0 and r["model"] == "enet (onnx)" and r["params"] > 0
    with pytest.raises(RtsegError, match=r"runs with --backend onnxruntime\|opencv\|openvino only"):
        rtseg.benchmark(weights=onnx_path, size=(24, 32), backend="torch")
    with pytest.raises(RtsegError, match="bench it with --size 24x32"):
        rtseg.benchmark(weights=onnx_path, size=(48, 64), backend="onnxruntime")


def test_bench_times_an_opencv_graph(enet_for_opencv):
    path, _ = enet_for_opencv
    r = time_network(None, SIZE, "opencv", threads=1, warmup=1, iters=2, onnx_file=path)
    assert r["backend"] == "opencv" and r["median_ms"] > 0 and r["params"] > 0
    assert r["fps"] == pytest.approx(1000 / r["median_ms"], rel=0.01)
