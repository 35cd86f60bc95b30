"""``rtseg serve``: an HTTP API and a web page (with a live camera mode) around one model.

The model is loaded once. Requests go through a bounded pool: ``workers`` threads run the
network and at most ``workers + queue`` requests are admitted at a time; the next one is
answered 503 at once, so memory stays bounded however many clients connect. The work per
image is bounded by the model's limits (:meth:`rtseg.inference.Segmenter.check_size`: an image
beyond them gets 413 or 422 before it reaches the network). Bad input gets a 4xx with a JSON
``{"error": ..., "status": ...}`` and the server keeps serving. Every page asset ships in the
package (``rtseg/web/``): the page works offline.

In front of every route, :class:`Guard` checks the ``Host`` header (a loopback server answers
only loopback names: no DNS rebinding), the ``Origin`` header (a page from another site cannot
post images or open the stream) and, with an API key, ``Authorization: Bearer KEY``. What it
defends against and what it leaves to a reverse proxy: docs/serving.md.

Endpoints: ``GET /`` (the page), ``GET /health``, ``GET /v1/model``, ``POST /v1/segment``,
``POST /v1/segment/batch``, ``WS /v1/stream`` (live mode), ``GET /docs`` (OpenAPI).
"""

# No "from __future__ import annotations": FastAPI reads the endpoint annotations at run time.

import asyncio
import base64
import hmac
import ipaddress
import json
import os
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from rtseg._version import __version__
from rtseg.errors import RtsegError
from rtseg.inference import ImageTooLarge, ImageTooThin, Segmenter, load_model
from rtseg.streaming import OUTPUTS, FrameSegmenter, NotAnImage, quiet_opencv

try:  # the serve extra; create_app says how to install it when it is missing
    from fastapi import Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel
    from starlette.exceptions import HTTPException
except ImportError:  # pragma: no cover - depends on the install
    Request = WebSocket = WebSocketDisconnect = HTMLResponse = JSONResponse = Response = HTTPException = None
    BaseModel = object


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

    max_bytes: int = 20 * 2**20  # request body, and one stream frame
    max_pixels: int = 4096 * 4096  # decoded image
    max_batch: int = 16  # images per /v1/segment/batch
    queue: int = 32  # requests admitted beyond those running
    max_streams: int = 4  # WebSocket streams open at once; the next is refused (1013, try again later)
    stream_idle_s: float = 60.0  # a stream that sends nothing for this long is closed


#: Host names a loopback server answers to: anything else is a DNS-rebinding attempt (a foreign
#: name resolved to 127.0.0.1 so that a web page can read this server's answers).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: Reachable without the API key: the page (it asks for the key) and its assets, and liveness.
PUBLIC_PATHS = ("/", "/health")
PUBLIC_PREFIXES = ("/static/",)


@dataclass
class ServeSecurity:
    """Who may talk to the server. ``allowed_hosts``: Host header names answered (None: the
    loopback names; ``"*"``: any; ``"*.example.com"``: a domain and its subdomains).
    ``allowed_origins``: other sites (``https://app.example.com``, or ``"*"``) whose pages may call
    the API; the page's own origin is always allowed; listing any turns CORS on for them.
    ``api_key``: required as ``Authorization: Bearer KEY`` everywhere except :data:`PUBLIC_PATHS`."""

    allowed_hosts: list[str] | None = None
    allowed_origins: list[str] = field(default_factory=list)
    api_key: str | None = None

    def __post_init__(self) -> None:
        key = self.api_key
        if key is not None and (len(key) < 16 or not key.isascii() or not key.isprintable() or " " in key):
            raise RtsegError("--api-key / RTSEG_API_KEY: expected at least 16 printable ASCII characters without "
                             "spaces (it travels in an HTTP header); python -c 'import secrets; "
                             "print(secrets.token_urlsafe())' makes one")
        for origin in self.allowed_origins:
            parts = urllib.parse.urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
                raise RtsegError(f"--allowed-origins {origin!r}: expected scheme://host[:port] "
                                 "(https://app.example.com) or *")

    def host_allowed(self, host_header: str) -> bool:
        name = _hostname(host_header)
        for pattern in self.allowed_hosts if self.allowed_hosts is not None else LOOPBACK_HOSTS:
            pattern = pattern.lower()
            wildcard = pattern.startswith("*.") and (name.endswith(pattern[1:]) or name == pattern[2:])
            if pattern == "*" or name == pattern or wildcard:
                return True
        return False

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        """The page's own origin (same host and port as the request), or a listed one."""
        if urllib.parse.urlsplit(origin).netloc.lower() == host_header.lower():
            return True
        return "*" in self.allowed_origins or origin.rstrip("/") in [o.rstrip("/") for o in self.allowed_origins]

    def key_matches(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        # compare_digest: the time taken does not tell how much of a guessed key was right.
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())


