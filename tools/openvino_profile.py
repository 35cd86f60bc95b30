"""Where OpenVINO's CPU plugin spends a forward pass of an exported model: per node type and
kernel (``ref_*`` kernels are its slow reference fallbacks), from its own performance counters.

    rtseg export --weights enet-camvid --size 360x480 --target openvino --out enet_openvino.onnx
    python tools/openvino_profile.py enet_openvino.onnx --threads 2
"""

from __future__ import annotations

import argparse
import collections

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("onnx")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=8)
    args = p.parse_args()
    import openvino as ov

    core = ov.Core()
    model = core.read_model(args.onnx)
    # rtseg's exports keep the batch dynamic; profile batch 1 at the exported size, as rtseg's runner does.
    dims = model.inputs[0].get_partial_shape()
    shape = [1] + [d.get_length() for d in list(dims)[1:]]
    model.reshape({model.inputs[0]: shape})
    compiled = core.compile_model(model, "CPU", {"PERF_COUNT": "YES", "INFERENCE_PRECISION_HINT": "f32",
                                                 "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(6):  # warm-up; the counters then describe the last call
        request.infer({0: x})
    ops = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
    by_kernel: collections.Counter = collections.Counter()
    reference: collections.Counter = collections.Counter()
    for info in request.profiling_info:
        ms = info.real_time.total_seconds() * 1000
        by_kernel[(info.node_type, info.exec_type)] += ms
        if info.exec_type.startswith("ref"):
            reference[ops.get(info.node_name, info.node_name)] += ms
    total = sum(by_kernel.values())
    print(f"total {total:.1f} ms (sum of node times, {args.threads} threads)")
    for (node, kernel), ms in by_kernel.most_common(args.top):
        print(f"  {node:<28} {kernel:<26} {ms:7.1f} ms  {100 * ms / total:4.1f}%")
    for op, ms in reference.most_common():
        print(f"reference kernels run ONNX {op}: {ms:.1f} ms")


if __name__ == "__main__":
    main()
