"""The HTTP routes (the page, ``/health``, ``/v1/model``, ``/v1/segment``, ``/v1/segment/batch``),
their OpenAPI description, and how they and the stream are added to an application, errors
answered as JSON."""

# No "from __future__ import annotations": FastAPI reads the endpoint annotations at run time.

from rtseg.serve.admission import read_body, read_form
from rtseg.serve.errors import ApiError, ErrorBody
from rtseg.serve.state import _state, _timing_headers, check_output
from rtseg.serve.websocket import stream

try:  # the serve extra; create_app says how to install it when it is missing
    from fastapi import Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException
except ImportError:  # pragma: no cover - depends on the install
    Request = HTMLResponse = JSONResponse = Response = HTTPException = None


async def page(request: Request):
    state = _state(request)
    # Cross-origin isolation lets onnxruntime-web run the page's network on several threads
    # (SharedArrayBuffer); everything the page loads is its own origin's.
    headers = None
    if state.browser is not None:
        from rtseg.serve.browser import ISOLATION

        headers = ISOLATION
    return HTMLResponse((state.web / "index.html").read_text(), headers=headers)


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
            "limits": state.limits_info(),
            "browser_model": state.browser.info() if state.browser is not None else None}


async def browser_model(request: Request):
    state = _state(request)
    if state.browser is None:
        raise ApiError(404, "this server does not hand out its network: start it with rtseg serve --in-browser")
    return Response(state.browser.path.read_bytes(), media_type="application/octet-stream",
                    headers={"Cache-Control": "no-cache"})


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


_ERRORS = {status: {"model": ErrorBody, "description": text} for status, text in [
    (400, "Bad request: not an image, a bad parameter, a malformed form"),
    (401, "Missing or wrong API key"), (403, "Origin not allowed"),
    (404, "Not offered: the server was started without --in-browser"),
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
    app.add_api_route("/v1/model.onnx", browser_model, methods=["GET"], summary="The network for the page to run",
                      description="The ONNX graph (class map inside) the page runs in the browser; 404 unless the "
                                  "server was started with --in-browser.",
                      responses={**errors, 404: _ERRORS[404]})
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
