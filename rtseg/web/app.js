// rtseg web page: upload / drag-and-drop / sample -> POST /v1/segment; live mode (camera or a
// video file) -> frames over the WebSocket /v1/stream, one frame in flight at a time. A server
// started with --in-browser also hands out its network: with "run in this browser" ticked, the
// page runs it in onnxruntime-web and no frame leaves the device.
"use strict";

const $ = (id) => document.getElementById(id);
const views = { input: $("input"), overlay: $("overlay"), mask: $("mask") };
const state = { input: null, mask: null, opacity: 0.5, ws: null, stream: null, live: false,
                frames: 0, fps: 0, fpsTimes: [], lastResult: null };
window.rtseg = state;  // inspected by the browser test

function status(text) { $("status").textContent = text || ""; }

// A server started with --api-key wants "Authorization: Bearer KEY" on every call but / and
// /health. The key is asked for once and kept for this tab only (sessionStorage), never in a URL.
function apiKey() { return sessionStorage.getItem("rtseg-api-key"); }
function authHeaders(headers = {}) { const k = apiKey(); return k ? { ...headers, Authorization: `Bearer ${k}` } : headers; }
function askForKey(message) {
  $("auth").hidden = false;
  status(message);
}
$("auth").onsubmit = (e) => {
  e.preventDefault();
  sessionStorage.setItem("rtseg-api-key", $("apikey").value);
  $("auth").hidden = true;
  status("");
  loadModel().catch(() => status("cannot reach the server"));
};

async function loadModel() {
  const r = await fetch("/v1/model", { headers: authHeaders() });
  if (r.status === 401) { askForKey(apiKey() ? "wrong API key" : "enter the server's API key"); return; }
  const m = await r.json();
  const h = await (await fetch("/health")).json();
  $("model").textContent = `${m.name}, ${m.class_names.length} classes, ${h.device}` +
    (h.compiled ? ", compiled" : "");
  state.model = m;
  if (m.browser_model) await loadLocal(m);
}

function draw() {
  if (!state.input) return;
  const w = state.input.width, h = state.input.height;
  for (const c of Object.values(views)) { if (c.width !== w || c.height !== h) { c.width = w; c.height = h; } }
  views.input.getContext("2d").drawImage(state.input, 0, 0);
  const over = views.overlay.getContext("2d");
  over.globalAlpha = 1;
  over.drawImage(state.input, 0, 0);
  if (state.mask) {
    over.globalAlpha = state.opacity;
    over.drawImage(state.mask, 0, 0, w, h);
    over.globalAlpha = 1;
    views.mask.getContext("2d").drawImage(state.mask, 0, 0, w, h);
  }
}

function legend(classes) {
  const body = $("legend").querySelector("tbody");
  body.innerHTML = "";
  for (const c of [...classes].sort((a, b) => b.fraction - a.fraction)) {
    const row = body.insertRow();
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = `rgb(${c.color.join(",")})`;
    row.insertCell().appendChild(sw);
    row.insertCell().textContent = c.name;
    row.insertCell().textContent = (100 * c.fraction).toFixed(1) + " %";
  }
}

function serverTiming(t) {
  return `decode ${t.decode_ms.toFixed(1)} ms, network ${t.network_ms.toFixed(1)} ms, ` +
         `encode ${t.encode_ms.toFixed(1)} ms`;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("cannot load the mask"));
    img.src = src;
  });
}

async function show(result, input) {
  // HTTP replies carry the labels PNG in base64, the live stream as a data URL; the network in
  // the page gives a canvas.
  state.mask = result.canvas || await loadImage(result.mask || "data:image/png;base64," + result.mask_png);
  state.input = input;
  state.lastResult = result;
  legend(result.classes);
  $("server-label").textContent = result.canvas ? "network" : "server";
  $("server").textContent = result.canvas ? `${result.timing.network_ms.toFixed(1)} ms in this browser (${local.provider})`
                                          : serverTiming(result.timing);
  draw();
}

// ---------------------------------------------------------------------------- the network in the page

const local = { session: null, provider: "", size: null, input: "", output: "", lastInput: null, lastLabels: null };
window.rtsegLocal = local;  // inspected by the browser test

function inBrowser() { return local.session !== null && $("inbrowser").checked; }

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src; s.onload = resolve; s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.appendChild(s);
  });
}

