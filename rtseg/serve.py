"""``rtseg serve``: an HTTP API and a web page (with a live camera mode) around one model.

The model is loaded once. Requests go through a bounded pool: ``workers`` threads run the
network and at most ``workers + queue`` requests are admitted at a time; the next one is
answered 503 at once, so memory stays bounded however many clients connect. Bad input gets a
4xx with a JSON ``{"error": ...}`` and the server keeps serving. Every page asset ships in the
package (``rtseg/web/``): the page works offline.

Endpoints: ``GET /`` (the page), ``GET /health``, ``GET /v1/model``, ``POST /v1/segment``,
``POST /v1/segment/batch``, ``WS /v1/stream`` (live mode), ``GET /docs`` (OpenAPI).
"""

# No "from __future__ import annotations": FastAPI reads the endpoint annotations at run time.

import asyncio
import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rtseg._version import __version__
from rtseg.errors import RtsegError
from rtseg.inference import Segmenter, load_model
from rtseg.streaming import OUTPUTS, FrameSegmenter, FrameTooLarge, NotAnImage, quiet_opencv


def _require_serve_extra():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RtsegError(f"rtseg serve needs the serve extra ({e.name} is missing): "
                         "pip install 'rtseg[serve]'") from None


@dataclass
class ServeLimits:
    """What one request may carry, and how many may wait."""

    max_bytes: int = 20 * 2**20  # request body
    max_pixels: int = 4096 * 4096  # decoded image
    max_batch: int = 16  # images per /v1/segment/batch
    queue: int = 32  # requests admitted beyond those running


class Busy(Exception):
    """Every worker is busy and the queue is full."""


class InferencePool:
    """``workers`` threads for the network; at most ``workers + queue`` requests admitted."""

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1:
            raise RtsegError(f"--workers {workers}: expected 1 or more")
        if queue < 0:
            raise RtsegError(f"--queue {queue}: expected 0 or more")
        self.workers, self.queue = workers, queue
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="rtseg-infer")
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._lock = threading.Lock()
        self.in_flight = 0

    async def run(self, fn, *args):
        if not self._slots.acquire(blocking=False):
            raise Busy
        with self._lock:
            self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        finally:
            with self._lock:
                self.in_flight -= 1
            self._slots.release()


def _timing_headers(timing: dict) -> dict:
    headers = {f"X-{k[:-3].capitalize()}-Ms": f"{v:.2f}" for k, v in timing.items()}
    headers["Server-Timing"] = ", ".join(f"{k[:-3]};dur={v:.2f}" for k, v in timing.items())
    return headers


