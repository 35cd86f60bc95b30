"""rtseg.benchmarks.measure: the flags a benchmark passes to its fresh processes parse as ``rtseg bench``'s own."""

from rtseg.benchmarks.measure import bench_argv
from rtseg.cli import build_parser


def test_bench_argv_writes_flags_that_rtseg_bench_parses_back():
    argv = bench_argv({"size": (360, 480), "backend": "onnxruntime", "threads": 0, "num_classes": 11,
                       "weights": None, "calibrate": "", "train_throughput": True, "data_root": "/data"})
    assert argv == ["--size", "360x480", "--backend", "onnxruntime", "--threads", "0", "--num-classes", "11",
                    "--train-throughput", "--data-root", "/data"]
    args = build_parser().parse_args(["bench", *argv])
    assert (args.backend, args.threads, args.num_classes, args.train_throughput) == ("onnxruntime", 0, 11, True)
    assert args.weights is None and str(args.data_root) == "/data"


def test_a_machine_record_names_the_isa_cap_it_ran_under(monkeypatch):
    from rtseg.benchmarks.measure import machine_info
    from rtseg.runtime import ISA_CAP_VARIABLES

    for name in ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert "isa_cap" not in machine_info()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert machine_info()["isa_cap"] == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
