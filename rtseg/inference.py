"""Inference API: ``rtseg.load_model("enet-camvid").predict(image)``, and :func:`predict`, which
segments image files to disk (``rtseg predict``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rtseg.datasets.base import read_image
from rtseg.datasets.classes import ClassTable
from rtseg.datasets.transforms import normalize
from rtseg.errors import RtsegError
from rtseg.io import expand_image_inputs
from rtseg.models.tta import with_tta
from rtseg.progress import progress_bar
from rtseg.runtime import class_map, class_map_one_thread, reuse_freed_memory, select_device  # noqa: F401
from rtseg.visualize import legend, overlay, panel, save_gif, save_png, with_legend
from rtseg.weights import load_weights

#: Longest side over shortest side accepted. The working size scales the shorter side to the
#: training resolution, so the work grows with the aspect ratio: 8:1 keeps ENet at 360x2880
#: (6x the pixels of its 480x360 training frames) and is wider than street-scene cameras
#: (CamVid 4:3, Cityscapes 2:1, a stitched three-camera panorama ~6:1). A 10x4000 strip would
#: otherwise run at 360x144000 (8 GB, a minute); such inputs are refused, not silently squashed.
MAX_ASPECT = 8.0
#: Most pixels in an input image. The prediction is resized back to the input size as float
#: logits (4 bytes x classes x pixels: 1.5 GB for 11 classes at this cap), so the input size
#: bounds memory even when the network's work is bounded. 8K UHD (7680x4320) fits.
MAX_INPUT_PIXELS = 8192 * 4096
#: Most pixels the network runs at. With a recorded training resolution and MAX_ASPECT this
#: only binds for large training sizes; without one (the input size is used as is) it keeps a
#: huge image from running at full size: larger working sizes are scaled down to fit.
MAX_WORKING_PIXELS = 4 * 2**20


class ImageSizeError(RtsegError, ValueError):
    """An input image outside the limits on its size or shape (see :data:`MAX_ASPECT`)."""


class ImageTooLarge(ImageSizeError):
    """More pixels than allowed (the server answers 413)."""


class ImageTooThin(ImageSizeError):
    """A longer side more than ``max_aspect`` times the shorter one (the server answers 422)."""


def check_image_size(height: int, width: int, max_pixels: int = MAX_INPUT_PIXELS,
                     max_aspect: float = MAX_ASPECT) -> None:
    """An :class:`ImageSizeError` saying what was expected when an image of ``height`` x
    ``width`` is empty, has more than ``max_pixels`` pixels or a more extreme aspect ratio than
    ``max_aspect``:1. Sizes are reported as WIDTHxHEIGHT, as image tools do."""
    if height < 1 or width < 1:
        raise ImageTooThin(f"image of {width}x{height} pixels is empty")
    if height * width > max_pixels:
        raise ImageTooLarge(f"image of {width}x{height} pixels is larger than {max_pixels} pixels")
    aspect = max(height, width) / min(height, width)
    if aspect > max_aspect:
        raise ImageTooThin(f"image of {width}x{height} pixels has an aspect ratio of {aspect:.0f}:1; "
                           f"expected at most {max_aspect:g}:1 (the network works at a fixed shorter side, "
                           "so a thin strip costs as much as a huge image)")


def image_file_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from an image file's header without decoding it, or None when the header
    cannot be read (the decoder then reports the problem)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:  # any unreadable header: read_image names the file and the problem
        return None


def working_size(height: int, width: int, input_size) -> tuple[int, int]:
    """(H, W) a network trained at ``input_size`` (or None) works at for an input of this size:
    its shorter side matched to the training size's, at most :data:`MAX_WORKING_PIXELS`."""
    scale = min(input_size) / min(height, width) if input_size else 1.0
    # Cap the pixels, not just the shorter side: without a training size, or with a large one,
    # the working size would follow the input (a 6000x4000 photo at full size).
    scale = min(scale, (MAX_WORKING_PIXELS / (height * width)) ** 0.5)
    h, w = max(8, round(height * scale)), max(8, round(width * scale))
    if h * w > MAX_WORKING_PIXELS:  # rounded up past the cap: round down instead
        h, w = max(8, int(height * scale)), max(8, int(width * scale))
    return h, w


