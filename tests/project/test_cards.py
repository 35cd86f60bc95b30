"""The shipped models' cards (rtseg/shipped/<name>.md) say what bench/camvid_test.json, the class
table and the held-out results files say, and show pictures that exist and are up to date
(``python tools/model_cards.py`` redraws them)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from rtseg.checkpoint import SHIPPED_WEIGHTS, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
RESULTS = json.loads((ROOT / "bench" / "camvid_test.json").read_text(encoding="utf-8"))
NAMES = sorted(SHIPPED_WEIGHTS)
#: Shipped models the held-back test split has scored; a newly shipped one waits for the project's
#: benchmark, and its card says so instead of giving test figures.
MEASURED = sorted(set(NAMES) & set(RESULTS["models"]))
PENDING = sorted(set(NAMES) - set(RESULTS["models"]))
#: A row of a card's test table -> its key in bench/camvid_test.json.
TEST_ROWS = {"plain": "miou", "flip averaging": "flip", "larger input": "size_540x720",
             "both": "flip_540x720", "OpenVINO int8": "openvino_int8"}


def _card_path(name: str) -> Path:
    return ROOT / "rtseg" / "shipped" / SHIPPED_WEIGHTS[name].replace(".pt", ".md")


def _card(name: str) -> str:
    return _card_path(name).read_text(encoding="utf-8")


def _tools_model_cards():
    spec = importlib.util.spec_from_file_location("model_cards", ROOT / "tools" / "model_cards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(text: str, header: str) -> list[list[str]]:
    """The body rows (cells stripped, bold marks removed) of the markdown table whose header row
    starts with ``header``."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(header)]
    assert len(starts) == 1, f"expected one table headed {header!r}, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().replace("**", "") for c in line.strip().strip("|").split("|")])
    return rows


def _pictures(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)


def test_every_shipped_model_has_a_card_and_test_figures_or_says_they_are_pending():
    assert set(RESULTS["models"]) <= set(NAMES), "test figures of a model that is not shipped"
    for name in NAMES:
        assert _card_path(name).is_file(), f"{name} has no card"
        assert _card(name).startswith(f"# `{name}`\n")
    for name in PENDING:
        assert "not yet measured" in _card(name), f"{name}: no test figures and the card does not say so"
        assert "| test IoU |" not in _card(name) and "| setting |" not in _card(name)


@pytest.mark.parametrize("name", MEASURED)
def test_the_test_table_is_the_results_file(name):
    figures = RESULTS["models"][name]
    rows = {row[0]: row for row in _table(_card(name), "| setting |")}
    assert set(rows) == set(TEST_ROWS)
    for label, key in TEST_ROWS.items():
        assert rows[label][-1] == f"{figures[key]:.1f}", (name, label)
    accuracy = re.search(r"Pixel accuracy (\d+\.\d)", _card(name))
    assert accuracy and accuracy.group(1) == f"{figures['pixel_accuracy']:.1f}"
    ensemble = re.search(r"Averaging the softmax of this model and\s+`([\w-]+)` scores (\d+\.\d)", _card(name))
    assert ensemble and {name, ensemble.group(1)} == set(RESULTS["ensemble"]["models"])
    assert ensemble.group(2) == f"{RESULTS['ensemble']['miou']:.1f}"


@pytest.mark.parametrize("name", MEASURED)
def test_the_class_table_is_the_checkpoint_and_the_results_file(name):
    classes = load_checkpoint(name)["classes"]
    per_class = RESULTS["models"][name]["per_class"]
    rows = _table(_card(name), "| id | class | colour (RGB) | test IoU |")
    assert [r[1] for r in rows] == classes["names"] == list(per_class)
    for i, (index, cls, colour, iou) in enumerate(rows):
        assert int(index) == i and colour == "({}, {}, {})".format(*classes["palette"][i]), cls
        assert iou == f"{per_class[cls]:.1f}", (name, cls)


@pytest.mark.parametrize("name", NAMES)
def test_the_held_out_figure_is_its_results_file(name):
    found = re.search(r"scores (\d+\.\d) on\s+its 101 frames\s+\(\[`[\w.]+`\]\(\.\./\.\./([\w./]+)\)", _card(name))
    assert found, "the card names its held-out figure and links the file it comes from"
    path = ROOT / found.group(2)
    if path.suffix == ".jsonl":  # a held-out run's log: its val split is the held-out sequence, its last epoch counts
        result = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()][-1]
        config = (path.parent / "config.yaml").read_text(encoding="utf-8")
        assert "val_split: train/0006R0" in config and "train_split: trainval/-0006R0" in config
        miou = result["val_miou"]
    else:
        result = json.loads(path.read_text(encoding="utf-8"))
        assert result["split"] == "train/0006R0"
        miou = result["miou"]
    assert found.group(1) == f"{100 * miou:.1f}"


@pytest.mark.parametrize("name", NAMES)
def test_links_and_paths_of_a_card_exist(name):
    text = _card(name)
    for target in re.findall(r"\]\((\.\./\.\./[^)#\s]+)", text):
        assert (_card_path(name).parent / target).resolve().exists(), target
    for path in re.findall(r"`((?:bench|rtseg|docs|configs)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), path
    assert "_log.jsonl" not in text  # the logs moved to bench/campaign/logs/ (docs/reproducing.md)


@pytest.mark.parametrize("name", NAMES)
def test_a_card_shows_pictures_drawn_from_the_current_figures(name):
    cards = _tools_model_cards()
    pictures = _pictures(_card(name))
    required = {cards.LEGEND, cards.PER_CLASS} if name in MEASURED else {cards.LEGEND}
    assert {Path(p).name for p in pictures} >= required
    from PIL import Image

    from rtseg.datasets.classes import ClassTable

    expected = {cards.LEGEND: cards.class_table_source(ClassTable.from_dict(load_checkpoint(name)["classes"])),
                cards.PER_CLASS: cards.results_source()}
    for p in pictures:
        path = (_card_path(name).parent / p).resolve()
        assert path.is_file() and path.parent == cards.OUT, p
        with Image.open(path) as im:
            assert im.text.get("Source") == expected[path.name], f"{p} is stale: python tools/model_cards.py"


def test_the_pictures_are_redrawn_byte_for_byte(tmp_path):
    cards = _tools_model_cards()
    first = cards.main(tmp_path / "a")
    second = cards.main(tmp_path / "b")
    assert [p.name for p in first] == [cards.LEGEND, cards.PER_CLASS]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
