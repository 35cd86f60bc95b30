"""Which dilated convolutions get a wrong bfloat16 channels-last weight gradient from oneDNN on
this CPU (the reason rtseg trains EDANet NCHW where bf16 is on; docs/training.md).

    python tools/bf16_dilated_conv_check.py [--channels 16,24,30,32,40,48] [--dilations 1,2,3,4,8]

Each case runs in a fresh process (a wrong kernel can crash it): a (3, 1) convolution on a
(8, C, 30, 40) channels-last input under CPU autocast, one backward pass; prints one JSON line
per case: ok, NaN count or crash, next to the CPU's bf16 flag."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = """
import sys, torch
torch.manual_seed(0)
c, d = int(sys.argv[1]), int(sys.argv[2])
conv = torch.nn.Conv2d(c, c, (3, 1), padding=(d, 0), dilation=(d, 1)).to(memory_format=torch.channels_last)
x = torch.relu(torch.randn(8, c, 30, 40)).contiguous(memory_format=torch.channels_last)
with torch.autocast("cpu", dtype=torch.bfloat16):
    y = conv(x)
y.float().square().mean().backward()
print(int((~torch.isfinite(conv.weight.grad)).sum()))
"""


def main() -> int:
    from rtseg.runtime import bf16_channels_last_unsafe_convs, cpu_has_native_bf16

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", default="16,24,30,32,40,48", help="comma-separated channel counts")
    p.add_argument("--dilations", default="1,2,3,4,8", help="comma-separated dilations")
    a = p.parse_args()
    import torch

    for c in (int(v) for v in a.channels.split(",")):
        for d in (int(v) for v in a.dilations.split(",")):
            r = subprocess.run([sys.executable, "-c", CASE, str(c), str(d)], capture_output=True, text=True)
            result = f"{r.stdout.strip()} non-finite" if r.returncode == 0 else f"crashed ({r.returncode})"
            conv = torch.nn.Conv2d(c, c, (3, 1), dilation=(d, 1))
            print(json.dumps({"channels": c, "dilation": d, "weight_grad": result, "native_bf16": cpu_has_native_bf16(),
                              "rtseg_avoids": bool(bf16_channels_last_unsafe_convs(conv))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
