"""What a backend is: a way to run trained weights, which turns a network into a **runner**
(``(N, 3, H, W)`` float tensor in, ``(N, C, H, W)`` float logits out) and says what it needs.

Every backend states its needs (:class:`Requirements`: Python packages, CPU instruction sets,
calibration frames for int8, a static input size), and :meth:`Backend.unavailable` turns the
first unmet one into a line that names the backend, so ``--backend X`` on a machine that cannot
run X fails before any work with the reason and the fix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec

import numpy as np
import torch
from torch import nn

from rtseg.errors import RtsegError


class BackendUnavailable(RtsegError):
    """A backend cannot run here (a package or an instruction set is missing) or cannot run these
    weights; the message is one line naming the backend."""


@dataclass(frozen=True)
class Requirements:
    #: (importable module, how to install it) pairs, all needed.
    packages: tuple[tuple[str, str], ...] = ()
    #: CPU flags (rtseg.runtime.CPU_FLAGS) of which at least one is needed, and what they give.
    cpu_any: tuple[str, ...] = ()
    cpu_why: str = ""
    #: int8: calibrated on frames (the shipped street frames unless told otherwise).
    calibration: bool = False
    #: Built for one input size (an exported or compiled graph): each new (N, H, W) builds again.
    static_size: bool = False


@dataclass
class BuildOptions:
    """What building a runner may need beside the network and the size."""

    threads: int = 0
    #: Where the PyTorch backends run (the graph runtimes run on the CPU).
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: Calibration frames for the int8 backends: (H, W, 3) uint8 RGB images, any size.
    calibration: list[np.ndarray] | None = None
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)
    #: Module paths kept in float by int8 (the model's ``int8_keep_float``).
    keep_float: tuple[str, ...] = field(default_factory=tuple)


Runner = Callable[[torch.Tensor], torch.Tensor]
#: The runner's (N, 3, H, W) float input -> (N, H, W) uint8 class indices, the class map taken
#: inside the runtime (:meth:`Backend.build_class_runner`).
ClassRunner = Callable[[torch.Tensor], np.ndarray]


class Backend:
    """One way to run a network. Subclasses set :attr:`name`, :attr:`summary`, :attr:`requires`
    and implement :meth:`build_runner`."""

    name: str = ""
    summary: str = ""
    requires: Requirements = Requirements()
    #: The ONNX runtime that runs an exported ``.onnx`` file as it is, or None (PyTorch backends).
    onnx_runtime: str | None = None
    #: What the network computes in: float32, bfloat16 or int8 (the parity a test holds it to).
    precision: str = "float32"

    @property
    def cpu_only(self) -> bool:
        """Runs on the CPU whatever device is asked for (the graph runtimes, oneDNN int8)."""
        return self.onnx_runtime is not None or self.precision == "int8"

    def unavailable(self) -> str | None:
        """Why this backend cannot run on this machine (one line naming it), or None."""
        for module, install in self.requires.packages:
            if find_spec(module) is None:
                return f"--backend {self.name}: {module} is not installed ({install})"
        if self.requires.cpu_any:
            from rtseg.runtime import cpu_flags

            flags = cpu_flags()
            if not any(flags.get(f) for f in self.requires.cpu_any):
                return (f"--backend {self.name}: this CPU has none of {', '.join(self.requires.cpu_any)}"
                        f"{' (' + self.requires.cpu_why + ')' if self.requires.cpu_why else ''}")
        return None

    def check(self) -> None:
        why = self.unavailable()
        if why:
            raise BackendUnavailable(why)

    def build_runner(self, model: nn.Module, size: tuple[int, int], batch: int, options: BuildOptions) -> Runner:
        """A runner for ``model`` (eval mode, float32, CPU) at (``batch``, 3, *size*)."""
        raise NotImplementedError

    #: ``rtseg export --format NAME`` writes the program this backend runs as it is (with
    #: ``--int8``: the program of the backend NAME-int8), a file ending in :attr:`file_suffix`;
    #: None: no program of its own (the graph backends run the ONNX export).
    file_format: str | None = None
    file_suffix: str = ""

    def write_file(self, model: nn.Module, size: tuple[int, int], path, options: BuildOptions) -> None:
        """Write the program this backend runs for ``model`` at (1, 3, *size*) to ``path``
        (``rtseg export --format``; only backends with a :attr:`file_suffix`)."""
        raise NotImplementedError

    def written_files(self, path) -> list:
        """The files :meth:`write_file` writes for ``path`` (NCNN: the graph and its weights)."""
        return [path]

    def build_class_runner(self, model: nn.Module, options: BuildOptions) -> ClassRunner | None:
        """The runner with the class map inside it, for inputs whose logits need no resizing
        (video and photos at the network's working size): where the runtime can add the class
        map to its graph, it runs in its threads and no logits are copied out. None: the caller
        takes the class map of :meth:`build_runner`'s logits."""
        return None

    def __repr__(self) -> str:
        return f"<backend {self.name}>"


def calibration_tensors(options: BuildOptions, size: tuple[int, int]) -> list[np.ndarray]:
    """The calibration frames resized to ``size`` and normalised: (1, 3, H, W) float32 arrays."""
    import torch.nn.functional as F

    from rtseg.datasets.transforms import normalize

    frames = options.calibration
    if not frames:
        raise BackendUnavailable("int8 needs calibration frames: none were given")
    out = []
    for image in frames:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        out.append(normalize(x.round().clamp(0, 255), options.mean, options.std).numpy())
    return out


class PerShape:
    """A runner of a static-size backend: built for each input shape met, on its first frame,
    and kept (the newest :attr:`MAX_SHAPES`; each holds its own buffers). Thread-safe: a shape
    being built (seconds) holds up only the requests of that shape, not those of shapes built."""

    MAX_SHAPES = 4

    def __init__(self, build: Callable[[tuple[int, int], int], Runner]) -> None:
        self._build = build
        self._runners: dict[tuple[int, ...], Runner] = {}
        self._building: dict[tuple[int, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def runner(self, shape: tuple[int, ...]) -> Runner:
        shape = tuple(shape)
        with self._lock:
            run = self._runners.get(shape)
            if run is not None:
                return run
            building = self._building.setdefault(shape, threading.Lock())
        with building:  # one build per shape; others wait for it, not for the global lock
            with self._lock:
                run = self._runners.get(shape)
            if run is None:
                run = self._build(shape[-2:], shape[0])
                with self._lock:
                    if len(self._runners) >= self.MAX_SHAPES:
                        self._runners.pop(next(iter(self._runners)))
                    self._runners[shape] = run
                    self._building.pop(shape, None)
            return run

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner(tuple(x.shape))(x)
