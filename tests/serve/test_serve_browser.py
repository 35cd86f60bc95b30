"""rtseg serve --in-browser, in process: the page is handed the network (ONNX, class map inside)
and onnxruntime-web; the graph's classes agree with the server's on a street frame; the runtime
is found in a folder or an npm tarball, and refused in one line when missing. The page running
it in headless Chromium: tests/project/test_browser.py."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="rtseg serve needs the serve extra: pip install 'rtseg[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

import rtseg  # noqa: E402
from rtseg.errors import RtsegError  # noqa: E402
from rtseg.serve import ServeSecurity, create_app  # noqa: E402
from rtseg.serve.browser import FILES, find_runtime  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FRAME = REPO / "samples" / "camvid" / "0016E5_08079.jpg"
KEY = "k" * 8 + "0123456789"


@pytest.fixture(scope="module")
def seg():
    return rtseg.load_model("enet-camvid", device="cpu")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    """A stand-in for onnxruntime-web's files: the server only hands them out."""
    folder = tmp_path_factory.mktemp("ort")
    for name in FILES:
        (folder / name).write_text(f"// {name}\n")
    return folder


def test_a_server_without_in_browser_offers_no_network(seg):
    with TestClient(create_app(seg), base_url="http://localhost") as c:
        assert c.get("/v1/model").json()["browser_model"] is None
        r = c.get("/v1/model.onnx")
        assert r.status_code == 404 and "--in-browser" in r.json()["error"]
        assert "Cross-Origin-Embedder-Policy" not in c.get("/").headers


def test_the_page_gets_the_network_and_its_runtime(seg, runtime):
    import onnxruntime as ort

    app = create_app(seg, in_browser=True, web_runtime=runtime, security=ServeSecurity(api_key=KEY))
    with TestClient(app, base_url="http://localhost") as c:
        page = c.get("/")  # cross-origin isolated: onnxruntime-web may use threads
        assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        script = c.get(f"/ort/{FILES[0]}")  # public, like /static/
        assert script.text == f"// {FILES[0]}\n"
        # The runtime's workers load its script: without these they are not isolated, and a
        # session with threads never starts.
        assert script.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert c.get("/v1/model").status_code == 401  # the network is the API's: the key guards it
        auth = {"Authorization": f"Bearer {KEY}"}
        info = c.get("/v1/model", headers=auth).json()["browser_model"]
        assert info["url"] == "/v1/model.onnx" and info["runtime"] == "/ort/" and info["input_size"] == [360, 480]
        data = c.get(info["url"], headers=auth).content
    assert len(data) == info["bytes"]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rgb = np.asarray(Image.open(FRAME).convert("RGB"))  # 480x360: the working size, nothing resized
    x = seg.preprocess([rgb]).cpu().numpy()
    ids = session.run(None, {session.get_inputs()[0].name: x})[0]  # (1, H, W) int64: argmax inside
    assert ids.shape == (1, 360, 480)
    assert (ids[0] == seg.predict(rgb)).mean() >= 0.999


def test_the_runtime_comes_from_a_folder_or_the_npm_tarball(runtime, tmp_path, monkeypatch):
    assert find_runtime(runtime) == runtime
    tgz = tmp_path / "onnxruntime-web-1.31.1.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name in FILES:
            data = f"// {name}\n".encode()
            member = tarfile.TarInfo(f"package/dist/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    unpacked = find_runtime(tgz)
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(FILES)
    with pytest.raises(RtsegError, match=r"--web-runtime .*make web-runtime"):
        find_runtime(tmp_path / "nothing-here")
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(RtsegError, match="not an onnxruntime-web npm package"):
        find_runtime(bad)


def test_an_exported_file_cannot_be_handed_to_the_page(tmp_path, runtime):
    from rtseg.deploy.export import export

    onnx = tmp_path / "enet.onnx"
    export("enet-camvid", onnx)
    with pytest.raises(RtsegError, match="--in-browser: .*PyTorch weights"):
        create_app(rtseg.load_model(str(onnx)), in_browser=True, web_runtime=runtime)
