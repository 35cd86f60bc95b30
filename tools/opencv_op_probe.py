"""Which ONNX ops OpenCV DNN miscomputes, against ONNX Runtime.

Two modes:

* no arguments: small graphs, each one pattern with the attributes rtseg's exports write, run in
  OpenCV DNN and ONNX Runtime; prints the output shapes and the largest difference.
* ``--model NAME [--size H W]``: export ``NAME`` (random weights) in the ``--target opencv`` graph
  form without the parity check, make every float tensor a graph output, and list the nodes whose
  output differs from ONNX Runtime's (the first listed is where it starts).

Run it with another OpenCV on the path to compare releases, e.g.
``pip install --target /tmp/cv50 opencv-python-headless==5.0.0.93`` then
``PYTHONPATH=/tmp/cv50 python tools/opencv_op_probe.py``.

Findings (docs/deployment_runtimes.md):

* 5.0 and 5.1: ``Mul(HardSigmoid(a), b)`` is computed as ``HardSwish(a)``: b is ignored, so the
  output has a's shape (MobileNetV3's squeeze-excitation gate) or, with equal shapes, a's values.
* 5.0 only: a bilinear ``Resize`` of a plane with a side of 1 returns garbage (1e22-1e32, NaN;
  it reads memory it did not write, so a run may be lucky). A 1x1 plane goes wrong only as a
  ``Conv`` output.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def _model(nodes, inputs: dict, out_shape, initializers: dict) -> onnx.ModelProto:
    """A graph of ``nodes`` from ``inputs`` (name -> array, batch symbolic) to ``y``. OpenCV 5.0's
    importer wants every tensor's shape, hence the shape inference."""
    ins = [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["batch", *v.shape[1:]]) for k, v in inputs.items()]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", *out_shape[1:]])
    inits = [numpy_helper.from_array(v, k) for k, v in initializers.items()]
    graph = helper.make_graph(nodes, "probe", ins, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model)


def _compare(model: onnx.ModelProto, inputs: dict, outputs: list[str] | None = None) -> dict:
    """{output: (ONNX Runtime array, OpenCV array or an error string)}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "probe.onnx")
        onnx.save(model, path)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = outputs or [o.name for o in session.get_outputs()]
        ref = dict(zip(names, session.run(names, inputs)))
        try:
            net = cv2.dnn.readNetFromONNX(path)
            for k, v in inputs.items():
                net.setInput(v, k)
            got = dict(zip(names, net.forward(names)))
        except cv2.error as e:
            return {n: (ref[n], str(e).strip().splitlines()[-1][:200]) for n in names}
    return {n: (ref[n], got.get(n)) for n in names}


def _verdict(ref: np.ndarray, got) -> str:
    if got is None or isinstance(got, str):
        return f"OpenCV failed: {got}"
    if got.shape != ref.shape:
        return f"WRONG SHAPE: OpenCV {got.shape}, ONNX Runtime {ref.shape}"
    rel = float(np.nan_to_num(np.abs(got - ref), nan=np.inf).max()) / (float(np.abs(ref).max()) + 1e-12)
    return ("ok" if rel < 1e-4 else "WRONG VALUES") + f" (max diff / max |value| {rel:.3g})"


def _cases():
    """(name, nodes, inputs, initializers): each an op pattern of rtseg's exports."""
    gate, x, x2 = (RNG.standard_normal(s).astype(np.float32) for s in ((1, 8, 1, 1), (1, 8, 5, 6), (1, 8, 5, 6)))
    w = (RNG.standard_normal((8, 8, 1, 1)) / 3).astype(np.float32)
    hsig = helper.make_node("HardSigmoid", ["a"], ["s"], alpha=1 / 6, beta=0.5)  # torch's hardsigmoid
    yield "Mul(HardSigmoid(a), b), a (1,8,1,1), b (1,8,5,6)", [hsig, helper.make_node("Mul", ["s", "b"], ["y"])], \
        {"a": gate, "b": x}, {}
    yield "Mul(HardSigmoid(a), b), a b (1,8,5,6)", [hsig, helper.make_node("Mul", ["s", "b"], ["y"])], \
        {"a": x2, "b": x}, {}
    clip = [helper.make_node("Add", ["a", "three"], ["t"]), helper.make_node("Clip", ["t", "zero", "six"], ["c"]),
            helper.make_node("Div", ["c", "six"], ["s"]), helper.make_node("Mul", ["s", "b"], ["y"])]
    consts = {"three": np.float32(3), "zero": np.float32(0), "six": np.float32(6)}
    yield "Mul(Clip(a + 3, 0, 6) / 6, b) (rtseg's form)", clip, {"a": gate, "b": x}, \
        {k: np.array(v) for k, v in consts.items()}
    for plane, size in (((1, 2), (2, 3)), ((1, 1), (2, 3)), ((2, 3), (16, 24))):
        a = RNG.standard_normal((1, 8, *plane)).astype(np.float32)
        for after_conv in (True, False):
            src = "c" if after_conv else "a"
            nodes = [helper.make_node("Conv", ["a", "w"], ["c"])] if after_conv else []
            # The exporter's form: sizes = Concat(Shape(src)[0:2], (h, w)).
            nodes += [helper.make_node("Shape", [src], ["nc"], start=0, end=2),
                      helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
                      helper.make_node("Resize", [src, "", "", "sizes"], ["y"], mode="linear",
                                       coordinate_transformation_mode="half_pixel")]
            inits = {"hw": np.array(size, np.int64), **({"w": w} if after_conv else {})}
            yield f"bilinear Resize {plane} -> {size} of {'a Conv output' if after_conv else 'the input'}", \
                nodes, {"a": a}, inits


