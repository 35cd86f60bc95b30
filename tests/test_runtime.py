"""rtseg.runtime: which convolutions oneDNN's bf16 channels-last training gets wrong, mixed
precision only where the CPU computes it, the CPU's instruction sets under an ISA cap, and freed
memory reused by glibc's malloc."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn


def test_bf16_unsafe_convolutions_are_the_dilated_ones_off_a_multiple_of_16():
    from rtseg.models import create_model
    from rtseg.runtime import bf16_channels_last_unsafe_convs

    net = nn.Sequential(
        nn.Conv2d(30, 30, (3, 1), padding=(4, 0), dilation=(4, 1)),  # unsafe: pruned EDANet's shape
        nn.Conv2d(30, 32, 3, padding=1),  # not dilated
        nn.Conv2d(32, 32, 3, padding=8, dilation=8),  # 32 channels
        nn.Conv2d(32, 40, (1, 3), padding=(0, 2), dilation=(1, 2)),  # 40 output channels: unsafe
        nn.Conv2d(40, 40, 3, padding=4, dilation=4, groups=40),  # depthwise (DABNet's kind)
    )
    assert bf16_channels_last_unsafe_convs(net) == ["0", "3"]
    # EDANet's growth of 40 channels with dilations up to 16: affected; ENet's dilated 128: not.
    assert bf16_channels_last_unsafe_convs(create_model("edanet", num_classes=11))
    assert not bf16_channels_last_unsafe_convs(create_model("enet", num_classes=11))


def test_mixed_precision_only_where_the_cpu_computes_it(monkeypatch):
    from rtseg import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.autocast_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.autocast_dtype(torch.device("cpu")) is torch.bfloat16
    assert runtime.autocast_dtype(torch.device("cuda")) is torch.float16


@pytest.fixture
def every_flag(monkeypatch, tmp_path):
    """A CPU with every instruction set rtseg looks at (an AMX Xeon's flags line)."""
    from rtseg import runtime

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse4_2 " + " ".join(runtime.CPU_FLAGS) + "\n")
    monkeypatch.setattr(runtime, "CPUINFO", cpuinfo)
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    runtime.cpu_flags.cache_clear()
    yield runtime
    runtime.cpu_flags.cache_clear()


@pytest.mark.parametrize("variable, cap, kept", [
    ("ONEDNN_MAX_CPU_ISA", "AVX2", {"avx2"}),
    ("DNNL_MAX_CPU_ISA", "avx512_core_vnni", {"avx2", "avx512f", "avx512_vnni"}),
    ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}),
    ("ONEDNN_MAX_CPU_ISA", "ALL", None), ("ONEDNN_MAX_CPU_ISA", "no-such-isa", None)])
def test_an_isa_cap_leaves_only_the_instruction_sets_it_allows(every_flag, monkeypatch, variable, cap, kept):
    # Capped, PyTorch's and OpenVINO's oneDNN run the kernels of the lower level (on an AMX Xeon
    # capped to AVX2, OpenVINO's int8 ENet runs jit_avx2_I8 convolutions): bf16 and int8 choices
    # must follow the cap, not /proc/cpuinfo.
    runtime = every_flag
    monkeypatch.setenv(variable, cap)
    flags = {name for name, on in runtime.cpu_flags().items() if on}
    assert flags == (set(runtime.CPU_FLAGS) if kept is None else kept)
    assert runtime.cpu_has_native_bf16() == ("avx512_bf16" in flags)


def test_auto_chooses_under_a_cap_as_on_the_lower_cpu(every_flag, monkeypatch):
    pytest.importorskip("openvino")
    from rtseg.backends import choose

    assert choose("stream", ready=lambda name: name == "openvino-int8").backend == "openvino-int8"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    every_flag.cpu_flags.cache_clear()
    # No VNNI and no native bf16 under AVX2: OpenVINO float32, as on an AVX2-only CPU.
    assert choose("stream", ready=lambda name: name == "openvino-int8").backend == "openvino"


_FAULTS_SCRIPT = """
import resource, sys, torch
from rtseg.inference import reuse_freed_memory
if sys.argv[1] == "1":
    assert reuse_freed_memory()
torch.set_num_threads(1)
model = torch.nn.Sequential(*[torch.nn.Conv2d(16, 16, 3, padding=1) for _ in range(4)]).eval()
x = torch.randn(1, 16, 256, 256)  # 4 MB activations: above glibc's default mmap threshold
with torch.no_grad():
    for _ in range(3):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        model(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_reuse_freed_memory_stops_page_faults_on_every_forward_pass():
    def faults(flag: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, flag], capture_output=True, text=True, check=True)
        return int(done.stdout.strip().splitlines()[-1])

    default, reused = faults("0"), faults("1")
    assert default > 1000  # every forward pass page-faults its activations in again
    assert reused < default / 10
