"""Segment a video, a folder of frames or a camera, with decoding, inference and encoding
overlapped in threads joined by bounded queues (``rtseg video``)."""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rtseg.errors import RtsegError
from rtseg.inference import Segmenter, load_model
from rtseg.io import expand_image_inputs
from rtseg.progress import progress_bar
from rtseg.visualize import stamp_legend

_END = object()


@dataclass
class VideoSource:
    """Frames as RGB uint8 arrays, in order, with the source frame rate."""

    description: str
    fps: float
    total: int | None
    frames: Iterator[np.ndarray] = field(repr=False)
    #: A camera: frames arrive in real time, so latency matters more than throughput.
    live: bool = False
    #: The frame files of a folder or glob, in order (errors name them).
    names: list[str] | None = None


def open_source(spec: str, fps: float | None = None) -> VideoSource:
    """A video file, a folder or glob of frames, or a camera index ('0'). Checks that the first
    frame can be read before any work starts."""
    if spec.isdigit():
        cap = cv2.VideoCapture(int(spec))
        if not cap.isOpened():
            raise RtsegError(f"camera {spec} cannot be opened")
        source = _from_capture(cap, f"camera {spec}", fps or cap.get(cv2.CAP_PROP_FPS) or 30.0, None)
        source.live = True
        return source
    path = Path(spec)
    if path.is_dir() or any(c in spec for c in "*?["):
        files = expand_image_inputs([spec])
        if cv2.imread(str(files[0])) is None:
            raise RtsegError(f"cannot read frame {files[0]}")

        def frames() -> Iterator[np.ndarray]:
            for f in files:
                bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise RtsegError(f"cannot read frame {f}")
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

        return VideoSource(f"{len(files)} frames from {spec}", fps or 10.0, len(files), frames(),
                           names=[str(f) for f in files])
    if not path.is_file():
        raise RtsegError(f"video input not found: {spec}")
    cap = cv2.VideoCapture(str(path))
    ok = cap.isOpened() and cap.grab()
    if not ok:
        raise RtsegError(f"cannot decode video {spec}: unsupported codec or not a video file")
    cap.release()
    # One decoder thread: FFmpeg's own decoding threads would run at full priority beside the
    # network's (a 480x360 frame decodes in 1-2 ms on one thread).
    cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():  # a backend without the property
        cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    return _from_capture(cap, str(path), fps or cap.get(cv2.CAP_PROP_FPS) or 30.0, total)


def _from_capture(cap, description: str, fps: float, total: int | None) -> VideoSource:
    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    return VideoSource(description, float(fps), total, frames())


def check_output(path: Path, labels_only: bool = False) -> None:
    if labels_only:
        if path.exists() and not path.is_dir():
            raise RtsegError(f"--out {path}: --labels-only writes a folder of PNGs; {path} is a file")
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise RtsegError(f"--out {path}: folder is not writable")
        return
    if path.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
        raise RtsegError(f"--out {path}: expected a .mp4, .avi, .mkv or .mov file (or a folder with --labels-only)")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise RtsegError(f"--out {path}: folder {parent} is not writable")


def _fourcc(path: Path) -> int:
    return cv2.VideoWriter_fourcc(*("XVID" if path.suffix.lower() == ".avi" else "mp4v"))


