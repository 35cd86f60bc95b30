"""rtseg serve: the API in process (FastAPI's test client), then a real server on 127.0.0.1 under
load and with a full queue."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="rtseg serve needs the serve extra: pip install 'rtseg[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

import rtseg  # noqa: E402
from rtseg.serve import ServeLimits, ServerProcess, create_app, load_test  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = (REPO / "rtseg" / "web" / "sample.jpg").read_bytes()


@pytest.fixture(scope="module")
def seg():
    return rtseg.load_model("enet-camvid", device="cpu")


@pytest.fixture(scope="module")
def client(seg):
    limits = ServeLimits(max_bytes=2 * 2**20, max_pixels=1000 * 1000, max_batch=3)
    with TestClient(create_app(seg, limits=limits)) as c:
        yield c


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_health_model_and_page(client, seg):
    for _ in range(300):  # the server warms the network up once before it says ready
        h = client.get("/health").json()
        if h["ready"]:
            break
        time.sleep(0.1)
    assert h["status"] == "ok" and h["ready"] and h["model"] == "enet" and h["classes"] == 11
    m = client.get("/v1/model").json()
    assert m["class_names"] == seg.class_names and m["palette"] == seg.palette.tolist()
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for asset in ("app.js", "style.css", "sample.jpg"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert "/v1/segment" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_segment_outputs(client, seg):
    image = np.asarray(Image.open(io.BytesIO(SAMPLE)).convert("RGB"))
    expected = seg.predict(image)
    r = client.post("/v1/segment", files={"image": ("s.jpg", SAMPLE, "image/jpeg")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    for header in ("x-decode-ms", "x-network-ms", "x-encode-ms", "server-timing"):
        assert header in r.headers
    labels = _png(r.content)
    assert labels.mode == "P" and labels.size == (image.shape[1], image.shape[0])
    # The decoders differ (OpenCV here, PIL above) by a grey level at a few pixels.
    assert (np.asarray(labels) == expected).mean() > 0.99
    assert labels.getpalette()[:33] == [v for c in seg.palette.tolist() for v in c]
    raw = client.post("/v1/segment?output=overlay&alpha=0.3", content=SAMPLE, headers={"Content-Type": "image/jpeg"})
    assert raw.status_code == 200 and _png(raw.content).mode == "RGB" and _png(raw.content).size == labels.size
    colour = np.asarray(_png(client.post("/v1/segment?output=color", content=SAMPLE).content))
    np.testing.assert_array_equal(colour, seg.palette[np.asarray(labels)])
    j = client.post("/v1/segment?output=json&mask=true", content=SAMPLE).json()
    assert sum(c["fraction"] for c in j["classes"]) == pytest.approx(1, abs=1e-3)
    assert {"decode_ms", "network_ms"} <= set(j["timing"]) and (j["width"], j["height"]) == labels.size
    np.testing.assert_array_equal(np.asarray(_png(__import__("base64").b64decode(j["mask_png"]))),
                                  np.asarray(labels))
    batch = client.post("/v1/segment/batch", files=[("images", ("a.jpg", SAMPLE)), ("images", ("b.jpg", SAMPLE))])
    assert [r["filename"] for r in batch.json()["results"]] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize("request_kwargs, status, message", [
    ({"content": b"definitely not an image"}, 400, "not an image"),
    ({"files": {"picture": ("s.jpg", SAMPLE)}}, 400, "missing multipart field 'image'"),
    ({"content": b""}, 400, "empty request"),
    ({"content": b"x" * (2 * 2**20 + 1)}, 413, "larger than"),
    ({"content": None, "big": True}, 413, "pixels is larger than"),
    ({"content": SAMPLE, "params": {"output": "gif"}}, 400, "output 'gif'"),
    ({"content": SAMPLE, "params": {"alpha": "2"}}, 400, "alpha 2.0"),
    ({"content": SAMPLE, "params": {"alpha": "lots"}}, 400, "alpha"),
])
def test_bad_requests_get_a_json_4xx_and_the_server_keeps_serving(client, request_kwargs, status, message):
    kwargs = dict(request_kwargs)
    if kwargs.pop("big", False):
        out = io.BytesIO()
        Image.new("RGB", (1200, 1000)).save(out, format="PNG")
        kwargs["content"] = out.getvalue()
    r = client.post("/v1/segment", **kwargs)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert client.post("/v1/segment", content=SAMPLE).status_code == 200


def test_batch_limits(client):
    r = client.post("/v1/segment/batch", files=[("images", (f"{i}.jpg", SAMPLE)) for i in range(4)])
    assert r.status_code == 413 and "at most 3" in r.json()["error"]
    r = client.post("/v1/segment/batch", content=SAMPLE)
    assert r.status_code == 400 and "multipart" in r.json()["error"]


def test_websocket_stream_keeps_going_after_a_bad_frame(client):
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(SAMPLE)
        first = ws.receive_json()
        assert first["mask"].startswith("data:image/png;base64,") and first["timing"]["network_ms"] > 0
        ws.send_bytes(b"junk")
        assert "not an image" in ws.receive_json()["error"]
        ws.send_bytes(SAMPLE)
        assert ws.receive_json()["width"] == first["width"]


@pytest.mark.slow
def test_real_server_under_load_and_with_a_full_queue():
    with ServerProcess(["--workers", "1", "--threads", "1"]) as url:
        result = load_test(url, SAMPLE, requests=40, concurrency=8)
        assert result["errors"] == 0 and result["status_counts"] == {"200": 40}, result
        assert result["p50_ms"] <= result["p99_ms"]
    with ServerProcess(["--workers", "1", "--queue", "0", "--threads", "1"]) as url:
        statuses: list[int] = []
        import urllib.error
        import urllib.request

        def post():
            try:
                with urllib.request.urlopen(urllib.request.Request(url + "/v1/segment", data=SAMPLE)) as r:
                    statuses.append(r.status)
            except urllib.error.HTTPError as e:
                assert e.code == 503 and "busy" in json.loads(e.read())["error"]
                statuses.append(e.code)

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 200 in statuses and 503 in statuses and len(statuses) == 6
        with urllib.request.urlopen(urllib.request.Request(url + "/v1/segment", data=SAMPLE)) as r:
            assert r.status == 200  # still serving
