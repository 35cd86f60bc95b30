"""The tables of measured figures in README.md and docs/, written from the results files in bench/.

A page marks a generated table with ``<!-- table:NAME -->`` ... ``<!-- /table:NAME -->``; this
script rewrites what lies between from the results file NAME reads, so a figure has one source and
a rerun that moves it moves the page with it. ``make docs`` writes them; ``--check`` (run by
tests/project/test_docs.py) fails while any page differs from what its results file says.

    python tools/docs_tables.py            # rewrite every marked table
    python tools/docs_tables.py --check    # exit 1 and name the stale tables
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
         "rtseg/shipped/enet_camvid.md", "rtseg/shipped/edanet_camvid.md"]


def _load(name: str) -> dict:
    return json.loads((ROOT / "bench" / name).read_text(encoding="utf-8"))


def cpu_name(machine: dict) -> str:
    """'Intel Xeon with AMX', 'AMD EPYC with AVX512-VNNI', ...: the CPU and its widest int8/bf16 units."""
    cpu = re.sub(r"\((R|TM)\)|Processor|CPU", "", machine.get("cpu", "?"))
    cpu = re.sub(r"\s+\d+-Core.*$", "", " ".join(cpu.split()))
    isa = set(machine.get("isa", []))
    unit = ("AMX" if "amx_int8" in isa else "AVX512-VNNI" if "avx512_vnni" in isa
            else "AVX512" if "avx512f" in isa else "AVX2" if "avx2" in isa else "no AVX2")
    return f"{cpu} with {unit}"


# ---------------------------------------------------------------------------------------------
# The tables

SHIPPED = {  # --weights name -> (network, paper, the shipped model with the same network and speed)
    "enet-camvid": ("ENet", "https://arxiv.org/abs/1606.02147", "enet-camvid"),
    "edanet-camvid": ("EDANet, pruned to width 0.75", "https://arxiv.org/abs/1809.06323", "edanet-camvid"),
    "edanet-camvid-distilled": ("EDANet as above with a 1/4-resolution refinement, distilled from three networks",
                                "https://arxiv.org/abs/1809.06323", "edanet-camvid-distilled"),
    "enet-camvid-distilled": ("ENet, distilled from both", "https://arxiv.org/abs/1606.02147", "enet-camvid"),
}


#: The run README's latency column reads: the newest timing of all shipped models in one process
#: (retake it and point here when a shipped file changes).
SHIPPED_LATENCY = "shipped_latency_avx512_s29.json"


def shipped_models() -> str:
    """README's "which model": the CamVid test figures (bench/camvid_test.json), parameters and the
    best backend's latency of each shipped model in one run (bench/SHIPPED_LATENCY; a model whose
    twin has the same network and speed is not timed again)."""
    test = _load("camvid_test.json")
    speed = _load(SHIPPED_LATENCY)
    out = [f"| `--weights` | network | CamVid test mIoU | with flip and 540x720 input | parameters | "
           f"ms on an {cpu_name(speed['machine'])}, {speed['threads']} threads, best backend |",
           "|---|---|---:|---:|---:|---|"]
    from rtseg.checkpoint import SHIPPED_WEIGHTS

    assert set(SHIPPED) == set(SHIPPED_WEIGHTS), "a shipped model without a row here (or a row without one)"
    for name, (network, paper, twin) in SHIPPED.items():
        runs = {k.split(":", 1)[1]: v for k, v in speed["backends"].items() if k.startswith(twin + ":")}
        backend, best = min(runs.items(), key=lambda kv: kv[1]["median_ms"])
        params = speed["rows"][f"{twin}:{backend}"][0]["params"]
        default = " (default)" if name == "enet-camvid" else ""
        t = test["models"].get(name)
        figures = (f"**{t['miou']:.1f}** | {t['flip_540x720']:.1f}" if t else
                   "pending | pending")
        out.append(f"| `{name}`{default} | [{network}]({paper}) | {figures} | "
                   f"{params / 1e6:.2f} M | {best['median_ms']:.1f} (`{backend}`) |")
    return "\n".join(out)


RUNTIMES = {  # --backend -> what it is for
    "openvino-int8": "x86 CPUs with VNNI or AMX; what `auto` picks there",
    "torch-bf16": "CPUs with AVX512-BF16 or AMX",
    "torch-int8": "PyTorch's own int8 (`rtseg[int8]`)",
    "torch-compile": "PyTorch anywhere, GPUs included",
    "openvino": "Intel and AMD CPUs; the fastest on AVX2 alone",
    "onnxruntime": "the portable one: C, C++, C#, Java, JavaScript",
    "onnxruntime-int8": "small files",
    "opencv": "apps that already ship OpenCV",
}


def runtimes() -> str:
    """README's runtime table: ENet in each backend, one alternating run
    (bench/backends_enet_camvid_avx512_s16.json), fastest first."""
    run = _load("backends_enet_camvid_avx512_s16.json")
    rows = sorted(run["backends"].items(), key=lambda kv: kv[1]["median_ms"])
    out = [f"| `--backend` | ENet ms, {cpu_name(run['machine'])}, {run['threads']} threads | for |",
           "|---|---:|---|"]
    for backend, r in rows:
        out.append(f"| `{backend}` | {r['median_ms']:.1f} | {RUNTIMES[backend]} |")
    return "\n".join(out)


@functools.cache  # loaded once, not once per table on every page
def _hooks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli() -> str:
    """docs/cli.md: every command and option, from the parsers that print ``--help``."""
    return _hooks().cli_reference().strip()


def config() -> str:
    """docs/training.md: every config key, from rtseg.config's dataclasses."""
    return _hooks().config_reference().strip()


def recipes() -> str:
    """docs/training.md: the recipes in configs/."""
    return _hooks().recipes_reference().strip()


TABLES = {"shipped-models": shipped_models, "runtimes": runtimes, "cli": cli, "config": config, "recipes": recipes}


# ---------------------------------------------------------------------------------------------

def render(text: str) -> str:
    """``text`` with every marked table rewritten from its results file."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in TABLES:
            raise SystemExit(f"<!-- table:{name} -->: no such table (known: {', '.join(TABLES)})")
        return f"<!-- table:{name} -->\n{TABLES[name]()}\n<!-- /table:{name} -->"
    return re.sub(r"<!-- table:([a-z0-9-]+) -->.*?<!-- /table:\1 -->", one, text, flags=re.S)


def stale(write: bool = False) -> list[str]:
    """The pages whose tables differ from their results files (rewritten when ``write``)."""
    out = []
    for page in PAGES:
        path = ROOT / page
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            out.append(page)
            if write:
                path.write_text(new, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table is stale")
    args = parser.parse_args(argv)
    pages = stale(write=not args.check)
    if args.check and pages:
        print("stale tables (run python tools/docs_tables.py):", *pages, file=sys.stderr)
        return 1
    for page in pages:
        print("rewrote", page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