def _lower_priority() -> None:
    """Decoding and encoding threads yield the cores to the network's threads (Linux applies
    nice values per thread): with 2 intra-op threads on 2 cores, any other thread that takes a
    core stalls both network threads at their next barrier. Measured on the 2-core CPU (README):
    nice 10 beats equal priority; Linux's SCHED_IDLE class was slower still, as it starves the
    video decoder's own threads and the network then waits for frames."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        pass


class _Pipeline:
    """The stages of :func:`segment_video`: :meth:`read` (a thread: decode), :meth:`infer` (the
    calling thread: batches through the network), :meth:`write` (a thread: overlay + encode, or
    label PNGs), joined by bounded queues; :meth:`summary` gathers the figures."""

    def __init__(self, seg: Segmenter, source: VideoSource, out: Path, gif, alpha: float, queue_size: int,
                 labels_only: bool, batch: int, legend: bool = True) -> None:
        from rtseg.streaming import FrameSegmenter

        self.seg, self.source, self.out, self.gif, self.alpha = seg, source, out, gif, alpha
        self.labels_only, self.batch = labels_only, batch
        self.frames = FrameSegmenter(seg)
        #: (h, w, 3) RGB class key drawn into the top-right corner of every frame (None: no legend).
        self.key = seg.legend() if legend and not labels_only else None
        self.partial = out.with_name(f".{out.stem}.partial{out.suffix}")
        self.decoded: queue.Queue = queue.Queue(maxsize=queue_size)
        self.predicted: queue.Queue = queue.Queue(maxsize=queue_size)
        self.stats = {"decode_s": 0.0, "inference_s": 0.0, "render_s": 0.0, "encode_s": 0.0, "frames_in": 0,
                      "frames_out": 0, "decode_cpu_s": 0.0, "write_cpu_s": 0.0}
        self.errors: list[BaseException] = []
        self.gif_frames: list[np.ndarray] = []
        self.it = iter(source.frames)
        self.first = next(self.it, None)
        self.recent: list[float] = []  # seconds per frame of the last 30 frames: the FPS drawn
        self.stop = threading.Event()  # the network stage failed: the reader stops decoding
        self.read_all = False  # the network stage has taken the reader's end marker

    # ------------------------------------------------------------------ decode (thread)

    def read(self) -> None:
        _lower_priority()
        cpu = time.thread_time()
        try:
            frame = self.first
            while frame is not None and not self.stop.is_set():
                self.stats["frames_in"] += 1
                self.decoded.put(frame)
                start = time.perf_counter()
                frame = next(self.it, None)
                self.stats["decode_s"] += time.perf_counter() - start
        except BaseException as e:  # surfaced in the main thread
            self.errors.append(e)
        finally:
            self.stats["decode_cpu_s"] = time.thread_time() - cpu
            self.decoded.put(_END)

    # ------------------------------------------------------------------ network (calling thread)

    def check_frame(self, index: int, frame: np.ndarray) -> None:
        """A frame beyond the model's size limits is an error naming the frame (its file for a
        folder), before it reaches the network."""
        from rtseg.inference import ImageSizeError

        try:
            self.seg.check_size(*frame.shape[:2])
        except ImageSizeError as e:
            names = self.source.names
            where = names[index] if names and index < len(names) else f"{self.source.description}, frame {index}"
            raise type(e)(f"{where}: {e}") from None

    def infer(self, bar) -> None:
        pending: list[np.ndarray] = []
        index = 0
        while True:
            frame = self.decoded.get()
            if frame is _END:
                self.read_all = True
                break
            if pending and frame.shape != pending[0].shape:
                self.run_batch(pending, bar)  # frames of another size: a batch holds one size
            if not pending:
                self.check_frame(index, frame)  # one size per batch: checking its first frame is enough
            index += 1
            pending.append(frame)
            if len(pending) == self.batch:
                self.run_batch(pending, bar)
        if pending:
            self.run_batch(pending, bar)

    def run_batch(self, pending: list[np.ndarray], bar) -> None:
        # A short last batch is padded with its last frame, so a compiled network sees one shape.
        padded = pending + [pending[-1]] * (self.batch - len(pending))
        start = time.perf_counter()
        masks = self.seg.predict_batch(padded)
        dt = time.perf_counter() - start
        self.stats["inference_s"] += dt * len(pending) / len(padded)
        for frame, mask in zip(pending, masks):
            self.recent.append(dt / len(padded))
            del self.recent[:-30]
            self.predicted.put((frame, mask, len(self.recent) / sum(self.recent)))
            bar.update(1)
        pending.clear()

    # ------------------------------------------------------------------ overlay + encode (thread)

    def write(self) -> None:
        _lower_priority()
        cpu = time.thread_time()
        vw = None
        try:
            while True:
                item = self.predicted.get()
                if item is _END:
                    break
                frame, mask, fps_now = item
                if self.labels_only:
                    self.write_labels(self.stats["frames_out"], mask)
                else:
                    vw = self.write_overlay(vw, frame, mask, fps_now)
                self.stats["frames_out"] += 1
        except BaseException as e:
            self.errors.append(e)
            while self.predicted.get() is not _END:  # keep draining so the producer never blocks
                pass
        finally:
            self.stats["write_cpu_s"] = time.thread_time() - cpu
            if vw is not None:
                vw.release()

    def write_labels(self, index: int, mask: np.ndarray) -> None:
        from rtseg.io import atomic_write_bytes

        start = time.perf_counter()
        atomic_write_bytes(self.out / f"frame_{index:06d}.png", self.frames.labels_png(mask))
        self.stats["encode_s"] += time.perf_counter() - start

    def write_overlay(self, vw, frame: np.ndarray, mask: np.ndarray, fps_now: float):
        """One overlay frame with the FPS drawn, into the video (opened on the first frame)."""
        start = time.perf_counter()
        blended = self.frames.overlay(frame, mask, self.alpha)  # RGB, uint8 kernels
        small = None
        if self.gif is not None:  # half size, the key drawn after so that its text stays readable
            small = cv2.resize(blended, (blended.shape[1] // 2, blended.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if self.key is not None:
            stamp_legend(blended, self.key)  # in place: 0.05 ms
            if small is not None:
                stamp_legend(small, self.key)
        bgr = cv2.cvtColor(blended, cv2.COLOR_RGB2BGR)
        cv2.putText(bgr, f"{fps_now:5.1f} FPS", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (255, 255, 255), 2, cv2.LINE_AA)
        mid = time.perf_counter()
        self.stats["render_s"] += mid - start
        if vw is None:
            h, w = bgr.shape[:2]
            vw = cv2.VideoWriter(str(self.partial), _fourcc(self.out), self.source.fps, (w, h))
            if not vw.isOpened():
                raise RtsegError(f"cannot write {self.out}: no encoder for {self.out.suffix} in this OpenCV build")
        vw.write(bgr)
        if small is not None:
            self.gif_frames.append(small)
        self.stats["encode_s"] += time.perf_counter() - mid
        return vw

    # ------------------------------------------------------------------ run and finish

    def run(self, progress: bool) -> tuple[float, float]:
        """All three stages, overlapped; (wall, CPU) seconds."""
        if self.first is not None:
            self.check_frame(0, self.first)  # before compiling or starting a thread
            if getattr(self.seg, "compiled", False):
                # Compile now, outside every timing: the FPS drawn is the network's.
                self.seg.predict_batch([self.first] * self.batch)
        threads = [threading.Thread(target=self.read, daemon=True), threading.Thread(target=self.write, daemon=True)]
        # Eager PyTorch takes the GIL for every one of the network's few hundred ops; the decode and
        # encode threads must hand it back quickly when they hold it (default: after up to 5 ms).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        wall, cpu = time.perf_counter(), time.process_time()
        for t in threads:
            t.start()
        bar = progress_bar(total=self.source.total, desc="video", unit="frame", progress=progress)
        try:
            self.infer(bar)
        finally:
            self.predicted.put(_END)
            self.drain()  # an error in infer leaves the reader blocked on a full queue
            for t in threads:
                t.join()
            bar.close()
            sys.setswitchinterval(switch_interval)
        return time.perf_counter() - wall, time.process_time() - cpu

    def drain(self) -> None:
        if not self.read_all:
            self.stop.set()
            while self.decoded.get() is not _END:
                pass

    def summary(self, wall: float, cpu: float) -> dict:
        """Renames the finished video into place, writes the GIF; the figures."""
        if self.errors:
            self.partial.unlink(missing_ok=True)
            raise self.errors[0]
        if self.stats["frames_out"] == 0:
            self.partial.unlink(missing_ok=True)
            raise RtsegError(f"{self.source.description}: no frames decoded")
        if not self.labels_only:
            os.replace(self.partial, self.out)
        if self.gif is not None and not self.labels_only:
            from rtseg.visualize import save_gif

            save_gif(self.gif_frames, self.gif, fps=min(self.source.fps, 25.0))
        n = self.stats["frames_out"]
        return {**self.stats, "wall_s": wall, "fps_overall": n / wall,
                "fps_network": n / max(self.stats["inference_s"], 1e-9), "process_cpu_s": cpu,
                "cores_busy": cpu / wall, "source_fps": self.source.fps, "output": str(self.out),
                "labels_only": self.labels_only}


def segment_video(seg: Segmenter, source: VideoSource, out: str | Path, gif: str | Path | None = None,
                  alpha: float = 0.5, queue_size: int = 8, progress: bool = True,
                  labels_only: bool = False, batch: int | None = None, legend: bool = True) -> dict:
    """Decode -> segment -> overlay + encode, overlapped; every frame is written, in order, at
    the source frame rate, with the measured network FPS drawn on it and (``legend``) the class
    colours and names in its top-right corner (the classes :meth:`Segmenter.show` chose). The video is written to a
    temporary file and renamed when complete. ``labels_only``: ``out`` is a folder that gets one
    class-index PNG per frame (``frame_000000.png``, ...; palette PNGs, written atomically) and no
    video. A compiled model compiles on the first frame before the clock starts. A frame beyond
    the model's size limits (:meth:`Segmenter.check_size`) is an error naming the frame.

    ``batch``: frames per network pass (default: 2 for files and folders, 1 for a camera, where
    latency matters). Two frames per pass are ~17% cheaper per frame than one on a 2-core CPU
    (ENet eager: 27.5 against 33.3 ms); a short last batch is padded with its last frame, so a
    compiled network sees one shape. Returns per-stage wall time, each stage's CPU time and
    the process's CPU use."""
    from rtseg.streaming import quiet_opencv

    quiet_opencv()
    out = Path(out)
    check_output(out, labels_only)
    if batch is None:
        batch = 1 if source.live else 2
    if batch < 1:
        raise RtsegError(f"--batch {batch}: expected 1 or more")
    pipeline = _Pipeline(seg, source, out, gif, alpha, queue_size, labels_only, batch, legend)
    try:
        wall, cpu = pipeline.run(progress)
    except BaseException:
        pipeline.partial.unlink(missing_ok=True)  # a failed run leaves no half-written video
        raise
    return pipeline.summary(wall, cpu)


