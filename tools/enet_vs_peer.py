"""rtseg's ENet against the PyTorch-ENet peer (tools/peer_enet.py), in fresh processes, alternating.

    python tools/enet_vs_peer.py --runs 3 --threads 2 --size 360x480 --json bench/enet_vs_peer.json
    python tools/enet_vs_peer.py --variants rtseg:torch-compile,peer:torch-compile,rtseg:torch-bf16,peer:torch-bf16

Each variant is a network and a backend of ``rtseg bench``. Each run starts one process per
variant (the order rotates from run to run, so drift of a shared machine hits all alike); each
times its network as ``rtseg bench`` does (:func:`rtseg.benchmarks.inference.time_network`: batch 1,
random weights, 11 classes, BN folded, channels-last; ``torch-compile``: inductor with frozen
weights; ``torch-bf16``: the same in bfloat16; ``onnxruntime``, ``opencv``, ``openvino``: exported
for that runtime, as ``rtseg export --target`` writes it; ``onnxruntime-int8``, ``openvino-int8``:
quantised as ``rtseg export --int8`` does, each network keeping its own float modules (the peer
has none, so more of it is int8); ``torch-int8``: PT2E; the int8 ones on synthetic calibration
frames). The JSON has every run's medians, the median of
the medians and each variant's speed-up over the first peer variant (its ms / the variant's),
per run and overall. Time it with nothing else running on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NETWORKS = ("rtseg", "peer")
#: rtseg bench backends; the int8 ones calibrate on synthetic frames here (random weights: their
#: latency, not their accuracy, is what this compares).
BACKENDS = ("torch", "torch-compile", "torch-bf16", "torch-int8", "onnxruntime", "onnxruntime-int8", "opencv",
            "openvino", "openvino-int8")


def build(name: str):
    if name == "rtseg":
        from rtseg.models import create_model

        return create_model("enet", num_classes=11)
    sys.path.insert(0, str(REPO))
    from tools.peer_enet import PeerENet

    return PeerENet(11)


def child(name: str, size: tuple[int, int], backend: str, threads: int, iters: int) -> dict:
    import torch

    from rtseg.benchmarks.inference import time_network

    torch.manual_seed(0)
    return {"network": name, **time_network(build(name), size, backend, threads, iters=iters)}


def compare(runs: int, size: tuple[int, int], variants: list[tuple[str, str]], threads: int, iters: int) -> dict:
    from rtseg.benchmarks.measure import machine_info

    rows = []
    for run in range(runs):
        for name, backend in variants[run % len(variants):] + variants[:run % len(variants)]:
            cmd = [sys.executable, __file__, "--child", name, "--size", f"{size[0]}x{size[1]}", "--backend", backend,
                   "--threads", str(threads), "--iters", str(iters)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"enet_vs_peer: the {name} {backend} run failed:\n{done.stderr[-2000:]}")
            rows.append({"run": run, **json.loads(done.stdout.strip().splitlines()[-1])})
            print(f"run {run + 1}/{runs} {name} {backend}: {rows[-1]['median_ms']} ms", file=sys.stderr)
    keys = [f"{name}:{backend}" for name, backend in variants]
    medians = {k: [r["median_ms"] for r in rows if f"{r['network']}:{r['backend']}" == k] for k in keys}
    reference = next(k for k in keys if k.startswith("peer:"))
    overall = {k: statistics.median(m) for k, m in medians.items()}
    return {"size": list(size), "threads": threads, "variants": keys, "reference": reference, "runs": rows,
            "median_ms": overall,
            "speedup_per_run": {k: [round(p / r, 3) for r, p in zip(m, medians[reference])] for k, m in medians.items()},
            "speedup": {k: round(overall[reference] / v, 3) for k, v in overall.items()}, "machine": machine_info()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per network (default 3)")
    parser.add_argument("--size", default="360x480", help="HxW (default 360x480)")
    parser.add_argument("--variants", default="rtseg:torch-compile,peer:torch-compile",
                        help="NETWORK:BACKEND,... (networks rtseg, peer; backends " + ", ".join(BACKENDS) + "; the "
                             "graph ones exported for that runtime, -int8 calibrated on synthetic frames); "
                             "speed-ups are over the first peer variant (default rtseg:torch-compile,peer:torch-compile)")
    parser.add_argument("--backend", default="torch-compile", help=argparse.SUPPRESS)  # the child's
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--child", choices=NETWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        print(json.dumps(child(args.child, (h, w), args.backend, args.threads, args.iters)))
        return
    variants = [tuple(v.split(":", 1)) for v in args.variants.split(",")]
    bad = [":".join(v) for v in variants if len(v) != 2 or v[0] not in NETWORKS
           or v[1] not in BACKENDS]
    if bad or not any(v[0] == "peer" for v in variants):
        parser.error(f"--variants {args.variants}: expected NETWORK:BACKEND pairs with at least one peer one "
                     f"(not {', '.join(bad) or 'without a peer'})")
    result = compare(args.runs, (h, w), variants, args.threads, args.iters)
    print(json.dumps({k: result[k] for k in ("median_ms", "speedup_per_run", "speedup")}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