async function loadLocal(m) {
  const b = m.browser_model;
  try {
    await loadScript(b.runtime + b.script);
    ort.env.wasm.wasmPaths = b.runtime;
    // Threads need cross-origin isolation, which the server's page headers give.
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    let providers = ["wasm"];
    if (navigator.gpu) { try { if (await navigator.gpu.requestAdapter()) providers = ["webgpu", "wasm"]; } catch (e) { /* no GPU */ } }
    const r = await fetch(b.url, { headers: authHeaders() });
    if (!r.ok) throw new Error(`the model: HTTP ${r.status}`);
    local.session = await ort.InferenceSession.create(new Uint8Array(await r.arrayBuffer()),
                                                      { executionProviders: providers });
    local.provider = providers[0] === "wasm" ? `WASM, ${ort.env.wasm.numThreads} thread(s)` : "WebGPU";
    local.size = b.input_size;
    [local.input] = local.session.inputNames;
    [local.output] = local.session.outputNames;
    $("inbrowser-label").hidden = false;
    $("inbrowser").checked = true;
    $("model").textContent += `; runs in this browser (${local.provider})`;
  } catch (e) { status("the network cannot run in this browser: " + e.message); }
}

// One frame through the page's network at its input size: (H, W) class ids, drawn in the palette.
async function runLocal(source) {
  const [h, w] = local.size, n = h * w;
  const frame = document.createElement("canvas");
  frame.width = w; frame.height = h;
  const ctx = frame.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, w, h);
  const px = ctx.getImageData(0, 0, w, h).data;
  const { mean, std } = state.model.normalization;
  const x = new Float32Array(3 * n);  // (1, 3, H, W), RGB, (v / 255 - mean) / std as rtseg does
  for (let c = 0; c < 3; c++) {
    const m = mean[c], s = std[c], off = c * n;
    for (let i = 0; i < n; i++) x[off + i] = (px[4 * i + c] / 255 - m) / s;
  }
  const t0 = performance.now();
  const out = await local.session.run({ [local.input]: new ort.Tensor("float32", x, [1, 3, h, w]) });
  const ms = performance.now() - t0;
  const ids = out[local.output].data;  // BigInt64Array (1, H, W): the graph ends in argmax
  const labels = new Uint8Array(n), counts = new Array(state.model.class_names.length).fill(0);
  const mask = ctx.createImageData(w, h), palette = state.model.palette;
  for (let i = 0; i < n; i++) {
    const k = Number(ids[i]), c = palette[k];
    labels[i] = k; counts[k] += 1;
    mask.data[4 * i] = c[0]; mask.data[4 * i + 1] = c[1]; mask.data[4 * i + 2] = c[2]; mask.data[4 * i + 3] = 255;
  }
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  canvas.getContext("2d").putImageData(mask, 0, 0);
  local.lastInput = frame; local.lastLabels = labels;
  const classes = state.model.class_names.map((name, k) => ({ name, color: palette[k], fraction: counts[k] / n }))
    .filter((c) => c.fraction > 0);
  return { canvas, classes, width: w, height: h, timing: { network_ms: ms } };
}

async function localLoop() {
  const video = $("video");
  while (state.live && inBrowser()) {
    if (!video.videoWidth) { await new Promise((r) => setTimeout(r, 50)); continue; }
    const t0 = performance.now();
    const frame = document.createElement("canvas");
    frame.width = video.videoWidth; frame.height = video.videoHeight;
    frame.getContext("2d").drawImage(video, 0, 0);
    await show(await runLocal(frame), frame);
    countFrame(t0, "in this browser");
    await new Promise((r) => setTimeout(r, 0));  // let the page draw
  }
}

async function segmentBlob(blob) {
  stopLive();
  status("");
  let input;
  try { input = await createImageBitmap(blob); } catch (e) { status("not an image this browser can read"); return; }
  if (inBrowser()) {
    const t0 = performance.now();
    await show(await runLocal(input), input);
    $("latency").textContent = `${(performance.now() - t0).toFixed(0)} ms (in this browser)`;
    return;
  }
  const t0 = performance.now();
  const r = await fetch("/v1/segment?output=json&mask=true", { method: "POST", body: blob,
                        headers: authHeaders({ "Content-Type": blob.type || "application/octet-stream" }) });
  const result = await r.json();
  if (r.status === 401) { askForKey("wrong API key"); return; }
  if (!r.ok) { status(result.error || `error ${r.status}`); return; }
  await show(result, input);
  $("latency").textContent = `${(performance.now() - t0).toFixed(0)} ms (upload, segment, download)`;
}

