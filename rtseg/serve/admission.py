"""What the server takes in, and how much: :class:`ServeLimits` (bytes, pixels, images per batch,
queue, streams), :class:`InferencePool` (``workers`` threads, at most ``workers + queue`` requests
admitted, :class:`Busy` beyond) and request bodies and forms read within the limits."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rtseg.errors import RtsegError
from rtseg.serve.errors import ApiError

try:  # the serve extra; create_app says how to install it when it is missing
    from starlette.exceptions import HTTPException
except ImportError:  # pragma: no cover - depends on the install
    HTTPException = None


@dataclass
class ServeLimits:
    """What one request may carry, and how many may wait."""

    max_bytes: int = 20 * 2**20  # request body, and one stream frame
    max_pixels: int = 4096 * 4096  # decoded image
    max_batch: int = 16  # images per /v1/segment/batch
    queue: int = 32  # requests admitted beyond those running
    max_streams: int = 4  # WebSocket streams open at once; the next is refused (1013, try again later)
    stream_idle_s: float = 60.0  # a stream that sends nothing for this long is closed


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