def _hostname(host_header: str) -> str:
    """'Example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


class Guard:
    """ASGI middleware in front of every route, HTTP and WebSocket alike: Host, then Origin, then
    the API key. A refusal is a JSON 4xx (for a WebSocket, an HTTP answer to the handshake).
    The stream's key may also come as its first message, so :func:`stream` checks it there."""

    def __init__(self, app, security: ServeSecurity, cors: bool = False) -> None:
        self.app, self.security, self.cors = app, security, cors

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = self.check(scope)
            if refusal is not None:
                await _refuse(scope, receive, send, *refusal)
                return
        await self.app(scope, receive, send)

    def check(self, scope) -> tuple[int, str, dict] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, origin = headers.get("host", ""), headers.get("origin")
        if not self.security.host_allowed(host):
            return 400, (f"Host {host!r} is not a name this server answers to (a loopback server answers "
                         "localhost, 127.0.0.1 and ::1); start it with --allowed-hosts NAME"), {}
        if origin is not None and not self.security.origin_allowed(origin, host):
            return 403, (f"Origin {origin!r}: pages from other sites may not call this server; start it with "
                         "--allowed-origins ORIGIN to allow one"), {}
        path = scope.get("path", "")
        if (self.security.api_key is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
                or scope["type"] == "websocket"
                or (self.cors and scope.get("method") == "OPTIONS")):  # a CORS preflight carries no credentials
            return None
        if not self.security.key_matches(headers.get("authorization", "")):
            return 401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'", \
                {"WWW-Authenticate": "Bearer"}
        return None


async def _refuse(scope, receive, send, status: int, message: str, headers: dict) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
        return
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # a server without the denial extension: the handshake fails with 403
        await send({"type": "websocket.close", "code": 1008})


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