// ---------------------------------------------------------------------------- live mode

const grab = document.createElement("canvas");

function sendFrame() {
  const video = $("video");
  if (!state.live || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  if (!video.videoWidth) { setTimeout(sendFrame, 50); return; }
  const scale = Math.min(1, 480 / video.videoWidth);  // the network's working size
  grab.width = Math.round(video.videoWidth * scale);
  grab.height = Math.round(video.videoHeight * scale);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  const frame = document.createElement("canvas");
  frame.width = grab.width; frame.height = grab.height;
  frame.getContext("2d").drawImage(grab, 0, 0);
  state.pending = { frame, t0: performance.now() };
  grab.toBlob((blob) => { if (state.ws && state.live) state.ws.send(blob); }, "image/jpeg", 0.85);
}

async function onResult(event) {
  const result = JSON.parse(event.data);
  const pending = state.pending;
  if (result.status === 401) { stopLive(); askForKey("wrong API key"); return; }
  if (result.error) { status(result.error); setTimeout(sendFrame, 200); return; }
  await show(result, pending.frame);
  countFrame(pending.t0, "round trip");
  sendFrame();
}

function countFrame(t0, what) {
  const now = performance.now();
  state.frames += 1;
  state.fpsTimes = [...state.fpsTimes.filter((t) => now - t < 2000), now];
  state.fps = state.fpsTimes.length > 1 ? 1000 * (state.fpsTimes.length - 1) / (now - state.fpsTimes[0]) : 0;
  $("fps").textContent = `${state.fps.toFixed(1)} (end to end, ${state.frames} frames)`;
  $("latency").textContent = `${(now - t0).toFixed(0)} ms per frame (${what})`;
}

function startLive(kind) {
  stopLive();
  status("");
  state.live = true; state.frames = 0; state.fpsTimes = [];
  $("stop").disabled = false;
  if (inBrowser()) localLoop(); else openStream();
}

function openStream() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  state.ws = new WebSocket(`${proto}://${location.host}/v1/stream`);
  state.ws.onmessage = onResult;
  // Browsers cannot set headers on a WebSocket: the key goes as the first message.
  state.ws.onopen = () => { if (apiKey()) state.ws.send(JSON.stringify({ api_key: apiKey() })); sendFrame(); };
  state.ws.onclose = () => { if (state.live) status("the live connection closed"); };
  state.ws.onerror = () => status("the live connection failed");
}

function closeStream() {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
}

// Switching where the network runs mid-stream keeps the camera or video going.
$("inbrowser").onchange = () => {
  if (!state.live) return;
  closeStream();
  if (inBrowser()) localLoop(); else openStream();
};

function stopLive() {
  state.live = false;
  closeStream();
  if (state.stream) { state.stream.getTracks().forEach((t) => t.stop()); state.stream = null; }
  const video = $("video");
  video.pause();
  $("stop").disabled = true;
}

$("camera").onclick = async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    const video = $("video");
    video.srcObject = stream;
    await video.play();
    startLive("camera");
    state.stream = stream;
  } catch (e) { status("camera unavailable: " + e.message); }
};

$("videofile").onchange = async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const video = $("video");
  video.srcObject = null;
  video.src = URL.createObjectURL(file);
  video.loop = true;
  try { await video.play(); startLive("video"); } catch (err) { status("cannot play this video: " + err.message); }
};

$("stop").onclick = stopLive;

// ---------------------------------------------------------------------------- still images

$("file").onchange = (e) => { if (e.target.files[0]) segmentBlob(e.target.files[0]); };
$("sample").onclick = async () => segmentBlob(await (await fetch("/static/sample.jpg")).blob());
$("opacity").oninput = (e) => {
  state.opacity = e.target.value / 100;
  $("opacity-value").textContent = `${e.target.value}%`;
  draw();
};
document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dragging"); });
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("dragging");
  const file = e.dataTransfer.files[0];
  if (file) segmentBlob(file);
});

loadModel().catch(() => status("cannot reach the server"));
