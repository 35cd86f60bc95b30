"""rtseg.benchmarks.training (rtseg bench --train-throughput): the training paths, and two
processes under torchrun."""

from __future__ import annotations

import pytest

import rtseg


def test_training_bench_paths():
    from rtseg.errors import RtsegError

    row = rtseg.benchmark("enet", train_throughput=True, size=(32, 48), batch=2, steps=1, threads=1,
                          train_path="eager")
    assert (row["path"], row["amp"], row["compiled"], row["channels_last"]) == ("eager", "float32", False, False)
    with pytest.raises(RtsegError, match="--train-path"):
        rtseg.benchmark("enet", train_throughput=True, size=(32, 48), train_path="fast")
    with pytest.raises(RtsegError, match="one-process"):
        rtseg.benchmark("enet", train_throughput=True, size=(32, 48), train_path="both", processes=2)


# torchrun starts two Python processes per call (tens of seconds each on a shared CPU).
slow = pytest.mark.slow


@slow
def test_training_throughput_bench_in_two_processes():
    # The eager path: the compiled one would spend minutes compiling in each process.
    one = rtseg.benchmark("enet", train_throughput=True, size=(32, 48), batch=4, steps=2, threads=1,
                          train_path="eager")
    two = rtseg.benchmark("enet", train_throughput=True, processes=2, size=(32, 48), batch=2, steps=2, threads=1,
                          train_path="eager")
    assert (one["processes"], two["processes"]) == (1, 2) and two["batch_per_process"] == 2
    assert one["images_per_s"] > 0 and two["images_per_s"] > 0 and two["threads"] == 1


def test_loss_term_cost_times_every_term_forward_and_backward():
    from rtseg.benchmarks.training import loss_term_cost

    result = loss_term_cost(batch=2, classes=5, size=(12, 16), reps=2, threads=1)
    assert set(result["terms"]) == {"cross_entropy", "distill_pixel", "distill_channel", "lovasz"}
    assert all(s > 0 for s in result["terms"].values()) and result["shape"] == [2, 5, 12, 16]
    assert result["machine"]["cores"] >= 1
