"""Draw the pictures of the shipped models' cards (rtseg/shipped/<name>.md) into docs/cards/.

    python tools/model_cards.py            # or: make cards

- ``camvid_classes.png``: the colour key of the shipped models' class table (read from their
  checkpoints, which must agree);
- ``camvid_test_per_class.png``: per-class IoU on the CamVid test split of every shipped model,
  side by side, from ``bench/camvid_test.json`` (the project benchmark's figures).

The output is deterministic (no matplotlib version in the files), and each PNG records in its
``Source`` text field a digest of what it was drawn from, so a test can tell a picture that no
longer matches ``bench/camvid_test.json`` or the class table (tests/project/test_cards.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "camvid_test.json"
OUT = ROOT / "docs" / "cards"
LEGEND = "camvid_classes.png"
PER_CLASS = "camvid_test_per_class.png"


def digest(data: bytes) -> str:
    """A short content digest, the ``Source`` of a picture."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def shipped_class_table():
    """The class table every shipped checkpoint records (they must agree: one key serves all)."""
    from rtseg.checkpoint import SHIPPED_WEIGHTS, load_checkpoint
    from rtseg.datasets.classes import ClassTable

    tables = {name: ClassTable.from_dict(load_checkpoint(name)["classes"]) for name in sorted(SHIPPED_WEIGHTS)}
    first = next(iter(tables.values()))
    differ = [name for name, table in tables.items() if table != first]
    if differ:
        raise SystemExit(f"the shipped models' class tables differ ({', '.join(differ)}): one legend cannot serve all")
    return first


def class_table_source(classes) -> str:
    return f"class table {digest(json.dumps(classes.to_dict(), sort_keys=True).encode())}"


def results_source(path: Path = RESULTS) -> str:
    path = path.resolve()
    shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    return f"{shown} {digest(path.read_bytes())}"


def draw_legend(classes, out: Path) -> Path:
    from rtseg.visualize import plot_class_legend

    path = out / LEGEND
    plot_class_legend(classes, path, columns=2, title="CamVid classes (void: ignored, never predicted)",
                      metadata={"Software": None, "Source": class_table_source(classes)})
    return path


def draw_per_class(results: dict, source: str, out: Path) -> Path:
    from rtseg.visualize import plot_per_class_iou_compare

    models = results["models"]
    names = list(next(iter(models.values()))["per_class"])
    series = {f"{name} (mIoU {m['miou']:.1f})": [m["per_class"][c] for c in names] for name, m in models.items()}
    path = out / PER_CLASS
    title = (f"CamVid test ({results['frames']} frames, {results['size'][0]}x{results['size'][1]}): "
             "IoU per class, the project's benchmark")
    plot_per_class_iou_compare(names, series, path, title=title, metadata={"Software": None, "Source": source})
    return path


def main(out: Path = OUT, results_path: Path = RESULTS) -> list[Path]:
    results = json.loads(results_path.read_text(encoding="utf-8"))
    classes = shipped_class_table()
    names = list(classes.names)
    for name, m in results["models"].items():
        if list(m["per_class"]) != names:
            raise SystemExit(f"{results_path.name}: {name}'s classes {list(m['per_class'])} are not the "
                             f"shipped class table's {names}")
    out.mkdir(parents=True, exist_ok=True)
    return [draw_legend(classes, out), draw_per_class(results, results_source(results_path), out)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Draw the model cards' pictures into docs/cards/.")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the pictures (default docs/cards)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the test figures (default bench/camvid_test.json)")
    args = parser.parse_args()
    for p in main(args.out, args.results):
        print(p.relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p)
