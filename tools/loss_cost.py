"""Forward + backward seconds of each training loss term at a training batch's shape:

    python tools/loss_cost.py --json bench/loss_cost_avx512.json

(cross-entropy, pixel- and channel-wise distillation KL, Lovasz-softmax; 8x11x360x480 logits by
default, as the CamVid recipes train). Time it with nothing else running."""

from __future__ import annotations

import argparse

from rtseg.benchmarks.training import loss_term_cost
from rtseg.cli.options import parse_size, write_json
from rtseg.errors import RtsegError


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
        size = parse_size(a.size)
    except RtsegError as e:
        p.error(str(e))
    result = loss_term_cost(a.batch, a.classes, size, a.reps, a.threads)
    for name, seconds in result["terms"].items():
        print(f"{name:16s} {seconds:.3f} s")
    write_json(a.json, result)


if __name__ == "__main__":
    main()