class ApiError(Exception):
    """A request the server refuses: answered ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    def body(self) -> dict:
        return {"error": self.message, "status": self.status}

    def response(self):
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class ErrorBody(BaseModel):
    """Every refusal: a message and the HTTP status."""

    error: str
    status: int


class ServerState:
    """What the routes share: the model, the per-frame path, the pool, limits and open streams."""

    def __init__(self, seg: Segmenter, limits: ServeLimits, security: ServeSecurity, workers: int) -> None:
        self.seg, self.limits, self.security = seg, limits, security
        self.frames = FrameSegmenter(seg)
        self.pool = InferencePool(workers, limits.queue)
        self.web = Path(str(resources.files("rtseg") / "web"))
        self.ready = False
        self.streams = 0

    def warm_up(self) -> None:
        # One pass at the model's own size before /health says ready: the first call pays for
        # allocation and kernel selection (about 2 s for ENet on a 2-core CPU), and with
        # --compile for compilation (15-40 s).
        import numpy as np

        h, w = self.seg.input_size or (360, 480)
        self.seg.predict(np.zeros((h, w, 3), np.uint8))
        self.ready = True

    def process(self, data: bytes, output: str, alpha: float, with_mask: bool) -> dict:
        """Decode, segment, render: the per-frame path shared with rtseg video."""
        start = time.perf_counter()
        rgb = self.frames.decode(data, self.limits.max_pixels)
        decode_ms = (time.perf_counter() - start) * 1000
        frame = self.frames.segment(rgb)  # an ImageSizeError before the network for a thin image
        frame.timing.decode_ms = decode_ms
        result = {"width": rgb.shape[1], "height": rgb.shape[0]}
        if output == "json":
            result["classes"] = self.frames.fractions(frame.mask)
            if with_mask:
                result["mask_png"] = base64.b64encode(self.frames.render(rgb, frame, "labels")).decode()
        else:
            result["body"] = self.frames.render(rgb, frame, output, alpha)
        result["timing"] = frame.timing.to_dict()
        return result

    async def run(self, data: bytes, output: str, alpha: float, with_mask: bool) -> dict:
        """``process`` in the pool; an :class:`ApiError` for a bad or refused frame."""
        try:
            return await self.pool.run(self.process, data, output, alpha, with_mask)
        except Busy:
            raise ApiError(503, f"busy: {self.pool.workers} worker(s) and a queue of {self.pool.queue} are full; "
                                "retry shortly", {"Retry-After": "1"}) from None
        except NotAnImage as e:
            raise ApiError(400, str(e)) from None
        except ImageTooLarge as e:
            raise ApiError(413, str(e)) from None
        except ImageTooThin as e:
            raise ApiError(422, str(e)) from None

    def limits_info(self) -> dict:
        return {**asdict(self.limits), "max_aspect": self.seg.max_aspect}


def _state(connection) -> ServerState:
    return connection.app.state.rtseg


def _timing_headers(timing: dict) -> dict:
    headers = {f"X-{k[:-3].capitalize()}-Ms": f"{v:.2f}" for k, v in timing.items()}
    headers["Server-Timing"] = ", ".join(f"{k[:-3]};dur={v:.2f}" for k, v in timing.items())
    return headers


async def read_body(request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``max_bytes`` (never read whole first)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise ApiError(413, f"request of {int(length)} bytes is larger than {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request larger than {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # so that request.form() parses what was read, within the limit
    return body


async def read_form(request, max_files: int, too_many: str):
    """The multipart form, with python-multipart's "Too many files" as rtseg's 413."""
    try:
        return await request.form(max_files=max_files)
    except HTTPException as e:
        if "too many files" in str(e.detail).lower():
            raise ApiError(413, too_many) from None
        raise ApiError(400, f"multipart form: {e.detail}") from None


def check_output(output: str, alpha: float) -> None:
    if output not in OUTPUTS:
        raise ApiError(400, f"output {output!r}: expected one of {', '.join(OUTPUTS)}")
    if not 0.0 <= alpha <= 1.0:
        raise ApiError(400, f"alpha {alpha}: expected a value from 0 to 1")


# ------------------------------------------------------------------------------ HTTP routes


async def page(request: Request):
    return HTMLResponse((_state(request).web / "index.html").read_text())


async def health(request: Request):
    state = _state(request)
    seg, pool = state.seg, state.pool
    return {"status": "ok", "ready": state.ready, "model": seg.name, "classes": seg.num_classes,
            "device": str(seg.device), "backend": seg.backend, "compiled": seg.compiled, "workers": pool.workers,
            "queue": pool.queue, "in_flight": pool.in_flight, "auth": state.security.api_key is not None}


async def model_info(request: Request):
    state = _state(request)
    seg = state.seg
    return {"name": seg.name, "class_names": seg.class_names, "palette": seg.palette.tolist(),
            "input_size": list(seg.input_size) if seg.input_size else None,
            "fixed_size": seg.fixed_size, "normalization": {"mean": list(seg.mean), "std": list(seg.std)},
            "limits": state.limits_info()}


async def segment(request: Request, output: str = "labels", alpha: float = 0.5, mask: bool = False):
    state = _state(request)
    check_output(output, alpha)
    body = await read_body(request, state.limits.max_bytes)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await read_form(request, 1, "one image per /v1/segment: use /v1/segment/batch for more")
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "missing multipart field 'image' (or send the image as the raw body)")
        body = await upload.read()
    if not body:
        raise ApiError(400, "empty request: send an image as multipart field 'image' or as the body")
    result = await state.run(body, output, alpha, mask)
    headers = _timing_headers(result["timing"])
    if output == "json":
        return JSONResponse(result, headers=headers)
    return Response(result["body"], media_type="image/png", headers=headers)


async def segment_batch(request: Request):
    state = _state(request)
    limit = state.limits.max_batch
    await read_body(request, state.limits.max_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "send the images as multipart field 'images' (repeated)")
    form = await read_form(request, limit, f"more than {limit} images: at most {limit} per batch")
    uploads = [u for u in form.getlist("images") if not isinstance(u, str)]
    if not uploads:
        raise ApiError(400, "missing multipart field 'images'")
    results = []
    for upload in uploads:
        results.append({"filename": upload.filename, **await state.run(await upload.read(), "json", 0.5, True)})
    return {"results": results}


# ------------------------------------------------------------------------------ WebSocket stream


async def stream(ws: WebSocket):
    """Live mode: each binary message is an encoded frame (JPEG or PNG); each reply is JSON
    with the labels PNG as a data URL, the class fractions and the timing. With an API key the
    handshake carries ``Authorization: Bearer KEY`` or the first message is the text
    ``{"api_key": "KEY"}`` (browsers cannot set headers on a WebSocket)."""
    state = _state(ws)
    await ws.accept()
    try:
        # The key first: a client without it must not hold one of the --max-streams slots.
        if not await _stream_authorized(ws, state):
            return
        if state.streams >= state.limits.max_streams:
            await ws.send_json({"error": f"busy: {state.limits.max_streams} live streams are open; retry shortly",
                                "status": 503})
            await ws.close(1013)  # "try again later"
            return
        state.streams += 1
        try:
            await _stream_frames(ws, state)
        finally:
            state.streams -= 1
    except WebSocketDisconnect:
        pass


async def _receive(ws, timeout: float) -> dict | None:
    """The next message, or None (after telling the client) once ``timeout`` passes in silence."""
    try:
        return await asyncio.wait_for(ws.receive(), timeout)
    except asyncio.TimeoutError:
        await ws.send_json({"error": f"no frame for {timeout:g} s: closing the stream", "status": 408})
        await ws.close(1000)
        return None


async def _stream_authorized(ws, state: ServerState) -> bool:
    security = state.security
    if security.api_key is None or security.key_matches(ws.headers.get("authorization", "")):
        return True
    message = await _receive(ws, min(10.0, state.limits.stream_idle_s))
    if message is None or message["type"] == "websocket.disconnect":
        return False
    try:
        key = json.loads(message.get("text") or "null")["api_key"]
        ok = isinstance(key, str) and security.key_matches(f"Bearer {key}")
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        await ws.send_json({"error": 'missing or wrong API key: send {"api_key": "KEY"} as the first message',
                            "status": 401})
        await ws.close(1008)  # policy violation
    return ok


async def _stream_frames(ws, state: ServerState) -> None:
    limit = state.limits.max_bytes
    while True:
        message = await _receive(ws, state.limits.stream_idle_s)
        if message is None or message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        try:
            if data is None:
                raise ApiError(400, "text frame: send each frame as a binary message (JPEG or PNG bytes)")
            if len(data) > limit:
                raise ApiError(413, f"frame of {len(data)} bytes is larger than {limit} bytes")
            result = await state.run(data, "json", 0.5, True)
        except ApiError as e:
            await ws.send_json(e.body())
            continue
        result["mask"] = "data:image/png;base64," + result.pop("mask_png")
        await ws.send_json(result)


# ------------------------------------------------------------------------------ the application

_ERRORS = {status: {"model": ErrorBody, "description": text} for status, text in [
    (400, "Bad request: not an image, a bad parameter, a malformed form"),
    (401, "Missing or wrong API key"), (403, "Origin not allowed"),
    (413, "Too large: body, image pixels or images per batch"),
    (422, "Image shape beyond the model's limits (aspect ratio)"),
    (503, "Busy: every worker and the queue are full")]}
_BINARY = {"type": "string", "format": "binary"}
_SEGMENT_BODY = {"requestBody": {"content": {
    "image/jpeg": {"schema": _BINARY}, "image/png": {"schema": _BINARY},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"image": _BINARY}, "required": ["image"]}}}}}
_BATCH_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"images": {"type": "array", "items": _BINARY}}, "required": ["images"]}}}}}
_SEGMENT_DOC = ("Send the image as multipart field `image` or as the raw request body. `output`: `labels` "
                "(default; a PNG of class indices at the input's size, with the class colours as its palette), "
                "`color` (colour mask PNG), `overlay` (PNG) or `json` (per-class pixel fractions; `mask=true` adds "
                "the labels PNG in base64). Timing headers: X-Decode-Ms, X-Network-Ms, X-Render-Ms, X-Encode-Ms, "
                "Server-Timing.")


def _add_routes(app) -> None:
    errors = {k: v for k, v in _ERRORS.items() if k in (401, 403)}
    app.add_api_route("/", page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)
    app.add_api_route("/health", health, methods=["GET"], summary="Liveness and readiness",
                      responses={403: _ERRORS[403]})
    app.add_api_route("/v1/model", model_info, methods=["GET"], summary="Class names, palette, input size, limits",
                      responses=errors)
    app.add_api_route("/v1/segment", segment, methods=["POST"], summary="Segment one image", description=_SEGMENT_DOC,
                      responses={200: {"content": {"image/png": {"schema": _BINARY}}}, **_ERRORS},
                      openapi_extra=_SEGMENT_BODY)
    app.add_api_route("/v1/segment/batch", segment_batch, methods=["POST"], summary="Segment several images",
                      description="Multipart field `images`, repeated. Returns JSON: per image its size, per-class "
                                  "fractions, timing and the labels PNG in base64.",
                      responses=_ERRORS, openapi_extra=_BATCH_BODY)
    app.add_api_websocket_route("/v1/stream", stream)


def _add_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError

    async def api_error(request, exc: ApiError):
        return exc.response()

    async def http_error(request, exc):
        return ApiError(exc.status_code, str(exc.detail)).response()

    async def validation_error(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return ApiError(400, f"{where}: {first.get('msg', 'invalid request')}").response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def create_app(seg: Segmenter | None = None, *, weights: str | Path | None = None, device: str = "auto",
               compile: bool = False, threads: int = 0, runtime: str | None = None, workers: int = 1,
               limits: ServeLimits | None = None, security: ServeSecurity | None = None,
               backend: str | None = None, tta: str = "none", announce=None):
    """The FastAPI application around ``seg`` (or the model loaded from ``weights`` with
    ``backend``, see :func:`rtseg.load_model`: ``"auto"`` picks for a stream of requests;
    ``compile`` and ``runtime`` are its older spelling).
    ``security`` defaults to a loopback server's: loopback Host names, same-origin pages, no key."""
    _require_serve_extra()
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles
    from starlette.middleware.cors import CORSMiddleware

    quiet_opencv()
    limits, security = limits or ServeLimits(), security or ServeSecurity()
    seg = seg if seg is not None else load_model(weights, device=device, compile=compile, threads=threads,
                                                          runtime=runtime, backend=backend, workload="stream",
                                                          tta=tta, announce=announce)
    state = ServerState(seg, limits, security, workers)
    app = FastAPI(title="rtseg", version=__version__,
                  description="Real-time semantic segmentation of street scenes. POST an image to "
                              "/v1/segment; the page at / has upload, drag-and-drop and a live camera mode.")
    app.state.rtseg = state
    app.mount("/static", StaticFiles(directory=str(state.web)), name="static")
    _add_routes(app)
    _add_error_handlers(app)
    if security.allowed_origins:  # CORS only when asked: other sites' pages may then read the answers
        app.add_middleware(CORSMiddleware, allow_origins=security.allowed_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"],
                           expose_headers=["Server-Timing", "X-Decode-Ms", "X-Network-Ms", "X-Render-Ms", "X-Encode-Ms"])
    app.add_middleware(Guard, security=security, cors=bool(security.allowed_origins))  # outermost: first to run
    threading.Thread(target=state.warm_up, daemon=True, name="rtseg-warm-up").start()
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


