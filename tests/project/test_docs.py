"""The documentation site's generated pages (tools/docs_hooks.py): the CLI reference covers
every command of rtseg.cli, and the config table every key of rtseg.config."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_has_every_subcommand():
    from rtseg.cli import build_parser

    hooks = _hooks()
    text = hooks.cli_reference()
    commands = [name for name, _, _ in hooks.iter_commands(build_parser())]
    top = {name.split()[1] for name in commands}
    assert {"train", "predict", "eval", "export", "bench", "video", "prune", "serve", "models",
            "class-weights", "datasets"} <= top
    assert "rtseg datasets info" in commands and "rtseg datasets resize" in commands
    for name in commands:
        assert f"`{name}`" in text, f"{name} missing from the generated CLI reference"
    # every option of every command is in its table
    for name, _, parser in hooks.iter_commands(build_parser()):
        for action in parser._actions:
            for option in action.option_strings:
                assert option in text, f"{name} {option} missing"


def test_config_reference_has_every_key():
    from rtseg.config import TrainConfig

    text = _hooks().config_reference()
    for section in dataclasses.fields(TrainConfig):
        for f in dataclasses.fields(section.default_factory().__class__):
            assert f"<code>{section.name}.{f.name}</code>" in text


def test_readme_is_a_front_page_whose_links_work_on_the_site():
    hooks = _hooks()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = hooks.readme_for_site(readme, "https://github.com/o/r")
    assert "](docs/" not in page and "](rtseg/" not in page and "](LICENSE)" not in page
    assert len(readme.splitlines()) <= 120, "the README is a front page: the how goes to docs/reproducing.md"
    # a newcomer's path: install, a quick start on their own photo and video, both shipped models
    for must in ("make demo", "rtseg predict", "rtseg video", "rtseg.load_model", "enet-camvid", "edanet-camvid",
                 "docs/your-data.md", "docs/devices.md", "docs/reproducing.md"):
        assert must in readme, must


def test_every_generated_table_is_its_source():
    # README.md and docs/ carry tables written by tools/docs_tables.py from bench/ results files and
    # from the code (the CLI, the config keys, the recipes): a rerun or a new option that moves
    # one fails here until `python tools/docs_tables.py` (make docs) rewrites the page.
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "tools" / "docs_tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    assert tables.stale() == []
    text = "".join((ROOT / p).read_text(encoding="utf-8") for p in tables.PAGES if (ROOT / p).is_file())
    for name in tables.TABLES:
        assert f"<!-- table:{name} -->" in text, f"table {name} is on no page"


def test_site_links_leave_no_page_that_only_works_built():
    # links that GitHub shows (relative, into the repository) become the site's own pages or the
    # repository's files; nothing may point at index.md, which exists only on the site
    hooks = _hooks()
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        assert "index.md" not in text, f"{page.name} links the site-only index.md"
        site = hooks.page_for_site(text, "https://github.com/o/r")
        assert "](../rtseg/" not in site and "](../bench/" not in site, page.name
    for card in sorted((ROOT / "rtseg" / "shipped").glob("*.md")):
        site = hooks.card_for_site(card.read_text(encoding="utf-8"), "https://github.com/o/r")
        assert "](../../" not in site, card.name


def test_the_backend_accuracy_table_is_the_results_files():
    # docs/deployment.md's table of rtseg eval --backend figures (make eval-backends) must say what
    # bench/eval_backends/ holds: a rerun that moves a figure fails here until the page follows.
    import json
    import re

    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    table = text.split("<!-- eval-backends -->")[1].split("<!-- /eval-backends -->")[0]
    rows = [r for r in table.strip().splitlines()[2:]]
    assert len(rows) >= 5
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        found = re.search(r"`([a-z0-9-]+)`", cells[0])
        backend = found.group(1) if found else "plain"
        for model, cell in zip(("enetA", "edanetB1"), cells[1:]):
            result = json.loads((ROOT / "bench" / "eval_backends" / f"{model}_0006R0_{backend}.json").read_text())
            assert cell == f"{100 * result['miou']:.2f}", (backend, model, cell)
            assert result["split"] == "train/0006R0" and result["tta"] == "none"


def test_the_phone_runtime_latency_table_is_its_results_file():
    # docs/deployment.md's latency table of the phone and board runtimes: one alternating run,
    # bench/edge_runtimes_amx.json (its command is on the page).
    import json
    import re

    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    table = text.split("<!-- edge-runtimes -->")[1].split("<!-- /edge-runtimes -->")[0]
    result = json.loads((ROOT / "bench" / "edge_runtimes_amx.json").read_text())["backends"]
    rows = table.strip().splitlines()[2:]
    assert len(rows) == 7
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        backend = re.search(r"`([a-z0-9-]+)`", cells[0]).group(1)
        for model, cell in zip(("enet-camvid", "edanet-camvid"), cells[1:]):
            assert cell == f"{result[f'{model}:{backend}']['median_ms']:.1f}", (backend, model, cell)


def test_the_program_formats_table_covers_every_model_and_is_its_results_file():
    # docs/devices.md: which networks convert to each phone/board format, from one run of
    # tools/program_formats.py; a model added to the registry fails here until the run includes it.
    import json
    import re

    from rtseg import list_models
    from rtseg.backends import program_formats

    rows = json.loads((ROOT / "bench" / "program_formats.json").read_text())["rows"]
    results = {(r["model"], r["format"]): r for r in rows}
    assert set(results) == {(m, f) for m in list_models() for f in program_formats()}
    text = (ROOT / "docs" / "devices.md").read_text(encoding="utf-8")
    table = text.split("<!-- program-formats -->")[1].split("<!-- /program-formats -->")[0].strip().splitlines()
    formats = re.findall(r"`([a-z]+)`", table[0])
    assert formats == list(program_formats())
    assert len(table) == 2 + len(list_models())
    for row in table[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        model = cells[0].strip("`")
        for fmt, cell in zip(formats, cells[1:]):
            r = results[(model, fmt)]
            ok = bool(r.get("converts")) and r["pixel_agreement"] >= 0.999
            assert cell == ("yes" if ok else f"no: {r.get('reason', '')}"), (model, fmt, cell)


def test_the_file_size_table_is_its_results_file():
    import json
    import re

    rows = json.loads((ROOT / "bench" / "program_files.json").read_text())["rows"]
    sizes = {(r["model"], r["format"], r["int8"]): r["file_mb"] for r in rows}
    text = (ROOT / "docs" / "devices.md").read_text(encoding="utf-8")
    table = text.split("<!-- program-files -->")[1].split("<!-- /program-files -->")[0].strip().splitlines()[2:]
    formats = {"ONNX": "onnx", "ExecuTorch": "executorch", "LiteRT": "tflite", "NCNN": "ncnn"}
    assert len(table) == len(rows) // 2
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        fmt, int8 = formats[re.match(r"\w+", cells[0]).group(0)], "int8" in cells[0]
        for model, cell in zip(("enet-camvid", "edanet-camvid"), cells[1:]):
            assert cell == f"{sizes[(model, fmt, int8)]:.2f}", (cells[0], model, cell)


def test_every_results_file_a_page_cites_exists():
    # a figure's source must be there to check it against: a page citing bench/serve_soak.json
    # while no such file was committed is how figures went stale
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "rtseg" / "shipped").glob("*.md"))]
    missing = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"(?<![\w/.-])(bench/[\w./*-]+?\.(?:jsonl|json|md|png))(?![\w])", text):
            path = m.group(1)
            written_by_a_command = text[max(0, m.start() - 7):m.start()] == "--json "
            if "*" not in path and not written_by_a_command and not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)


#: Tables of bench/campaign/README.md (by their header row) and the saved run whose held-out
#: scores their last column gives ("5: 47.2 (46.1 / 45.8), ...": the bracketed runs are others').
CAMPAIGN_TABLES = {
    "| run | session | CPU | epochs reached (of 60) | held-out 0006R0 mIoU (weight 1 / B1 at the same epoch) |":
        "edanet_camvid_distill4_heldout",
    "| session | CPU | epochs reached (of 200) | s/epoch | held-out 0006R0 mIoU (the 60-epoch run at the same epoch) |":
        "edanet_camvid_distill4_e200_heldout",
    "| run | session | CPU | epochs reached (of 60) | held-out 0006R0 mIoU (the weight-4 run without the refinement / B1 at the same epoch) |":
        "edanet_camvid_refine_distill4_heldout",
    "| run | session | CPU | epochs reached (of 60) | held-out 0006R0 mIoU (the refined pixel-wise run / the unrefined weight-4 run at the same epoch) |":
        "edanet_camvid_refine_cwd1_heldout",
    "| run | session | CPU | epochs reached (of 60) | held-out 0006R0 mIoU (the channel-wise run / the pixel-wise refined run at the same epoch) |":
        "edanet_camvid_refine_cwd1_lovasz1_heldout",
    "| run | session | CPU | epochs reached (of 120) | held-out 0006R0 mIoU (the 60-epoch run at the same epoch) |":
        "edanet_camvid_refine_cwd_e120_heldout",
    "| run | session | CPU | epochs reached (of 60) | held-out 0006R0 mIoU (the two-teacher Lovasz run at the same epoch) |":
        "edanet_camvid_refine_cwd_t3_heldout",
    "| run | session | CPU | epochs reached (of 60) | held-out 0006R0 mIoU (the weight-1 three-member run at the same epoch) |":
        "edanet_camvid_refine_cwd3_t3_heldout",
}


def test_the_campaign_tables_are_their_metrics_files():
    import json
    import re

    text = (ROOT / "bench" / "campaign" / "README.md").read_text(encoding="utf-8")
    for header, run in CAMPAIGN_TABLES.items():
        assert header in text, header
        rows = text.split(header, 1)[1].split("\n\n", 1)[0].splitlines()[2:]  # after the |---| line
        metrics = ROOT / "bench" / "campaign" / run / "metrics.jsonl"
        scores = {r["epoch"]: 100 * r["val_miou"] for r in map(json.loads, metrics.read_text().splitlines())
                  if "val_miou" in r}
        said = [(int(e), float(s)) for row in rows for e, s in re.findall(r"(\d+): \**(\d+\.\d)",
                                                                           re.sub(r"\([^)]*\)", "", row.split("|")[-2]))]
        assert said, run
        wrong = [(e, s, round(scores.get(e, float("nan")), 2)) for e, s in said if not abs(scores.get(e, -1) - s) <= 0.05]
        assert not wrong, (run, wrong)
