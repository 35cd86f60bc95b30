"""The live mode: ``WS /v1/stream``, a binary message per frame and a JSON reply per frame, with
the API key in the handshake or as the first message, at most ``max_streams`` open at once and
a stream closed after ``stream_idle_s`` of silence."""

# No "from __future__ import annotations": FastAPI reads the endpoint annotations at run time.

import asyncio
import json

from rtseg.serve.errors import ApiError
from rtseg.serve.state import ServerState, _state

try:  # the serve extra; create_app says how to install it when it is missing
    from fastapi import WebSocket, WebSocketDisconnect
except ImportError:  # pragma: no cover - depends on the install
    WebSocket = WebSocketDisconnect = None


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
