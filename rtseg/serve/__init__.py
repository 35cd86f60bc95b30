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

The modules, lowest first (each imports only those above it in this list):

- :mod:`rtseg.serve.errors`: :class:`ApiError`, a refusal answered as JSON, and its schema.
- :mod:`rtseg.serve.security`: the Host/Origin checks, the API key, the :class:`Guard`
  middleware and :func:`security_for`.
- :mod:`rtseg.serve.admission`: :class:`ServeLimits`, the bounded :class:`InferencePool`
  and request bodies and forms read within the limits.
- :mod:`rtseg.serve.state`: :class:`ServerState`, what the routes share.
- :mod:`rtseg.serve.websocket`: the live stream (``WS /v1/stream``).
- :mod:`rtseg.serve.routes`: the HTTP routes, their OpenAPI description and error handlers.
- :mod:`rtseg.serve.app`: :func:`create_app`, :func:`check_address` and :func:`serve`.

FastAPI and uvicorn (the serve extra) are needed to run a server, not to import this package.
"""

from rtseg.serve.admission import Busy, InferencePool, ServeLimits, read_body, read_form
from rtseg.serve.app import check_address, create_app, serve
from rtseg.serve.errors import ApiError, ErrorBody
from rtseg.serve.routes import health, model_info, page, segment, segment_batch
from rtseg.serve.security import (
    LOOPBACK_HOSTS,
    PUBLIC_PATHS,
    PUBLIC_PREFIXES,
    Guard,
    ServeSecurity,
    is_loopback,
    security_for,
)
from rtseg.serve.state import ServerState, check_output
from rtseg.serve.websocket import stream

__all__ = ["LOOPBACK_HOSTS", "PUBLIC_PATHS", "PUBLIC_PREFIXES", "ApiError", "Busy", "ErrorBody", "Guard",
           "InferencePool", "ServeLimits", "ServeSecurity", "ServerState", "check_address", "check_output",
           "create_app", "health", "is_loopback", "model_info", "page", "read_body", "read_form", "security_for",
           "segment", "segment_batch", "serve", "stream"]
