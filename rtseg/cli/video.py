"""rtseg video: a video, frame folder or camera -> overlay video with FPS (``rtseg.process_video``)."""

from __future__ import annotations

import argparse

from rtseg.cli import options


def register(sub) -> None:
    p = sub.add_parser("video", help="segment a video, a folder of frames or a camera",
                       description="Segment every frame and write a video with the prediction overlaid and the "
                                   "measured FPS and the class key drawn on it, at the source frame rate. Decoding, inference and "
                                   "encoding run concurrently (bounded queues); a summary of per-stage time is "
                                   "printed at the end.")
    p.add_argument("input", metavar="INPUT", help="video file, folder or glob of frames, or camera index (0)")
    options.add_weights(p)
    p.add_argument("--out", required=True, metavar="OUT.mp4",
                   help="output video (.mp4, .avi, .mkv, .mov); with --labels-only a folder")
    p.add_argument("--labels-only", action="store_true",
                   help="for machines, not people: write one class-index PNG per frame (frame_000000.png, ...) "
                        "into the --out folder, and no video")
    p.add_argument("--gif", default=None, metavar="OUT.gif", help="also write an animated GIF (half size)")
    p.add_argument("--fps", type=float, default=None, help="frame rate for frame folders (default 10) or override")
    p.add_argument("--batch", type=int, default=None,
                   help="frames per network pass (default 2 for files and folders: cheaper per frame; "
                        "1 for a camera: lower latency)")
    options.add_inference(p, "frame")
    options.add_classes(p)
    p.add_argument("--no-legend", action="store_true",
                   help="leave out the class key drawn in each frame's top-right corner")
    options.add_tta(p)
    options.add_working_size(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtseg.video import process_video

    def announce(seg) -> None:
        if seg.compiled:
            print(f"{seg.backend}: preparing the network for the first frame's size (a shipped or cached graph "
                  "loads in a second; exporting or compiling takes 10-40 s on a small CPU)", flush=True)

    stats = process_video(args.input, args.out, args.weights, device=args.device, backend=options.resolve_backend(args),
                          threads=args.threads, gif=args.gif, alpha=args.alpha, fps=args.fps, tta=args.tta,
                          labels_only=args.labels_only, batch=args.batch, on_ready=announce,
                          size=options.parse_size(args.size), classes=args.classes, legend=not args.no_legend,
                          announce=lambda m: print(m, flush=True))
    n = stats["frames_out"]
    what = "class-index PNGs" if stats["labels_only"] else f"frames at {stats['source_fps']:.1f} fps"
    print(f"{n} {what} -> {stats['output']}")
    for stage in ("decode", "inference", "render", "encode"):
        total = stats[f"{stage}_s"]
        print(f"  {stage:<9} {total:7.2f} s total, {1000 * total / n:7.1f} ms/frame")
    print(f"  wall      {stats['wall_s']:7.2f} s, {stats['fps_overall']:.1f} FPS overall "
          f"(network alone {stats['fps_network']:.1f} FPS, {1000 / stats['fps_network']:.1f} ms/frame)")
    print(f"  CPU       {stats['process_cpu_s']:.1f} s over {stats['wall_s']:.1f} s: {stats['cores_busy']:.2f} cores busy "
          f"(decode thread {stats['decode_cpu_s']:.1f} s, overlay/encode thread {stats['write_cpu_s']:.1f} s)")
    return 0
