"""The network in the page (``rtseg serve --in-browser``): the server hands the browser the model
as an ONNX graph that ends in the class map, and the page runs it in onnxruntime-web (WebGPU where
the browser has it, else WASM with threads), so camera frames never leave the device. The
server-side path (``/v1/segment``, the live WebSocket) stays for everything else.

The runtime is onnxruntime-web from npm, three files (30 MB) the package does not carry: ``make
web-runtime`` puts them in ``rtseg/web/vendor/onnxruntime-web``; ``--web-runtime`` takes another
folder or the npm tarball (``npm pack onnxruntime-web``), unpacked once into rtseg's cache.
"""

from __future__ import annotations

import copy
import tarfile
from pathlib import Path

from rtseg.errors import RtsegError

#: The onnxruntime-web release the page is tested with (Makefile ``ORT_WEB``).
ORT_WEB = "1.31.1"
#: Its default build (WebGPU through JSEP, and WASM): the script and its WASM module.
FILES = ("ort.min.js", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
#: Where the page loads them from (public, like /static/: library code, no model in it).
URL = "/ort/"
MODEL_URL = "/v1/model.onnx"
#: The headers that make the page cross-origin isolated, so onnxruntime-web may share memory with
#: worker threads (SharedArrayBuffer). Its workers load the runtime's script, which needs them
#: too: without them a worker is not isolated and a session with threads never starts.
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def vendored() -> Path:
    from importlib import resources

    return Path(str(resources.files("rtseg") / "web" / "vendor" / "onnxruntime-web"))


def find_runtime(path: str | Path | None = None) -> Path:
    """The folder holding onnxruntime-web's :data:`FILES`: ``path`` (a folder, an npm package
    folder with ``dist/``, or the ``.tgz`` ``npm pack`` writes) or the one ``make web-runtime``
    fills. A one-line error naming ``--web-runtime`` and the fix when they are not there."""
    from rtseg.io import cache_root

    folder = vendored() if path is None else Path(path)
    if folder.is_file() and folder.name.endswith((".tgz", ".tar.gz")):
        folder = _unpack(folder, cache_root() / "onnxruntime-web" / folder.name.split(".t")[0])
    for candidate in (folder, folder / "dist", folder / "package" / "dist"):
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    where = "rtseg/web/vendor/onnxruntime-web" if path is None else f"--web-runtime {path}"
    raise RtsegError(f"--in-browser: the page's runtime, onnxruntime-web ({', '.join(FILES)}), is not in {where}: "
                     f"run make web-runtime in a clone of rtseg (it needs npm), or npm pack onnxruntime-web@{ORT_WEB} "
                     f"and give --web-runtime onnxruntime-web-{ORT_WEB}.tgz")


def _unpack(tgz: Path, folder: Path) -> Path:
    """The :data:`FILES` of an npm tarball, unpacked once into ``folder``."""
    from rtseg.io import atomic_path

    if all((folder / name).is_file() for name in FILES):
        return folder
    try:
        with tarfile.open(tgz) as tar:
            for name in FILES:
                member = tar.getmember(f"package/dist/{name}")
                data = tar.extractfile(member).read()
                with atomic_path(folder / name) as out:
                    Path(out).write_bytes(data)
    except (tarfile.TarError, KeyError, OSError) as e:
        raise RtsegError(f"--web-runtime {tgz}: not an onnxruntime-web npm package ({e})") from None
    return folder


def page_model(seg, size: tuple[int, int] | None = None) -> Path:
    """The ONNX graph the page runs for ``seg``'s network: float32, BatchNorm folded, at
    ``size`` (default: its working size) and ending in the class map, (1, 3, H, W) normalised
    float in, (1, H, W) int64 class ids out; parity-checked in ONNX Runtime (onnxruntime-web runs
    the same kernels compiled to WASM). Built once (seconds) and kept in rtseg's cache."""
    import shutil
    import tempfile

    from rtseg.backends import BuildOptions
    from rtseg.backends.graph import graph_key
    from rtseg.deploy.export import export_onnx
    from rtseg.io import atomic_path, cache_root

    if seg.network is None:
        raise RtsegError(f"--in-browser: {seg.name or 'this model'} is an exported file; the page needs PyTorch "
                         "weights (a checkpoint or a shipped model) to export its graph from")
    size = tuple(size or seg.input_size or (360, 480))
    model = copy.deepcopy(seg.network).cpu().float().eval()
    options = BuildOptions(mean=seg.mean, std=seg.std)
    path = cache_root() / "browser" / f"{graph_key(model, size, 'browser-argmax', False, options)}.onnx"
    if not path.is_file():
        with tempfile.TemporaryDirectory(prefix="rtseg-browser-") as tmp:
            export_onnx(model, Path(tmp) / "model.onnx", size, argmax=True)
            with atomic_path(path) as out:
                shutil.copyfile(Path(tmp) / "model.onnx", out)
    return path


def runtime_files(folder: Path):
    """The runtime's files as a Starlette app, sent with :data:`ISOLATION`'s headers."""
    from starlette.staticfiles import StaticFiles

    class IsolatedFiles(StaticFiles):
        async def get_response(self, path, scope):
            response = await super().get_response(path, scope)
            response.headers.update(ISOLATION)
            return response

    return IsolatedFiles(directory=str(folder))


class BrowserModel:
    """What the server offers the page: the graph file, its input size and the runtime's folder."""

    def __init__(self, seg, runtime: str | Path | None = None) -> None:
        self.runtime = find_runtime(runtime)  # refuses before the export's seconds
        self.size = tuple(seg.input_size or (360, 480))
        self.path = page_model(seg, self.size)

    def info(self) -> dict:
        """The ``browser_model`` entry of ``/v1/model``."""
        return {"url": MODEL_URL, "runtime": URL, "script": FILES[0], "input_size": list(self.size),
                "bytes": self.path.stat().st_size}
