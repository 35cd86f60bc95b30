"""Forward + backward seconds of each training loss term at a training batch's shape:

    python tools/loss_cost.py --json bench/loss_cost_avx512.json

(cross-entropy, pixel- and channel-wise distillation KL, Lovasz-softmax; 8x11x360x480 logits by
default, as the CamVid recipes train). Time it with nothing else running."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rtseg.benchmarks.training import loss_term_cost
from rtseg.io import atomic_path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--classes", type=int, default=11)
    p.add_argument("--size", default="360x480", help="HxW")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, metavar="OUT")
    a = p.parse_args()
    try:
        h, w = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        p.error(f"--size: expected HxW such as 360x480, got {a.size!r}")
    result = loss_term_cost(a.batch, a.classes, (h, w), a.reps, a.threads)
    for name, seconds in result["terms"].items():
        print(f"{name:16s} {seconds:.3f} s")
    if a.json:
        with atomic_path(a.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
