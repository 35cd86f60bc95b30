"""Export to ONNX or TorchScript, and check the export against PyTorch.

The exported network takes normalised float images (N, 3, H, W) (see the checkpoint's
``normalization``; it is also stored in the ONNX metadata) and returns logits (N, C, H, W), or
with ``argmax=True`` an (N, H, W) int64 class map computed inside the graph.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rtseg.deploy.onnx_graph import compact_names, strip_debug_info
from rtseg.errors import RtsegError
from rtseg.io import atomic_path, atomic_write_text
from rtseg.models.fold import fold_batchnorm, prelu_as_max
from rtseg.onnx_runtimes import NAMES, RUNTIMES, load_runner, version

OPSET = 18
#: A float export must agree with PyTorch on (nearly) every pixel: anything else is a bug.
MIN_PIXEL_AGREEMENT = 0.999
#: An int8 model rounds every activation, so pixels near a class boundary flip; below this
#: share of agreeing pixels (on the calibration frames) the quantisation has gone wrong.
INT8_MIN_PIXEL_AGREEMENT = 0.9
#: Formats written here; a backend's own program (rtseg.backends.program_formats: executorch, ...)
#: is written by that backend and checked in its runtime (:func:`export_program`).
FORMATS = ("onnx", "torchscript")
#: Runtimes ``rtseg export --target`` writes a graph for and checks it in. onnxruntime: the
#: exporter's own graph (max-unpooling as ScatterND, ONNX Runtime's fastest form). opencv and
#: openvino: standard ops only (:mod:`rtseg.deploy.portable`), which OpenCV DNN needs.
TARGETS = RUNTIMES
#: Targets ``--int8`` writes for: ONNX Runtime's QDQ graph, which OpenVINO runs as int8 too (on
#: VNNI CPUs 0.72x its float latency for ENet: 13.3 against 18.5 ms on an AVX512-VNNI EPYC, 2 threads;
#: docs/deployment_runtimes.md).
INT8_TARGETS = ("onnxruntime", "openvino")


class ArgmaxHead(nn.Module):
    """Wraps a model so that the graph ends in the class map: (N, 3, H, W) -> (N, H, W) int64."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).argmax(1)


@dataclass
class ParityReport:
    max_abs_diff: float  # logits (0 for argmax exports, which compare classes only)
    pixel_agreement: float  # share of pixels whose class agrees
    inputs: int
    logit_scale: float = 0.0  # max |PyTorch logit|, what the difference is judged against
    #: The 99.9th percentile of |logit diff| (0 for argmax exports): all but the few logits a
    #: moved max-unpooling position changes (see :func:`check_parity`).
    p999_abs_diff: float = 0.0

    def to_dict(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "p999_abs_diff": self.p999_abs_diff,
                "pixel_agreement": self.pixel_agreement, "inputs": self.inputs, "logit_scale": self.logit_scale}


class ExportMismatchError(RtsegError, RuntimeError):
    """The exported model's outputs diverge from PyTorch's."""


class RuntimeFaultError(ExportMismatchError):
    """The target runtime diverges on an op it is known to miscompute: the refusal names the op,
    what the runtime gets wrong, and the targets that run the graph."""


def prepare(model: nn.Module, argmax: bool = False, fold_bn: bool = True, onnx: bool = False) -> nn.Module:
    """An eval-mode copy for export: BN folded, the argmax head, and for ONNX PReLU as a max."""
    model = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    if onnx:
        prelu_as_max(model)
    return ArgmaxHead(model).eval() if argmax else model