def security_for(host: str, allowed_hosts: list[str] | None = None, allowed_origins: list[str] | None = None,
                 api_key: str | None = None) -> ServeSecurity:
    """What a server bound to ``host`` accepts: a loopback one only loopback names, another any
    name unless ``allowed_hosts`` says; the key from ``api_key`` or ``$RTSEG_API_KEY``. Prints a
    warning for a non-loopback address without a key."""
    api_key = api_key or os.environ.get("RTSEG_API_KEY") or None
    if allowed_hosts is None and not is_loopback(host):
        allowed_hosts = ["*"]  # the names it is reached by are not known here
    if not is_loopback(host) and api_key is None:
        print(f"rtseg serve: warning: --host {host} exposes the server to the network without an API key: anyone "
              "who can reach it can use it. Set --api-key or RTSEG_API_KEY, and put a TLS reverse proxy in front "
              "(docs/serving.md)", file=sys.stderr, flush=True)
    return ServeSecurity(allowed_hosts=allowed_hosts, allowed_origins=list(allowed_origins or []), api_key=api_key)


def serve(weights: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          compile: bool = False, threads: int = 0, runtime: str | None = None, workers: int = 1,
          limits: ServeLimits | None = None, security: ServeSecurity | None = None, log_level: str = "info",
          backend: str | None = None, tta: str = "none", announce=None) -> None:
    """Run the server until interrupted (``rtseg serve``). Binds to 127.0.0.1 unless told otherwise;
    ``security`` defaults to :func:`security_for` ``host``."""
    _require_serve_extra()
    import uvicorn

    limits = limits or ServeLimits()
    security = security or security_for(host)
    check_address(host, port)  # a port in use is an error before the model loads, not after
    app = create_app(weights=weights, device=device, compile=compile, threads=threads, runtime=runtime, workers=workers,
                     limits=limits, security=security, backend=backend, tta=tta, announce=announce)
    # Frames up to twice the limit get a JSON error and the stream goes on; larger ones are
    # refused by the WebSocket protocol itself (close 1009) before they are held in memory.
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="auto", ws_max_size=2 * limits.max_bytes)