def process_video(source: str, out: str | Path, weights: str | Path | None = None, *, device: str = "auto",
                  compile: bool = False, bf16: bool = False, threads: int = 0, runtime: str | None = None,
                  gif: str | Path | None = None,
                  alpha: float = 0.5,
                  fps: float | None = None, labels_only: bool = False, batch: int | None = None,
                  progress: bool = True, on_ready=None, backend: str | None = None, tta: str = "none",
                  announce=None, size: tuple[int, int] | None = None, classes: str | list[str] | None = None,
                  legend: bool = True) -> dict:
    """``rtseg video``: a video file, a folder or glob of frames, or a camera index -> a video
    with the prediction overlaid and the measured FPS drawn (see :func:`segment_video`).
    Bad inputs and outputs fail before the model loads. ``on_ready(segmenter)`` is called once
    the model is loaded (the CLI announces compilation there). ``backend``: how the network runs
    (:func:`rtseg.load_model`; ``"auto"`` picks for a stream and calls ``announce`` with the
    choice); ``compile``, ``bf16``, ``runtime`` are its older spelling. ``tta``: "flip" for
    test-time flip averaging. ``size``: the network's working size (:func:`rtseg.load_model`).
    ``classes``: the class names drawn (the others stay uncoloured; :meth:`Segmenter.show`);
    ``legend``: the class key in each frame's corner. Returns per-stage timings."""
    if labels_only and gif:
        raise RtsegError("--gif shows overlays: it cannot go with --labels-only")
    if batch is not None and batch < 1:
        raise RtsegError(f"--batch {batch}: expected 1 or more")
    frames = open_source(str(source), fps=fps)  # fails before any work on a bad input
    check_output(Path(out), labels_only)
    # The first frame's size tells auto which graph the video needs (a 16:9 one is not the
    # model's 4:3); it is put back in front of the others.
    it = iter(frames.frames)
    first = next(it, None)
    frames.frames = itertools.chain([] if first is None else [first], it)
    seg = load_model(weights, device=device, compile=compile, bf16=bf16, threads=threads, runtime=runtime,
                     backend=backend, workload="stream", frames=frames.total, tta=tta, announce=announce, size=size,
                     frame_size=None if first is None else first.shape[:2])
    seg.show(classes)
    if on_ready is not None:
        on_ready(seg)
    return segment_video(seg, frames, out, gif=gif, alpha=alpha, progress=progress, labels_only=labels_only,
                         batch=batch, legend=legend)