def probe_ops() -> None:
    print(f"OpenCV {cv2.__version__} against ONNX Runtime {ort.__version__}")
    for name, nodes, inputs, inits in _cases():
        with tempfile.TemporaryDirectory() as tmp:  # the output shape, from ONNX Runtime
            path = str(Path(tmp) / "p.onnx")
            onnx.save(_model(nodes, inputs, (1,), inits), path)
            shape = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, inputs)[0].shape
        ref, got = _compare(_model(nodes, inputs, shape, inits), inputs)["y"]
        print(f"{name:60s} {_verdict(ref, got)}")


def probe_model(name: str, size: tuple[int, int], limit: int = 12) -> None:
    """Every float tensor of ``name``'s opencv graph form in both runtimes; the diverging nodes."""
    import torch

    from rtseg.deploy.export import export_onnx
    from rtseg.models import create_model

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        export_onnx(create_model(name, num_classes=11), path, size, target="opencv", check=False)
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    info = {v.name: v for v in model.graph.value_info}
    floats = [o for n in model.graph.node for o in n.output
              if o in info and info[o].type.tensor_type.elem_type == TensorProto.FLOAT]
    del model.graph.output[:]
    model.graph.output.extend(info[o] for o in floats)
    image = {"image": RNG.standard_normal((1, 3, *size)).astype(np.float32)}
    node = {o: n for n in model.graph.node for o in n.output}
    shown = 0
    print(f"{name} {size[0]}x{size[1]}, OpenCV {cv2.__version__}: nodes whose output differs")
    for out, (ref, got) in _compare(model, image, floats).items():
        verdict = _verdict(ref, got)
        if not verdict.startswith("ok") and shown < limit:
            n = node[out]
            print(f"  {n.name} {n.op_type}({', '.join(n.input)}) -> {out} {list(ref.shape)}: {verdict}")
            shown += 1
    if not shown:
        print("  none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="an rtseg model name: bisect its opencv export instead")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 192), metavar=("H", "W"))
    args = parser.parse_args()
    if args.model:
        probe_model(args.model, tuple(args.size))
    else:
        probe_ops()


if __name__ == "__main__":
    main()
