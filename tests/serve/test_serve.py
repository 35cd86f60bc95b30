"""rtseg serve: the API in process (FastAPI's test client): outputs, bad requests, bounded work,
Host / Origin / API-key checks, the live stream's errors, idle timeout and cap; then a real
server on 127.0.0.1 under load and with a full queue."""

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
from starlette.testclient import WebSocketDenialResponse  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

import rtseg  # noqa: E402
from rtseg.errors import RtsegError  # noqa: E402
from rtseg.serve import ServeLimits, ServeSecurity, create_app, security_for  # noqa: E402
from serve_harness import ServerProcess, load_test  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLE = (REPO / "rtseg" / "web" / "sample.jpg").read_bytes()
KEY = "k" * 8 + "0123456789"
#: The test client's Host: a loopback name, as a browser on this machine sends.
LOCAL = "http://localhost"
STREAM = "ws://localhost/v1/stream"  # the test client's WebSocket ignores base_url


@pytest.fixture(scope="module")
def seg():
    return rtseg.load_model("enet-camvid", device="cpu")


@pytest.fixture(scope="module")
def client(seg):
    limits = ServeLimits(max_bytes=2 * 2**20, max_pixels=1000 * 1000, max_batch=3)
    with TestClient(create_app(seg, limits=limits), base_url=LOCAL) as c:
        yield c


def _client(seg, **kwargs) -> TestClient:
    limits = kwargs.pop("limits", ServeLimits(max_bytes=2 * 2**20, max_pixels=1000 * 1000, max_batch=3))
    return TestClient(create_app(seg, limits=limits, security=ServeSecurity(**kwargs)), base_url=LOCAL)