def _parity_inputs(size: tuple[int, int], batch: int = 1, seed: int = 0, count: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Normalised-image statistics: roughly zero mean, unit variance, with some smooth structure so
    # that argmax decisions are not all ties of noise.
    out = []
    for _ in range(count):
        coarse = torch.randn(batch, 3, max(1, size[0] // 8), max(1, size[1] // 8), generator=g)
        smooth = nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
        out.append(smooth + 0.3 * torch.randn(batch, 3, *size, generator=g))
    return out


def compare(reference: nn.Module, run_exported, inputs: list[torch.Tensor], argmax: bool) -> ParityReport:
    """Run both on ``inputs``; ``run_exported(x: np.ndarray) -> np.ndarray``."""
    max_diff, agree, total, scale, p999 = 0.0, 0, 0, 0.0, 0.0
    with torch.no_grad():
        for x in inputs:
            ref = reference(x).numpy()
            out = np.asarray(run_exported(x.numpy()))
            if out.shape != ref.shape:
                raise ExportMismatchError(f"exported output shape {out.shape} != PyTorch {ref.shape}")
            if argmax:
                agree += int((out == ref).sum())
                total += ref.size
            else:
                # A NaN would drop out of max() and quantile() below and pass the logit bounds.
                diff = np.where(np.isfinite(out), np.abs(out - ref), np.inf)
                max_diff = max(max_diff, float(diff.max()))
                with np.errstate(invalid="ignore"):  # inf - inf between two infinite differences
                    p999 = max(p999, float(np.quantile(diff, 0.999)))
                scale = max(scale, float(np.abs(ref).max()))
                agree += int((out.argmax(1) == ref.argmax(1)).sum())
                total += ref[:, 0].size
    return ParityReport(max_diff, agree / max(total, 1), len(inputs), scale, p999)


def check_parity(report: ParityReport, rtol: float = 5e-3, atol: float = 1e-4, min_agreement: float = MIN_PIXEL_AGREEMENT,
                 what: str = "export") -> None:
    """Fail unless classes agree on ``min_agreement`` of the pixels and the largest logit
    difference is within ``atol + rtol * max|logit|``. The tolerance is relative because folding
    BN into convolutions re-rounds weights: channels with a tiny running variance amplify float
    rounding, so a trained model's logits move by about 1e-3 of their range.

    The bound holds for all but 0.1% of the logits; the largest may reach 10x it. Max-unpooling
    is discontinuous: a rounding-level difference before a 2x2 max-pool can change which element
    wins, and the decoder then puts that value one pixel away (a trained ENet in ONNX Runtime:
    115 of 1.9 M logits off by more than 0.05, the largest by 0.13 of a range of 30, every class
    the same). One such flip moved 45 pixels (0.026% of the logits, up to 0.20 of a range of
    23) for ENet trained 600 epochs (the long recipe's stage A; docs/training.md), already between
    the folded and the un-folded model in PyTorch and identically in all three runtimes: a bound
    on 99.99% of the logits refused it, so the bound is on 99.9%."""
    limit = atol + rtol * report.logit_scale
    if (report.p999_abs_diff > limit or report.max_abs_diff > 10 * limit
            or report.pixel_agreement < min_agreement):
        raise ExportMismatchError(
            f"{what} diverges from PyTorch: |logit diff| 99.9th percentile {report.p999_abs_diff:.3g} "
            f"(limit {limit:.3g}), max {report.max_abs_diff:.3g} (limit {10 * limit:.3g}), class "
            f"agreement {100 * report.pixel_agreement:.3f}% (limit {100 * min_agreement:.1f}%)")


def opencv_known_fault(proto, model_name: str, cv_version: str) -> RuntimeFaultError | None:
    """The refusal for a graph with an op OpenCV DNN ``cv_version`` is known to miscompute
    (found on single-op graphs against ONNX Runtime; docs/deployment_runtimes.md), else None.

    OpenCV DNN 5.0 (fixed in 5.1): a bilinear ``Resize`` of a plane with a side of 1, (N, C, 1, w)
    or (N, C, h, 1), reads memory it did not write: values of 1e22-1e32, NaN, or on a lucky run
    merely off. Of a 1x1 plane only when it is a convolution's output (a ReLU or BN between them
    too): ICNet's global mean (ReduceMean) upsamples right. DDRNet's DAPPM and
    PIDNet's PAPPM (pools of a 1/64 map, 2x3 at 128x192) and PSPNet's 1x1 pyramid bin upsample
    such planes; no graph form avoids it (ops between the two do not help), so it is refused
    before the parity check, which a lucky run could pass."""
    if not cv_version.startswith("5.0."):
        return None
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else 0 for d in v.type.tensor_type.shape.dim]
              for v in inferred.graph.value_info}
    producer = {out: node for node in inferred.graph.node for out in node.output}

    def after_conv(name: str) -> bool:
        node = producer.get(name)
        while node is not None and node.op_type in ("Relu", "BatchNormalization"):
            node = producer.get(node.input[0])
        return node is not None and node.op_type == "Conv"

    for node in inferred.graph.node:
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
        plane = shapes.get(node.input[0], [])[2:]  # (h, w) of the (N, C, h, w) input, 0 if symbolic
        if (node.op_type == "Resize" and mode == "linear" and 1 in plane
                and (plane != [1, 1] or after_conv(node.input[0]))):
            return RuntimeFaultError(
                f"--target opencv: OpenCV DNN {cv_version} miscomputes {model_name}'s bilinear Resize of a "
                f"{plane[0]}x{plane[1]} plane (node {node.name}: a side of 1 gives values up to "
                f"1e30 or NaN; fixed in OpenCV 5.1); use --target onnxruntime or openvino")
    return None


def _rtseg_cause(error: BaseException) -> RtsegError | None:
    """The RtsegError (a translation's refusal, its own one-line message) that torch.onnx wrapped
    in its exceptions, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, RtsegError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _export_dynamo(model: nn.Module, x: torch.Tensor, path: Path, dynamic: bool, translations: dict | None = None) -> str:
    """torch.onnx (dynamo) export. The batch is always symbolic; with ``dynamic`` height and
    width are too. Models whose shape arithmetic export cannot prove for every size (ENet's
    unpooling) get spatial sizes that are multiples of 8, then 32. ``translations``: aten op ->
    ONNX function replacing the exporter's own. Returns the dynamic axes."""
    # 0: batch only; 1: any size; 8 / 32: sizes that are multiples of it; None: fully static.
    attempts = [1, 8, 32, 0] if dynamic else [0, None]
    last_error: Exception | None = None
    for multiple in attempts:
        shapes = None
        if multiple is not None:
            dims = {0: torch.export.Dim("batch", min=1, max=1024)}
            if multiple == 1:
                dims[2], dims[3] = torch.export.Dim("height", min=8, max=8192), torch.export.Dim("width", min=8, max=8192)
            elif multiple > 1:
                if x.shape[-2] % multiple or x.shape[-1] % multiple:
                    continue
                dims[2] = multiple * torch.export.Dim(f"height_div_{multiple}", min=1, max=8192 // multiple)
                dims[3] = multiple * torch.export.Dim(f"width_div_{multiple}", min=1, max=8192 // multiple)
            shapes = {"x": dims}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=OPSET,
                                  dynamic_shapes=shapes, input_names=["image"],
                                  output_names=["classes" if isinstance(model, ArgmaxHead) else "logits"],
                                  verbose=False, external_data=False, custom_translation_table=translations)
        except Exception as e:  # torch.export raises many kinds; keep the last to report
            refusal = _rtseg_cause(e)
            if refusal is not None:  # a translation refused the model: no other attempt helps
                raise refusal from None
            last_error = e
            continue
        if multiple is None:
            return "static"
        if multiple == 0:
            return "batch"
        return "batch, height, width" + ("" if multiple == 1 else f" (multiples of {multiple})")
    raise RtsegError(f"ONNX export failed: {type(last_error).__name__}: {str(last_error)[:500]}")


def _check_target(target: str, option: str = "--target") -> None:
    if target not in TARGETS:
        raise RtsegError(f"{option} {target!r}: expected one of {', '.join(TARGETS)}")


def _target_parity(reference: nn.Module, path: Path, size: tuple[int, int], axes: str, argmax: bool,
                   target: str) -> ParityReport:
    """The graph in ``target`` against PyTorch on the parity inputs at ``size`` (batch 1) and, for
    a graph with symbolic height and width, at a second size it was not traced at (batch 2)."""
    run = load_runner(path, target)
    parity = compare(reference, run, _parity_inputs(size), argmax)
    if "height" in axes:
        m = 32 if "32" in axes else 8 if "8" in axes else 1
        other = (size[0] + 2 * m, size[1] + m)
        p2 = compare(reference, run, _parity_inputs(other, batch=2, count=1), argmax)
        parity = ParityReport(max(parity.max_abs_diff, p2.max_abs_diff),
                              min(parity.pixel_agreement, p2.pixel_agreement), parity.inputs + 1,
                              max(parity.logit_scale, p2.logit_scale),
                              max(parity.p999_abs_diff, p2.p999_abs_diff))
    return parity


def export_onnx(model: nn.Module, path: str | Path, size: tuple[int, int], *, argmax: bool = False,
                dynamic: bool = False, metadata: dict | None = None, fold_bn: bool = True,
                check: bool = True, target: str = "onnxruntime") -> dict:
    """Export ``model`` to ONNX at ``size`` = (H, W) in ``target``'s graph form (:data:`TARGETS`),
    then run it in that runtime against PyTorch (the un-folded model) and fail if they diverge
    (:class:`ExportMismatchError`), or if the runtime cannot load or run it
    (:class:`~rtseg.onnx_runtimes.RuntimeRefusal`, with the runtime's reason). Returns a report
    dict."""
    try:
        import onnx
        import onnxruntime  # noqa: F401  (the parity check of the default target)
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
    except ImportError as e:
        raise RtsegError(f"ONNX export needs the export extra ({e.name} is missing): "
                         "pip install 'rtseg[export]'") from None

    _check_target(target)
    translations = None
    if target != "onnxruntime":
        from rtseg.deploy.portable import translation_table

        translations = translation_table(target)
    reference = ArgmaxHead(model.eval()) if argmax else model.eval()
    prepared = prepare(model, argmax, fold_bn, onnx=True)
    x = _parity_inputs(size, count=1)[0]
    path = Path(path)
    with atomic_path(path) as tmp:
        axes = _export_dynamo(prepared, x, tmp, dynamic, translations)
        proto = onnx.load(str(tmp))
        strip_debug_info(proto)
        compact_names(proto)
        for k, v in {**(metadata or {}), "rtseg_target": target}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
        onnx.save(proto, str(tmp))
        report = {"format": "onnx", "path": str(path), "size": list(size), "dynamic_axes": axes,
                  "argmax": argmax, "bn_folded": fold_bn, "opset": OPSET, "target": target,
                  "ops": sorted({n.op_type for n in proto.graph.node})}
        if check:
            fault = opencv_known_fault(proto, type(model).__name__, version(target)) if target == "opencv" else None
            if fault is not None:
                raise fault
            parity = _target_parity(reference, tmp, size, axes, argmax, target)
            check_parity(parity, what=f"ONNX export {path.name} in {NAMES[target]} {version(target)}")
            report["parity"] = parity.to_dict()
            report["runtime"] = {"name": target, "version": version(target)}
    return report


def export_torchscript(model: nn.Module, path: str | Path, size: tuple[int, int], *, argmax: bool = False,
                       fold_bn: bool = True, check: bool = True) -> dict:
    """Trace to TorchScript at ``size``, save, reload and compare with PyTorch."""
    reference = ArgmaxHead(model.eval()) if argmax else model.eval()
    prepared = prepare(model, argmax, fold_bn)
    x = _parity_inputs(size, count=1)[0]
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(prepared, x, check_trace=False)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp))
            loaded = torch.jit.load(str(tmp))
    report = {"format": "torchscript", "path": str(path), "size": list(size), "argmax": argmax, "bn_folded": fold_bn}
    if check:
        with torch.no_grad():
            parity = compare(reference, lambda a: loaded(torch.from_numpy(a)).numpy(), _parity_inputs(size), argmax)
        check_parity(parity, what=f"TorchScript export {path.name}")
        report["parity"] = parity.to_dict()
    return report


