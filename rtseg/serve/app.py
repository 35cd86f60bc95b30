"""Launching the server: :func:`create_app` (the FastAPI application around one model),
:func:`check_address` and :func:`serve` (uvicorn until interrupted)."""

import threading
from pathlib import Path

from rtseg._version import __version__
from rtseg.errors import RtsegError
from rtseg.inference import Segmenter, load_model
from rtseg.serve.admission import ServeLimits
from rtseg.serve.routes import _add_error_handlers, _add_routes
from rtseg.serve.security import Guard, ServeSecurity, security_for
from rtseg.serve.state import ServerState
from rtseg.streaming import quiet_opencv


def _require_serve_extra():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RtsegError(f"rtseg serve needs the serve extra ({e.name} is missing): "
                         "pip install 'rtseg[serve]'") from None


def create_app(seg: Segmenter | None = None, *, weights: str | Path | None = None, device: str = "auto",
               compile: bool = False, threads: int = 0, runtime: str | None = None, workers: int = 1,
               limits: ServeLimits | None = None, security: ServeSecurity | None = None,
               backend: str | None = None, tta: str = "none", announce=None, size=None,
               in_browser: bool = False, web_runtime: str | Path | None = None):
    """The FastAPI application around ``seg`` (or the model loaded from ``weights`` with
    ``backend``, see :func:`rtseg.load_model`: ``"auto"`` picks for a stream of requests;
    ``compile`` and ``runtime`` are its older spelling).
    ``security`` defaults to a loopback server's: loopback Host names, same-origin pages, no key.
    ``in_browser``: also offer the page the network to run itself (:mod:`rtseg.serve.browser`,
    onnxruntime-web from ``web_runtime``, default the folder ``make web-runtime`` fills)."""
    _require_serve_extra()
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles
    from starlette.middleware.cors import CORSMiddleware

    quiet_opencv()
    limits, security = limits or ServeLimits(), security or ServeSecurity()
    seg = seg if seg is not None else load_model(weights, device=device, compile=compile, threads=threads,
                                                          runtime=runtime, backend=backend, workload="stream",
                                                          tta=tta, announce=announce, size=size)
    browser = None
    if in_browser:
        from rtseg.serve.browser import BrowserModel

        browser = BrowserModel(seg, web_runtime)
    state = ServerState(seg, limits, security, workers, browser)
    app = FastAPI(title="rtseg", version=__version__,
                  description="Real-time semantic segmentation of street scenes. POST an image to "
                              "/v1/segment; the page at / has upload, drag-and-drop and a live camera mode.")
    app.state.rtseg = state
    app.mount("/static", StaticFiles(directory=str(state.web)), name="static")
    if browser is not None:
        from rtseg.serve.browser import URL, runtime_files

        app.mount(URL.rstrip("/"), runtime_files(browser.runtime), name="ort")
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


def serve(weights: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          compile: bool = False, threads: int = 0, runtime: str | None = None, workers: int = 1,
          limits: ServeLimits | None = None, security: ServeSecurity | None = None, log_level: str = "info",
          backend: str | None = None, tta: str = "none", announce=None, size=None, in_browser: bool = False,
          web_runtime: str | Path | None = None) -> None:
    """Run the server until interrupted (``rtseg serve``). Binds to 127.0.0.1 unless told otherwise;
    ``security`` defaults to :func:`security_for` ``host``."""
    _require_serve_extra()
    import uvicorn

    limits = limits or ServeLimits()
    security = security or security_for(host)
    check_address(host, port)  # a port in use is an error before the model loads, not after
    app = create_app(weights=weights, device=device, compile=compile, threads=threads, runtime=runtime, workers=workers,
                     limits=limits, security=security, backend=backend, tta=tta, announce=announce,
                     size=size, in_browser=in_browser, web_runtime=web_runtime)
    # Frames up to twice the limit get a JSON error and the stream goes on; larger ones are
    # refused by the WebSocket protocol itself (close 1009) before they are held in memory.
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws="auto", ws_max_size=2 * limits.max_bytes)
