"""What the routes share: :class:`ServerState` (the model, the per-frame path, the pool, the limits
and the open streams) and the small helpers around it (the timing headers, the output check)."""

import base64
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from rtseg.inference import ImageTooLarge, ImageTooThin, Segmenter
from rtseg.serve.admission import Busy, InferencePool, ServeLimits
from rtseg.serve.errors import ApiError
from rtseg.serve.security import ServeSecurity
from rtseg.streaming import OUTPUTS, FrameSegmenter, NotAnImage


class ServerState:
    """What the routes share: the model, the per-frame path, the pool, limits and open streams."""

    def __init__(self, seg: Segmenter, limits: ServeLimits, security: ServeSecurity, workers: int,
                 browser=None) -> None:
        self.seg, self.limits, self.security = seg, limits, security
        #: The network offered to the page (rtseg.serve.browser.BrowserModel), or None.
        self.browser = browser
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


def check_output(output: str, alpha: float) -> None:
    if output not in OUTPUTS:
        raise ApiError(400, f"output {output!r}: expected one of {', '.join(OUTPUTS)}")
    if not 0.0 <= alpha <= 1.0:
        raise ApiError(400, f"alpha {alpha}: expected a value from 0 to 1")
