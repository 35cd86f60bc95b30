"""A real ``rtseg serve`` in a child process, and a load test against it: shared by the server,
browser and fuzz tests and by ``tools/serve_load.py`` / ``tools/serve_screenshot.py`` (which run
as ``python -m tools.NAME`` from the repository root and import ``tests.serve_harness``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from rtseg.errors import RtsegError


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """``rtseg serve ARGS`` in a child process on a free port of 127.0.0.1, for load tests and
    browser tests: ``with ServerProcess(["--workers", "1"]) as url: ...``; waits for /health."""

    def __init__(self, args: list[str] | tuple[str, ...] = (), timeout: float = 120.0, env: dict | None = None) -> None:
        self.args, self.timeout, self.env = list(args), timeout, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self) -> str:
        env = {**os.environ, **(self.env or {})}
        self.process = subprocess.Popen([sys.executable, "-m", "rtseg", "serve", "--port", str(self.port),
                                         "--log-level", "warning", *self.args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RtsegError(f"rtseg serve exited: {self.process.stdout.read()[-1000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if json.loads(r.read())["ready"]:
                        return self.url
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RtsegError(f"rtseg serve did not become ready within {self.timeout:.0f} s")

    def rss_mb(self) -> float:
        """The server's resident memory now (Linux /proc), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc: resident memory is measured on Linux only")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:  # pragma: no cover - a server that ignores SIGTERM
                self.process.kill()


def load_test(url: str, image: bytes, requests: int = 200, concurrency: int = 16, output: str = "labels",
              api_key: str | None = None) -> dict:
    """``requests`` POSTs of ``image`` to ``url``/v1/segment from ``concurrency`` client threads
    (one keep-alive connection each). Returns status counts, errors, throughput and p50 / p90 /
    p99 latency in ms."""
    headers = {"Content-Type": "image/jpeg", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    import http.client
    import statistics
    import urllib.parse
    from collections import Counter

    import numpy as np

    target = urllib.parse.urlsplit(url)
    latencies: list[float] = []
    statuses: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            start = time.perf_counter()
            try:
                conn.request("POST", f"/v1/segment?output={output}", body=image, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except Exception as e:  # connection refused / reset: an error, counted
                status = 0
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[status] += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    ok = statuses.get(200, 0)
    return {"requests": requests, "concurrency": concurrency, "ok": ok, "errors": requests - ok,
            "status_counts": {str(k): v for k, v in sorted(statuses.items())}, "failures": failures[:5],
            "wall_s": round(wall, 2), "throughput_rps": round(ok / wall, 2),
            "p50_ms": round(statistics.median(latencies), 1),
            "p90_ms": round(float(np.percentile(latencies, 90)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1)}