def export(weights: str | Path | None, out: str | Path, *, format: str = "onnx",
           size: tuple[int, int] | list[int] | None = None, dynamic: bool = False, argmax: bool = False,
           int8: bool = False, calibrate: str | None = None, data_root: str | Path | None = None,
           keep_float: list[str] | tuple[str, ...] | None = None, sensitivity: str | None = None,
           threads: int = 0, target: str = "onnxruntime") -> dict:
    """``rtseg export``: weights (shipped name or checkpoint) -> ONNX or TorchScript at ``size``
    (default: the checkpoint's), BatchNorm folded, parity-checked against PyTorch (an
    :class:`ExportMismatchError` when they diverge). ``int8``: ONNX Runtime static quantisation
    calibrated on ``calibrate`` = "DATASET:SPLIT:N" real frames, ``keep_float`` module paths or
    node names left in float (None: the model's ``int8_keep_float``, if it has one; ``[]``:
    quantise everything). ``sensitivity`` = "DATASET:SPLIT:N" frames, ideally from sequences the
    calibration did not see: also measure, for each top-level module, how much keeping it alone in
    float raises the int8 model's pixel agreement with PyTorch on those frames, and report the
    agreement of the exported model there. ``target``: the runtime the ONNX graph is written for
    and checked in (:data:`TARGETS`). Writes ``out`` and ``out.json`` (the report) and returns
    the report."""
    from rtseg.backends import program_formats
    from rtseg.onnx_model import metadata_from_checkpoint
    from rtseg.weights import load_weights

    programs = program_formats()
    if format not in FORMATS and format not in programs:
        raise RtsegError(f"--format {format!r}: expected one of {', '.join([*FORMATS, *programs])}")
    if format in programs:
        given = [o for o, v in (("--dynamic", dynamic), ("--argmax", argmax), ("--sensitivity", sensitivity),
                                ("--target", target != "onnxruntime")) if v]
        if given:
            raise RtsegError(f"--format {format}: {', '.join(given)} apply to ONNX exports only")
        return export_program(weights, out, format, size=size, int8=int8, calibrate=calibrate, data_root=data_root,
                              keep_float=keep_float, threads=threads)
    _check_target(target)
    if target != "onnxruntime" and format != "onnx":
        raise RtsegError(f"--target {target} is for ONNX graphs: use --format onnx (or leave out --target)")
    if int8 and target not in INT8_TARGETS:
        raise RtsegError(f"--int8 --target {target}: {NAMES[target]} cannot run int8 (QDQ) graphs (OpenCV DNN 5.1 "
                         f"fails on their first forward pass); use --target {' or '.join(INT8_TARGETS)}")
    if int8 and format != "onnx":
        raise RtsegError("--int8 needs --format onnx (quantisation runs in ONNX Runtime)")
    if int8 and not calibrate:
        raise RtsegError("--int8 needs --calibrate DATASET:SPLIT:N (real frames to calibrate on)")
    if sensitivity and not int8:
        raise RtsegError("--sensitivity measures int8 quantisation: add --int8 --calibrate DATASET:SPLIT:N")
    if int8:
        from rtseg.deploy.quantize import parse_calibration

        parse_calibration(calibrate)
        if sensitivity:
            parse_calibration(sensitivity, option="--sensitivity")
    loaded = load_weights(weights, threads=threads)
    model = loaded.torch_model()
    size = loaded.size(size)
    out = Path(out)
    meta = metadata_from_checkpoint(loaded.checkpoint, size)
    if format == "torchscript":
        report = export_torchscript(model, out, size, argmax=argmax)
    elif not int8:
        report = export_onnx(model, out, size, argmax=argmax, dynamic=dynamic, metadata=meta, target=target)
    else:
        if keep_float is None:
            keep_float = list(getattr(model, "int8_keep_float", ()))
        report = _export_int8(model, out, size, meta, argmax, dynamic, calibrate, data_root, loaded.mean,
                              loaded.std, list(keep_float), threads, sensitivity, target)
    report.setdefault("file_mb", round(out.stat().st_size / 2**20, 3))
    atomic_write_text(str(out) + ".json", json.dumps(report, indent=2) + "\n")
    return report


