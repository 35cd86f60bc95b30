"""Parameters and GFLOPs of models at a given input size (figures quoted in the README).

    python tools/model_stats.py --size 1025x2049 --classes 19 icnet icnet:filter_scale=0.5
    python tools/model_stats.py --size 500x500 --classes 21 fcn8s
    python tools/model_stats.py --size 512x1024 --classes 20 erfnet
    python tools/model_stats.py --size 360x480 --classes 11 enet erfnet

A model is NAME[:arg=value,...]; FLOPs count a multiply-add as 2 (torch's FlopCounterMode over
convolutions and matrix products).
"""

from __future__ import annotations

import argparse
import json

import yaml

from rtseg.models import create_model
from rtseg.models.stats import count_flops, count_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="NAME[:arg=value,...]")
    parser.add_argument("--size", default="360x480", metavar="HxW")
    parser.add_argument("--classes", type=int, default=11)
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    for spec in args.models:
        name, _, rest = spec.partition(":")
        kwargs = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in rest.split(",") if item)}
        model = create_model(name, num_classes=args.classes, **kwargs).eval()
        print(json.dumps({"model": spec, "size": [h, w], "classes": args.classes,
                          "params_m": round(count_params(model) / 1e6, 3),
                          "gflops": round(count_flops(model, (h, w)) / 1e9, 2)}))


if __name__ == "__main__":
    main()
