"""The runtimes an exported ONNX graph runs in: ONNX Runtime, OpenCV DNN and OpenVINO, each
behind one calling convention, ``run(x: np.ndarray (N, 3, H, W) float32) -> np.ndarray``
(logits (N, C, H, W), or (N, H, W) classes for an ``--argmax`` export).

The bottom layer, beside the checkpoint reader: the weights loader (``rtseg predict / video /
eval / serve --runtime``) runs ``.onnx`` files through it, and ``deploy`` checks and times
exports with it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rtseg.errors import CheckpointError, RtsegError

RUNTIMES = ("onnxruntime", "opencv", "openvino")
NAMES = {"onnxruntime": "ONNX Runtime", "opencv": "OpenCV DNN", "openvino": "OpenVINO"}
#: Where each runtime comes from (the error for a missing one says so).
INSTALL = {"onnxruntime": "pip install 'rtseg[export]'", "opencv": "pip install opencv-python-headless",
           "openvino": "pip install 'rtseg[openvino]'"}

Runner = Callable[[np.ndarray], np.ndarray]


class RuntimeRefusal(RtsegError):
    """A runtime cannot load or run a graph; the message names the runtime and its reason."""


def _module(runtime: str):
    if runtime not in RUNTIMES:
        raise RtsegError(f"runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    name = {"opencv": "cv2"}.get(runtime, runtime)
    try:
        return __import__(name)
    except ImportError:
        raise RtsegError(f"{NAMES[runtime]} is not installed ({name} is missing): {INSTALL[runtime]}") from None


def available(runtime: str) -> bool:
    try:
        _module(runtime)
    except RtsegError:
        return False
    return True


def version(runtime: str) -> str:
    """The release, e.g. 2026.4.1 (OpenVINO's build suffix dropped)."""
    return _module(runtime).__version__.split("-")[0]


def _reason(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    # OpenCV and OpenVINO put the assertion or the unsupported op on a later line than "Exception
    # from src/...": keep the most specific short line.
    for ln in lines:
        if "error:" in ln or "Assertion" in ln or "not supported" in ln.lower() or "unsupported" in ln.lower():
            return ln[:300]
    return (lines[0] if lines else type(e).__name__)[:300]


def _guard(runtime: str, path: Path, action: str, fn):
    try:
        return fn()
    except RtsegError:
        raise
    except Exception as e:  # each runtime raises its own error types (cv2.error, RuntimeError, ...)
        raise RuntimeRefusal(f"{NAMES[runtime]} {version(runtime)} cannot {action} {path.name}: {_reason(e)}") from None


def make_session(path: str | Path, threads: int = 0, optimization: str = "all"):
    """An ONNX Runtime CPU session (``threads``: intra-op threads, 0 = its default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise CheckpointError(f"cannot load ONNX model {path}: {e}") from None


def _onnxruntime(path: Path, threads: int, input_shape) -> Runner:
    session = make_session(path, threads)
    name = session.get_inputs()[0].name
    return lambda a: session.run(None, {name: a})[0]


def _opencv(path: Path, threads: int, input_shape) -> Runner:
    import cv2

    if threads > 0:
        cv2.setNumThreads(threads)  # process-wide, as OpenCV's thread pool is
    net = cv2.dnn.readNetFromONNX(str(path))  # OpenCV's own CPU backend, its default
    lock = threading.Lock()  # a Net holds its input and activations: one forward pass at a time

    def run(a: np.ndarray) -> np.ndarray:
        with lock:
            net.setInput(np.ascontiguousarray(a))
            return net.forward()

    return run


def _openvino_compile(model, batch: int, threads: int):
    """``model`` (an ``ov.Model`` of static shape, one image) compiled for the CPU."""
    import openvino as ov

    # f32, not the CPU plugin's default: on CPUs with AVX512-BF16 or AMX it runs bf16 unless told
    # otherwise, and ENet's class maps then move (99.904% of pixels as f32 on an AVX512-BF16 EPYC,
    # 12 CamVid val frames; docs/deployment_runtimes.md).
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if batch > 1:
        # N streams, each on its share of the threads, one image each: ENet int8 at 360x480 on
        # an AMX Xeon, 2 threads, 12.9-13.2 ms a frame for two images against 15.5 as one
        # batch-2 request (and 14.8-15.3 for one image): the threads do not wait for each other.
        config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=batch)
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    # OpenVINO's model cache: compiling a graph for the CPU (kernel selection, int8 repacking)
    # took 1.2 s of a short video's start for ENet int8 (AMX Xeon); read back, a fraction of it.
    from rtseg.io import cache_root

    config["CACHE_DIR"] = str(cache_root() / "openvino")
    return ov.Core().compile_model(model, "CPU", config)


def _side_by_side(compiled, batch: int) -> Runner:
    """Run ``compiled`` (planned for one image) on a batch of up to ``batch`` as that many
    requests at once, one per stream; requests per calling thread, so that server worker threads
    run the network at once (``compiled(a)`` would share one request between callers)."""
    local = threading.local()

    def run(a: np.ndarray) -> np.ndarray:
        if not hasattr(local, "requests"):
            local.requests = [compiled.create_infer_request() for _ in range(batch)]
        if batch == 1 or len(a) == 1:
            return local.requests[0].infer(np.ascontiguousarray(a))[0]
        for request, image in zip(local.requests, a):
            request.start_async({0: np.ascontiguousarray(image[None])})
        outs = []
        for request in local.requests[: len(a)]:
            request.wait()
            outs.append(request.get_output_tensor(0).data.copy())
        return np.concatenate(outs)

    return run


def _openvino(path: Path, threads: int, input_shape) -> Runner:
    import openvino as ov

    model = ov.Core().read_model(str(path))
    batch = int(input_shape[0]) if input_shape is not None else 1
    if input_shape is not None:
        # A static shape: the CPU plugin plans its kernels for it. A batch of N runs as N
        # one-image requests side by side (below), so the graph is planned for one image.
        model.reshape([1, *input_shape[1:]] if batch > 1 else list(input_shape))
    return _side_by_side(_openvino_compile(model, batch, threads), batch)


def load_class_runner(path: str | Path, threads: int, input_shape: tuple[int, int, int, int]) -> Runner:
    """OpenVINO running the logits graph ``path`` with the class map added: ``run(a)`` takes the
    (N, 3, H, W) float32 input the logits graph takes and returns (N, H, W) uint8 class indices
    (TopK over the classes, ties to the lowest index as ``argmax``). The class map runs in
    OpenVINO's threads and the logits ((N, C, H, W) float32: 7.6 MB a CamVid frame) never leave
    the graph; the input is the same array the logits path gets, so the classes are the same
    (normalising inside the graph instead moved 0.26% of int8 ENet's pixels: one rounding apart
    on the input is another int8 step)."""
    import openvino as ov
    import openvino.opset13 as ops

    _module("openvino")
    path = Path(path)
    n = int(input_shape[0])

    def build():
        model = ov.Core().read_model(str(path))
        model.reshape([1, *input_shape[1:]])
        logits = model.get_results()[0]  # replaced, not kept beside: the logits never leave the graph
        top = ops.topk(logits.input_value(0), 1, 1, "max", "none", "i32")  # (1, 1, H, W): the best class
        model.add_results([ops.result(ops.squeeze(ops.convert(top.output(1), "u8"), [1]))])
        model.remove_result(logits)
        return _side_by_side(_openvino_compile(model, n, threads), n)

    run = _guard("openvino", path, "load", build)
    return lambda a: _guard("openvino", path, "run", lambda: np.asarray(run(a)))


_LOADERS = {"onnxruntime": _onnxruntime, "opencv": _opencv, "openvino": _openvino}


def load_runner(path: str | Path, runtime: str, threads: int = 0,
                input_shape: tuple[int, ...] | None = None) -> Runner:
    """``runtime``'s runner for the ONNX file ``path`` (``threads``: intra-op threads, 0 = the
    runtime's default; ``input_shape``: OpenVINO compiles for this static shape). A graph the
    runtime cannot load, or later cannot run, raises :class:`RuntimeRefusal` with its reason."""
    _module(runtime)
    path = Path(path)
    run = _guard(runtime, path, "load", lambda: _LOADERS[runtime](path, threads, input_shape))
    return lambda a: _guard(runtime, path, "run", lambda: np.asarray(run(a)))
