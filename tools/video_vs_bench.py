"""How close ``rtseg video`` comes to the network-only speed of ``rtseg bench`` on this machine:
alternating runs (the machine drifts over minutes), same weights, backend and threads.

    python tools/video_vs_bench.py SOURCE [--backend B] [--repeats 3] [--threads 2] [--json OUT]
    python tools/video_vs_bench.py SOURCE --end-to-end auto,torch [--repeats 3] [--json OUT]
    python tools/video_vs_bench.py FOLDER --as-video --loop 10 --end-to-end auto,torch

Under an instruction-set cap (``ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``)
the processes run, and auto chooses, as on a CPU with only those instructions; the results file's
``machine`` names the cap.

SOURCE: a video file or a folder of frames. Prints and writes each run and the ratio of the
medians: video FPS overall / network-only FPS (1000 / bench median ms). ``--end-to-end A,B``
instead times whole ``rtseg video SOURCE --backend X`` processes, alternating (start-up, model
loading, graph building and the video included: what a user waits for), with each run's
per-stage lines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rtseg.benchmarks.measure import machine_info  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="video file or folder of frames")
    p.add_argument("--weights", default="enet-camvid", help="default enet-camvid")
    p.add_argument("--threads", default="2", help="default 2")
    p.add_argument("--repeats", type=int, default=3, help="alternating bench / video pairs (default 3)")
    p.add_argument("--backend", default="torch", help="the backend of both (default torch; auto: what rtseg video "
                                                       "picks here, and bench times the same one)")
    p.add_argument("--as-video", action="store_true",
                   help="SOURCE is a folder of frames: encode it to an MP4 (mp4v, 30 fps) first and time that")
    p.add_argument("--loop", type=int, default=1, metavar="N",
                   help="with --as-video: the frames N times over (a longer video: auto's choice depends on its length)")
    p.add_argument("--end-to-end", default=None, metavar="A,B",
                   help="time whole rtseg video processes with these backends, alternating")
    p.add_argument("--json", default=None, metavar="OUT")
    args = p.parse_args()
    from rtseg.benchmarks.measure import run_bench_process

    if args.as_video:
        import cv2

        from rtseg.io import expand_image_inputs

        files = expand_image_inputs([args.source])
        first = cv2.imread(str(files[0]))
        video = Path(tempfile.mkdtemp()) / "frames.mp4"
        vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (first.shape[1], first.shape[0]))
        for _ in range(args.loop):
            for f in files:
                vw.write(cv2.imread(str(f)))
        vw.release()
        times = f" x{args.loop}" if args.loop > 1 else ""
        print(f"{len(files)}{times} frames of {args.source} -> {video}")
        args.source, source_label = str(video), f"{args.source}{times} ({len(files) * args.loop} frames) as MP4 (mp4v)"
    else:
        source_label = args.source
    rtseg = [sys.executable, "-m", "rtseg"]
    if args.end_to_end:
        return end_to_end(args, rtseg, source_label)
    backend = args.backend
    if backend == "auto":
        from rtseg.backends import choose

        backend = choose("stream").backend
    bench_fps, video_fps, runs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            bench = run_bench_process(["--weights", args.weights, "--backend", backend, "--threads", args.threads,
                                       "--iters", "60"], what=f"bench run {i + 1}/{args.repeats}")
            done = subprocess.run([*rtseg, "video", args.source, "--weights", args.weights, "--threads", args.threads,
                                   "--out", str(Path(tmp) / "v.mp4"), "--backend", backend],
                                  check=True, capture_output=True, text=True)
            overall = float(done.stdout.split(" FPS overall")[0].rsplit(",", 1)[-1])
            bench_fps.append(1000 / bench["median_ms"])
            video_fps.append(overall)
            runs.append({"bench_median_ms": bench["median_ms"], "video_fps_overall": overall,
                         "video_summary": done.stdout.strip().splitlines()[1:]})
            print(f"run {i + 1}: network alone {bench_fps[-1]:.1f} FPS, video {overall:.1f} FPS overall", flush=True)
    ratio = statistics.median(video_fps) / statistics.median(bench_fps)
    result = {"source": source_label, "weights": args.weights, "backend": backend, "threads": int(args.threads),
              "network_fps_median": round(statistics.median(bench_fps), 1),
              "video_fps_median": round(statistics.median(video_fps), 1), "ratio": round(ratio, 3), "runs": runs,
              "machine": machine_info()}
    print(f"video / network-only: {100 * ratio:.0f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def end_to_end(args, rtseg: list[str], source_label: str) -> None:
    import time

    backends = args.end_to_end.split(",")
    walls: dict[str, list[float]] = {b: [] for b in backends}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for b in backends if i % 2 == 0 else backends[::-1]:
                start = time.perf_counter()
                done = subprocess.run([*rtseg, "video", args.source, "--weights", args.weights, "--threads",
                                       args.threads, "--out", str(Path(tmp) / "v.mp4"), "--backend", b],
                                      check=True, capture_output=True, text=True)
                wall = time.perf_counter() - start
                walls[b].append(wall)
                runs.append({"backend": b, "process_wall_s": round(wall, 2), "stdout": done.stdout.strip().splitlines()})
                print(f"run {i + 1} {b}: {wall:.2f} s", flush=True)
    result = {"source": source_label, "weights": args.weights, "threads": int(args.threads),
              "process_wall_s_median": {b: round(statistics.median(w), 2) for b, w in walls.items()}, "runs": runs,
              "machine": machine_info()}
    if len(backends) == 2:
        a, b = backends
        result["ratio"] = round(statistics.median(walls[b]) / statistics.median(walls[a]), 3)
        print(f"{b} / {a} wall time: {result['ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