def _encode(shape: tuple[int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (shape[1], shape[0]), (90, 120, 60)).save(out, format=fmt)
    return out.getvalue()


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
    tiny = _encode((8, 8))
    for count in (4, 100):  # 100: python-multipart's own "Too many files" must be rtseg's 413 too
        r = client.post("/v1/segment/batch", files=[("images", (f"{i}.png", tiny)) for i in range(count)])
        assert r.status_code == 413 and "at most 3" in r.json()["error"], r.text
    r = client.post("/v1/segment", files=[("image", ("a.jpg", SAMPLE)), ("image", ("b.jpg", SAMPLE))])
    assert r.status_code == 413 and "one image" in r.json()["error"]
    r = client.post("/v1/segment/batch", content=SAMPLE)
    assert r.status_code == 400 and "multipart" in r.json()["error"]


@pytest.mark.parametrize("shape", [(10, 4000), (4000, 6), (1, 20000)])
def test_thin_images_get_422_before_the_network(client, shape):
    # Before the bound these ran ENet at 360x144000 (53-90 s, 12.7 GB) or failed with a 500.
    r = client.post("/v1/segment", content=_encode(shape))
    assert r.status_code == 422 and "aspect ratio" in r.json()["error"] and "at most 8:1" in r.json()["error"]
    stream = client.post("/v1/segment/batch", files=[("images", ("thin.png", _encode(shape)))])
    assert stream.status_code == 422
    assert client.post("/v1/segment", content=_encode((8, 64))).status_code == 200  # 8:1 is within the bound


def test_websocket_stream_keeps_going_after_bad_frames(client):
    with client.websocket_connect(STREAM) as ws:
        ws.send_bytes(SAMPLE)
        first = ws.receive_json()
        assert first["mask"].startswith("data:image/png;base64,") and first["timing"]["network_ms"] > 0
        ws.send_bytes(b"junk")
        assert "not an image" in ws.receive_json()["error"]
        ws.send_text("hello")  # was: KeyError 'bytes', a traceback and no close frame
        assert ws.receive_json() == {"error": "text frame: send each frame as a binary message (JPEG or PNG bytes)",
                                     "status": 400}
        ws.send_bytes(b"x" * (2 * 2**20 + 1))
        assert ws.receive_json()["status"] == 413
        ws.send_bytes(_encode((10, 4000)))
        assert ws.receive_json()["status"] == 422
        ws.send_bytes(SAMPLE)
        assert ws.receive_json()["width"] == first["width"]


def test_stream_idle_timeout_and_cap(seg):
    limits = ServeLimits(max_streams=1, stream_idle_s=0.5)
    with _client(seg, limits=limits) as c:
        with c.websocket_connect(STREAM) as ws:
            with c.websocket_connect(STREAM) as second:  # beyond the cap: told so, then closed
                assert second.receive_json()["status"] == 503
                with pytest.raises(WebSocketDisconnect) as closed:
                    second.receive_json()
                assert closed.value.code == 1013
            assert ws.receive_json()["status"] == 408  # idle for 0.5 s
            with pytest.raises(WebSocketDisconnect):
                ws.receive_json()
        with c.websocket_connect(STREAM) as ws:  # both slots are free again
            ws.send_bytes(SAMPLE)
            assert "classes" in ws.receive_json()


@pytest.mark.parametrize("host, ok", [("localhost:8000", True), ("127.0.0.1", True), ("[::1]:8000", True),
                                      ("evil.example", False), ("localhost.evil.example", False), ("", False)])
def test_a_loopback_server_answers_only_loopback_host_names(client, host, ok):
    r = client.get("/v1/model", headers={"Host": host})
    assert (r.status_code == 200) == ok
    if not ok:
        assert r.status_code == 400 and "--allowed-hosts" in r.json()["error"]


def test_allowed_hosts_and_origins(seg):
    with _client(seg, allowed_hosts=["*.example.com"], allowed_origins=["https://app.example.org"]) as c:
        assert c.get("/health", headers={"Host": "seg.example.com"}).status_code == 200
        assert c.get("/health", headers={"Host": "example.com"}).status_code == 200  # the domain itself
        assert c.get("/health", headers={"Host": "badexample.com"}).status_code == 400
        assert c.get("/health", headers={"Host": "localhost"}).status_code == 400
        ok = c.post("/v1/segment?output=json", content=SAMPLE,
                    headers={"Host": "seg.example.com", "Origin": "https://app.example.org"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example.org"
        bad = c.post("/v1/segment", content=SAMPLE, headers={"Host": "seg.example.com", "Origin": "https://x.example"})
        assert bad.status_code == 403


def test_foreign_origins_are_refused_and_no_cors_by_default(client):
    evil = {"Origin": "http://evil.example"}
    r = client.post("/v1/segment", content=SAMPLE, headers=evil)
    assert r.status_code == 403 and "--allowed-origins" in r.json()["error"]
    with pytest.raises(WebSocketDenialResponse) as refused:  # cross-site WebSocket hijacking
        with client.websocket_connect(STREAM, headers=evil):
            pass
    assert refused.value.status_code == 403 and "Origin" in refused.value.json()["error"]
    own = client.post("/v1/segment", content=SAMPLE, headers={"Origin": LOCAL})  # the page's own origin
    assert own.status_code == 200 and "access-control-allow-origin" not in own.headers
    with client.websocket_connect(STREAM, headers={"Origin": LOCAL}) as ws:
        ws.send_bytes(SAMPLE)
        assert "classes" in ws.receive_json()


def test_api_key(seg):
    with _client(seg, api_key=KEY) as c:
        assert c.get("/").status_code == 200 and c.get("/health").json()["auth"] is True
        assert c.get("/static/app.js").status_code == 200  # the page's assets: it asks for the key
        for method, path in [("get", "/v1/model"), ("post", "/v1/segment"), ("get", "/openapi.json")]:
            r = getattr(c, method)(path, headers={"Authorization": "Bearer wrong-key-0123456789"})
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
            assert "API key" in r.json()["error"]
            assert getattr(c, method)(path).status_code == 401
        auth = {"Authorization": f"Bearer {KEY}"}
        assert c.get("/v1/model", headers=auth).status_code == 200
        assert c.post("/v1/segment", content=SAMPLE, headers=auth).status_code == 200
        with c.websocket_connect(STREAM, headers=auth) as ws:  # a client that can set headers
            ws.send_bytes(SAMPLE)
            assert "classes" in ws.receive_json()
        with c.websocket_connect(STREAM) as ws:  # a browser: the key as the first message
            ws.send_text(json.dumps({"api_key": KEY}))
            ws.send_bytes(SAMPLE)
            assert "classes" in ws.receive_json()
        for first in (json.dumps({"api_key": "nope"}), "not json"):
            with c.websocket_connect(STREAM) as ws:
                ws.send_text(first)
                assert ws.receive_json()["status"] == 401
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                assert closed.value.code == 1008


def test_security_settings_are_checked_and_exposure_warns(capsys):
    with pytest.raises(RtsegError, match="at least 16"):
        ServeSecurity(api_key="short")
    with pytest.raises(RtsegError, match="--allowed-origins 'evil.example'"):
        ServeSecurity(allowed_origins=["evil.example"])
    assert security_for("127.0.0.1").allowed_hosts is None and capsys.readouterr().err == ""
    exposed = security_for("0.0.0.0")
    assert exposed.allowed_hosts == ["*"] and "without an API key" in capsys.readouterr().err
    assert security_for("0.0.0.0", api_key=KEY).api_key == KEY and capsys.readouterr().err == ""


@pytest.mark.slow
def test_real_server_under_load_and_with_a_full_queue():
    with ServerProcess(["--workers", "1", "--threads", "1"]) as url:
        result = load_test(url, SAMPLE, requests=40, concurrency=8)
        assert result["errors"] == 0 and result["status_counts"] == {"200": 40}, result
        # Little's law: 8 clients always waiting, so throughput x latency is about 8 requests in
        # flight; latencies measured wrongly (or not per request) would break it.
        in_flight = result["throughput_rps"] * result["p50_ms"] / 1000
        assert 8 / 3 <= in_flight <= 12, result
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