def export_program(weights, out: str | Path, format: str, *, size=None, int8: bool = False,
                   calibrate: str | None = None, data_root=None, keep_float=None, threads: int = 0) -> dict:
    """``rtseg export --format executorch`` (and the other :func:`rtseg.backends.program_formats`):
    the program that backend runs (``int8``: its -int8 backend's, calibrated on ``calibrate`` =
    "DATASET:SPLIT:N" frames, default the package's street frames), run in its own runtime
    against PyTorch: float must agree on :data:`MIN_PIXEL_AGREEMENT` of the pixels of the parity
    inputs, int8 on :data:`INT8_MIN_PIXEL_AGREEMENT` of the calibration frames' pixels. Writes
    ``out`` and ``out.json`` (the report) and returns the report."""
    from rtseg.backends import BuildOptions, default_calibration, get_backend, list_backends, program_formats
    from rtseg.weights import load_weights

    name = program_formats()[format] + ("-int8" if int8 else "")
    if name not in list_backends():
        int8_formats = [f for f, b in program_formats().items() if f"{b}-int8" in list_backends()]
        raise RtsegError(f"--format {format} --int8: rtseg has no int8 form of {format} (docs/devices.md says why); "
                         f"export it in float, or --int8 with --format {' or '.join(['onnx', *int8_formats])}")
    backend = get_backend(name)
    backend.check()
    loaded = load_weights(weights, threads=threads)
    model = loaded.torch_model().eval()
    size = tuple(loaded.size(size))
    if keep_float is None:
        keep_float = list(getattr(model, "int8_keep_float", ()))
    options = BuildOptions(threads=threads, mean=tuple(loaded.mean), std=tuple(loaded.std),
                           keep_float=tuple(keep_float))
    if int8:
        from rtseg.deploy.quantize import calibration_images

        options.calibration = calibration_images(calibrate, data_root) if calibrate else default_calibration()
    out = Path(out)
    backend.write_file(model, size, out, options)
    run = backend.file_runner(out, options)
    report = {"format": format, "backend": name, "path": str(out), "size": list(size), "bn_folded": True,
              "input": {"layout": "NCHW", "dtype": "float32", "mean": list(loaded.mean), "std": list(loaded.std)},
              "files": [str(f) for f in backend.written_files(out)],
              "file_mb": round(sum(Path(f).stat().st_size for f in backend.written_files(out)) / 2**20, 3)}
    from rtseg.onnx_model import metadata_from_checkpoint

    report["metadata"] = metadata_from_checkpoint(loaded.checkpoint, size)  # class names, palette: the app's
    if int8:
        from rtseg.backends.base import calibration_tensors

        frames = [torch.from_numpy(f) for f in calibration_tensors(options, size)]
        parity = compare(model, lambda a: run(torch.from_numpy(a)).numpy(), frames[:4], False)
        check_parity(parity, rtol=float("inf"), min_agreement=INT8_MIN_PIXEL_AGREEMENT,
                     what=f"{format} int8 export {out.name}")
        report["int8"] = {"keep_float": list(keep_float), "calibration": calibrate or "the package's street frames",
                          "parity_on_calibration_frames": parity.to_dict()}
    else:
        with torch.no_grad():
            parity = compare(model, lambda a: run(torch.from_numpy(a)).numpy(), _parity_inputs(size), False)
        check_parity(parity, what=f"{format} export {out.name}")
        report["parity"] = parity.to_dict()
    atomic_write_text(str(out) + ".json", json.dumps(report, indent=2) + "\n")
    return report


