"""rtseg serve: HTTP API + web page with a live camera mode (``rtseg.serve.serve``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("serve", help="HTTP API and web page (upload, live camera) for a model",
                       description="Serve a model over HTTP: the page at / (upload, drag-and-drop, a sample, live "
                                   "camera or video over a WebSocket), POST /v1/segment, POST /v1/segment/batch, "
                                   "GET /health, GET /v1/model, OpenAPI docs at /docs. The model is loaded once; "
                                   "requests share a bounded worker pool (503 when it and its queue are full). "
                                   "Needs the serve extra: pip install 'rtseg[serve]'.")
    options.add_weights(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--workers", type=int, default=1,
                   help="threads running the network at once (default 1; each uses --threads)")
    p.add_argument("--queue", type=int, default=32,
                   help="requests admitted beyond the running ones; more get 503 (default 32)")
    p.add_argument("--max-mb", type=float, default=20.0, help="largest request body in MB (default 20)")
    p.add_argument("--max-pixels", type=int, default=4096 * 4096,
                   help="largest decoded image in pixels (default 16777216 = 4096x4096)")
    p.add_argument("--max-batch", type=int, default=16, help="most images per /v1/segment/batch (default 16)")
    p.add_argument("--max-streams", type=int, default=4,
                   help="live WebSocket streams open at once; the next is refused (default 4)")
    p.add_argument("--stream-idle", type=float, default=60.0, metavar="SECONDS",
                   help="close a live stream that sends no frame for this long (default 60)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="require 'Authorization: Bearer KEY' on every endpoint but / and /health (the page asks "
                        "for it); default: $RTSEG_API_KEY. Prefer the variable: a command line is visible in ps")
    p.add_argument("--allowed-hosts", default=None, metavar="NAMES",
                   help="comma-separated Host names to answer (*.example.com for a domain, * for any); default: "
                        "loopback names for a loopback --host, any name otherwise")
    p.add_argument("--allowed-origins", default=None, metavar="ORIGINS",
                   help="comma-separated origins (https://app.example.com) whose pages may call the API, with CORS "
                        "for them; default: only the server's own page")
    p.add_argument("--in-browser", action="store_true",
                   help="also hand the page the network (ONNX, class map inside) to run itself in onnxruntime-web "
                        "(WebGPU where the browser has it, else WASM): camera frames then never leave the device; "
                        "the page's 'run in this browser' box switches between the two")
    p.add_argument("--web-runtime", default=None, metavar="PATH",
                   help="--in-browser: onnxruntime-web's folder or npm tarball (npm pack onnxruntime-web); default: "
                        "the folder make web-runtime fills")
    options.add_device(p)
    options.add_threads(p)
    options.add_backend(p, "auto")
    options.add_tta(p)
    options.add_working_size(p)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (default info)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.errors import RtsegError
    from rtseg.serve import ServeLimits, check_address, security_for, serve

    if not 0 <= args.port <= 65535:
        raise RtsegError(f"--port {args.port}: expected 0-65535")
    if args.workers < 1 or args.queue < 0:
        raise RtsegError(f"--workers {args.workers} --queue {args.queue}: expected at least 1 worker and a queue "
                         "of 0 or more")
    for name in ("max_mb", "max_pixels", "max_batch", "max_streams", "stream_idle"):
        if getattr(args, name) <= 0:
            raise RtsegError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive number")
    limits = ServeLimits(max_bytes=int(args.max_mb * 2**20), max_pixels=args.max_pixels, max_batch=args.max_batch,
                         queue=args.queue, max_streams=args.max_streams, stream_idle_s=args.stream_idle)
    if args.web_runtime is not None and not args.in_browser:
        raise RtsegError("--web-runtime is the page's runtime for --in-browser: add --in-browser")
    if args.in_browser:
        from rtseg.serve.browser import find_runtime

        find_runtime(args.web_runtime)  # a missing runtime is an error before the model loads
    check_address(args.host, args.port)
    security = security_for(args.host, _names(args.allowed_hosts), _names(args.allowed_origins), args.api_key)
    print(f"rtseg serve: http://{args.host}:{args.port}/  (API docs at /docs; Ctrl-C stops)", flush=True)
    serve(args.weights, host=args.host, port=args.port, device=args.device, backend=options.resolve_backend(args),
          threads=args.threads, workers=args.workers, limits=limits, security=security, log_level=args.log_level,
          tta=args.tta, announce=lambda m: print(m, flush=True), size=options.parse_size(args.size),
          in_browser=args.in_browser, web_runtime=args.web_runtime)
    return 0


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]
