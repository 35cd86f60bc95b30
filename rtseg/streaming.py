"""One per-frame path for everything that streams frames: ``rtseg video``, the server's
``/v1/segment`` and the web page's live mode (``/v1/stream``).

A :class:`FrameSegmenter` takes an RGB uint8 frame, runs the network and renders what
was asked for (class indices, colour mask, overlay), timing each stage. Colouring and blending
run in OpenCV's uint8 kernels on one thread each (``cv2.setNumThreads(1)``): on a 2-core CPU
every extra OpenCV or decoder thread takes a core from the network.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from rtseg.errors import RtsegError
from rtseg.inference import ImageTooLarge, Segmenter

#: What a frame can be rendered as.
OUTPUTS = ("labels", "color", "overlay", "json")


@dataclass
class FrameTiming:
    """Milliseconds per stage of one frame."""

    decode_ms: float = 0.0
    network_ms: float = 0.0
    render_ms: float = 0.0
    encode_ms: float = 0.0

    def to_dict(self) -> dict:
        return {k: round(v, 2) for k, v in self.__dict__.items()}


@dataclass
class SegmentedFrame:
    mask: np.ndarray  # (H, W) uint8 class indices at the frame's size
    timing: FrameTiming = field(default_factory=FrameTiming)


def quiet_opencv() -> None:
    """One OpenCV thread: its kernels here are small, and its pool would compete with the
    network's intra-op threads for the cores (measured: see the README's video section)."""
    cv2.setNumThreads(1)


class FrameSegmenter:
    """Segment frames and render them (colours from the model's class table)."""

    def __init__(self, seg: Segmenter) -> None:
        self.seg = seg
        self.pil_palette = seg.classes.palette_array().reshape(-1).tolist()  # for palette PNGs

    # ------------------------------------------------------------------ decode / segment

    @staticmethod
    def decode(data: bytes, max_pixels: int | None = None) -> np.ndarray:
        """Encoded image bytes (PNG, JPEG, BMP, WebP, TIFF) -> (H, W, 3) RGB uint8.

        With ``max_pixels`` (the server) the size comes from the header first, so a
        decompression bomb is refused before it decodes, and bytes whose header PIL cannot read
        are refused too: OpenCV alone would decode up to 2**30 pixels."""
        buf = np.frombuffer(data, dtype=np.uint8)
        if max_pixels is not None:
            try:
                with Image.open(io.BytesIO(data)) as im:
                    w, h = im.size
            except Image.DecompressionBombError as e:
                raise FrameTooLarge(f"image larger than {max_pixels} pixels ({e})") from None
            except Exception:  # any unreadable header (PIL raises a dozen kinds)
                raise NotAnImage(_NOT_AN_IMAGE) from None
            if w * h > max_pixels:
                raise FrameTooLarge(f"image of {w}x{h} pixels is larger than {max_pixels} pixels")
        try:
            bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if len(buf) else None
        except cv2.error:  # some corrupt files raise instead of returning None
            bgr = None
        if bgr is None:
            raise NotAnImage(_NOT_AN_IMAGE)
        if max_pixels is not None and bgr.shape[0] * bgr.shape[1] > max_pixels:
            raise FrameTooLarge(f"image of {bgr.shape[1]}x{bgr.shape[0]} pixels is larger than "
                                f"{max_pixels} pixels")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def segment(self, rgb: np.ndarray) -> SegmentedFrame:
        """(H, W, 3) RGB uint8 -> class indices at the frame's size, with the network time."""
        start = time.perf_counter()
        mask = self.seg.predict(rgb)
        return SegmentedFrame(mask, FrameTiming(network_ms=(time.perf_counter() - start) * 1000))

    # ------------------------------------------------------------------ render

    def color(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) class indices -> (H, W, 3) RGB colour mask."""
        return self.seg.colorize(mask)

    def overlay(self, frame: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The colour mask blended onto the RGB frame (:func:`rtseg.visualize.overlay`)."""
        return self.seg.overlay(frame, mask, alpha)

    def fractions(self, mask: np.ndarray) -> list[dict]:
        """Per class: name, RGB colour and the share of the frame's pixels."""
        counts = np.bincount(mask.ravel(), minlength=self.seg.num_classes)[: self.seg.num_classes]
        total = max(int(mask.size), 1)
        return [{"id": i, "name": name, "color": list(map(int, self.seg.classes.palette[i])),
                 "fraction": round(int(c) / total, 5)}
                for i, (name, c) in enumerate(zip(self.seg.class_names, counts))]

    # ------------------------------------------------------------------ encode

    def labels_png(self, mask: np.ndarray) -> bytes:
        """Class indices as a palette PNG: each pixel's value is its class id, and the embedded
        palette shows the class colours in any image viewer or browser."""
        im = Image.fromarray(mask, mode="L")
        im.putpalette(self.pil_palette)  # turns the image into mode P, values unchanged
        out = io.BytesIO()
        im.save(out, format="PNG", compress_level=1)
        return out.getvalue()

    @staticmethod
    def png(rgb: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:  # pragma: no cover - OpenCV always encodes PNG
            raise RtsegError("cannot encode PNG")
        return buf.tobytes()

    def render(self, rgb: np.ndarray, frame: SegmentedFrame, output: str, alpha: float = 0.5) -> bytes:
        """PNG bytes of ``output`` (labels, color or overlay) for a segmented RGB frame."""
        start = time.perf_counter()
        if output == "labels":
            data = self.labels_png(frame.mask)
            frame.timing.encode_ms += (time.perf_counter() - start) * 1000
            return data
        image = self.color(frame.mask) if output == "color" else self.overlay(rgb, frame.mask, alpha)
        mid = time.perf_counter()
        frame.timing.render_ms += (mid - start) * 1000
        data = self.png(image)
        frame.timing.encode_ms += (time.perf_counter() - mid) * 1000
        return data


class NotAnImage(RtsegError):
    """The bytes do not decode as an image."""


class FrameTooLarge(ImageTooLarge):
    """The encoded image has more pixels than the server allows."""


_NOT_AN_IMAGE = "not an image: expected PNG, JPEG, BMP, WebP or TIFF bytes"