def _export_int8(model: nn.Module, out: Path, size: tuple[int, int], meta: dict, argmax: bool, dynamic: bool,
                 calibrate: str, data_root, mean, std, keep_float: list[str], threads: int,
                 sensitivity: str | None = None, target: str = "onnxruntime") -> dict:
    """Float ONNX export in ``target``'s graph form, ONNX Runtime static int8 on real frames, then
    the int8 graph's own parity check in ``target`` against PyTorch on the calibration frames (and
    on the ``sensitivity`` frames, with the per-module sensitivity, when given)."""
    import tempfile

    from rtseg.deploy.quantize import calibration_frames, parse_calibration, quantize_int8

    dataset, split, n = parse_calibration(calibrate)
    frames = calibration_frames(dataset, split, n, size, mean, std, data_root)
    reference = ArgmaxHead(model) if argmax else model

    def agreement(path: Path, inputs: list[np.ndarray]) -> ParityReport:
        return compare(reference, load_runner(path, target, threads), [torch.from_numpy(f) for f in inputs], argmax)

    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "float.onnx"
        report = export_onnx(model, float_path, size, argmax=argmax, dynamic=dynamic, metadata=meta, target=target)
        report["int8"] = quantize_int8(float_path, out, frames, keep_float=keep_float)
        report["int8"]["keep_float"] = keep_float
        report["float_mb"] = round(float_path.stat().st_size / 2**20, 3)
        if sensitivity:
            s_dataset, s_split, s_n = parse_calibration(sensitivity, option="--sensitivity")
            held_out = calibration_frames(s_dataset, s_split, s_n, size, mean, std, data_root)
            report["int8"]["parity_on_sensitivity_frames"] = agreement(out, held_out).to_dict()
            report["int8"]["sensitivity"] = _module_sensitivity(model, float_path, Path(tmp), frames, held_out,
                                                                 agreement)
            report["int8"]["sensitivity_frames"] = sensitivity
    report.update(path=str(out), file_mb=round(out.stat().st_size / 2**20, 3))
    parity = agreement(out, frames[:4])
    report["int8"]["parity_on_calibration_frames"] = parity.to_dict()
    report["int8"]["runtime"] = {"name": target, "version": version(target)}
    if parity.pixel_agreement < INT8_MIN_PIXEL_AGREEMENT:
        raise ExportMismatchError(f"int8 model agrees with PyTorch on only {100 * parity.pixel_agreement:.1f}% "
                                  "of pixels; keep more layers in float (--keep-float)")
    return report


def _module_sensitivity(model: nn.Module, float_path: Path, tmp: Path, frames: list[np.ndarray],
                        held_out: list[np.ndarray], agreement) -> list[dict]:
    """Pixel agreement with PyTorch on ``held_out`` of the fully quantised model and of the model
    with each top-level module alone kept in float; sorted by the gain, largest first. A module's
    gain is how much of the int8 error starts there (early layers pass theirs on)."""
    from rtseg.deploy.quantize import quantize_int8
    from rtseg.progress import progress_bar

    names = [name for name, child in model.named_children() if next(child.parameters(), None) is not None]
    rows = []
    for keep in progress_bar([None, *names], desc="int8 sensitivity", unit="module"):
        path = tmp / f"sens_{keep or 'all'}.onnx"
        quantize_int8(float_path, path, frames, keep_float=[f"{keep}."] if keep else [])
        rows.append({"float_module": keep, "pixel_agreement": round(agreement(path, held_out).pixel_agreement, 5)})
        path.unlink()
    base = rows[0]["pixel_agreement"]
    for row in rows:
        row["gain"] = round(row["pixel_agreement"] - base, 5)
    return [rows[0], *sorted(rows[1:], key=lambda r: -r["gain"])]