class Segmenter:
    """A trained model with what it needs to run on raw images.

    ``predict`` takes an (H, W, 3) uint8 RGB array or an image path and returns an (H, W) uint8
    array of class indices (see :attr:`class_names` and :attr:`palette`). Images are resized so
    that their shorter side matches the training resolution (when the checkpoint records one),
    and the prediction is resized back to the input size.

    The work per image is bounded: inputs with more than :attr:`max_pixels` pixels (default
    :data:`MAX_INPUT_PIXELS`) or an aspect ratio beyond :attr:`max_aspect`:1 (default
    :data:`MAX_ASPECT`) raise :class:`ImageTooLarge` / :class:`ImageTooThin`, and the working
    size never exceeds :data:`MAX_WORKING_PIXELS`. Every caller (``rtseg predict``, ``rtseg
    video``, the server) goes through :meth:`working_size`, so all get the same limits.

    ``backend`` names how the network runs (:mod:`rtseg.backends`: ``torch``, ``torch-compile``,
    ``torch-bf16``, ``torch-int8``, ``onnxruntime[-int8]``, ``opencv``, ``openvino[-int8]``);
    every command builds it through the same registry, so ``rtseg eval --backend X`` scores what
    ``predict``, ``video`` and ``serve`` run for X. ``tta="flip"`` averages the network over each
    image and its mirror image (twice the work; see :mod:`rtseg.models.tta`), whatever the
    backend. ``compile`` and ``bf16`` are the older spelling of ``torch-compile`` and
    ``torch-bf16``. ``calibration``: (H, W, 3) uint8 frames for the int8 backends (default: the
    street frames the package carries).
    """

    def __init__(self, model: nn.Module, classes: ClassTable, mean, std,
                 input_size: list[int] | None = None, device: str | torch.device = "cpu",
                 name: str = "", compile: bool = False, tta: str = "none", bf16: bool = False,
                 backend: str | None = None, threads: int = 0,
                 calibration: list[np.ndarray] | None = None) -> None:
        from rtseg.backends import BuildOptions, build_runner, default_calibration, get_backend

        self.device = torch.device(device)
        #: The PyTorch network the runner was built from (None for an exported file): what
        #: ``rtseg serve --in-browser`` exports for the page.
        self.network = model if isinstance(model, nn.Module) else None
        #: The runner with the class map inside (:meth:`Backend.build_class_runner`), or None.
        self.class_runner = None
        if backend is None:
            backend = "torch-bf16" if bf16 else "torch-compile" if compile else "torch"
        elif compile or bf16:
            raise RtsegError(f"--backend {backend}: --compile and --bf16 are the older spelling of "
                             "--backend torch-compile / torch-bf16; give one of them")
        b = get_backend(backend)
        if isinstance(model, nn.Module):
            if b.cpu_only:
                self.device = torch.device("cpu")  # the graph runtimes and oneDNN int8 run on the CPU
            if self.device.type == "cpu":  # the instruction-set needs are the CPU's (bf16 is native on GPUs)
                b.check()
            if b.requires.calibration and not calibration:
                calibration = default_calibration()
            options = BuildOptions(threads=threads, device=self.device, calibration=calibration,
                                   mean=tuple(mean), std=tuple(std))
            runner = build_runner(model.to(self.device), backend, options=options)
            if tta == "none" and self.device.type == "cpu":
                self.class_runner = b.build_class_runner(model, options)
        elif backend not in ("torch", getattr(model, "runtime", None)):
            raise RtsegError(f"{name or 'this model'}: --backend {backend} needs PyTorch weights (a checkpoint "
                             f"or a shipped model); an exported ONNX file runs as it is in "
                             f"{getattr(model, 'runtime', 'onnxruntime')}")
        else:
            runner = model.eval()  # an exported model's wrapper
            backend = getattr(model, "runtime", "onnxruntime")
        self.model = with_tta(runner, tta)
        #: The backend the network runs on (rtseg.backends).
        self.backend = backend
        #: It runs in a runtime with its own threads (OpenVINO, ONNX Runtime, OpenCV, oneDNN int8).
        self.backend_cpu_only = get_backend(backend).cpu_only
        #: "none" or "flip" (test-time flip averaging).
        self.tta = tta
        #: Built on the first frame of each size (compiled, exported or quantised): callers warm up.
        self.compiled = isinstance(model, nn.Module) and backend != "torch"
        self.classes = classes
        self.mean, self.std = tuple(mean), tuple(std)
        self.input_size = tuple(input_size) if input_size else None
        self.name = name
        #: Static-shape exports run at exactly this (H, W).
        self.fixed_size: list[int] | None = None
        #: Limits on an input image (see :func:`check_image_size`).
        self.max_pixels, self.max_aspect = MAX_INPUT_PIXELS, MAX_ASPECT
        #: Class indices drawn in colour (:meth:`show`; None: every class).
        self.shown: tuple[int, ...] | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.classes.names)

    @property
    def palette(self) -> np.ndarray:
        """(num_classes, 3) uint8 RGB colours."""
        return np.asarray(self.classes.palette, dtype=np.uint8)

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    def check_size(self, height: int, width: int) -> None:
        """An :class:`ImageSizeError` when an input of this size is beyond this model's limits."""
        check_image_size(height, width, self.max_pixels, self.max_aspect)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) the network runs at for an input of this size; an :class:`ImageSizeError` for
        an input beyond the limits (see the class docstring)."""
        self.check_size(height, width)
        if self.fixed_size is not None:
            return tuple(self.fixed_size)
        return working_size(height, width, self.input_size)

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        """Same-size (H, W, 3) uint8 images -> (N, 3, h, w) normalised float at the working size."""
        h, w = self.working_size(*images[0].shape[:2])  # refuses an input beyond the limits before any work
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(self.device)  # (N, 3, H, W)
        if (h, w) != tuple(x.shape[-2:]):
            x = F.interpolate(x.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            x = x.round().clamp(0, 255)
        return normalize(x, self.mean, self.std)

    @torch.no_grad()
    def predict_logits(self, images: list[np.ndarray]) -> torch.Tensor:
        """(N, C, H, W) float logits at the input size."""
        return self._logits(self.preprocess(images), images[0].shape[:2])  # each backend takes it in its own layout

    def _logits(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        logits = self.model(x).float()
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def predict_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, H, W) uint8 class indices for same-size images."""
        x, size = self.preprocess(images), tuple(images[0].shape[:2])
        if self.class_runner is not None and tuple(x.shape[-2:]) == size:
            return self.class_runner(x)  # the class map inside the runtime: no logits copied out
        logits = self._logits(x, size)
        if self.backend_cpu_only and logits.shape[1] <= 255:
            return class_map_one_thread(logits).numpy()  # beside the runtime's own threads
        return class_map(logits).to(torch.uint8).cpu().numpy()

    def predict(self, image: np.ndarray | str | Path) -> np.ndarray:
        """(H, W) uint8 class indices for one image (array or path)."""
        if isinstance(image, (str, Path)):
            image = _read_checked(self, Path(image))  # the size from the header before decoding
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        return self.predict_batch([image])[0]

    def show(self, names: str | list[str] | None) -> Segmenter:
        """Draw only the named classes (``--classes``; None: all) in colour masks, overlays and
        legends; class-index outputs keep every class."""
        self.shown = self.classes.select(names)
        return self

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) class indices -> (H, W, 3) RGB colours (classes not :attr:`shown`: black)."""
        return self.classes.colorize(mask, self.shown)

    def overlay(self, image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The colour mask blended onto the RGB image; where a class is not :attr:`shown`, the
        image as it is."""
        blended = overlay(image, self.colorize(mask), alpha)
        if self.shown is not None:
            keep = np.zeros(256, dtype=bool)
            keep[list(self.shown)] = True
            np.copyto(blended, image, where=~keep[mask][..., None])  # 0.5 ms at 480x360
        return blended

    def legend(self, height: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8 picture of the :attr:`shown` classes' colours and names."""
        return legend(self.classes, height=height, present=None if self.shown is None else set(self.shown))


def _ready(w, size, calibration, frame_size=None):
    """``ready(backend)`` for :func:`rtseg.backends.choose`: the graph of these weights at the
    size the network will work at (for frames of ``frame_size``, else its own) is shipped or
    cached."""
    from rtseg.backends import BuildOptions, default_calibration, get_backend
    from rtseg.backends.graph import graph_ready

    own = size or w.input_size
    hw = tuple(working_size(*frame_size, own) if frame_size and own else own or ())

    def ready(name: str) -> bool:
        b = get_backend(name)
        if b.onnx_runtime is None or len(hw) != 2:
            return False
        calib = (calibration or default_calibration()) if b.requires.calibration else None
        options = BuildOptions(calibration=calib, mean=tuple(w.mean), std=tuple(w.std))
        return graph_ready(w.model, hw, b.onnx_runtime, b.precision == "int8", options)

    return ready


def _read_checked(seg: Segmenter, path: Path) -> np.ndarray:
    """The image at ``path``, its size checked from the header before decoding (a decompression
    bomb never decodes); the error names the file."""
    try:
        size = image_file_size(path)
        if size is not None:
            seg.check_size(*size)
        image = read_image(path)
        seg.check_size(*image.shape[:2])
    except ImageSizeError as e:
        raise type(e)(f"{path}: {e}") from None
    return image


def load_model(weights: str | Path | None = None, device: str | torch.device = "auto",
               compile: bool = False, threads: int = 0, tta: str = "none", bf16: bool = False,
               runtime: str | None = None, backend: str | None = None, workload: str = "image",
               calibration: list[np.ndarray] | None = None, announce=None,
               size: tuple[int, int] | list[int] | None = None, frames: int | None = None,
               frame_size: tuple[int, int] | None = None) -> Segmenter:
    """A :class:`Segmenter` from a checkpoint path, an ``.onnx`` export, or a shipped model name
    (default: ``"enet-camvid"``, shipped inside the package, works offline). ``device``: auto
    (CUDA when available), cpu or cuda; ONNX exports and the graph backends run on the CPU.
    ``threads``: intra-op threads (0 = library default). ``tta``: "flip" for test-time flip
    averaging (never the default).

    ``backend``: how the network runs (:mod:`rtseg.backends`; None = ``torch``). ``"auto"``
    picks with :func:`rtseg.backends.choose` for ``workload`` ("image": a few photos, "stream":
    a video or a server) of ``frames`` frames (None: unbounded) of ``frame_size`` (H, W) when
    known, and calls ``announce`` (e.g. ``print``) with the choice and its reason.
    ``compile``, ``bf16`` and ``runtime`` are the older spelling of ``backend`` (torch-compile,
    torch-bf16, the runtime of an ``.onnx`` file) and still work. ``calibration``: frames for
    the int8 backends (default: the street frames the package carries). ``size``: the (H, W) the
    network works at, its shorter side matched to an image's (default: the training size; the
    shipped models at 540x720 instead of 360x480 gain about 1-1.6 mIoU for 2.25x the work)."""
    from rtseg.backends import choose

    onnx_file = weights is not None and str(weights).lower().endswith(".onnx")
    if backend is not None and runtime is not None:
        raise RtsegError("--runtime is the older spelling of --backend: give one of them")
    if runtime is not None and not onnx_file:
        backend, runtime = runtime, None  # --runtime openvino on PyTorch weights: the openvino backend
    if onnx_file and backend not in (None, "auto"):
        from rtseg.backends import file_backend_runtime

        runtime = file_backend_runtime(str(weights), backend)
    w = load_weights(weights, threads=threads, runtime=runtime)
    device = torch.device("cpu") if w.is_onnx else (select_device(device) if isinstance(device, str) else device)
    if backend == "auto":
        if compile or bf16:
            raise RtsegError("--backend auto: --compile and --bf16 choose a backend themselves; give one of them")
        choice = choose(workload, onnx_file=str(weights) if onnx_file else None, frames=frames,
                        ready=None if w.is_onnx else _ready(w, size, calibration, frame_size), device=device.type)
        backend = choice.backend
        if announce is not None:
            announce(f"backend {backend} (auto: {choice.reason})")
    if size is not None and w.fixed_size:
        raise RtsegError(f"--size: {w.source} is a static graph for {w.fixed_size[0]}x{w.fixed_size[1]}; "
                         "export it at the size wanted")
    seg = Segmenter(w.model, w.classes, w.mean, w.std, list(size) if size else w.input_size, device, name=w.name,
                    compile=compile, tta=tta, bf16=bf16, backend=None if w.is_onnx else backend, threads=threads,
                    calibration=calibration)
    seg.fixed_size = w.fixed_size
    return seg


def predict(inputs: list[str | Path] | str | Path, out: str | Path, weights: str | Path | None = None, *,
            device: str = "auto", compile: bool = False, bf16: bool = False, threads: int = 0, alpha: float = 0.5,
            output_format: str = "default", gif: bool | str | Path = False, gif_fps: float = 5.0,
            skip_existing: bool = False, progress: bool = True, tta: str = "none", runtime: str | None = None,
            backend: str | None = None, announce=None, size: tuple[int, int] | None = None,
            classes: str | list[str] | None = None) -> dict:
    """Segment image files, folders or globs and write the results to ``out`` (``rtseg predict``).

    For each input NAME: ``NAME_labels.png`` (class indices), ``NAME_mask.png`` (colours) and
    ``NAME_overlay.png``, and ``legend.png`` (the class colours); ``output_format="cityscapes"``: one official label-id PNG named after
    the input (19-class Cityscapes models). ``gif``: also an animated input | prediction GIF
    (True: ``out/predictions.gif``, or a path). ``classes``: class names to draw (the others are
    left uncoloured; the class-index PNGs keep every class). ``skip_existing``: leave frames whose outputs are
    all there (a rerun after a stop). Every file is written atomically. Returns {images, written,
    skipped, out, model, device, median_ms}: the median time per frame of preprocessing + network.

    Under torchrun each process takes every world_size-th input (each frame written once);
    ``images``/``written``/``skipped`` count all processes."""
    if output_format not in ("default", "cityscapes"):
        raise RtsegError(f"--format {output_format!r}: expected default or cityscapes")
    from rtseg import distributed

    paths = expand_image_inputs([str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)])
    run_on = select_device(device)
    info, run_on = distributed.setup(run_on)
    if info.enabled and gif:
        raise RtsegError("--gif needs every frame in one process: run without torchrun for a GIF")
    all_count = len(paths)
    paths = paths[info.rank::info.world_size]
    seg = load_model(weights, device=run_on, compile=compile, bf16=bf16, threads=threads, tta=tta, runtime=runtime,
                     backend=backend, workload="stream", frames=len(paths), announce=announce, size=size)
    seg.show(classes)
    if output_format == "cityscapes" and seg.num_classes != 19:
        raise RtsegError(f"--format cityscapes needs a 19-class Cityscapes model; {weights or 'the default model'} "
                         f"predicts {seg.num_classes} classes")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gif_frames, seconds, skipped = [], [], 0

    def outputs(path: Path) -> list[Path]:
        if output_format == "cityscapes":
            return [out / f"{path.stem}.png"]
        return [out / f"{path.stem}_{kind}.png" for kind in ("labels", "mask", "overlay")]

    for path in progress_bar(paths, desc="predict", unit="img", progress=progress and len(paths) > 1):
        if skip_existing and not gif and all(p.is_file() for p in outputs(path)):
            skipped += 1
            continue
        image = _read_checked(seg, path)
        start = time.perf_counter()
        mask = seg.predict(image)
        seconds.append(time.perf_counter() - start)
        files = outputs(path)
        if output_format == "cityscapes":
            # Official label ids, named so the evaluator finds <city>_<seq>_<frame>*.png.
            from rtseg.datasets.cityscapes import train_ids_to_label_ids

            save_png(train_ids_to_label_ids(mask), files[0])
            continue
        colour = seg.colorize(mask)
        for image_out, file in zip((mask, colour, seg.overlay(image, mask, alpha)), files):
            save_png(image_out, file)
        if gif:
            gif_frames.append(with_legend(panel(image, colour), seg.legend(image.shape[0])))
    if output_format == "default" and info.is_main:
        save_png(seg.legend(), out / "legend.png")  # which colour is which class
    gif_path = None
    if gif:
        gif_path = out / "predictions.gif" if gif is True else Path(gif)
        save_gif(gif_frames, gif_path, fps=gif_fps)
    ms = sorted(s * 1000 for s in seconds)
    skipped = distributed.sum_int(skipped)
    return {"images": all_count, "written": all_count - skipped, "skipped": skipped, "out": str(out),
            "model": seg.name, "device": str(seg.device), "backend": seg.backend,
            "median_ms": round(ms[len(ms) // 2], 2) if ms else float("nan"), "gif": str(gif_path) if gif_path else None}