def create_app(seg: Segmenter | None = None, *, weights: str | Path | None = None, device: str = "auto",
               compile: bool = False, threads: int = 0, workers: int = 1,
               limits: ServeLimits | None = None):
    """The FastAPI application around ``seg`` (or the model loaded from ``weights``)."""
    _require_serve_extra()
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    quiet_opencv()
    limits = limits or ServeLimits()
    seg = seg if seg is not None else load_model(weights, device=device, compile=compile, threads=threads)
    frames = FrameSegmenter(seg)
    pool = InferencePool(workers, limits.queue)
    web = Path(str(resources.files("rtseg") / "web"))
    state = {"ready": False, "requests": 0, "errors": 0}

    app = FastAPI(title="rtseg", version=__version__,
                  description="Real-time semantic segmentation of street scenes. POST an image to "
                              "/v1/segment; the page at / has upload, drag-and-drop and a live camera mode.")
    app.mount("/static", StaticFiles(directory=str(web)), name="static")
    app.state.pool, app.state.segmenter = pool, seg

    def error(status: int, message: str, headers: dict | None = None):
        state["errors"] += 1
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    def warm_up():
        # One pass at the model's own size before /health says ready: the first call pays for
        # allocation and kernel selection (about 2 s for ENet on a 2-core CPU), and with
        # --compile for compilation (15-40 s).
        import numpy as np

        h, w = seg.input_size or (360, 480)
        seg.predict(np.zeros((h, w, 3), np.uint8))
        state["ready"] = True

    threading.Thread(target=warm_up, daemon=True, name="rtseg-warm-up").start()

    def process(data: bytes, output: str, alpha: float, with_mask: bool) -> dict:
        """Decode, segment, render: the per-frame path shared with rtseg video."""
        start = time.perf_counter()
        rgb = frames.decode(data, limits.max_pixels)
        decode_ms = (time.perf_counter() - start) * 1000
        frame = frames.segment(rgb)
        frame.timing.decode_ms = decode_ms
        result = {"width": rgb.shape[1], "height": rgb.shape[0]}
        if output == "json":
            result["classes"] = frames.fractions(frame.mask)
            if with_mask:
                result["mask_png"] = base64.b64encode(frames.render(rgb, frame, "labels")).decode()
        else:
            result["body"] = frames.render(rgb, frame, output, alpha)
        result["timing"] = frame.timing.to_dict()
        return result

    async def run(data: bytes, output: str, alpha: float, with_mask: bool):
        """``process`` in the pool; the error response for a bad or refused frame."""
        try:
            return await pool.run(process, data, output, alpha, with_mask), None
        except Busy:
            return None, error(503, f"busy: {pool.workers} worker(s) and a queue of {pool.queue} are full; "
                                    "retry shortly", {"Retry-After": "1"})
        except NotAnImage as e:
            return None, error(400, str(e))
        except FrameTooLarge as e:
            return None, error(413, str(e))

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_bytes:
            raise HTTPException(413, f"request of {int(length)} bytes is larger than {limits.max_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_bytes:
                raise HTTPException(413, f"request larger than {limits.max_bytes} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        request._body = body  # so that request.form() parses what was read, within the limit
        return body

    def check_output(output: str, alpha: float) -> None:
        if output not in OUTPUTS:
            raise HTTPException(400, f"output {output!r}: expected one of {', '.join(OUTPUTS)}")
        if not 0.0 <= alpha <= 1.0:
            raise HTTPException(400, f"alpha {alpha}: expected a value from 0 to 1")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse((web / "index.html").read_text())

    @app.get("/health", summary="Liveness and readiness")
    async def health():
        return {"status": "ok", "ready": state["ready"], "model": seg.name, "classes": seg.num_classes,
                "device": str(seg.device), "compiled": seg.compiled, "workers": pool.workers,
                "queue": pool.queue, "in_flight": pool.in_flight}

    @app.get("/v1/model", summary="Class names, palette and input size")
    async def model_info():
        return {"name": seg.name, "class_names": seg.class_names, "palette": seg.palette.tolist(),
                "input_size": list(seg.input_size) if seg.input_size else None,
                "fixed_size": seg.fixed_size, "normalization": {"mean": list(seg.mean), "std": list(seg.std)},
                "limits": limits.__dict__}

    @app.post("/v1/segment", summary="Segment one image",
              description="Send the image as multipart field `image` or as the raw request body. "
                          "`output`: `labels` (default; a PNG of class indices at the input's size, with the "
                          "class colours as its palette), `color` (colour mask PNG), `overlay` (PNG) or `json` "
                          "(per-class pixel fractions; `mask=true` adds the labels PNG in base64). Timing "
                          "headers: X-Decode-Ms, X-Network-Ms, X-Render-Ms, X-Encode-Ms, Server-Timing.")
    async def segment(request: Request, output: str = "labels", alpha: float = 0.5, mask: bool = False):
        check_output(output, alpha)
        body = await read_body(request)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise HTTPException(400, "missing multipart field 'image' (or send the image as the raw body)")
            body = await upload.read()
        if not body:
            raise HTTPException(400, "empty request: send an image as multipart field 'image' or as the body")
        result, failure = await run(body, output, alpha, mask)
        if failure is not None:
            return failure
        state["requests"] += 1
        headers = _timing_headers(result["timing"])
        if output == "json":
            return JSONResponse(result, headers=headers)
        return Response(result["body"], media_type="image/png", headers=headers)

    @app.post("/v1/segment/batch", summary="Segment several images",
              description="Multipart field `images`, repeated. Returns JSON: per image its size, per-class "
                          "fractions, timing and the labels PNG in base64.")
    async def segment_batch(request: Request):
        await read_body(request)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPException(400, "send the images as multipart field 'images' (repeated)")
        form = await request.form(max_files=limits.max_batch + 1)
        uploads = [u for u in form.getlist("images") if not isinstance(u, str)]
        if not uploads:
            raise HTTPException(400, "missing multipart field 'images'")
        if len(uploads) > limits.max_batch:
            raise HTTPException(413, f"{len(uploads)} images: at most {limits.max_batch} per batch")
        results = []
        for upload in uploads:
            result, failure = await run(await upload.read(), "json", 0.5, True)
            if failure is not None:
                return failure
            results.append({"filename": upload.filename, **result})
        state["requests"] += 1
        return {"results": results}

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        """Live mode: each binary message is an encoded frame (JPEG or PNG); each reply is JSON
        with the labels PNG as a data URL, the class fractions and the timing."""
        await ws.accept()
        try:
            while True:
                data = await ws.receive_bytes()
                if len(data) > limits.max_bytes:
                    await ws.send_json({"error": f"frame larger than {limits.max_bytes} bytes"})
                    continue
                result, failure = await run(data, "json", 0.5, True)
                if failure is not None:
                    await ws.send_json(json.loads(failure.body))
                    continue
                result["mask"] = "data:image/png;base64," + result.pop("mask_png")
                await ws.send_json(result)
        except WebSocketDisconnect:
            return

    return app


def check_address(host: str, port: int) -> None:
    """A clear error when the server could not listen on ``host``:``port``."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as e:
        raise RtsegError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None


def serve(weights: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          compile: bool = False, threads: int = 0, workers: int = 1, limits: ServeLimits | None = None,
          log_level: str = "info") -> None:
    """Run the server until interrupted (``rtseg serve``). Binds to 127.0.0.1 unless told otherwise."""
    _require_serve_extra()
    import uvicorn

    check_address(host, port)  # a port in use is an error before the model loads, not after
    app = create_app(weights=weights, device=device, compile=compile, threads=threads, workers=workers,
                     limits=limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="auto")


# ------------------------------------------------------------------------------ load testing


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """``rtseg serve ARGS`` in a child process on a free port of 127.0.0.1, for load tests and
    browser tests: ``with ServerProcess(["--workers", "1"]) as url: ...``; waits for /health."""

    def __init__(self, args: list[str] | tuple[str, ...] = (), timeout: float = 120.0) -> None:
        self.args, self.timeout = list(args), timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self) -> str:
        import json
        import subprocess
        import sys
        import urllib.request

        self.process = subprocess.Popen([sys.executable, "-m", "rtseg", "serve", "--port", str(self.port),
                                         "--log-level", "warning", *self.args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:  # pragma: no cover - a server that ignores SIGTERM
                self.process.kill()


def load_test(url: str, image: bytes, requests: int = 200, concurrency: int = 16, output: str = "labels") -> dict:
    """``requests`` POSTs of ``image`` to ``url``/v1/segment from ``concurrency`` client threads
    (one keep-alive connection each). Returns status counts, errors, throughput and p50 / p90 /
    p99 latency in ms."""
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
                conn.request("POST", f"/v1/segment?output={output}", body=image,
                             headers={"Content-Type": "image/jpeg"})
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
