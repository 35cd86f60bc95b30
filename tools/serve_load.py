"""Load test of ``rtseg serve``: a real server on 127.0.0.1 (its own process), N requests of the
sample frame from C concurrent clients, and the server's resident memory before and after
them (a soak: thousands of requests must not grow it). Writes the figures as JSON.

    python -m tools.serve_load --requests 200 --concurrency 16 --json bench/serve_load.json
    python -m tools.serve_load --requests 5000 --concurrency 8 --json bench/serve_soak.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rtseg.benchmarks.inference import machine_info
from rtseg.io import atomic_write_text
from tests.serve_harness import ServerProcess, load_test

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200, help="requests in all (default 200)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--output", default="labels", help="what /v1/segment returns (default labels)")
    p.add_argument("--server-args", default="--workers 1 --threads 2",
                   help="arguments of rtseg serve (default: --workers 1 --threads 2)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the figures here")
    args = p.parse_args()
    image = (REPO / "rtseg" / "web" / "sample.jpg").read_bytes()
    server = ServerProcess(args.server_args.split())
    with server as url:
        # Warm connections, caches and the allocator's arenas: the soak figure is the growth after that.
        load_test(url, image, requests=16, concurrency=args.concurrency)
        rss_before = server.rss_mb()
        result = load_test(url, image, args.requests, args.concurrency, args.output)
        rss_after = server.rss_mb()
    result.update(rss_before_mb=round(rss_before, 1), rss_after_mb=round(rss_after, 1),
                  rss_growth_mb=round(rss_after - rss_before, 1),server_args=args.server_args, image="rtseg/web/sample.jpg (480x360 JPEG)",
                  machine=machine_info())
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    if result["errors"]:
        raise SystemExit(f"{result['errors']} request(s) failed")


if __name__ == "__main__":
    main()
