"""Options that mean the same in every command: one definition each."""

from __future__ import annotations

import argparse
import json

from rtseg.errors import RtsegError

WEIGHTS_HELP = ("shipped model name (default: enet-camvid), rtseg checkpoint (.pt) or exported .onnx "
                "file; export and prune need PyTorch weights (a name or a checkpoint)")


def add_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None, metavar="W", help=WEIGHTS_HELP)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", metavar="DEV",
                   help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default auto); "
                        "ONNX files run on the CPU")


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads for the network (default 0: the library default, one per core)")


def add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", default=None, choices=["onnxruntime", "openvino", "opencv"],
                   help="what runs an exported .onnx file (default onnxruntime); export it for the runtime "
                        "(rtseg export --target RUNTIME); PyTorch weights run in PyTorch")


def backend_help(default: str | None) -> str:
    from rtseg.backends import get_backend, list_backends

    names = "; ".join(f"{n}: {get_backend(n).summary}" for n in list_backends())
    auto = ("auto: the fastest measured for this CPU among what is installed, for the amount of work (printed; "
            "docs/deployment.md)")
    return (f"how the network runs (default {default or 'the plain PyTorch module'}). {auto}; {names}. "
            "An .onnx file runs as it is in onnxruntime, openvino or opencv")


def add_backend(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """--backend, and the older spellings it replaces (--runtime, --compile, --bf16: one release of
    aliases that say so)."""
    from rtseg.backends import list_backends

    p.add_argument("--backend", default=None, choices=["auto", *list_backends()], metavar="NAME",
                   help=backend_help(default))
    p.set_defaults(backend_default=default)
    p.add_argument("--runtime", default=None, choices=["onnxruntime", "openvino", "opencv"],
                   help="deprecated: --backend onnxruntime|openvino|opencv")
    p.add_argument("--compile", action="store_true", help="deprecated: --backend torch-compile")
    p.add_argument("--bf16", action="store_true", help="deprecated: --backend torch-bf16 (it compiles)")


def resolve_backend(args: argparse.Namespace) -> str | None:
    """The backend the command runs: --backend, else the older --runtime / --compile / --bf16 (with a
    one-line deprecation on stderr), else the command's default."""
    import sys

    old = (args.runtime if getattr(args, "runtime", None) else
           "torch-bf16" if getattr(args, "bf16", False) else "torch-compile" if getattr(args, "compile", False) else None)
    if getattr(args, "runtime", None) and (getattr(args, "compile", False) or getattr(args, "bf16", False)):
        raise RtsegError(f"--runtime {args.runtime} runs an exported graph; --compile and --bf16 are PyTorch's: give "
                         "one --backend")
    if old is not None:
        flag = f"--runtime {args.runtime}" if args.runtime else "--bf16" if args.bf16 else "--compile"
        if args.backend is not None:
            raise RtsegError(f"{flag} is the older spelling of --backend: give --backend {args.backend} alone")
        print(f"rtseg: {flag} is deprecated and goes in the next release: use --backend {old}", file=sys.stderr,
              flush=True)
        return old
    return args.backend or args.backend_default


def add_inference(p: argparse.ArgumentParser, unit: str) -> None:
    """How images go through the network: --alpha, --device, --threads, --backend (and its older
    spellings)."""
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    add_device(p)
    add_threads(p)
    add_backend(p, "auto")


def add_classes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", default=None, metavar="NAMES",
                   help="comma-separated class names to draw (e.g. Road,Car,Pedestrian; any case): the others are "
                        "left uncoloured and out of the legend; class-index outputs keep every class "
                        "(default: all; a name the model lacks is refused with the list of its classes)")


def add_tta(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", choices=["none", "flip"], default="none",
                   help="test-time augmentation: flip = average the network over the image and its mirror "
                        "image (twice the work; reported as such); default none")


def add_size(p: argparse.ArgumentParser, default_text: str = "the size the weights were trained or exported at") -> None:
    p.add_argument("--size", default=None, metavar="HxW", help=f"input size, e.g. 360x480 (default: {default_text})")


def add_working_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default=None, metavar="HxW",
                   help="the size the network works at, its shorter side matched to the image's (default: the "
                        "training size, 360x480 for the shipped models); an accuracy knob: 540x720 costs 2.25x "
                        "the work for about +1 to +1.6 mIoU with the shipped models (their model cards)")


def add_json(p: argparse.ArgumentParser, what: str = "the results") -> None:
    p.add_argument("--json", default=None, metavar="OUT", help=f"also write {what} as JSON to OUT")


def add_dataset(p: argparse.ArgumentParser) -> None:
    from rtseg.datasets import list_datasets

    p.add_argument("--dataset", required=True, choices=list_datasets(), help="dataset name")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="the dataset's folder (default: $RTSEG_DATA/<dataset>)")


def add_data(p: argparse.ArgumentParser, split_default: str = "train") -> None:
    add_dataset(p)
    p.add_argument("--split", default=split_default, help=f"split to read (default: {split_default})")


def parse_size(text: str | None, option: str = "--size") -> tuple[int, int] | None:
    """'360x480' -> (360, 480) (H x W); None stays None."""
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise RtsegError(f"{option} {text!r}: expected HxW, e.g. 360x480") from None
    if h <= 0 or w <= 0:
        raise RtsegError(f"{option} {text!r}: height and width must be positive")
    return h, w


def write_json(path: str | None, data: dict) -> None:
    """Write ``data`` to ``path`` (if given) atomically; in a torchrun launch, rank 0 alone."""
    from rtseg.distributed import from_env

    if path and from_env().rank == 0:
        from rtseg.io import atomic_write_text

        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
